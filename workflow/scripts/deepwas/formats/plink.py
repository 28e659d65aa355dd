"""PLINK 1 binary genotype panels (`.bed` + `.bim` + `.fam`), read and written with bed-reader.

- `.bim`: whitespace table without header `chromosome id cM position allele1 allele2`, one row per variant
  in the order of the `.bed` columns. Chromosome names may carry a `chr` prefix (dropped here); PLINK's
  numeric codes 23 and 24 are read as X and Y.
- `.fam`: one row per person (`fid iid father mother sex phenotype`); the panel size is its row count.
- `.bed`: 2-bit genotype calls, variant-major. Read with `count_A1=True`: a genotype is the number of copies
  of the `.bim`'s allele1 (its fifth column), so allele1 plays the role of the UKBB layout's allele1 and of a
  summary-statistics file's A1; a missing call reads as NaN.

A prefix may hold `{chrom}` for one file set per chromosome (`panel/chr{chrom}` -> `panel/chr1.bed` ...).
The genome build is whatever the panel's positions are in; windows are cut on those positions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

BIM_COLUMNS = ["chromosome", "rsid", "cm", "position", "allele1", "allele2"]
_PLINK_CODES = {"23": "X", "24": "Y"}


def normalise_chrom(chrom) -> str:
    """'chr1' -> '1', PLINK's '23' / '24' -> 'X' / 'Y'."""
    c = str(chrom)
    c = c[3:] if c[:3].lower() == "chr" else c
    return _PLINK_CODES.get(c, c.upper() if c.lower() in ("x", "y") else c)


class PlinkFormatError(ValueError):
    """A PLINK file is missing, unreadable or inconsistent; the message names the file and what to do."""


def plink_paths(prefix: str, chrom: str) -> dict[str, Path]:
    """The `.bed` / `.bim` / `.fam` paths of chromosome `chrom` (`{chrom}` in the prefix is substituted)."""
    p = str(prefix).replace("{chrom}", str(chrom))
    return {ext: Path(f"{p}.{ext}") for ext in ("bed", "bim", "fam")}


def _exists(path: Path, what: str) -> None:
    if not path.is_file():
        raise PlinkFormatError(f"{path}: PLINK {what} file not found; ld.plink must be the path prefix of a "
                               ".bed/.bim/.fam file set (with {chrom} for one set per chromosome)")


def read_bim(path, chrom: str | None = None, columns: list[str] | None = None,
             chunk_rows: int = 1_000_000) -> pd.DataFrame:
    """The `.bim` table (`columns`, default all of BIM_COLUMNS, plus `index`: the variant's column in the
    `.bed`), optionally only chromosome `chrom`. Read in chunks of `chunk_rows` lines, so a whole-genome
    `.bim` costs memory only for the rows kept."""
    path = Path(path)
    _exists(path, ".bim")
    columns = list(columns or BIM_COLUMNS)
    use = [c for c in BIM_COLUMNS if c in set(columns) | {"chromosome", "position"}]
    want = None if chrom is None else normalise_chrom(chrom)
    parts, offset = [], 0
    try:
        reader = pd.read_csv(path, sep=r"\s+", header=None, names=BIM_COLUMNS, usecols=use, chunksize=chunk_rows,
                             dtype={"chromosome": str, "rsid": str, "allele1": str, "allele2": str, "position": str})
        for df in reader:
            df.index = np.arange(offset, offset + len(df))
            offset += len(df)
            pos = pd.to_numeric(df["position"], errors="coerce")
            if pos.isna().any():
                line = int(df.index[np.flatnonzero(pos.isna().to_numpy())[0]]) + 1
                raise PlinkFormatError(f"{path}: line {line}: non-numeric position {df['position'].loc[line - 1]!r} "
                                       "(a .bim has 6 columns: chromosome id cM position allele1 allele2)")
            df["position"] = pos.astype(np.int64)
            df["chromosome"] = df["chromosome"].map(normalise_chrom)
            if want is not None:
                df = df[df["chromosome"] == want]
            parts.append(df)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise PlinkFormatError(f"{path}: cannot read the PLINK .bim ({type(err).__name__}: {err})") from err
    if not parts:
        raise PlinkFormatError(f"{path}: the .bim lists no variant")
    df = pd.concat(parts)
    for c in ("allele1", "allele2"):
        if c in df.columns:
            df[c] = df[c].str.upper()
    df["index"] = df.index.to_numpy(dtype=np.int64)
    return df[[c for c in BIM_COLUMNS if c in use] + ["index"]].reset_index(drop=True)


def bim_size(path) -> int:
    """Number of variants (lines) in a `.bim`: the `.bed`'s column count."""
    path = Path(path)
    _exists(path, ".bim")
    with open(path) as fh:
        return sum(1 for line in fh if line.strip())


def read_fam_size(path) -> int:
    """Number of people in a `.fam` (its non-empty lines)."""
    path = Path(path)
    _exists(path, ".fam")
    with open(path) as fh:
        n = sum(1 for line in fh if line.strip())
    if n == 0:
        raise PlinkFormatError(f"{path}: the .fam lists no person")
    return n


def read_genotype_columns(bed, index: np.ndarray, n_people: int, n_variants: int) -> np.ndarray:
    """Allele1 counts (float64, NaN = missing call) of the `.bed` columns `index`: shape (people, len(index)).

    Only these columns are read (bed-reader seeks to them), so memory is people x len(index)."""
    bed = Path(bed)
    _exists(bed, ".bed")
    from bed_reader import open_bed

    try:
        with open_bed(bed, iid_count=n_people, sid_count=n_variants, count_A1=True) as b:
            return b.read(index=np.s_[:, np.asarray(index, dtype=np.intp)], dtype="float64")
    except (OSError, ValueError) as err:
        raise PlinkFormatError(f"{bed}: cannot read the PLINK .bed for {n_people} people x {n_variants} variants "
                               f"({type(err).__name__}: {err}); check that .bed, .bim and .fam belong together") from err


def write_plink(prefix, genotypes: np.ndarray, chrom, positions, allele1, allele2, rsid=None) -> None:
    """Write a PLINK 1 file set: `genotypes` (people x variants) counts of allele1, NaN for a missing call."""
    from bed_reader import to_bed

    n, m = genotypes.shape
    prefix = str(prefix)
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    m_chrom = np.broadcast_to(np.asarray(chrom, dtype=str), (m,))
    rsid = np.asarray(rsid if rsid is not None else [f"{c}:{p}" for c, p in zip(m_chrom, positions)], dtype=str)
    props = {"fid": [f"f{i}" for i in range(n)], "iid": [f"i{i}" for i in range(n)],
             "chromosome": list(m_chrom), "sid": list(rsid), "cm_position": [0.0] * m,
             "bp_position": [int(p) for p in positions], "allele_1": list(np.asarray(allele1, dtype=str)),
             "allele_2": list(np.asarray(allele2, dtype=str))}
    to_bed(prefix + ".bed", np.asarray(genotypes, dtype=np.float32), properties=props, count_A1=True)
