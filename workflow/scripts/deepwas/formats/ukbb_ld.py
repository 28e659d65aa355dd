"""UKBB LD window files (Weissbrod et al. 2020; paper App. D.1).

A window is a pair `PREFIX.npz` + `PREFIX.gz`:
- `.npz`: `scipy.sparse.save_npz` of ONE triangle of the signed correlation matrix with 0.5 on the
  diagonal, so the full matrix is R = M + M^T (unit diagonal, checked on reading).
- `.gz`: a whitespace table with header `rsid chromosome position allele1 allele2` (GRCh37). The
  correlations are of allele1 counts: allele1 plays the role of a summary-statistics file's A1.
"""
from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..io import atomic_path
from ..ld_factors import LDMatrixError, check_unit_diagonal

VARIANT_COLUMNS = ["rsid", "chromosome", "position", "allele1", "allele2"]


class LDFormatError(LDMatrixError):
    """An LD window file is unreadable or inconsistent; the message names the file."""


def read_ld_variants(path) -> pd.DataFrame:
    path = Path(path)
    try:
        df = pd.read_csv(path, sep=r"\s+", dtype={"rsid": str, "chromosome": str, "allele1": str, "allele2": str},
                         compression="gzip")
    except (OSError, EOFError, zipfile.BadZipFile, pd.errors.ParserError, pd.errors.EmptyDataError, gzip.BadGzipFile) as err:
        raise LDFormatError(f"{path}: cannot read the LD variant list ({type(err).__name__}: {err})") from err
    missing = [c for c in VARIANT_COLUMNS if c not in df.columns]
    if missing:
        raise LDFormatError(f"{path}: LD variant list lacks column(s) {missing}; header is {list(df.columns)}")
    pos = pd.to_numeric(df["position"], errors="coerce")
    if pos.isna().any():
        line = int(np.flatnonzero(pos.isna().to_numpy())[0]) + 2
        raise LDFormatError(f"{path}: line {line}: non-numeric position {df['position'].iloc[line - 2]!r}")
    df["position"] = pos.astype(np.int64)
    df["chromosome"] = df["chromosome"].str.replace(r"^chr", "", regex=True, case=False)
    for c in ("allele1", "allele2"):
        df[c] = df[c].str.upper()
    # an LD source that records the panel's allele1 frequency writes it as an extra `freq` column
    return df[VARIANT_COLUMNS + (["freq"] if "freq" in df.columns else [])]


TILE = 2048


def _symmetrise_in_place(D: np.ndarray, path) -> None:
    """D <- D + D^T tile by tile (one tile of scratch memory), refusing a file that holds both triangles."""
    m = D.shape[0]
    n_lower = n_upper = 0
    for i in range(0, m, TILE):
        I = slice(i, min(i + TILE, m))
        T = D[I, I]
        n_lower += int(np.count_nonzero(np.tril(T, -1)))
        n_upper += int(np.count_nonzero(np.triu(T, 1)))
        D[I, I] = T + T.T
        for j in range(i + TILE, m, TILE):
            J = slice(j, min(j + TILE, m))
            up, lo = D[I, J], D[J, I]
            n_upper += int(np.count_nonzero(up))
            n_lower += int(np.count_nonzero(lo))
            S = up + lo.T
            D[I, J] = S
            D[J, I] = S.T
    if n_lower and n_upper:
        d = np.diagonal(D)
        raise LDFormatError(
            f"{path}: diagonal is {float(np.median(d)):.6g} after symmetrising, but the file holds entries on both "
            f"sides of it ({n_lower:,} below, {n_upper:,} above), so R = M + M^T doubles every correlation; was the "
            "matrix already full? A UKBB-layout .npz holds ONE triangle with 0.5 on the diagonal."
        )


def read_ld_matrix(path, n_variants: int | None = None, diag_atol: float = 1e-4, dtype=np.float64) -> np.ndarray:
    """Full symmetric R of a window in `dtype`; checks shape, layout (one triangle), finiteness, unit diagonal.

    Memory: the sparse file plus ONE dense m x m array in `dtype` (symmetrised in place, tile by tile).
    `dtype="auto"`: float32 when the file stores float32 or less (lossless: each entry of M + M^T is one
    stored value, and 0.5 + 0.5 is exact), float64 otherwise.
    """
    path = Path(path)
    try:
        M = sp.load_npz(path)
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise LDFormatError(
            f"{path}: cannot read the LD matrix ({type(err).__name__}: {err}); the file is truncated or not a "
            "scipy.sparse .npz. Delete it and download it again."
        ) from err
    if M.shape[0] != M.shape[1]:
        raise LDFormatError(f"{path}: LD matrix is not square: shape {M.shape}")
    if n_variants is not None and M.shape[0] != n_variants:
        raise LDFormatError(
            f"{path}: LD matrix has {M.shape[0]} rows but the variant list has {n_variants} variants; "
            "the .npz and .gz do not belong together"
        )
    M = M.tocsr()
    if isinstance(dtype, str) and dtype == "auto":
        dtype = np.float32 if M.dtype.kind == "f" and M.dtype.itemsize <= 4 else np.float64
    dtype = np.dtype(dtype)
    if not np.all(np.isfinite(M.data)):
        raise LDFormatError(f"{path}: LD matrix has {int((~np.isfinite(M.data)).sum())} non-finite entries")
    R = np.empty(M.shape, dtype=dtype)
    for i in range(0, M.shape[0], TILE):          # densify by row blocks: no converted copy of the sparse data
        R[i:i + TILE] = M[i:i + TILE].toarray()
    del M
    _symmetrise_in_place(R, path)
    check_unit_diagonal(R, str(path), atol=diag_atol)
    return R


def read_ld_window(prefix, diag_atol: float = 1e-4, dtype=np.float64) -> tuple[np.ndarray, pd.DataFrame]:
    """Read `prefix.npz` and `prefix.gz` of one window (R in `dtype`); positions must be sorted."""
    prefix = str(prefix)
    variants = read_ld_variants(prefix + ".gz")
    R = read_ld_matrix(prefix + ".npz", n_variants=len(variants), diag_atol=diag_atol, dtype=dtype)
    if not variants["position"].is_monotonic_increasing:
        raise LDFormatError(f"{prefix}.gz: positions are not sorted")
    return R, variants


def upper_triangle_csr(R: np.ndarray, dtype=np.float32, block: int = 512) -> sp.csr_matrix:
    """The stored matrix of the UKBB layout: the strict upper triangle of R with 0.5 on the diagonal, in `dtype`,
    as CSR without its zero entries (sorted indices; int32 indices when they fit).

    Built from row blocks of `block` rows in two passes (count, then fill), so that besides R it holds only the
    CSR arrays (4 + itemsize bytes per stored entry: half of m^2) and one block. A dense triangle copy and
    scipy's `csr_matrix(dense)` (an int64 COO intermediate) cost about 26 bytes per entry of a float64 R: a
    peak of 7.5 GB instead of 3.0 GB for a 14,511-variant window from a 500-person PLINK panel."""
    m = R.shape[0]
    dtype = np.dtype(dtype)

    def upper(s):                    # rows s..s+block of the stored matrix, in dtype, and their nonzero mask
        B = np.array(R[s:s + block, s:], dtype=dtype)
        k = B.shape[0]
        B[np.tril_indices(k, -1, B.shape[1])] = 0
        B[np.arange(k), np.arange(k)] = 0.5
        return B, B != 0

    counts = np.zeros(m, dtype=np.int64)
    for s in range(0, m, block):
        counts[s:s + block] = upper(s)[1].sum(1)
    nnz = int(counts.sum())
    index_dtype = np.int32 if max(nnz, m) <= np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(m + 1, dtype=index_dtype)
    np.cumsum(counts, out=indptr[1:])
    data = np.empty(nnz, dtype=dtype)
    indices = np.empty(nnz, dtype=index_dtype)
    for s in range(0, m, block):
        B, nz = upper(s)
        a, b = int(indptr[s]), int(indptr[min(s + block, m)])
        data[a:b] = B[nz]
        indices[a:b] = np.nonzero(nz)[1] + s
    return sp.csr_matrix((data, indices, indptr), shape=(m, m))


def write_ld_window(prefix, R: np.ndarray, variants: pd.DataFrame, dtype=np.float32) -> None:
    """Write a window in the UKBB layout (upper triangle + 0.5 diagonal), atomically; an optional `freq` column
    of `variants` (panel frequency of allele1) is kept in the variant list. Memory: R plus the stored triangle
    (`upper_triangle_csr`)."""
    prefix = str(prefix)
    if R.shape != (len(variants), len(variants)):
        raise ValueError(f"{prefix}: R has shape {R.shape} but there are {len(variants)} variants")
    with atomic_path(prefix + ".npz") as tmp:
        sp.save_npz(tmp, upper_triangle_csr(R, dtype), compressed=True)
    with atomic_path(prefix + ".gz") as tmp:
        with gzip.open(tmp, "wt") as fh:
            variants[VARIANT_COLUMNS + (["freq"] if "freq" in variants.columns else [])].to_csv(fh, sep="\t", index=False)
