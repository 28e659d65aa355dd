"""dbNSFP coding-variant scores of the LD variants (paper Sec. 5.1 C_pred, App. D.2): six of the d_pred = 9.

The paper uses six dbNSFP predictions, ESM1b_score, GERP++_RS, SIFT_score, PROVEAN_score, FATHMM_score and
EVE_score, and sets C = 0 "for non-coding variants or variants missing a prediction" (App. D.2). Here:

Matching. dbNSFP lists every possible coding SNV once per (GRCh38 chromosome, `pos(1-based)`, ref, alt), with
its GRCh37 coordinates in `hg19_chr` / `hg19_pos(1-based)` ('.' where it has none). `match = 'grch37'` (the
default) matches an LD variant on its own GRCh37 chromosome and position through `hg19_chr` /
`hg19_pos(1-based)`; `'grch38'` matches through `#chr` / `pos(1-based)` and the variant's lifted position
(POS38 of the liftover table; variants without one are not looked up, counted). Alleles: the unordered pair
{allele1, allele2} must equal {ref, alt} (the scores describe the ref -> alt change whichever allele the
statistics call effect allele); where no such row exists, the complemented pair is accepted for
non-palindromic variants (a region whose strand differs between builds), counted apart. Palindromic pairs
(A/T, C/G) are never matched on the complement.

Multi-transcript cells. dbNSFP gives one value per transcript / protein, "." where a transcript has none
("0.1;.;0.03"). Each cell is reduced to its **most damaging** value, ignoring ".":

- minimum for SIFT_score (< 0.05: damaging), PROVEAN_score (<= -2.5: deleterious), FATHMM_score (<= -1.5:
  damaging) and ESM1b_score (a log-likelihood ratio; lower: more deleterious);
- maximum for EVE_score (higher: more pathogenic) and GERP++_RS (higher: more constrained; one value per
  position in practice).

The prior should see whether a variant can disrupt *some* protein product: a mean would dilute a damaging
effect on one isoform with benign calls on others, and the first value depends on the transcript order.
Cells with several values, and those whose values differ, are counted per score. Duplicate dbNSFP rows of
one variant (several GRCh38 rows at one GRCh37 position) are merged with the same rule.

Missing. A variant absent from dbNSFP (non-coding, or not an SNV) and a score with no value get 0, as in the
paper; the report counts both per score, and with `indicator` the table gets a column `dbnsfp_missing` (1
where the variant is not in dbNSFP) so that a 0 score is not ambiguous. The paper has no such column
(d_pred = 9), so the paper run leaves it out (features.dbnsfp.indicator).
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
COORDS = {"grch37": ("hg19_chr", "hg19_pos(1-based)"), "grch38": ("#chr", "pos(1-based)")}
KEY_COLUMNS = ["chromosome", "position", "allele1", "allele2"]
COMPLEMENT = str.maketrans("ACGT", "TGCA")


class DbNSFPError(ValueError):
    pass


def dbnsfp_columns(match: str) -> list[str]:
    """The dbNSFP columns read for `match` ('grch37' or 'grch38')."""
    if match not in COORDS:
        raise DbNSFPError(f"features.dbnsfp.match must be one of {list(COORDS)}, not {match!r}")
    return [*COORDS[match], "ref", "alt", *SCORES]


def reduce_cell(cell, how: str) -> float:
    """Reduce one dbNSFP cell ("0.1;.;0.03") to one float (NaN when it has no value). See module docstring."""
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return np.nan
    if isinstance(cell, (int, float, np.integer, np.floating)):
        return float(cell)
    vals = _values(cell)
    if not vals:
        return np.nan
    return float(min(vals) if how == "min" else max(vals))


def _values(cell: str) -> list[float]:
    out = []
    for tok in str(cell).split(";"):
        tok = tok.strip()
        if tok in ("", ".", "NA", "nan"):
            continue
        try:
            v = float(tok)
        except ValueError:
            continue
        if np.isfinite(v):
            out.append(v)
    return out


def reduce_cells(cells: Iterable[str], how: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`reduce_cell` over a column: (values, cells with several values, cells whose several values differ)."""
    cells = pd.Series(cells, dtype=object).astype(str)
    out = np.array(pd.to_numeric(cells, errors="coerce"), dtype=np.float64)
    multi = np.zeros(len(out), dtype=bool)
    differ = np.zeros(len(out), dtype=bool)
    for i in np.flatnonzero(cells.str.contains(";", regex=False).to_numpy()):
        vals = _values(cells.iat[i])
        out[i] = (min(vals) if how == "min" else max(vals)) if vals else np.nan
        multi[i] = len(vals) > 1
        differ[i] = len(vals) > 1 and min(vals) != max(vals)
    out[~np.isfinite(out)] = np.nan
    return out, multi, differ


def _pair(a1: np.ndarray, a2: np.ndarray) -> np.ndarray:
    a1 = pd.Series(a1, dtype=object).astype(str).str.upper()
    a2 = pd.Series(a2, dtype=object).astype(str).str.upper()
    return np.where(a1 <= a2, a1 + ":" + a2, a2 + ":" + a1)


def dbnsfp_scores(variants: pd.DataFrame, chunks: Iterable[pd.DataFrame], match: str = "grch37",
                  indicator: bool = False) -> tuple[pd.DataFrame, dict]:
    """The six scores of one chromosome's LD variants from the dbNSFP `chunks` of that chromosome.

    variants: chromosome position allele1 allele2 (GRCh37, as in the LD files), with POS38 for match
    'grch38' (the liftover table of rule liftover_ld_variants, whose liftover_status is counted when present).
    chunks: DataFrames of the `dbnsfp_columns(match)` (strings), e.g. `formats.dbnsfp.read_dbnsfp_chunks`.
    Returns (table, report): the table has KEY_COLUMNS + SCORES (0.0 where missing) (+ `dbnsfp_missing`),
    one row per variant in input order; the report counts the matches, the missing values and the reduced
    multi-transcript cells per score (module docstring).
    """
    ccol, pcol = dbnsfp_columns(match)[:2]
    v = variants.reset_index(drop=True)
    chroms = v["chromosome"].astype(str).str.removeprefix("chr").unique()
    if len(chroms) > 1:
        raise DbNSFPError(f"dbnsfp_scores reads one chromosome at a time; the variants span {sorted(chroms)}")
    chrom = chroms[0] if len(chroms) else ""
    if match == "grch38":
        if "POS38" not in v.columns:
            raise DbNSFPError("features.dbnsfp.match grch38 needs the variants' GRCh38 positions (column POS38 of "
                              "the liftover table)")
        look = pd.to_numeric(v["POS38"], errors="coerce")
    else:
        look = pd.to_numeric(v["position"], errors="coerce")
    has_pos = look.notna().to_numpy()
    look = look.fillna(-1).astype(np.int64).to_numpy()
    targets = np.unique(look[has_pos])
    counts = {"lines_read": 0, "lines_at_variant_positions": 0}
    kept = []
    for chunk in chunks:
        counts["lines_read"] += len(chunk)
        c = chunk[ccol].astype(str).str.removeprefix("chr").to_numpy()
        pos = pd.to_numeric(chunk[pcol], errors="coerce").fillna(-1).astype(np.int64).to_numpy()
        ok = (c == chrom) & np.isin(pos, targets)
        if not ok.any():
            continue
        sub = chunk.loc[ok]
        rows = pd.DataFrame({"pos": pos[ok], "pair": _pair(sub["ref"].to_numpy(), sub["alt"].to_numpy()),
                             "cpair": _pair(sub["ref"].str.upper().str.translate(COMPLEMENT).to_numpy(),
                                            sub["alt"].str.upper().str.translate(COMPLEMENT).to_numpy())})
        for s in SCORES:
            rows[s], rows[f"{s}|multi"], rows[f"{s}|differ"] = reduce_cells(sub[s].to_numpy(), REDUCTION[s])
        kept.append(rows)
        counts["lines_at_variant_positions"] += len(rows)
    flags = [f"{s}|{f}" for s in SCORES for f in ("multi", "differ")]
    rows = (pd.concat(kept, ignore_index=True) if kept else
            pd.DataFrame({c: pd.Series(dtype=float) for c in ["pos", "pair", "cpair", *SCORES, *flags]}))
    agg = {**{s: REDUCTION[s] for s in SCORES}, **{f: "max" for f in flags}}
    direct = rows.assign(key=rows["pos"].astype(str) + ":" + rows["pair"]).groupby("key").agg(agg)
    compl = rows.assign(key=rows["pos"].astype(str) + ":" + rows["cpair"]).groupby("key").agg(agg)
    pair = _pair(v["allele1"].to_numpy(), v["allele2"].to_numpy())
    key = pd.Series(look.astype(str)).str.cat(pd.Series(pair), sep=":").to_numpy()
    found = pd.Series(key).isin(direct.index).to_numpy() & has_pos
    palin = np.isin(pair, ["A:T", "C:G"])
    by_comp = ~found & has_pos & ~palin & pd.Series(key).isin(compl.index).to_numpy()
    cols = [*SCORES, *flags]
    vals = np.array(direct.reindex(key)[cols], dtype=np.float64)
    vals[by_comp] = compl.reindex(key[by_comp])[cols].to_numpy(dtype=np.float64)
    vals[~(found | by_comp)] = np.nan
    flag = np.nan_to_num(vals[:, len(SCORES):]) > 0
    table = v[KEY_COLUMNS].copy()
    table["chromosome"] = table["chromosome"].astype(str)
    per_score = {}
    for j, s in enumerate(SCORES):
        col = vals[:, j]
        have = np.isfinite(col)
        table[s] = np.where(have, col, 0.0)
        per_score[s] = {"with_value": int(have.sum()), "set_to_0": int((~have).sum()),
                        "several_values_reduced": int(flag[:, 2 * j].sum()),
                        "several_values_differing": int(flag[:, 2 * j + 1].sum()),
                        "reduction": "min (most damaging: lower)" if REDUCTION[s] == "min" else
                                     "max (most damaging: higher)"}
    in_db = found | by_comp
    if indicator:
        table["dbnsfp_missing"] = (~in_db).astype(np.float64)
    report = {"chromosome": chrom, "match": match, "variants": int(len(v)),
              "looked_up": int(has_pos.sum()), "not_looked_up_no_position": int((~has_pos).sum()),
              "in_dbnsfp": int(in_db.sum()), "in_dbnsfp_complement_strand": int(by_comp.sum()),
              "not_in_dbnsfp_set_to_0": int((~in_db).sum()), **counts, "scores": per_score}
    if "liftover_status" in v.columns:
        report["liftover_status_of_variants_not_in_dbnsfp"] = {
            str(k): int(n) for k, n in v.loc[~in_db, "liftover_status"].value_counts().items()}
    return table, report


def combine_reports(reports: list[dict]) -> dict:
    """The per-chromosome reports of `dbnsfp_scores` summed into one (the per-chromosome ones kept under
    'chromosomes')."""
    total: dict = {"chromosomes": {r["chromosome"]: r for r in reports}}
    if not reports:
        return total
    total["match"] = reports[0]["match"]
    for k, val in reports[0].items():
        if isinstance(val, int) and not isinstance(val, bool):
            total[k] = sum(r[k] for r in reports)
    total["scores"] = {s: {k: (sum(r["scores"][s][k] for r in reports) if isinstance(v, int) else v)
                           for k, v in reports[0]["scores"][s].items()} for s in SCORES}
    return total
