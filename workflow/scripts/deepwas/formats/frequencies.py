"""Reference allele-frequency tables: the frequency of each LD variant's allele1 in the LD panel.

Used by the harmoniser when the summary statistics carry no allele frequency (LDSC `.sumstats`) and to
resolve strand-ambiguous (A/T, C/G) variants. Layout: a whitespace- or tab-separated text table (optionally
gzipped) with header `chromosome position allele1 allele2 freq`, `freq` the frequency of allele1, GRCh37
positions like the LD windows.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["chromosome", "position", "allele1", "allele2", "freq"]


class FrequencyFormatError(ValueError):
    """A reference frequency table cannot be read; the message names the file and the problem."""


def read_reference_frequencies(path) -> pd.DataFrame:
    """Table chromosome position allele1 allele2 freq (freq = frequency of allele1, in [0, 1])."""
    path = Path(path)
    try:
        df = pd.read_csv(path, sep=r"\s+", dtype=str, compression="infer")
    except (OSError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise FrequencyFormatError(f"{path}: cannot read the reference frequency table ({err})") from err
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise FrequencyFormatError(f"{path}: reference frequency table lacks column(s) {missing}; header is "
                                   f"{list(df.columns)} (expected {' '.join(COLUMNS)}, freq = frequency of allele1)")
    out = df[COLUMNS].copy()
    out["chromosome"] = out["chromosome"].astype(str).str.replace(r"^chr", "", regex=True, case=False)
    for col in ("position", "freq"):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    bad = out["position"].isna() | ~out["freq"].between(0, 1)
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise FrequencyFormatError(f"{path}: line {line}: position not a number or freq outside [0, 1] "
                                   f"({int(bad.sum())} such row(s))")
    out["position"] = out["position"].astype(np.int64)
    for col in ("allele1", "allele2"):
        out[col] = out[col].str.upper()
    return out.reset_index(drop=True)
