"""Match canonical summary statistics to LD variants and align their signs (paper Sec. 6, App. D.1).

Rules, applied per LD variant (chromosome, position, allele1, allele2), allele1 being the counted allele:

- invalid values (SE <= 0, EAF outside [0, 1], N <= 2, non-finite Z, N, BETA or SE) are dropped and
  counted (`invalid_*`, see `invalid_values`) before anything else; the readers already
  drop them, this protects tables built elsewhere.
- match on chromosome and position, then on alleles:
  * same alleles (A1 = allele1, A2 = allele2): z kept;
  * swapped (A1 = allele2, A2 = allele1): z negated, EAF -> 1 - EAF;
  * strand flip (complements match, same or swapped order): as above after complementing;
  * anything else: dropped as `allele_mismatch`.
- global strand: the fraction of the non-palindromic matches that needed a strand flip is reported
  (`strand_flip_fraction`). Above `strand_flip_threshold` (default 0.9) the file is on the other strand
  than the LD panel as a whole (`strand`: "flipped"); below 1 - threshold, or with no non-palindromic
  match to judge from, it is taken to be on the same strand ("same"); in between the strand differs from
  variant to variant ("mixed").
- strand-ambiguous (palindromic A/T, C/G) pairs: the alleles cannot tell the strand. Let f_face be the
  frequency of LD allele1 read at face value (same strand) and f_flip = 1 - f_face the one read on the
  other strand. A pair whose minor-allele frequency exceeds `palindromic_max_maf` (default 0.4) in the
  statistics or in the reference (whichever are known) is dropped (`palindromic_ambiguous`): near 0.5 the
  frequencies cannot tell the readings apart. Otherwise:
  * reference frequency f_ref of allele1 known (`freq` column of the LD variants, or `ref_freq`) and the
    statistics' EAF known: the reading whose frequency is closer to f_ref wins (f_face and f_ref on the
    same side of 0.5: kept at face value, `palindromic_freq_kept`; else flipped, `palindromic_freq_flipped`);
  * otherwise by the global strand: "same" -> face value (`palindromic_face_value`), "flipped" -> flipped
    like the rest of the file (`palindromic_strand_flipped`), "mixed" -> dropped (`palindromic_mixed_strand`).
  `palindromic_max_maf` < 0 drops every palindromic pair. A pair with no frequency at all is dropped.
- frequency: the output's eaf is the statistics' EAF aligned to allele1; where the statistics have none, the
  reference frequency (`frequency_from_reference`). A file without any EAF and no reference frequency
  stops with `HarmonisationError` naming the trait, the file and what to add (the prior of Eqn 6 needs
  p_m); single variants without either are dropped (`no_frequency`).
- rsid is a cross-check: a differing non-empty rsid is counted as `rsid_mismatch` (the variant is kept,
  since positions and alleles agree).
- duplicated statistics rows (same chromosome, position and allele pair) are all dropped as `duplicate`.
- LD variants without statistics are counted (`ld_without_stats`), statistics without an LD variant too
  (`stats_without_ld`).
- match rate: statistics rows matched to an LD variant by position and alleles, over min(statistics rows
  on the LD panel's chromosomes, LD variants) (`match_rate`). Below `min_match_rate` the harmoniser stops
  with `HarmonisationError` naming the likely cause (no chromosome in common: chromosome naming; rsids shared
  at other positions: another genome build; otherwise positions or alleles that do not correspond).
- sample size: the per-variant N of the matched variants is summarised (`n_min`, `n_median`, `n_max`); a
  spread (max - min) / median above `n_max_spread` (default 0.1) adds a warning to `warnings`: the
  likelihood's phi = N f uses one N per trait (the median over the core variants) while each z keeps its own.

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


def invalid_values(df: pd.DataFrame) -> dict[str, pd.Series]:
    """Rows of a canonical table whose values cannot be used, by cause (boolean masks over df's index).

    Checked in this order, a row counted under its first cause only:

    - `dropped_se_nonpositive`: SE <= 0 where the file has an SE (a negative SE would flip the sign of
      Z = BETA / SE; a zero SE is an infinite statistic).
    - `dropped_nonfinite`: missing POS; Z or N not finite (NaN or infinite); BETA or SE infinite.
    - `dropped_n_too_small`: N <= 2 (z is sqrt(N) t / sqrt(t^2 + N - 2), undefined there).
    - `dropped_eaf_out_of_range`: EAF outside [0, 1] (a missing EAF is not a drop).
    """
    pos, z, n = df["POS"], df["Z"].astype(float), df["N"].astype(float)
    beta, se, eaf = df["BETA"].astype(float), df["SE"].astype(float), df["EAF"].astype(float)
    causes = {
        "dropped_se_nonpositive": se <= 0,
        "dropped_nonfinite": pos.isna() | ~np.isfinite(z) | ~np.isfinite(n) | np.isinf(beta) | np.isinf(se),
        "dropped_n_too_small": n <= 2,
        "dropped_eaf_out_of_range": (eaf < 0) | (eaf > 1),
    }
    seen = pd.Series(False, index=df.index)
    out = {}
    for name, bad in causes.items():
        out[name] = bad.fillna(False).astype(bool) & ~seen
        seen |= out[name]
    return out


def _complement(s: pd.Series) -> pd.Series:
    return s.str.translate(COMPLEMENT)


def is_palindromic(a1: pd.Series, a2: pd.Series) -> pd.Series:
    return (a1.str.len() == 1) & (a2.str.len() == 1) & (_complement(a1) == a2)


def correlation_z(t: np.ndarray, n: np.ndarray) -> np.ndarray:
    """sqrt(N) r with r = t / sqrt(t^2 + N - 2): the t statistic on the scale of the model's z."""
    t = np.asarray(t, dtype=np.float64)
    return np.sqrt(n) * t / np.sqrt(t * t + n - 2.0)


class HarmonisationError(ValueError):
    """Statistics that cannot be harmonised as they are; the message names the trait, the file and the fix."""


def _ref_frequency(ld: pd.DataFrame, ref_freq: pd.DataFrame | None) -> pd.Series:
    """Frequency of allele1 per LD row: the LD variants' own `freq` column, else the reference table, else NaN."""
    if "freq" in ld.columns:
        return pd.to_numeric(ld["freq"], errors="coerce").astype(float)
    if ref_freq is None:
        return pd.Series(np.nan, index=ld.index)
    need = {"chromosome", "position", "allele1", "allele2", "freq"}
    if not need <= set(ref_freq.columns):
        raise ValueError(f"reference frequency table needs columns {sorted(need)}, has {list(ref_freq.columns)}")
    r = ref_freq.assign(chromosome=ref_freq["chromosome"].astype(str).str.replace(r"^chr", "", regex=True, case=False),
                        position=ref_freq["position"].astype(np.int64),
                        allele1=ref_freq["allele1"].str.upper(), allele2=ref_freq["allele2"].str.upper())
    swapped = r.rename(columns={"allele1": "allele2", "allele2": "allele1"}).assign(freq=lambda d: 1.0 - d["freq"])
    both = pd.concat([r, swapped], ignore_index=True)
    both = both.drop_duplicates(["chromosome", "position", "allele1", "allele2"], keep=False)
    key = ["chromosome", "position", "allele1", "allele2"]
    f = ld[["CHR", "POS", "allele1", "allele2"]].set_axis(key, axis=1).merge(both[key + ["freq"]], on=key, how="left")
    return pd.Series(f["freq"].to_numpy(dtype=float), index=ld.index)


def panel_frequency(variants: pd.DataFrame, ref_freq: pd.DataFrame | None = None) -> np.ndarray:
    """Frequency of allele1 of each LD window variant (`formats.ukbb_ld.read_ld_variants`): the window's own `freq`
    column, else the reference table (`formats.frequencies`), else NaN. Depends on the LD source only."""
    ld = variants.rename(columns={"chromosome": "CHR", "position": "POS"})
    ld = ld.assign(CHR=ld["CHR"].astype(str).str.replace(r"^chr", "", regex=True, case=False),
                   POS=ld["POS"].astype(np.int64), allele1=ld["allele1"].str.upper(), allele2=ld["allele2"].str.upper())
    return _ref_frequency(ld, ref_freq).to_numpy(dtype=np.float64)


def harmonise(stats: pd.DataFrame, ld_variants: pd.DataFrame, palindromic_max_maf: float = 0.4,
              source: str = "summary statistics", z_scale: str = "correlation", *, trait: str | None = None,
              ref_freq: pd.DataFrame | None = None, strand_flip_threshold: float = 0.9,
              min_match_rate: float | None = None, n_max_spread: float = 0.1) -> tuple[pd.DataFrame, dict]:
    """Align a canonical summary-statistics table to LD variants (rules in the module docstring).

    ld_variants: columns rsid chromosome position allele1 allele2 (unique rows; see formats.ukbb_ld), and
    optionally freq (frequency of allele1 in the LD panel). ref_freq: optional table chromosome position
    allele1 allele2 freq used when ld_variants has no freq column. min_match_rate: None skips the check.
    Returns (table, report). The table has one row per matched LD variant with columns
    chromosome position rsid allele1 allele2 z n eaf (eaf = frequency of allele1).
    """
    if z_scale not in ("correlation", "raw"):
        raise ValueError(f"z_scale must be 'correlation' or 'raw', not {z_scale!r}")
    label = f"trait {trait!r} ({source})" if trait else str(source)
    report: dict = {"source": source, "stats_rows": int(len(stats)), "ld_variants": int(len(ld_variants))}
    if trait:
        report["trait"] = trait
    warnings: list[str] = []
    s = stats.copy()
    invalid = invalid_values(s)
    report.update({"invalid_" + k.removeprefix("dropped_"): int(v.sum()) for k, v in invalid.items()})
    s = s.loc[~np.logical_or.reduce(list(invalid.values()))].copy() if len(s) else s
    key = ["CHR", "POS", "_a", "_b"]
    s["_a"] = np.minimum(s["A1"], s["A2"])
    s["_b"] = np.maximum(s["A1"], s["A2"])
    dup = s.duplicated(["CHR", "POS", "A1", "A2"], keep=False) | s.duplicated(key, keep=False)
    report["duplicate"] = int(dup.sum())
    s = s.loc[~dup].assign(_sid=lambda d: np.arange(len(d)))

    ld = ld_variants.rename(columns={"chromosome": "CHR", "position": "POS"}).copy()
    ld["CHR"] = ld["CHR"].astype(str)
    ld["_ref"] = _ref_frequency(ld, ref_freq)
    # join on (CHR, POS) and test the allele relations explicitly
    m = ld.reset_index().merge(s.drop(columns=["_a", "_b"]), on=["CHR", "POS"], how="inner", suffixes=("", "_s"))
    same = (m["A1"] == m["allele1"]) & (m["A2"] == m["allele2"])
    swap = (m["A1"] == m["allele2"]) & (m["A2"] == m["allele1"])
    c1, c2 = _complement(m["A1"]), _complement(m["A2"])
    flip = (c1 == m["allele1"]) & (c2 == m["allele2"]) & ~same & ~swap
    flip_swap = (c1 == m["allele2"]) & (c2 == m["allele1"]) & ~same & ~swap
    ok = same | swap | flip | flip_swap
    pal = is_palindromic(m["allele1"], m["allele2"]) & ok
    n_ok_sid = int(m.loc[ok, "_sid"].nunique())
    _check_match_rate(report, s, ld, m, ok, n_ok_sid, min_match_rate, label)

    # global strand from the non-palindromic matches
    nonpal = ok & ~pal
    n_nonpal = int(nonpal.sum())
    frac = float(((flip | flip_swap) & nonpal).sum() / n_nonpal) if n_nonpal else float("nan")
    strand = ("same" if n_nonpal == 0 or frac < 1 - strand_flip_threshold
              else "flipped" if frac > strand_flip_threshold else "mixed")
    report["strand_flip_fraction"] = frac
    report["strand"] = strand
    if strand != "same":
        what = ("the palindromic ones are flipped too" if strand == "flipped" else
                "palindromic variants without a reference frequency are dropped")
        warnings.append(f"{label}: {frac:.1%} of {n_nonpal} non-palindromic matches are strand-flipped (strand "
                        f"'{strand}'); {what}")

    # sign and frequency of allele1 under each reading; non-palindromic pairs have one reading
    sign = np.where(same | flip, 1.0, -1.0)
    eaf_face = np.where(sign > 0, m["EAF"], 1.0 - m["EAF"])
    ref = m["_ref"].to_numpy(dtype=float)
    use_ref = pal.to_numpy() & np.isfinite(ref) & np.isfinite(eaf_face)
    # the larger of the known minor-allele frequencies (statistics, panel) must be <= palindromic_max_maf
    maf = np.fmax(np.minimum(ref, 1.0 - ref), np.minimum(eaf_face, 1.0 - eaf_face))   # NaN only if both unknown
    informative = (palindromic_max_maf >= 0) & (maf <= palindromic_max_maf)   # NaN compares False
    pal_np = pal.to_numpy()
    freq_flip = use_ref & informative & (np.abs(1.0 - eaf_face - ref) < np.abs(eaf_face - ref))
    freq_keep = use_ref & informative & ~freq_flip
    by_strand = pal_np & ~use_ref & informative
    strand_flip = by_strand & (strand == "flipped")
    strand_drop = by_strand & (strand == "mixed")
    pal_drop = pal_np & ~informative
    report["palindromic_ambiguous"] = int(pal_drop.sum())
    report["palindromic_freq_kept"] = int(freq_keep.sum())
    report["palindromic_freq_flipped"] = int(freq_flip.sum())
    report["palindromic_face_value"] = int((by_strand & (strand == "same")).sum())
    report["palindromic_strand_flipped"] = int(strand_flip.sum())
    report["palindromic_mixed_strand"] = int(strand_drop.sum())
    pal_flipped = freq_flip | strand_flip
    sign = np.where(pal_flipped, -sign, sign)
    eaf = np.where(pal_flipped, 1.0 - eaf_face, eaf_face)
    from_ref = ~np.isfinite(eaf) & np.isfinite(ref)
    eaf = np.where(from_ref, ref, eaf)

    sid_ok = set(m.loc[ok, "_sid"])
    report["allele_mismatch"] = int(len(set(m["_sid"]) - sid_ok))
    keep = ok.to_numpy() & ~pal_drop & ~strand_drop
    m_all_sid = m["_sid"].to_numpy()
    m = m.assign(_sign=sign, _eaf=eaf, _from_ref=from_ref, _flip=(flip | flip_swap).to_numpy())[keep]
    if m.duplicated("index").any():
        # one LD variant matched by two statistics rows with different allele spellings
        d = m.duplicated("index", keep=False)
        report["duplicate"] += int(d.sum())
        m = m[~d]
    no_freq = ~np.isfinite(m["_eaf"].to_numpy())
    if len(m) and no_freq.all():
        raise HarmonisationError(
            f"{label}: the statistics have no allele frequency (EAF) and no reference frequency was found for "
            f"any of the {len(m)} matched variants. The prior (Eqn 6) needs the frequency of every variant: add "
            "an allele-frequency column to the file (EAF / AF1 / A1FREQ / effect_allele_frequency, the frequency "
            "of the effect allele), or give harmonise.reference_frequencies (a table chromosome position allele1 "
            "allele2 freq from the LD panel), or use an LD source that records frequencies.")
    report["no_frequency"] = int(no_freq.sum())
    m = m[~no_freq]
    report["frequency_from_reference"] = int(m["_from_ref"].sum())
    rs_bad = (m["SNP"] != "") & (m["rsid"].astype(str) != "") & (m["SNP"] != m["rsid"].astype(str))
    report["rsid_mismatch"] = int(rs_bad.sum())
    report["strand_flipped"] = int((m["_flip"] & ~is_palindromic(m["allele1"], m["allele2"])).sum())
    report["allele_swapped"] = int((m["_sign"] < 0).sum())

    z = m["Z"].to_numpy() if z_scale == "raw" else correlation_z(m["Z"].to_numpy(), m["N"].to_numpy())
    out = pd.DataFrame({
        "chromosome": m["CHR"].to_numpy(), "position": m["POS"].to_numpy(), "rsid": m["rsid"].to_numpy(),
        "allele1": m["allele1"].to_numpy(), "allele2": m["allele2"].to_numpy(),
        "z": z * m["_sign"].to_numpy(), "n": m["N"].to_numpy(), "eaf": m["_eaf"].to_numpy(),
    }).sort_values(["position"], kind="stable").reset_index(drop=True)
    report["matched"] = int(len(out))
    report["ld_without_stats"] = int(len(ld) - len(out))
    report["stats_without_ld"] = int(len(s) - len(set(m_all_sid)))
    warnings += _sample_size_summary(out["n"].to_numpy(dtype=float), n_max_spread, label, report)
    report["warnings"] = warnings
    return out, report


def _sample_size_summary(n: np.ndarray, max_spread: float, label: str, report: dict) -> list[str]:
    """Per-variant N of the matched variants: min, median, max and a warning when it varies by > max_spread."""
    if n.size == 0:
        return []
    lo, med, hi = float(n.min()), float(np.median(n)), float(n.max())
    spread = (hi - lo) / med
    report.update({"n_min": lo, "n_median": med, "n_max": hi, "n_spread": spread})
    if spread > max_spread:
        return [f"{label}: per-variant N varies by {spread:.0%} of its median ({lo:.0f} to {hi:.0f}, median "
                f"{med:.0f}); the likelihood uses phi = N f with the median N for every variant, so variants with "
                "a smaller N carry less signal than the prior assumes"]
    return []


def _check_match_rate(report: dict, s: pd.DataFrame, ld: pd.DataFrame, m: pd.DataFrame, ok: pd.Series,
                      n_ok: int, min_rate: float | None, label: str) -> None:
    """Report the match rate; stop with the likely cause when it is below `min_rate`."""
    ld_chroms = set(ld["CHR"])
    on_ld = int(s["CHR"].isin(ld_chroms).sum())
    denom = min(on_ld, len(ld))
    rate = n_ok / denom if denom else 0.0
    report["match_rate"] = rate
    report["matched_positions"] = int(m["_sid"].nunique())
    if min_rate is None or rate >= min_rate or len(s) == 0 or len(ld) == 0:
        return
    stats_chroms = set(s["CHR"])
    head = (f"{label}: only {n_ok} of {denom} variants matched the LD panel by position and alleles "
            f"(match rate {rate:.2%} < harmonise.min_match_rate {min_rate:g}). ")
    if not stats_chroms & ld_chroms:
        raise HarmonisationError(
            head + f"No chromosome in common: the statistics name {sorted(stats_chroms)[:5]}, the LD panel "
            f"{sorted(ld_chroms)[:5]}. Likely cause: chromosome naming ('chr1' vs '1', '23' vs 'X') or "
            "statistics for other chromosomes; rename the chromosomes or check config 'chromosomes'.")
    rs = s.loc[s["SNP"] != "", ["SNP", "CHR", "POS"]].merge(
        ld[["rsid", "CHR", "POS"]].rename(columns={"rsid": "SNP"}), on="SNP", suffixes=("", "_ld"))
    moved = rs[(rs["CHR"] == rs["CHR_ld"]) & (rs["POS"] != rs["POS_ld"])]
    if len(rs) and len(moved) > 0.5 * len(rs):
        shift = int(np.median(moved["POS"].to_numpy() - moved["POS_ld"].to_numpy()))
        raise HarmonisationError(
            head + f"{len(moved)} of {len(rs)} rsids shared with the LD panel sit at other positions (median "
            f"shift {shift:+d} bp). Likely cause: the statistics are on another genome build than the LD panel "
            "(UKBB LD is GRCh37); lift the statistics over to the panel's build.")
    if report["matched_positions"] >= 0.5 * denom:
        raise HarmonisationError(
            head + f"{report['matched_positions']} rows match an LD position but their alleles do not. Likely "
            "cause: wrong allele columns (format) or another reference; check the trait's 'format'.")
    raise HarmonisationError(
        head + "Likely cause: the statistics are on another genome build than the LD panel (positions do not "
        "correspond; UKBB LD is GRCh37) or cover other variants; lift them over or check the file.")


def variant_key(df: pd.DataFrame) -> pd.Series:
    """'chrom:pos:allele1:allele2' identifiers used to join harmonised tables and LD windows."""
    return (df["chromosome"].astype(str) + ":" + df["position"].astype(str) + ":" + df["allele1"] + ":" + df["allele2"])
