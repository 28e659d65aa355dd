"""Match canonical summary statistics to LD variants and align their signs (paper App. D.1).

Rules, applied per LD variant (chromosome, position, allele1, allele2), allele1 being the counted allele:

- match on chromosome and position, then on alleles:
  * same alleles (A1 = allele1, A2 = allele2): z kept;
  * swapped (A1 = allele2, A2 = allele1): z negated, EAF -> 1 - EAF;
  * strand flip (complements match, same or swapped order): as above after complementing;
  * anything else: dropped as `allele_mismatch`.
- strand-ambiguous (palindromic A/T, C/G) pairs: the strand cannot be read from the alleles. They are
  kept at face value (same strand as the LD reference) when the statistics' minor-allele frequency is
  at most `palindromic_max_maf` (default 0.4), and dropped as `palindromic_ambiguous` otherwise, or
  always dropped when `palindromic_max_maf` < 0. With no frequency they are dropped.
- rsid is a cross-check: a differing non-empty rsid is counted as `rsid_mismatch` (the variant is kept,
  since positions and alleles agree).
- duplicated statistics rows (same chromosome, position and allele pair) are all dropped as `duplicate`.
- LD variants without statistics are counted (`ld_without_stats`), statistics without an LD variant too
  (`stats_without_ld`).

Every drop is counted in the returned report; nothing is silently removed.

Scale of z: the likelihood models z = sqrt(N) * beta_hat with beta_hat = X y / N, the marginal correlation
of standardised genotype and phenotype (paper Sec. 2, Eqn 2). A regression t statistic is not exactly that:
r = t / sqrt(t^2 + N - 2). With `z_scale="correlation"` (default) the harmoniser returns
z = sqrt(N) * t / sqrt(t^2 + N - 2); the difference is about z^3 / (2N) (negligible at biobank N, but at
N = 3000 it puts z outside the column space of R, which the pseudo-inverse amplifies).
`z_scale="raw"` keeps the file's statistic.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

COMPLEMENT = str.maketrans("ACGT", "TGCA")


def _complement(s: pd.Series) -> pd.Series:
    return s.str.translate(COMPLEMENT)


def is_palindromic(a1: pd.Series, a2: pd.Series) -> pd.Series:
    return (a1.str.len() == 1) & (a2.str.len() == 1) & (_complement(a1) == a2)


def correlation_z(t: np.ndarray, n: np.ndarray) -> np.ndarray:
    """sqrt(N) r with r = t / sqrt(t^2 + N - 2): the t statistic on the scale of the model's z."""
    t = np.asarray(t, dtype=np.float64)
    return np.sqrt(n) * t / np.sqrt(t * t + n - 2.0)


def harmonise(stats: pd.DataFrame, ld_variants: pd.DataFrame, palindromic_max_maf: float = 0.4,
              source: str = "summary statistics", z_scale: str = "correlation") -> tuple[pd.DataFrame, dict]:
    """Align a canonical summary-statistics table to LD variants.

    ld_variants: columns rsid chromosome position allele1 allele2 (unique rows; see formats.ukbb_ld).
    Returns (table, report). The table has one row per matched LD variant with columns
    chromosome position rsid allele1 allele2 z n eaf (eaf = frequency of allele1).
    """
    report: dict[str, int | str] = {"source": source, "stats_rows": int(len(stats)),
                                    "ld_variants": int(len(ld_variants))}
    key = ["CHR", "POS", "_a", "_b"]
    s = stats.copy()
    s["_a"] = np.minimum(s["A1"], s["A2"])
    s["_b"] = np.maximum(s["A1"], s["A2"])
    dup = s.duplicated(["CHR", "POS", "A1", "A2"], keep=False) | s.duplicated(key, keep=False)
    report["duplicate"] = int(dup.sum())
    s = s.loc[~dup].assign(_sid=lambda d: np.arange(len(d)))

    ld = ld_variants.rename(columns={"chromosome": "CHR", "position": "POS"}).copy()
    ld["CHR"] = ld["CHR"].astype(str)
    # join on (CHR, POS) and test the allele relations explicitly
    m = ld.reset_index().merge(s.drop(columns=["_a", "_b"]), on=["CHR", "POS"], how="inner", suffixes=("", "_s"))
    same = (m["A1"] == m["allele1"]) & (m["A2"] == m["allele2"])
    swap = (m["A1"] == m["allele2"]) & (m["A2"] == m["allele1"])
    c1, c2 = _complement(m["A1"]), _complement(m["A2"])
    flip = (c1 == m["allele1"]) & (c2 == m["allele2"]) & ~same & ~swap
    flip_swap = (c1 == m["allele2"]) & (c2 == m["allele1"]) & ~same & ~swap
    ok = same | swap | flip | flip_swap

    pal = is_palindromic(m["allele1"], m["allele2"]) & ok
    maf = np.minimum(m["EAF"], 1 - m["EAF"])
    pal_drop = pal & ~((palindromic_max_maf >= 0) & (maf <= palindromic_max_maf))
    sid_ok = set(m.loc[ok, "_sid"])
    report["allele_mismatch"] = int(len(set(m["_sid"]) - sid_ok))
    report["palindromic_ambiguous"] = int(pal_drop.sum())
    keep = ok & ~pal_drop
    m_all_sid = m["_sid"].to_numpy()
    # a palindromic pair matches both 'same' and 'flip_swap': take it at face value (same strand)
    sign = np.where(same | flip, 1.0, -1.0)
    m = m.assign(_sign=sign, _flip=(flip | flip_swap).to_numpy())[keep]
    if m.duplicated("index").any():
        # one LD variant matched by two statistics rows with different allele spellings
        d = m.duplicated("index", keep=False)
        report["duplicate"] += int(d.sum())
        m = m[~d]
    rs_bad = (m["SNP"] != "") & (m["rsid"].astype(str) != "") & (m["SNP"] != m["rsid"].astype(str))
    report["rsid_mismatch"] = int(rs_bad.sum())
    report["strand_flipped"] = int(m["_flip"].sum())
    report["allele_swapped"] = int((m["_sign"] < 0).sum())

    if z_scale not in ("correlation", "raw"):
        raise ValueError(f"z_scale must be 'correlation' or 'raw', not {z_scale!r}")
    z = m["Z"].to_numpy() if z_scale == "raw" else correlation_z(m["Z"].to_numpy(), m["N"].to_numpy())
    out = pd.DataFrame({
        "chromosome": m["CHR"].to_numpy(), "position": m["POS"].to_numpy(), "rsid": m["rsid"].to_numpy(),
        "allele1": m["allele1"].to_numpy(), "allele2": m["allele2"].to_numpy(),
        "z": z * m["_sign"].to_numpy(), "n": m["N"].to_numpy(),
        "eaf": np.where(m["_sign"] > 0, m["EAF"], 1 - m["EAF"]),
    }).sort_values(["position"], kind="stable").reset_index(drop=True)
    report["matched"] = int(len(out))
    report["ld_without_stats"] = int(len(ld) - len(out))
    report["stats_without_ld"] = int(len(s) - len(set(m_all_sid)))
    return out, report


def variant_key(df: pd.DataFrame) -> pd.Series:
    """'chrom:pos:allele1:allele2' identifiers used to join harmonised tables and LD windows."""
    return (df["chromosome"].astype(str) + ":" + df["position"].astype(str) + ":" + df["allele1"] + ":" + df["allele2"])
