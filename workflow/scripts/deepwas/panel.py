"""LD windows from the user's own genotype panel (PLINK 1), in the UKBB LD layout (paper App. D.1).

The paper's likelihood (Sec. 2-3) needs, per window, the correlation matrix R of the standardised allele
counts of the window's variants in an LD panel. UK Biobank ships R for 3 Mb windows on a 1 Mb grid; here the
same windows are computed from a panel of n people:

- windows: the grid of `ld.window_length` / `ld.window_stride` starting at 1 (as the UKBB windows and the
  demo's tiling, `windows.tile`) over the panel's positions on the chromosome, keeping the windows that
  hold at least one variant (`panel_windows`; the workflow calls it when it builds the DAG, so downstream
  rules see the same list). Positions are taken as they are: any genome build (liftover is only for
  features). Variants at position <= 0 (unplaced in PLINK) are left out and counted.
- genotypes: a missing call is replaced by the variant's mean over the people with a call (mean imputation:
  it adds nothing to the variance or covariance) and counted; a variant without variation among the calls
  (monomorphic, or no call at all) has no correlation and is dropped and counted.
- R = X^T X / n with X the people x variants matrix of standardised (mean 0, variance 1 over n) imputed
  counts; written with `formats.ukbb_ld.write_ld_window` (one triangle, 0.5 on the diagonal, float32).
  The variant list carries `freq`, the panel frequency of allele1 among the calls, which harmonisation
  uses for statistics without a frequency and for palindromic variants.
- memory: one window at a time: only its variants' `.bed` columns are read (n x k) and R is k x k.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .formats.plink import bim_size, plink_paths, read_bim, read_fam_size, read_genotype_columns
from .formats.ukbb_ld import write_ld_window
from .io import write_json
from .windows import Window, tile

log = logging.getLogger(__name__)


def panel_windows(positions, chrom: str, length: int, stride: int) -> list[Window]:
    """Windows of the `length` / `stride` grid (starts 1 + k * stride) that hold at least one of `positions`
    (positions <= 0 are unplaced and ignored)."""
    pos = np.sort(np.asarray(positions, dtype=np.int64))
    pos = pos[pos > 0]
    if pos.size == 0:
        return []
    out = []
    for w in tile(str(chrom), int(pos[-1]), length, stride):
        if np.searchsorted(pos, w.end, "left") > np.searchsorted(pos, w.start, "left"):
            out.append(w)
    return out


def chromosome_windows(prefix: str, chrom: str, length: int, stride: int) -> list[Window]:
    """The LD windows of chromosome `chrom` of the PLINK panel `prefix` (read from its `.bim`)."""
    bim = read_bim(plink_paths(prefix, chrom)["bim"], chrom, columns=["chromosome", "position"])
    return panel_windows(bim["position"].to_numpy(), chrom, length, stride)


def bim_positions(bim_path) -> dict[str, np.ndarray]:
    """{chromosome: positions} of every chromosome of a `.bim` (one read for a whole-genome panel)."""
    bim = read_bim(bim_path, columns=["chromosome", "position"])
    return {c: g.to_numpy() for c, g in bim.groupby("chromosome")["position"]}


def window_sizes(positions, windows: list[Window]) -> list[int]:
    """Number of `positions` in each window ([start, end))."""
    pos = np.sort(np.asarray(positions, dtype=np.int64))
    return [int(np.searchsorted(pos, w.end, "left") - np.searchsorted(pos, w.start, "left")) for w in windows]


def memory_mb(n_people: int, max_window_variants: int) -> int:
    """Peak memory (MB) of `build_ld_windows` for its largest window of k variants: the n x k genotypes and
    their standardised copy (float64) and 16 bytes per entry of R (R in float64, the stored triangle's float32
    data and int32 indices over half the entries, `formats.ukbb_ld.upper_triangle_csr`, and a margin for its
    row block and the compressor), plus 500 MB for the interpreter and the .bim. Measured: 3.0 GB peak for a
    500-person panel window of 14,511 variants (this estimate: 4.0 GB)."""
    k = int(max_window_variants)
    return int(500 + (3 * 8 * n_people * k + 16 * k * k) / 1e6)


@dataclass
class StandardisedWindow:
    X: np.ndarray           # people x kept variants, standardised imputed allele1 counts
    keep: np.ndarray        # (k,) bool: variant kept (not monomorphic)
    freq: np.ndarray        # (kept,) frequency of allele1 among the calls
    n_missing: np.ndarray   # (k,) missing calls per variant (all variants)


def standardise(G: np.ndarray) -> StandardisedWindow:
    """Mean-impute missing calls (NaN) of the allele counts G (people x variants), drop monomorphic variants,
    and standardise to mean 0 and variance 1 over the people."""
    G = np.array(G, dtype=np.float64)
    miss = np.isnan(G)
    n_called = (~miss).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_called > 0, np.nansum(G, 0) / np.maximum(n_called, 1), np.nan)
    G = np.where(miss, mean[None, :], G)
    sd = G.std(0) if G.shape[0] else np.zeros(G.shape[1])
    keep = (n_called > 0) & np.isfinite(sd) & (sd > 1e-8)
    X = (G[:, keep] - mean[keep]) / sd[keep]
    return StandardisedWindow(X, keep, mean[keep] / 2.0, miss.sum(0))


def window_ld(G: np.ndarray) -> tuple[np.ndarray, StandardisedWindow]:
    """R (float64, kept variants) of one window's allele counts G (people x variants, NaN = missing)."""
    s = standardise(G)
    R = s.X.T @ s.X / s.X.shape[0]
    np.fill_diagonal(R, 1.0)
    return R, s


def build_ld_windows(prefix: str, chrom: str, out_dir, length: int, stride: int, report_path=None) -> dict:
    """Write the UKBB-layout windows of chromosome `chrom` of the PLINK panel `prefix` into `out_dir`, plus
    `out_dir/panel.json` (the panel size n, used by the LD-score bias correction, and the source files);
    return (and write to `report_path`) the counts of the build."""
    paths = plink_paths(prefix, chrom)
    n_people = read_fam_size(paths["fam"])
    n_bim = bim_size(paths["bim"])
    bim = read_bim(paths["bim"], chrom)
    if bim.empty:
        raise ValueError(f"{paths['bim']}: no variant on chromosome {chrom}; drop it from `chromosomes` or point "
                         "ld.plink at a panel that has it (chromosome names are compared without a 'chr' prefix)")
    unplaced = int((bim["position"] <= 0).sum())
    bim = bim[bim["position"] > 0].sort_values(["position", "index"], kind="stable").reset_index(drop=True)
    windows = panel_windows(bim["position"].to_numpy(), chrom, length, stride)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pos = bim["position"].to_numpy()
    missing_calls: dict[int, int] = {}
    monomorphic: set[int] = set()
    written: set[int] = set()
    per_window = []
    for w in windows:
        lo, hi = np.searchsorted(pos, w.start, "left"), np.searchsorted(pos, w.end, "left")
        rows = bim.iloc[lo:hi]
        idx = rows["index"].to_numpy()
        G = read_genotype_columns(paths["bed"], idx, n_people, n_bim)
        R, s = window_ld(G)
        missing_calls.update({int(i): int(c) for i, c in zip(idx, s.n_missing) if c})
        monomorphic.update(int(i) for i in idx[~s.keep])
        written.update(int(i) for i in idx[s.keep])
        kept = rows[s.keep]
        variants = pd.DataFrame({"rsid": kept["rsid"].to_numpy(), "chromosome": str(chrom),
                                 "position": kept["position"].to_numpy(), "allele1": kept["allele1"].to_numpy(),
                                 "allele2": kept["allele2"].to_numpy(), "freq": np.round(s.freq, 6)})
        write_ld_window(out_dir / w.name, R, variants)
        per_window.append({"window": w.name, "n_variants": int(s.keep.sum()), "n_monomorphic": int((~s.keep).sum())})
        log.info("%s: %d variants (%d monomorphic dropped)", w.name, int(s.keep.sum()), int((~s.keep).sum()))
    write_json(out_dir / "panel.json", {"panel_size": n_people, "chromosome": str(chrom),
                                        "bed": str(paths["bed"]), "bim": str(paths["bim"]), "fam": str(paths["fam"]),
                                        "windows": [w.name for w in windows],
                                        "window_length": int(length), "window_stride": int(stride)})
    n_calls = sum(missing_calls.values())
    report = {
        "chromosome": str(chrom), "panel_size": n_people, "n_variants_bim": int(len(bim) + unplaced),
        "dropped_unplaced": unplaced, "dropped_monomorphic": len(monomorphic),
        "n_variants_written": len(written), "n_windows": len(windows),
        "imputed_missing_calls": int(n_calls), "n_variants_with_missing": len(missing_calls),
        "missing_call_rate": float(n_calls / max(1, n_people * len(bim))), "windows": per_window,
    }
    log.info("chr%s: %d people, %d variants in %d windows; %d monomorphic and %d unplaced dropped; %d missing calls "
             "mean-imputed in %d variants", chrom, n_people, len(written), len(windows), len(monomorphic), unplaced,
             n_calls, len(missing_calls))
    if report_path is not None:
        write_json(report_path, report)
    return report
