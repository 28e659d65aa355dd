"""Summary-statistics readers: every supported format becomes one canonical table.

Canonical columns (what `harmonise` consumes):

    SNP   rsid or other identifier (str; may be empty)
    CHR   chromosome without a 'chr' prefix (str: '1'..'22', 'X')
    POS   GRCh37 base-pair position, 1-based (int64)
    A1    effect allele: the allele whose count the effect refers to (upper-case str)
    A2    other allele (upper-case str)
    EAF   frequency of A1 (float, NaN when the file has none)
    BETA  per-allele effect of A1 (float, NaN when the file has none)
    SE    standard error of BETA (float, NaN when the file has none)
    Z     signed z-score of A1 (float; BETA / SE when the file has no z column)
    N     sample size per variant (float)
    INFO  imputation quality (float, NaN when the file has none)

`read_sumstats(path, fmt, n)` returns (table, report); rows with non-finite Z or N are dropped and
counted in the report, never passed on.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

CANONICAL = ["SNP", "CHR", "POS", "A1", "A2", "EAF", "BETA", "SE", "Z", "N", "INFO"]


class SumstatsFormatError(ValueError):
    """A summary-statistics file cannot be read; the message names the file and the problem."""


# format name -> (required source columns, mapping source column -> canonical column)
FORMATS: dict[str, tuple[list[str], dict[str, str]]] = {
    "ukbb_409k": (
        ["SNP", "CHR", "POS", "A1", "A2", "Beta", "se", "N"],
        {"SNP": "SNP", "CHR": "CHR", "POS": "POS", "A1": "A1", "A2": "A2", "EAF": "EAF", "Beta": "BETA",
         "se": "SE", "N": "N", "INFO": "INFO"},
    ),
}


def _open_text(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rt") if magic == b"\x1f\x8b" else open(path, "rt")


def read_header(path) -> list[str]:
    path = Path(path)
    try:
        with _open_text(path) as fh:
            line = fh.readline()
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise SumstatsFormatError(f"{path}: cannot read header ({err})") from err
    if not line.strip():
        raise SumstatsFormatError(f"{path}: empty file or empty header line")
    return line.split()


def detect_format(path) -> str:
    header = set(read_header(path))
    for name, (required, _) in FORMATS.items():
        if set(required) <= header:
            return name
    raise SumstatsFormatError(
        f"{path}: cannot detect the summary-statistics format from header {sorted(header)}; "
        f"known formats: {sorted(FORMATS)}. Set 'format' for this trait in the trait sheet."
    )


def read_sumstats(path, fmt: str = "auto", n: float | None = None) -> tuple[pd.DataFrame, dict]:
    """Read one summary-statistics file into the canonical table.

    fmt: a key of FORMATS or 'auto' (detect from the header). n: per-trait sample size used where the
    file has no N column (a per-variant N column always wins).
    """
    path = Path(path)
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in FORMATS:
        raise SumstatsFormatError(f"{path}: unknown format {fmt!r}; known formats: {sorted(FORMATS)}")
    required, mapping = FORMATS[fmt]
    header = read_header(path)
    missing = [c for c in required if c not in header and not (c == "N" and n is not None)]
    if missing:
        raise SumstatsFormatError(f"{path}: missing required column(s) {missing} for format {fmt!r}; header is {header}")
    try:
        raw = pd.read_csv(path, sep=r"\s+", dtype=str, compression="infer")
    except (OSError, EOFError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise SumstatsFormatError(f"{path}: cannot parse as a whitespace-separated table ({err})") from err
    out = pd.DataFrame({canon: raw[src] for src, canon in mapping.items() if src in raw.columns})
    for col in CANONICAL:
        if col not in out.columns:
            out[col] = np.nan
    if "N" not in raw.columns:
        out["N"] = n
    return _canonicalise(out[CANONICAL], path, fmt)


def _canonicalise(df: pd.DataFrame, path: Path, fmt: str) -> tuple[pd.DataFrame, dict]:
    report = {"file": str(path), "format": fmt, "rows_read": int(len(df))}
    df = df.copy()
    df["SNP"] = df["SNP"].fillna("").astype(str)
    df["CHR"] = df["CHR"].astype(str).str.replace(r"^chr", "", regex=True, case=False)
    for col in ("A1", "A2"):
        df[col] = df[col].astype(str).str.upper()
    pos = pd.to_numeric(df["POS"], errors="coerce")
    for col in ("EAF", "BETA", "SE", "Z", "N", "INFO"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    if df["Z"].isna().all():
        df["Z"] = df["BETA"] / df["SE"]
    bad = pos.isna() | ~np.isfinite(df["Z"]) | ~np.isfinite(df["N"]) | (df["N"] <= 0)
    report["dropped_nonfinite"] = int(bad.sum())
    df = df.loc[~bad].copy()
    df["POS"] = pos[~bad].astype(np.int64)
    report["rows_kept"] = int(len(df))
    return df.reset_index(drop=True), report
