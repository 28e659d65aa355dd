"""LD factor files (one `.npz` per window) and the per-chromosome factor manifest (paper Sec. 4.2, App. A.3).

A factor file holds what the likelihood of one window needs, from `ld_factors.factorise`: G (m x r),
lam (r), U (n x r), the core index (n), the whole-window LD score of every (i)+ variant, the variants'
positions, keys ('chrom:pos:a1:a2') and LD-panel frequencies of allele1 (NaN where the LD source records
none), and the LD panel size. They depend on the LD source only: every variant of the window file is in (i)+,
and each trait's restriction to its own variants lives in its whitened statistics (`formats.whitened`). The
manifest (`{chrom}.manifest.tsv`) has one row per window: window, status ('ok' or 'excluded: ...'), n_core, n_extended, rank and the PSD
repair counts.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_path, write_table
from .whitened import WhitenedStats

FACTOR_ARRAYS = ("G", "lam", "U", "core", "ldscore", "positions", "freq")


def factor_path(factor_dir, name: str) -> Path:
    """The factor file of window `name` in `factor_dir`."""
    return Path(factor_dir) / f"{name}.npz"


def save_factors(path, factors, positions: np.ndarray, keys: np.ndarray, freq: np.ndarray,
                 dtype=np.float64, panel_size: float | None = None) -> None:
    """Write one window's factors (`factors`: an `ld_factors.WindowFactors`); G and U in `dtype`. `freq`: the
    LD panel's frequency of allele1 (NaN where unknown); `panel_size`: the people the LD was computed on
    (LD-score bias correction of the LDSR objective), stored as the 0-d array 'panel_size'."""
    extra = {} if panel_size is None else {"panel_size": np.float64(panel_size)}
    with atomic_path(path) as tmp:
        np.savez(tmp, G=factors.G.astype(dtype), lam=factors.lam, U=factors.U.astype(dtype), core=factors.core,
                 ldscore=factors.ldscore, positions=positions, keys=keys.astype(str), freq=freq, **extra)


def load_factors(path, members=None) -> dict[str, np.ndarray]:
    """The arrays of a factor file (`members`: only these, read lazily from the npz), with clear errors."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            names = z.files if members is None else [k for k in members if k in z.files]
            out = {k: z[k] for k in names}
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: cannot read LD factor file ({err}); delete it and rerun the ld_factors rule") from err
    missing = [k for k in (FACTOR_ARRAYS if members is None else members) if k not in out]
    if missing:
        raise ValueError(f"{path}: LD factor file lacks {missing}; it was written by another version, rerun ld_factors")
    return out


def write_manifest(path, rows) -> None:
    """Write the factor manifest of one chromosome (`rows`: a DataFrame or a list of dicts)."""
    write_table(path, rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows))


def read_manifest(path) -> pd.DataFrame:
    """The factor manifest of one chromosome."""
    man = pd.read_csv(path, sep="\t")
    missing = [c for c in ("window", "status", "n_core", "n_extended") if c not in man.columns]
    if missing:
        raise ValueError(f"{path}: factor manifest lacks column(s) {missing}; rerun the ld_factors rule")
    return man


def ok_rows(path) -> pd.DataFrame:
    """The manifest rows of the factorised windows (status 'ok'), in manifest (genomic) order."""
    man = read_manifest(path)
    return man.loc[man["status"] == "ok"]


def iter_factors(factor_dir, manifest, members=None):
    """(name, arrays) of the factorised windows of one chromosome, one file at a time, in manifest order."""
    for name in ok_rows(manifest)["window"]:
        yield str(name), load_factors(factor_path(factor_dir, name), members)


def ok_windows(chrom_inputs) -> list[tuple[str, Path, Path, int, int]]:
    """[(name, factor npz, stats npz, n_core, n_extended)] of the factorised windows in which the trait has
    statistics, in manifest order; n_core and n_extended are the trait's (its whitened statistics' view of the
    window, `formats.whitened`), else the manifest's."""
    out = []
    for factor_dir, manifest, stats_npz in chrom_inputs:
        with WhitenedStats(stats_npz) as st:
            have = set(st.names())
            for _, r in ok_rows(manifest).iterrows():
                name = str(r["window"])
                if name not in have:
                    continue            # the trait has no statistics in its core
                n_core, n_ext = st.sizes(name) or (int(r["n_core"]), int(r["n_extended"]))
                out.append((name, factor_path(factor_dir, name), Path(stats_npz), n_core, n_ext))
    return out
