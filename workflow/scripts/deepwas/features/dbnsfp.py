"""dbNSFP coding-variant scores (App. D.2): six scores per variant with missing indicators.

Input: a (gzipped) tab-separated dbNSFP-like table with columns ``#chr pos(1-based) ref alt hg19_chr
hg19_pos(1-based)`` and the six score columns of ``SCORES``; other columns are ignored. Real dbNSFP files
(one per chromosome, tens of GB) are streamed in chunks and filtered to the requested positions.

Multi-transcript cells (``"a;b;."``): dbNSFP gives one value per transcript / protein, ``.`` where a
transcript has none. We keep the **most damaging** value per score, ignoring ``.``:

- ``min`` for SIFT_score, PROVEAN_score, FATHMM_score and ESM1b_score (lower = more deleterious),
- ``max`` for GERP++_RS and EVE_score (higher = more constrained / more pathogenic).

Why: the prior should see whether a variant can disrupt *some* protein product; an average would dilute a
damaging effect on one isoform with benign calls on others, and the first value depends on transcript order.
A cell with only ``.`` (or an empty cell, or an unparsable one) is missing.

Output: one row per input variant, in input order: the six scores (missing -> 0.0) plus one indicator
per score ``{score}_missing`` (1.0 where the score is absent) and ``dbnsfp_missing`` (1.0 where the variant
is not in the table at all, i.e. non-coding or not scored). A 0 is therefore never ambiguous.
Matching is on chromosome (``chr`` prefix ignored), position and the unordered allele pair, so a variant
given as (A1, A2) = (alt, ref) matches too; the scores describe the ref -> alt change either way.
Several matching rows (duplicated lines) are reduced with the same rule.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

SCORES = ["ESM1b_score", "GERP++_RS", "SIFT_score", "PROVEAN_score", "FATHMM_score", "EVE_score"]
REDUCTION = {
    "ESM1b_score": "min",
    "GERP++_RS": "max",
    "SIFT_score": "min",
    "PROVEAN_score": "min",
    "FATHMM_score": "min",
    "EVE_score": "max",
}
COORDS = {"hg19": ("hg19_chr", "hg19_pos"), "hg38": ("#chr", "pos")}


class DbNSFPError(ValueError):
    pass


def reduce_cell(cell, how: str) -> float:
    """Reduce one dbNSFP cell ("0.1;.;0.03") to one float (NaN when no value). See module docstring."""
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return np.nan
    if isinstance(cell, (int, float, np.integer, np.floating)):
        return float(cell)
    vals = []
    for tok in str(cell).split(";"):
        tok = tok.strip()
        if tok in ("", ".", "NA", "nan"):
            continue
        try:
            v = float(tok)
        except ValueError:
            continue
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return np.nan
    return float(min(vals) if how == "min" else max(vals))


def _norm_chrom(x) -> np.ndarray:
    s = pd.Series(x, dtype="object").astype(str)
    return s.str.replace(r"^chr", "", regex=True).to_numpy()


def read_dbnsfp(path, build: str = "hg19", positions: dict[str, Iterable[int]] | None = None,
                chunksize: int = 200_000) -> pd.DataFrame:
    """Read the table, reduce multi-transcript cells; keep only ``positions`` ({chrom: 1-based positions})
    when given. Returns columns chrom pos ref alt + SCORES (float, NaN missing)."""
    if build not in COORDS:
        raise DbNSFPError(f"build must be one of {list(COORDS)}, not {build!r}")
    ccol, pcol = COORDS[build]
    header = pd.read_csv(path, sep="\t", nrows=0).columns.tolist()
    need = [ccol, pcol, "ref", "alt"] + SCORES
    absent = [c for c in need if c not in header]
    if absent:
        raise DbNSFPError(f"{path}: columns {absent} missing (have {header[:12]}...)")
    keep = None
    if positions is not None:
        keep = {f"{str(c).removeprefix('chr')}:{int(p)}" for c, ps in positions.items() for p in ps}
    parts = []
    for chunk in pd.read_csv(path, sep="\t", usecols=need, dtype=str, chunksize=chunksize,
                             na_filter=False):
        chrom = _norm_chrom(chunk[ccol])
        pos = pd.to_numeric(chunk[pcol], errors="coerce")       # '.' where a variant has no hg19 position
        ok = pos.notna().to_numpy().copy()
        if keep is not None:
            key = pd.Series(chrom).astype(str) + ":" + pos.fillna(-1).astype(np.int64).astype(str).to_numpy()
            ok &= key.isin(keep).to_numpy()
        if not ok.any():
            continue
        sub = chunk.loc[ok]
        out = pd.DataFrame({"chrom": chrom[ok], "pos": pos[ok].astype(np.int64).to_numpy(),
                            "ref": sub["ref"].str.upper().to_numpy(), "alt": sub["alt"].str.upper().to_numpy()})
        for s in SCORES:
            out[s] = [reduce_cell(v, REDUCTION[s]) for v in sub[s].to_numpy()]
        parts.append(out)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             [("chrom", object), ("pos", np.int64), ("ref", object), ("alt", object)]
                             + [(s, float) for s in SCORES]})
    return pd.concat(parts, ignore_index=True)


def dbnsfp_features(variants: pd.DataFrame, table: pd.DataFrame, chrom_col: str = "chrom",
                    pos_col: str = "pos", a1_col: str = "a1", a2_col: str = "a2") -> pd.DataFrame:
    """Scores for ``variants`` (rows in input order) from a table returned by ``read_dbnsfp``.

    Returns SCORES (0.0 where missing), ``{score}_missing`` and ``dbnsfp_missing`` as float32 columns.
    """
    n = len(variants)
    v_chrom = _norm_chrom(variants[chrom_col].to_numpy())
    v_pos = variants[pos_col].to_numpy().astype(np.int64)
    a1 = variants[a1_col].astype(str).str.upper().to_numpy()
    a2 = variants[a2_col].astype(str).str.upper().to_numpy()
    key_v = pd.Series([f"{c}:{p}:{min(x, y)}:{max(x, y)}" for c, p, x, y in zip(v_chrom, v_pos, a1, a2)])
    if len(table):
        t_key = [f"{c}:{p}:{min(r, a)}:{max(r, a)}" for c, p, r, a in
                 zip(table["chrom"], table["pos"], table["ref"], table["alt"])]
        t = table[SCORES].copy()
        t["key"] = t_key
        agg = t.groupby("key").agg({s: REDUCTION[s] for s in SCORES})   # NaN-skipping min / max
    else:
        agg = pd.DataFrame(columns=SCORES, dtype=float)
    found = key_v.isin(agg.index).to_numpy()
    vals = agg.reindex(key_v.to_numpy())[SCORES].to_numpy(dtype=np.float64)
    out = pd.DataFrame(index=range(n))
    for j, s in enumerate(SCORES):
        col = vals[:, j]
        miss = ~np.isfinite(col)
        out[s] = np.where(miss, 0.0, col).astype(np.float32)
        out[f"{s}_missing"] = miss.astype(np.float32)
    out["dbnsfp_missing"] = (~found).astype(np.float32)
    return out[SCORES + [f"{s}_missing" for s in SCORES] + ["dbnsfp_missing"]]


def dbnsfp_for_variants(path, variants: pd.DataFrame, build: str = "hg19", **cols) -> pd.DataFrame:
    """Read only the needed positions of ``path`` and return ``dbnsfp_features`` for ``variants``."""
    chrom_col = cols.get("chrom_col", "chrom")
    pos_col = cols.get("pos_col", "pos")
    positions: dict[str, set] = {}
    for c, p in zip(_norm_chrom(variants[chrom_col].to_numpy()), variants[pos_col].to_numpy()):
        positions.setdefault(c, set()).add(int(p))
    table = read_dbnsfp(path, build=build, positions=positions)
    return dbnsfp_features(variants, table, **cols)
