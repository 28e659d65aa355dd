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

`read_sumstats(path, fmt, n)` returns (table, report); rows with invalid values (below) are dropped and
counted in the report, never passed on.

Supported formats (one `SumstatsFormat` entry each in `FORMATS`; detected from the header, the most
specific match wins; the trait sheet's `format` column overrides detection):

    ukbb_409k   Loh et al. UKBB_409K: SNP CHR POS A1 A2 [EAF] Beta se [P] N [INFO]; A1 is the effect allele.
    bolt_lmm    raw BOLT-LMM output: SNP CHR BP [GENPOS] ALLELE1 ALLELE0 A1FREQ [INFO] BETA SE
                P_BOLT_LMM_INF [P_BOLT_LMM]; ALLELE1 is the effect allele; no N column (per-trait `n`).
    ldsc        LDSC munge_sumstats `.sumstats`: SNP A1 A2 Z N. It has NO positions: pass `positions`
                (a table SNP CHR POS, e.g. the LD variant list) and rows are placed by rsid; rsids not in
                `positions` are dropped and counted (`dropped_no_position`).
    fastgwa     GCTA fastGWA: CHR SNP POS A1 A2 N AF1 BETA SE P; A1 is the effect allele, AF1 its frequency.
    regenie     REGENIE step 2: CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ [INFO] N TEST BETA SE CHISQ LOG10P;
                ALLELE1 is the effect allele; only TEST == ADD rows are kept (others counted).
    gwas_ssf    GWAS-SSF (GWAS Catalog): chromosome base_pair_location effect_allele other_allele beta
                standard_error [effect_allele_frequency] p_value [rsid] [n] [info] [variant_id].

Row-level problems are handled as follows (every count is in the report):

- missing required column, unreadable file, header of no known format: `SumstatsFormatError` naming
  the file (and the columns).
- a value that is present but not a number in a numeric column (e.g. 'abc' in BETA): `SumstatsFormatError`
  naming the file, the first bad line number (1-based, header = line 1), the column and the value.
  Missing-value spellings ('', NA, NaN, '.', 'null', 'none', '-') are NaN, not errors.
- chromosome naming: 'chr' prefixes are removed; '23' and 'X'/'chrX' are X (PLINK convention); Y, XY,
  MT/M, 24-26 and unplaced or alternative contigs (chrUn_*, *_random, GL*, HLA*) are dropped and counted
  (`dropped_chrom_other`, with examples). If no row is on '1'..'22' or 'X' (e.g. RefSeq names such as
  NC_000001.10) the file is rejected with an error naming it and its first chromosome value.
- duplicated variants (same CHR, POS and unordered allele pair): every copy is dropped (which copy is
  right cannot be known) and counted (`dropped_duplicate`, with the first duplicated line numbers).
- invalid values (`harmonise.invalid_values`), dropped and counted by cause, never passed on: missing POS, non-finite
  Z, N, BETA or SE (`dropped_nonfinite`); SE <= 0 (`dropped_se_nonpositive`: a negative SE would silently flip
  the sign of Z = BETA / SE); N <= 2 (`dropped_n_too_small`: z = sqrt(N) t / sqrt(t^2 + N - 2) is undefined);
  EAF outside [0, 1] (`dropped_eaf_out_of_range`; a missing EAF is kept, see `deepwas.harmonise` for how
  the frequency is then taken from the LD panel).
- filters (arguments): `min_info` drops rows with INFO < min_info (`dropped_info`; missing INFO is kept);
  `min_maf` drops rows with min(EAF, 1 - EAF) < min_maf (`dropped_maf`; missing EAF is kept and counted
  in `maf_unknown`).
"""
from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..harmonise import invalid_values

CANONICAL = ["SNP", "CHR", "POS", "A1", "A2", "EAF", "BETA", "SE", "Z", "N", "INFO"]
NUMERIC = ["POS", "EAF", "BETA", "SE", "Z", "N", "INFO"]
CHROMOSOMES = [str(c) for c in range(1, 23)] + ["X"]
_NA_STRINGS = {"", "NA", "NAN", ".", "NULL", "NONE", "-", "N/A"}
_CHROM_ALIASES = {"23": "X", "X": "X"}


class SumstatsFormatError(ValueError):
    """A summary-statistics file cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class SumstatsFormat:
    """One input format: required source columns and the source -> canonical column mapping."""

    required: list[str]
    mapping: dict[str, str]
    # optional row filter on the raw (string) table: returns a boolean mask of rows to keep and a name
    keep_rows: Callable[[pd.DataFrame], pd.Series] | None = None
    keep_rows_name: str = ""
    needs_positions: bool = False
    description: str = ""
    extra: dict = field(default_factory=dict)


def _regenie_additive(raw: pd.DataFrame) -> pd.Series:
    return raw["TEST"].astype(str).str.upper() == "ADD"


# format name -> SumstatsFormat (required source columns, mapping source column -> canonical column)
FORMATS: dict[str, SumstatsFormat] = {
    "ukbb_409k": SumstatsFormat(
        ["SNP", "CHR", "POS", "A1", "A2", "Beta", "se", "N"],
        {"SNP": "SNP", "CHR": "CHR", "POS": "POS", "A1": "A1", "A2": "A2", "EAF": "EAF", "Beta": "BETA",
         "se": "SE", "N": "N", "INFO": "INFO"},
        description="UKBB_409K (Loh et al.) BOLT-LMM summary statistics",
    ),
    "bolt_lmm": SumstatsFormat(
        ["SNP", "CHR", "BP", "ALLELE1", "ALLELE0", "BETA", "SE"],
        {"SNP": "SNP", "CHR": "CHR", "BP": "POS", "ALLELE1": "A1", "ALLELE0": "A2", "A1FREQ": "EAF",
         "BETA": "BETA", "SE": "SE", "INFO": "INFO", "N": "N"},
        description="raw BOLT-LMM output (ALLELE1 = effect allele)",
    ),
    "ldsc": SumstatsFormat(
        ["SNP", "A1", "A2", "Z", "N"],
        {"SNP": "SNP", "A1": "A1", "A2": "A2", "Z": "Z", "N": "N"},
        needs_positions=True,
        description="LDSC munge_sumstats .sumstats (no positions: placed by rsid)",
    ),
    "fastgwa": SumstatsFormat(
        ["CHR", "SNP", "POS", "A1", "A2", "N", "AF1", "BETA", "SE"],
        {"CHR": "CHR", "SNP": "SNP", "POS": "POS", "A1": "A1", "A2": "A2", "N": "N", "AF1": "EAF",
         "BETA": "BETA", "SE": "SE", "INFO": "INFO"},
        description="GCTA fastGWA",
    ),
    "regenie": SumstatsFormat(
        ["CHROM", "GENPOS", "ID", "ALLELE0", "ALLELE1", "BETA", "SE", "TEST"],
        {"CHROM": "CHR", "GENPOS": "POS", "ID": "SNP", "ALLELE1": "A1", "ALLELE0": "A2", "A1FREQ": "EAF",
         "INFO": "INFO", "N": "N", "BETA": "BETA", "SE": "SE"},
        keep_rows=_regenie_additive,
        keep_rows_name="dropped_test_not_add",
        description="REGENIE step 2 (ALLELE1 = effect allele; TEST == ADD rows only)",
    ),
    "gwas_ssf": SumstatsFormat(
        ["chromosome", "base_pair_location", "effect_allele", "other_allele", "beta", "standard_error"],
        {"chromosome": "CHR", "base_pair_location": "POS", "effect_allele": "A1", "other_allele": "A2",
         "effect_allele_frequency": "EAF", "beta": "BETA", "standard_error": "SE", "rsid": "SNP",
         "n": "N", "info": "INFO"},
        description="GWAS-SSF (GWAS Catalog summary-statistics format)",
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
    """The format whose required columns are all in the header; the most specific match wins."""
    header = set(read_header(path))
    matches = [name for name, f in FORMATS.items() if set(f.required) <= header]
    if not matches:
        raise SumstatsFormatError(
            f"{path}: cannot detect the summary-statistics format from header {sorted(header)}; "
            f"known formats: {sorted(FORMATS)}. Set 'format' for this trait in the trait sheet."
        )
    matches.sort(key=lambda name: -len(FORMATS[name].required))
    if len(matches) > 1 and len(FORMATS[matches[0]].required) == len(FORMATS[matches[1]].required):
        raise SumstatsFormatError(
            f"{path}: header matches several formats {matches}; set 'format' for this trait in the trait sheet."
        )
    return matches[0]


def read_sumstats(
    path,
    fmt: str = "auto",
    n: float | None = None,
    *,
    min_info: float | None = None,
    min_maf: float | None = None,
    positions: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Read one summary-statistics file into the canonical table.

    fmt: a key of FORMATS or 'auto' (detect from the header). n: per-trait sample size used where the
    file has no N column (a per-variant N column always wins). min_info / min_maf: optional filters
    (counted drops). positions: table with columns SNP CHR POS placing rsids, required for formats
    without positions (ldsc).
    """
    path = Path(path)
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in FORMATS:
        raise SumstatsFormatError(f"{path}: unknown format {fmt!r}; known formats: {sorted(FORMATS)}")
    spec = FORMATS[fmt]
    header = read_header(path)
    missing = [c for c in spec.required if c not in header and not (spec.mapping.get(c) == "N" and n is not None)]
    if missing:
        raise SumstatsFormatError(f"{path}: missing required column(s) {missing} for format {fmt!r}; header is {header}")
    if "N" not in [spec.mapping.get(c) for c in header] and n is None:
        raise SumstatsFormatError(
            f"{path}: format {fmt!r} file has no per-variant sample-size column; give the trait's N "
            f"(column 'n' of the trait sheet)"
        )
    if spec.needs_positions and positions is None:
        raise SumstatsFormatError(
            f"{path}: format {fmt!r} has no chromosome/position columns; pass positions (a table SNP CHR POS, "
            f"e.g. the LD variant list) so variants can be placed by rsid"
        )
    try:
        raw = pd.read_csv(path, sep=r"\s+", dtype=str, compression="infer", keep_default_na=False)
    except (OSError, EOFError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise SumstatsFormatError(f"{path}: cannot parse as a whitespace-separated table ({err})") from err
    raw.index = np.arange(2, len(raw) + 2)  # file line numbers: the header is line 1
    report: dict = {"file": str(path), "format": fmt, "rows_read": int(len(raw))}
    if spec.keep_rows is not None:
        keep = spec.keep_rows(raw)
        report[spec.keep_rows_name] = int((~keep).sum())
        raw = raw.loc[keep]
    out = pd.DataFrame({canon: raw[src] for src, canon in spec.mapping.items() if src in raw.columns}, index=raw.index)
    for col in CANONICAL:
        if col not in out.columns:
            out[col] = np.nan
    if "N" not in out.columns or out["N"].isna().all():
        out["N"] = n
    if spec.needs_positions:
        out = _place_by_rsid(out, positions, path, report)
    return _canonicalise(out[CANONICAL], path, fmt, report, min_info=min_info, min_maf=min_maf)


def _place_by_rsid(out: pd.DataFrame, positions: pd.DataFrame, path: Path, report: dict) -> pd.DataFrame:
    need = {"SNP", "CHR", "POS"}
    if not need <= set(positions.columns):
        raise SumstatsFormatError(f"{path}: positions table needs columns {sorted(need)}, has {list(positions.columns)}")
    pos = positions.drop_duplicates("SNP", keep=False).set_index("SNP")
    known = out["SNP"].isin(pos.index)
    report["dropped_no_position"] = int((~known).sum())
    out = out.loc[known].copy()
    out["CHR"] = pos.loc[out["SNP"], "CHR"].astype(str).to_numpy()
    out["POS"] = pos.loc[out["SNP"], "POS"].astype(str).to_numpy()
    return out


def _to_numeric(values: pd.Series, col: str, path: Path) -> pd.Series:
    """Parse a column of strings; missing-value spellings become NaN, anything else unparsable is an error."""
    stripped = values.astype(str).str.strip()
    is_na = values.isna() | stripped.str.upper().isin(_NA_STRINGS)
    parsed = pd.to_numeric(stripped.where(~is_na), errors="coerce")
    bad = parsed.isna() & ~is_na
    if bad.any():
        line = bad.idxmax()
        raise SumstatsFormatError(
            f"{path}: line {line}: column {col}: non-numeric value {values.loc[line]!r} "
            f"({int(bad.sum())} such row(s) in this column)"
        )
    return parsed.astype(float)


def _normalise_chrom(chrom: pd.Series) -> pd.Series:
    c = chrom.astype(str).str.strip().str.replace(r"^chr", "", regex=True, flags=re.IGNORECASE).str.upper()
    c = c.str.replace(r"^0+(?=\d)", "", regex=True)
    return c.map(lambda v: _CHROM_ALIASES.get(v, v))


def _canonicalise(df: pd.DataFrame, path: Path, fmt: str, report: dict | None = None, *,
                  min_info: float | None = None, min_maf: float | None = None) -> tuple[pd.DataFrame, dict]:
    report = dict(report or {"file": str(path), "format": fmt, "rows_read": int(len(df))})
    df = df.copy()
    df["SNP"] = df["SNP"].fillna("").astype(str)
    chrom = _normalise_chrom(df["CHR"])
    on_known = chrom.isin(CHROMOSOMES)
    if len(df) and not on_known.any():
        first = df["CHR"].iloc[0]
        raise SumstatsFormatError(
            f"{path}: line {df.index[0]}: no variant is on a recognised chromosome (1-22, X; 'chr' prefix and "
            f"23 = X accepted); first chromosome value is {first!r}"
        )
    report["dropped_chrom_other"] = int((~on_known).sum())
    report["chrom_other_examples"] = sorted(set(df.loc[~on_known, "CHR"].astype(str)))[:5]
    df = df.loc[on_known].copy()
    df["CHR"] = chrom[on_known]
    for col in ("A1", "A2"):
        df[col] = df[col].astype(str).str.strip().str.upper()
    for col in NUMERIC:
        df[col] = _to_numeric(df[col], col, path)
    if df["Z"].isna().all():
        df["Z"] = df["BETA"] / df["SE"]
    invalid = invalid_values(df)
    report.update({name: int(bad.sum()) for name, bad in invalid.items()})
    df = df.loc[~np.logical_or.reduce(list(invalid.values()))].copy()

    lo = np.where(df["A1"] < df["A2"], df["A1"], df["A2"])
    hi = np.where(df["A1"] < df["A2"], df["A2"], df["A1"])
    key = df["CHR"] + ":" + df["POS"].astype(np.int64).astype(str) + ":" + lo + ":" + hi
    dup = key.duplicated(keep=False)
    report["dropped_duplicate"] = int(dup.sum())
    if dup.any():
        first_key = key[dup].iloc[0]
        report["duplicate_example"] = {"variant": first_key, "lines": [int(i) for i in key.index[key == first_key]]}
    df = df.loc[~dup].copy()

    if min_info is not None:
        low = df["INFO"] < min_info  # NaN compares False: missing INFO is kept
        report["dropped_info"] = int(low.sum())
        df = df.loc[~low].copy()
    if min_maf is not None:
        maf = np.minimum(df["EAF"], 1.0 - df["EAF"])
        report["maf_unknown"] = int(maf.isna().sum())
        low = maf < min_maf
        report["dropped_maf"] = int(low.sum())
        df = df.loc[~low].copy()

    df["POS"] = df["POS"].astype(np.int64)
    report["rows_kept"] = int(len(df))
    return df[CANONICAL].reset_index(drop=True), report
