"""Per-variant prior files in PolyFun's layout (one file per chromosome), parquet or gzipped text.

PolyFun (Weissbrod et al. 2020) writes its per-SNP heritabilities as `CHR SNP BP A1 A2 SNPVAR`
(`polyfun.py`'s `snpvar` files; its `finemapper.py` reads a `SNPVAR` column from the summary statistics,
and `extract_snpvar.py` joins a prior file to statistics by CHR, BP and the unordered allele pair). Here:

    CHR     chromosome (integer for autosomes, as PolyFun writes it)
    SNP     rsid
    BP      GRCh37 position (the LD windows' coordinates)
    A1 A2   alleles of the LD reference: A1 = its allele1, the counted allele (the one z and the
            frequency refer to), as PolyFun's finemapper renames UKBB LD's allele1 to A1
    SNPVAR  per-variant heritability on the standardised scale: the prior variance f_m of the effect of a
            standardised genotype on a standardised trait (paper Eqn 6); the sum over variants is the
            prior's h2
    BP38    GRCh38 position (liftover; missing for unmapped variants)
    F       the prior variance f (equal to SNPVAR; kept under its own name)
    ENRICHMENT  f / mean f over all variants of the prior (all chromosomes)
    MODEL   which trained model scored the variant's chromosome ('heldout' or 'fold{k}', see
            `deepwas.export`), so every variant's prior comes from a model not trained on its chromosome

Text files are tab-separated and gzipped (PolyFun reads them with `sep='\\s+'`), floats written with
enough digits to round-trip exactly. This module only reads and writes; the numbers come from
`deepwas.export`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_path

POLYFUN_COLUMNS = ["CHR", "SNP", "BP", "A1", "A2", "SNPVAR"]
EXTRA_COLUMNS = ["BP38", "F", "ENRICHMENT", "MODEL"]
COLUMNS = POLYFUN_COLUMNS + EXTRA_COLUMNS


def _chrom_column(chrom: pd.Series) -> pd.Series:
    s = chrom.astype(str)
    return s.astype(np.int64) if s.str.fullmatch(r"\d+").all() else s


def check_table(df: pd.DataFrame, source: str = "prior table") -> pd.DataFrame:
    """The table with exactly `COLUMNS` in order and PolyFun's dtypes; errors name what is wrong."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: prior table lacks column(s) {missing}; expected {COLUMNS}")
    out = df[COLUMNS].copy()
    out["CHR"] = _chrom_column(out["CHR"])
    out["SNP"] = out["SNP"].astype(str)
    out["BP"] = out["BP"].astype(np.int64)
    out["A1"] = out["A1"].astype(str)
    out["A2"] = out["A2"].astype(str)
    out["BP38"] = pd.array(pd.to_numeric(out["BP38"]), dtype="Int64")
    for c in ("SNPVAR", "F", "ENRICHMENT"):
        out[c] = out[c].astype(np.float64)
    out["MODEL"] = out["MODEL"].astype(str)
    bad = ~np.isfinite(out["SNPVAR"].to_numpy()) | (out["SNPVAR"].to_numpy() < 0)
    if bad.any():
        raise ValueError(f"{source}: {int(bad.sum())} variants have a negative or non-finite SNPVAR")
    if out.duplicated(["CHR", "BP", "A1", "A2"]).any():
        raise ValueError(f"{source}: {int(out.duplicated(['CHR', 'BP', 'A1', 'A2']).sum())} duplicated variants "
                         "(CHR BP A1 A2); each variant must have one row")
    return out


def write_priors(df: pd.DataFrame, parquet_path=None, text_path=None) -> None:
    """Write one chromosome's prior table as parquet (pyarrow) and/or tab-separated gzipped text."""
    out = check_table(df, str(parquet_path or text_path))
    if parquet_path is not None:
        with atomic_path(parquet_path) as tmp:
            out.to_parquet(tmp, index=False, engine="pyarrow")
    if text_path is not None:
        with atomic_path(text_path) as tmp:
            # repr-precision floats (pandas' default) round-trip exactly; missing BP38 is written as NA
            out.to_csv(tmp, sep="\t", index=False, compression="gzip", na_rep="NA")


def read_priors(path) -> pd.DataFrame:
    """Read a prior file written by `write_priors` (parquet, or whitespace-separated text, gzipped or not)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such prior file")
    if path.name.endswith(".parquet"):
        df = pd.read_parquet(path, engine="pyarrow")
    else:
        df = pd.read_csv(path, sep=r"\s+", dtype={"SNP": str, "A1": str, "A2": str, "MODEL": str},
                         na_values=["NA"], keep_default_na=False)
    return check_table(df, str(path))
