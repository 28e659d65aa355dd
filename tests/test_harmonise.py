"""Harmonisation of summary statistics to LD variants (paper App. D.1): every case, every count."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deepwas.formats.sumstats import SumstatsFormatError, read_sumstats
from deepwas.harmonise import correlation_z, harmonise, variant_key
from deepwas.simulation.cohort import gwas

N = 10_000


def _ld(rows):
    return pd.DataFrame(rows, columns=["rsid", "chromosome", "position", "allele1", "allele2"]).astype(
        {"position": np.int64})


def _stats(rows):
    """Canonical table (what read_sumstats returns) from (SNP, POS, A1, A2, EAF, Z) rows on chromosome 1."""
    df = pd.DataFrame(rows, columns=["SNP", "POS", "A1", "A2", "EAF", "Z"])
    df.insert(1, "CHR", "1")
    df["POS"] = df["POS"].astype(np.int64)
    df["BETA"] = df["Z"] / 100.0
    df["SE"] = 0.01
    df["N"] = float(N)
    df["INFO"] = 1.0
    return df[["SNP", "CHR", "POS", "A1", "A2", "EAF", "BETA", "SE", "Z", "N", "INFO"]]


LD = _ld([
    ("rs1", "1", 100, "A", "G"),     # same alleles
    ("rs2", "1", 200, "A", "G"),     # swapped
    ("rs3", "1", 300, "A", "C"),     # strand flip
    ("rs4", "1", 400, "A", "C"),     # strand flip + swap
    ("rs5", "1", 500, "A", "T"),     # palindromic, low MAF: 2 of 5 non-palindromic matches flipped: dropped
    ("rs6", "1", 600, "C", "G"),     # palindromic, MAF > 0.4: dropped
    ("rs7", "1", 700, "A", "G"),     # no statistics
    ("rs9", "1", 900, "A", "G"),     # allele mismatch
    ("rs10", "1", 1000, "A", "G"),   # duplicated statistics
    ("rs11", "1", 1100, "A", "G"),   # rsid mismatch
])
STATS = _stats([
    ("rs1", 100, "A", "G", 0.20, 2.0),
    ("rs2", 200, "G", "A", 0.30, 1.5),
    ("rs3", 300, "T", "G", 0.10, -1.0),
    ("rs4", 400, "G", "T", 0.25, 3.0),
    ("rs5", 500, "A", "T", 0.20, 0.7),
    ("rs6", 600, "C", "G", 0.45, 2.2),
    ("rs8", 800, "A", "G", 0.30, 1.1),   # not in the LD window
    ("rs9", 900, "A", "C", 0.30, 4.0),
    ("rs10", 1000, "A", "G", 0.30, 1.0),
    ("rs10", 1000, "A", "G", 0.30, 1.2),
    ("rsOTHER", 1100, "A", "G", 0.40, -0.5),
])


@pytest.fixture(scope="module")
def result():
    return harmonise(STATS, LD, z_scale="raw", source="test")


def _row(out, pos):
    hit = out.loc[out["position"] == pos]
    assert len(hit) <= 1
    return None if hit.empty else hit.iloc[0]


def test_same_alleles_kept(result):
    r = _row(result[0], 100)
    assert r["z"] == 2.0 and r["eaf"] == pytest.approx(0.2) and (r["allele1"], r["allele2"]) == ("A", "G")


def test_swap_flips_sign_and_frequency(result):
    r = _row(result[0], 200)
    assert r["z"] == -1.5 and r["eaf"] == pytest.approx(0.7)
    assert result[1]["allele_swapped"] == 2          # rs2 and rs4


def test_strand_flip_kept_and_counted(result):
    r = _row(result[0], 300)
    assert r["z"] == -1.0 and r["eaf"] == pytest.approx(0.1)
    assert result[1]["strand_flipped"] == 2          # rs3 and rs4


def test_strand_flip_and_swap(result):
    r = _row(result[0], 400)
    assert r["z"] == -3.0 and r["eaf"] == pytest.approx(0.75)


def test_palindromic(result):
    # rs3, rs4 of the 5 non-palindromic matches are strand-flipped: the strand is 'mixed', so rs5 (MAF 0.2,
    # no reference frequency) cannot be read at face value and is dropped; rs6 (MAF 0.45) is ambiguous
    assert result[1]["strand"] == "mixed" and result[1]["strand_flip_fraction"] == pytest.approx(0.4)
    assert _row(result[0], 500) is None and result[1]["palindromic_mixed_strand"] == 1
    assert _row(result[0], 600) is None
    assert result[1]["palindromic_ambiguous"] == 1


def test_missing_duplicate_mismatch_rsid(result):
    out, rep = result
    assert _row(out, 700) is None and _row(out, 800) is None
    assert _row(out, 900) is None and _row(out, 1000) is None
    r = _row(out, 1100)
    assert r["z"] == -0.5 and r["rsid"] == "rs11"
    assert rep["duplicate"] == 2
    assert rep["allele_mismatch"] == 1
    assert rep["rsid_mismatch"] == 1
    assert rep["stats_without_ld"] == 1
    assert rep["matched"] == 5
    assert rep["ld_without_stats"] == 5              # rs5, rs6 (palindromic), rs7, rs9 (mismatch), rs10 (duplicate)
    assert rep["stats_rows"] == 11 and rep["ld_variants"] == 10 and rep["source"] == "test"
    assert out["position"].tolist() == [100, 200, 300, 400, 1100]
    assert variant_key(out).tolist()[0] == "1:100:A:G"


@pytest.mark.parametrize("a1,a2,eaf,max_maf,expected", [
    ("A", "T", 0.35, 0.4, 0.7),       # kept at face value
    ("A", "T", 0.65, 0.4, 0.7),       # MAF 0.35: kept
    ("T", "A", 0.20, 0.4, -0.7),      # written the other way round: taken at face value, i.e. a swap
    ("A", "T", 0.45, 0.4, None),      # MAF 0.45 > 0.4: dropped
    ("A", "T", 0.55, 0.4, None),
    ("A", "T", 0.05, -1.0, None),     # palindromic_max_maf < 0: always dropped
    ("A", "T", np.nan, 0.4, None),    # no frequency: cannot be resolved
])
def test_palindromic_rules(a1, a2, eaf, max_maf, expected):
    ld = _ld([("rs5", "1", 500, "A", "T"), ("rs1", "1", 100, "A", "G")])
    st = _stats([("rs5", 500, a1, a2, eaf, 0.7), ("rs1", 100, "A", "G", 0.2, 1.0)])
    out, rep = harmonise(st, ld, palindromic_max_maf=max_maf, z_scale="raw")
    r = _row(out, 500)
    if expected is None:
        assert r is None and rep["palindromic_ambiguous"] == 1 and rep["ld_without_stats"] == 1
    else:
        assert r["z"] == expected and rep["palindromic_ambiguous"] == 0
        assert rep["strand_flipped"] == 0
    assert _row(out, 100)["z"] == 1.0


def test_duplicate_with_swapped_spelling_dropped():
    ld = _ld([("rs1", "1", 100, "A", "G")])
    st = _stats([("rs1", 100, "A", "G", 0.2, 1.0), ("rs1", 100, "G", "A", 0.8, -1.0)])
    out, rep = harmonise(st, ld, z_scale="raw")
    assert out.empty and rep["duplicate"] == 2 and rep["ld_without_stats"] == 1


def test_bad_z_scale():
    with pytest.raises(ValueError, match="z_scale"):
        harmonise(STATS, LD, z_scale="beta")


UKBB_HEADER = "SNP CHR POS A1 A2 EAF Beta se P N INFO\n"


def test_nan_statistics_dropped_and_counted(tmp_path):
    path = tmp_path / "trait.sumstats"
    path.write_text(UKBB_HEADER
                    + "rs1 1 100 A G 0.2 0.02 0.01 0.05 10000 1.0\n"
                    + "rs2 1 200 G A 0.3 NaN 0.01 0.05 10000 1.0\n"
                    + "rs7 1 700 A G 0.3 0.01 0.01 0.3 10000 0.9\n")
    st, rep = read_sumstats(path, fmt="ukbb_409k")
    assert rep["dropped_nonfinite"] == 1 and rep["rows_kept"] == 2
    assert st["POS"].tolist() == [100, 700]
    out, hrep = harmonise(st, LD, z_scale="raw")
    assert out["position"].tolist() == [100, 700]
    assert out["z"].tolist() == pytest.approx([2.0, 1.0])
    assert hrep["ld_without_stats"] == len(LD) - 2


def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "no_beta.sumstats"
    path.write_text("SNP CHR POS A1 A2 EAF se P N INFO\nrs1 1 100 A G 0.2 0.01 0.05 10000 1.0\n")
    with pytest.raises(SumstatsFormatError, match=r"no_beta\.sumstats: missing required column\(s\) \['Beta'\]"):
        read_sumstats(path, fmt="ukbb_409k")


def test_correlation_z_of_ols_t(msprime_chromosome):
    chrom = msprime_chromosome(300, 100_000, 41)
    G = chrom.genotypes.astype(np.float64)
    rng = np.random.default_rng(41)
    Xs = chrom.standardised()
    y = Xs[:20].T @ rng.normal(size=20) * 0.3 + rng.normal(size=G.shape[1])
    res = gwas(chrom.genotypes, y)
    n = G.shape[1]
    t = (res["Beta"] / res["se"]).to_numpy()
    corr = np.array([np.corrcoef(g, y)[0, 1] for g in G])
    assert np.abs(t).max() > 3                       # some real signal in the test
    np.testing.assert_allclose(correlation_z(t, np.full(len(t), n)), math.sqrt(n) * corr, rtol=1e-8, atol=1e-12)
    # the harmoniser's default scale applies it
    M = len(t)
    ld = _ld(list(zip([f"rs{k}" for k in range(M)], ["1"] * M, chrom.positions, chrom.allele1, chrom.allele2)))
    st = _stats(list(zip([f"rs{k}" for k in range(M)], chrom.positions, chrom.allele1, chrom.allele2,
                         res["EAF"], t)))
    st["N"] = float(n)
    out, rep = harmonise(st, ld, palindromic_max_maf=0.5)
    assert rep["matched"] == M
    np.testing.assert_allclose(out["z"].to_numpy(), math.sqrt(n) * corr, rtol=1e-8, atol=1e-12)


# --- fault probes: statistics checked before they are trusted ----------------------------------------------------
#
# A msprime cohort, its GWAS written as a real fastGWA file and the LD variant list in the UKBB layout, run through
# the rule script (read_sumstats + harmonise) like the workflow does.

import gzip  # noqa: E402
import json  # noqa: E402

import harmonise_trait  # noqa: E402  (workflow/scripts on PYTHONPATH)
from deepwas.harmonise import HarmonisationError  # noqa: E402

FASTGWA_COLUMNS = ["CHR", "SNP", "POS", "A1", "A2", "N", "AF1", "BETA", "SE", "P"]
COMP = str.maketrans("ACGT", "TGCA")


@pytest.fixture(scope="module")
def cohort(msprime_chromosome):
    """(LD variant table, fastGWA table on the LD strand with A1 = allele1) of a 1,000-person msprime GWAS."""
    chrom = msprime_chromosome(1000, 1_000_000, 12)
    rng = np.random.default_rng(12)
    Xs = chrom.standardised()
    y = Xs[:: max(1, len(Xs) // 30)].T @ rng.normal(size=len(Xs[:: max(1, len(Xs) // 30)])) * 0.2
    y = y + rng.normal(size=Xs.shape[1])
    res = gwas(chrom.genotypes, y)
    M = len(chrom.positions)
    ld = pd.DataFrame({"rsid": [f"rs{k}" for k in range(M)], "chromosome": "1", "position": chrom.positions,
                       "allele1": chrom.allele1, "allele2": chrom.allele2})
    fg = pd.DataFrame({"CHR": "1", "SNP": ld["rsid"], "POS": ld["position"], "A1": ld["allele1"], "A2": ld["allele2"],
                       "N": 1000.0, "AF1": res["EAF"], "BETA": res["Beta"], "SE": res["se"], "P": res["P"]})
    return ld, fg


def _write_ld_list(path, ld):
    with gzip.open(path, "wt") as fh:
        ld.to_csv(fh, sep="\t", index=False)
    return path


def _run(tmp_path, ld, stats, name="t", fmt="fastgwa", **kw):
    """harmonise_trait.main on files in the real formats; returns (harmonised table, report)."""
    sfile = tmp_path / f"{name}.{'fastGWA' if fmt == 'fastgwa' else 'sumstats'}"
    stats.to_csv(sfile, sep="\t", index=False)
    ld_file = _write_ld_list(tmp_path / f"{name}_chr1_1_3000001.gz", ld)
    out, rep = tmp_path / f"{name}.tsv.gz", tmp_path / f"{name}.report.json"
    kw.setdefault("min_match_rate", 0.2)
    harmonise_trait.main(str(sfile), fmt, None, [str(ld_file)], str(out), str(rep), 0.4, "raw", trait=name, **kw)
    return pd.read_csv(out, sep="\t", dtype={"chromosome": str}), json.loads(rep.read_text())


def _complement(df, rows):
    df = df.copy()
    for c in ("A1", "A2"):
        df.loc[rows, c] = df.loc[rows, c].str.translate(COMP)
    return df


def _palindromic(ld):
    return is_palindromic(ld["allele1"], ld["allele2"]).to_numpy()


from deepwas.harmonise import is_palindromic  # noqa: E402


def test_clean_file_matches_everything(tmp_path, cohort):
    ld, fg = cohort
    out, rep = _run(tmp_path, ld, fg)
    h = rep["harmonise"]
    pal_low = _palindromic(ld) & (np.minimum(fg["AF1"], 1 - fg["AF1"]) <= 0.4).to_numpy()
    assert h["match_rate"] == 1.0 and h["strand"] == "same" and h["strand_flip_fraction"] == 0.0
    assert h["matched"] == len(ld) - h["palindromic_ambiguous"]
    assert h["palindromic_face_value"] == pal_low.sum() > 50
    assert h["warnings"] == [] and h["n_min"] == h["n_max"] == 1000.0
    np.testing.assert_allclose(out["z"].to_numpy(), (fg["BETA"] / fg["SE"]).to_numpy()[np.isin(ld["rsid"], out["rsid"])])


def test_file_on_the_other_strand_flips_palindromic_variants(tmp_path, cohort):
    """Every allele complemented: the non-palindromic matches say 'flipped', so the palindromic ones are too."""
    ld, fg = cohort
    ref, _ = _run(tmp_path, ld, fg, name="same")
    # and a third of the rows written with the other allele as effect allele
    rng = np.random.default_rng(3)
    sw = rng.random(len(fg)) < 1 / 3
    other = fg.copy()
    other.loc[sw, ["A1", "A2"]] = other.loc[sw, ["A2", "A1"]].to_numpy()
    other.loc[sw, "BETA"] = -other.loc[sw, "BETA"]
    other.loc[sw, "AF1"] = 1 - other.loc[sw, "AF1"]
    other = _complement(other, slice(None))
    out, rep = _run(tmp_path, ld, other, name="flipped")
    h = rep["harmonise"]
    assert h["strand"] == "flipped" and h["strand_flip_fraction"] == 1.0
    assert h["palindromic_strand_flipped"] == (_palindromic(ld) & (np.minimum(fg["AF1"], 1 - fg["AF1"]) <= 0.4)).sum()
    assert h["palindromic_face_value"] == 0 and any("strand-flipped" in w for w in h["warnings"])
    assert out["rsid"].tolist() == ref["rsid"].tolist()
    np.testing.assert_allclose(out["z"].to_numpy(), ref["z"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(out["eaf"].to_numpy(), ref["eaf"].to_numpy(), rtol=1e-12)


def test_mixed_strand_palindromic_resolved_by_panel_frequency(tmp_path, cohort):
    ld, fg = cohort
    ref, _ = _run(tmp_path, ld, fg, name="same")
    rng = np.random.default_rng(4)
    mixed = _complement(fg, rng.random(len(fg)) < 0.5)
    pal_low = _palindromic(ld) & (np.minimum(fg["AF1"], 1 - fg["AF1"]) <= 0.4).to_numpy()
    # without a reference frequency the palindromic variants of a mixed-strand file cannot be read: dropped
    out, rep = _run(tmp_path, ld, mixed, name="mixed")
    h = rep["harmonise"]
    assert h["strand"] == "mixed" and 0.4 < h["strand_flip_fraction"] < 0.6
    assert h["palindromic_mixed_strand"] == pal_low.sum() and not set(ld["rsid"][_palindromic(ld)]) & set(out["rsid"])
    # with the panel's frequency (a separate sample: noise of sd 0.01) every one is resolved correctly
    panel_freq = np.clip(fg["AF1"].to_numpy() + rng.normal(0, 0.01, len(fg)), 0, 1)
    out, rep = _run(tmp_path, ld.assign(freq=panel_freq), mixed, name="mixed_freq")
    h = rep["harmonise"]
    maf_both = np.maximum(np.minimum(panel_freq, 1 - panel_freq), np.minimum(fg["AF1"], 1 - fg["AF1"]).to_numpy())
    pal_low_panel = _palindromic(ld) & (maf_both <= 0.4)            # both MAFs must be <= 0.4
    assert h["palindromic_mixed_strand"] == 0
    assert h["palindromic_freq_kept"] + h["palindromic_freq_flipped"] == pal_low_panel.sum()
    assert h["palindromic_freq_flipped"] > 300 and h["palindromic_freq_kept"] > 300
    assert set(out["rsid"]) == set(ld["rsid"][~_palindromic(ld) | pal_low_panel])
    truth = (fg["BETA"] / fg["SE"]).set_axis(ld["rsid"])
    np.testing.assert_allclose(out["z"].to_numpy(), truth.loc[out["rsid"]].to_numpy(), rtol=1e-12)


def test_invalid_values_dropped_and_counted(tmp_path, cohort):
    """se < 0 used to flip the sign of z silently; EAF outside [0, 1] was kept; N <= 2 gave NaN z."""
    ld, fg = cohort
    ref, _ = _run(tmp_path, ld, fg, name="same")
    bad = fg.copy()
    idx = np.arange(len(bad))
    se_neg, eaf_bad, n_bad, beta_inf = idx[0:300], idx[300:350], idx[350:370], idx[370:375]
    bad.loc[se_neg, "SE"] = -bad.loc[se_neg, "SE"]
    bad.loc[se_neg[:5], "SE"] = 0.0
    bad.loc[eaf_bad, "AF1"] = 1.2
    bad.loc[eaf_bad[:10], "AF1"] = -0.1
    bad.loc[n_bad, "N"] = 2.0
    bad["BETA"] = bad["BETA"].astype(object)
    bad.loc[beta_inf, "BETA"] = "inf"
    out, rep = _run(tmp_path, ld, bad, name="bad")
    r = rep["read"]
    assert (r["dropped_se_nonpositive"], r["dropped_eaf_out_of_range"], r["dropped_n_too_small"],
            r["dropped_nonfinite"]) == (300, 50, 20, 5)
    assert r["rows_kept"] == len(fg) - 375
    gone = set(ld["rsid"].iloc[:375])
    assert not gone & set(out["rsid"])
    keep = ref[~ref["rsid"].isin(gone)]
    assert out["rsid"].tolist() == keep["rsid"].tolist()
    np.testing.assert_allclose(out["z"].to_numpy(), keep["z"].to_numpy(), rtol=1e-12)


def test_harmonise_drops_invalid_values_of_any_table():
    st = _stats([("rs1", 100, "A", "G", 0.2, 2.0), ("rs2", 200, "G", "A", 1.3, 1.5), ("rs3", 300, "A", "C", 0.1, np.inf),
                 ("rs4", 400, "A", "C", 0.25, 3.0), ("rs11", 1100, "A", "G", 0.3, 1.0)])
    st.loc[3, "SE"] = -0.01
    st.loc[4, "N"] = 1.0
    out, rep = harmonise(st, LD, z_scale="raw")
    assert out["position"].tolist() == [100]
    assert (rep["invalid_eaf_out_of_range"], rep["invalid_nonfinite"], rep["invalid_se_nonpositive"],
            rep["invalid_n_too_small"]) == (1, 1, 1, 1)


def test_wrong_genome_build_stops_naming_the_cause(tmp_path, cohort):
    """Positions shifted by 12,345 bp: a few coincidental matches must not pass as a harmonised trait."""
    ld, fg = cohort
    shifted = fg.assign(POS=fg["POS"] + 12_345)
    with pytest.raises(HarmonisationError, match=r"trait 'height_like' \(.*height_like\.fastGWA\): only \d+ of "
                       r"\d+ variants matched.*median shift \+12345 bp.*another genome build"):
        _run(tmp_path, ld, shifted, name="height_like")
    assert not (tmp_path / "height_like.tsv.gz").exists()
    # without rsids the cause is still named
    with pytest.raises(HarmonisationError, match=r"another genome build"):
        _run(tmp_path, ld, shifted.assign(SNP="."), name="no_rsid")
    # the threshold is a setting: 0 accepts anything (and the rate is in the report)
    _, rep = _run(tmp_path, ld, shifted, name="accepted", min_match_rate=0.0)
    assert rep["harmonise"]["match_rate"] < 0.02


def test_wrong_allele_columns_stop_naming_the_cause(tmp_path, cohort):
    """Positions right, alleles from another column pair (here: every row's alleles from its neighbour)."""
    ld, fg = cohort
    other = fg.assign(A1=np.roll(fg["A1"].to_numpy(), 1), A2=np.roll(fg["A2"].to_numpy(), 1))
    with pytest.raises(HarmonisationError, match=r"\d+ rows match an LD position but their alleles do not.*allele "
                                                 r"columns"):
        _run(tmp_path, ld, other, name="alleles", min_match_rate=0.5)


def test_palindromic_with_impossible_frequency_is_not_kept():
    """EAF 1.3 gave MAF -0.3 <= 0.4 and kept an A/T variant at face value; now the row is invalid."""
    ld = _ld([("rs5", "1", 500, "A", "T"), ("rs1", "1", 100, "A", "G")])
    st = _stats([("rs5", 500, "A", "T", 1.3, 0.7), ("rs1", 100, "A", "G", 0.2, 1.0)])
    out, rep = harmonise(st, ld, z_scale="raw")
    assert out["position"].tolist() == [100] and rep["invalid_eaf_out_of_range"] == 1
    assert rep["palindromic_face_value"] == 0 and rep["palindromic_ambiguous"] == 0


def test_chromosome_naming_stops_naming_the_cause(tmp_path, cohort):
    ld, fg = cohort
    with pytest.raises(HarmonisationError, match=r"No chromosome in common.*\['2'\].*\['1'\].*chromosome naming"):
        _run(tmp_path, ld, fg.assign(CHR="2"), name="other_chrom")
    out, rep = _run(tmp_path, ld, fg.assign(CHR="chr1"), name="chr_prefix")  # 'chr1' is read as '1'
    assert rep["harmonise"]["match_rate"] == 1.0


def test_missing_frequency_stops_or_comes_from_the_panel(tmp_path, cohort):
    """LDSC .sumstats have no allele frequency: the panel's is used, or harmonisation stops naming what to add."""
    ld, fg = cohort
    ldsc = pd.DataFrame({"SNP": fg["SNP"], "A1": fg["A1"], "A2": fg["A2"], "Z": fg["BETA"] / fg["SE"], "N": fg["N"]})
    with pytest.raises(HarmonisationError, match=r"trait 'ldsc_trait' \(.*ldsc_trait\.sumstats\): the statistics have "
                       r"no allele frequency.*harmonise\.reference_frequencies"):
        _run(tmp_path, ld, ldsc, name="ldsc_trait", fmt="ldsc")
    # a reference frequency table (freq of allele1), written with half of the rows the other way round
    f = fg["AF1"].to_numpy()
    tab = pd.DataFrame({"chromosome": "chr1", "position": ld["position"], "allele1": ld["allele1"],
                        "allele2": ld["allele2"], "freq": f})
    half = np.arange(len(tab)) % 2 == 1
    tab.loc[half, ["allele1", "allele2"]] = tab.loc[half, ["allele2", "allele1"]].to_numpy()
    tab.loc[half, "freq"] = 1 - tab.loc[half, "freq"]
    tab.to_csv(tmp_path / "freq.tsv.gz", sep="\t", index=False)
    out, rep = _run(tmp_path, ld, ldsc, name="ldsc_ref", fmt="ldsc", reference_frequencies=str(tmp_path / "freq.tsv.gz"))
    h = rep["harmonise"]
    assert h["frequency_from_reference"] == h["matched"] == len(ld) - h["palindromic_ambiguous"]
    np.testing.assert_allclose(out["eaf"].to_numpy(), f[np.isin(ld["rsid"], out["rsid"])], rtol=1e-12)
    # the LD variant list's own freq column (an LD source that records it) is used the same way
    out2, _ = _run(tmp_path, ld.assign(freq=f), ldsc, name="ldsc_ld", fmt="ldsc")
    np.testing.assert_allclose(out2["eaf"].to_numpy(), out["eaf"].to_numpy(), rtol=1e-12)


def test_varying_sample_size_is_reported_with_a_warning(tmp_path, cohort):
    ld, fg = cohort
    n = np.linspace(300_000, 400_000, len(fg))
    _, rep = _run(tmp_path, ld, fg.assign(N=n), name="varying")
    h = rep["harmonise"]
    assert h["n_min"] == pytest.approx(n.min(), rel=1e-3) and h["n_max"] == pytest.approx(n.max(), rel=1e-3)
    assert h["n_spread"] == pytest.approx((h["n_max"] - h["n_min"]) / h["n_median"])
    assert len(h["warnings"]) == 1 and "per-variant N varies by 29%" in h["warnings"][0]
    # within 10 %: no warning
    _, rep = _run(tmp_path, ld, fg.assign(N=np.linspace(380_000, 400_000, len(fg))), name="steady")
    assert rep["harmonise"]["warnings"] == []


# --- fault probes downstream of harmonisation: s2 range, zero-window evaluation, trait-sheet paths ---------------

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import ld_factors as ld_factors_script  # noqa: E402
import whiten as whiten_script  # noqa: E402
from deepwas.formats.ukbb_ld import write_ld_window  # noqa: E402
from deepwas.io import write_table  # noqa: E402
from deepwas.ld_factors import PSDLimits  # noqa: E402
from deepwas.ldscore import unbiased_ldscore  # noqa: E402
from deepwas.windows import core_table  # noqa: E402
from deepwas.s2 import estimate_trait_s2  # noqa: E402

ROOT = Path(__file__).parents[1]
PANEL = 400


@pytest.fixture(scope="module")
def one_window(msprime_chromosome, tmp_path_factory):
    """A 400-person panel window chr1_1_300001 in the UKBB layout, and its standardised genotypes."""
    chrom = msprime_chromosome(PANEL, 150_000, 21)
    Xs = chrom.standardised()
    R = Xs @ Xs.T / Xs.shape[1]
    d = tmp_path_factory.mktemp("window")
    M = len(chrom.positions)
    variants = pd.DataFrame({"rsid": [f"rs{k}" for k in range(M)], "chromosome": "1", "position": chrom.positions,
                             "allele1": chrom.allele1, "allele2": chrom.allele2})
    write_ld_window(d / "chr1_1_300001", R, variants)
    return d / "chr1_1_300001", variants, Xs, chrom.freq


def _s2_pipeline(tmp_path, one_window, c, seed=0, **kw):
    """z ~ N(0, c R) through the panel (the demo's summary-level construction without signal), then the rule
    scripts ld_factors -> whiten -> estimate_s2. Returns (s2.json, factor file arrays)."""
    prefix, variants, Xs, freq = one_window
    rng = np.random.default_rng(seed)
    z = np.sqrt(c) * Xs @ rng.normal(size=Xs.shape[1]) / np.sqrt(Xs.shape[1])
    harm = tmp_path / "t.tsv"
    write_table(harm, variants.assign(z=z, n=50_000.0, eaf=freq))
    fdir, man, st = tmp_path / "chr1", tmp_path / "chr1.manifest.tsv", tmp_path / "chr1.npz"
    cores = tmp_path / "cores.tsv"
    write_table(cores, core_table(pd.DataFrame({"name": ["chr1_1_300001"], "chromosome": "1", "start": [1],
                                                "end": [300_001], "kind": "npz"}), 300_000, 100_000))
    ld_factors_script.main([str(prefix)], str(cores), str(fdir), str(man), 1e-6, 1e-4, PSDLimits(), panel_size=PANEL)
    whiten_script.main(str(harm), str(fdir), str(man), str(st), rtol=1e-6)
    out = tmp_path / "s2.json"
    estimate_trait_s2([(str(fdir), str(man), str(st))], [str(man)], None, 0.7, str(out), trait="t", **kw)
    with np.load(fdir / "chr1_1_300001.npz") as f:
        fac = {k: f[k] for k in f.files}
    return json.loads(out.read_text()), fac


def test_s2_in_range_passes_and_ld_scores_are_bias_corrected(tmp_path, one_window, torch_one_thread):
    res, fac = _s2_pipeline(tmp_path, one_window, 1.0, s2_range=(0.5, 2.0))
    assert 0.85 < res["s2"] < 1.15 and res["source"].startswith("maximum likelihood")
    # the factor file's LD score is sum_k [r^2 - (1 - r^2) / (n - 2)] with n the panel size
    Xs = one_window[2]
    R = (Xs @ Xs.T / Xs.shape[1]).astype(np.float32).astype(np.float64)   # the window stores float32
    raw = (R * R).sum(1)
    np.testing.assert_allclose(fac["ldscore"], unbiased_ldscore(raw, len(R), PANEL), rtol=1e-5)
    assert np.all(raw - fac["ldscore"] > (len(R) - raw) / PANEL * 0.99)    # several units at n = 400


def test_demo_like_s2_needs_the_demo_range(tmp_path, one_window, torch_one_thread):
    """The demo's N = 50,000 through a small panel gives s2 about 3-4: the demo config's range admits it."""
    res, _ = _s2_pipeline(tmp_path, one_window, 3.5, s2_range=(0.5, 6.0))      # config/config.yaml s2
    assert 3.0 < res["s2"] < 4.0
    with pytest.raises(ValueError, match=r"t: maximum-likelihood s2 = 3\.\d+ is outside the plausible range "
                                         r"\[0\.5, 2\].*s2\.accept_outside"):
        _s2_pipeline(tmp_path, one_window, 3.5, s2_range=(0.5, 2.0))
    res, _ = _s2_pipeline(tmp_path, one_window, 3.5, s2_range=(0.5, 2.0), accept_outside=True)
    assert 3.0 < res["s2"] < 4.0


def test_vanishing_s2_stops_the_run(tmp_path, one_window, torch_one_thread):
    """A fitted s2 of 4.8e-9 used to pass the `0 < s2 < 10` check."""
    with pytest.raises(ValueError, match=r"maximum-likelihood s2 = \S+ is outside the plausible range \[0\.5, 6\]"):
        _s2_pipeline(tmp_path, one_window, 1e-8, s2_range=(0.5, 6.0))


def test_evaluation_over_zero_windows_is_an_error():
    from deepwas.evaluation import WINDOW_COLUMNS, summarise

    with pytest.raises(ValueError, match=r"height_like / glm / deepwas: no held-out window to evaluate"):
        summarise(pd.DataFrame(columns=WINDOW_COLUMNS), "height_like", "glm", "deepwas", 50_000.0)
    one = pd.DataFrame([["w", 10, 20, 10, 1.0, 3.0, 2.0]], columns=WINDOW_COLUMNS)
    assert summarise(one, "t", "glm", "deepwas", 1000.0)["pct_per_person"] == pytest.approx(100 * np.expm1(0.002))


def _dry_run(work, traits_tsv):
    (work / "traits.tsv").write_text(traits_tsv)
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT / "workflow" / "scripts")}
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "-s", str(ROOT / "Snakefile"),
                           "--config", "traits=traits.tsv"], cwd=work, capture_output=True, text=True, timeout=120,
                          env=env)


def test_missing_trait_file_stops_the_workflow_even_with_earlier_results(tmp_path):
    import shutil

    shutil.copytree(ROOT / "config", tmp_path / "config")
    header = "trait\tpath\tformat\tn\ts2\n"
    demo_row = "height_like\tresources/demo/sumstats/height_like.sumstats.gz\tukbb_409k\t\t\n"
    r = _dry_run(tmp_path, header + demo_row)        # made by the demo rule: fine
    assert r.returncode == 0, r.stderr[-3000:]
    # an earlier harmonised table of the row must not be reused
    (tmp_path / "results/harmonised").mkdir(parents=True)
    (tmp_path / "results/harmonised/mine.tsv.gz").write_bytes(b"old")
    r = _dry_run(tmp_path, header + demo_row + "mine\tdata/mine.fastGWA\tfastgwa\t\t\n")
    assert r.returncode != 0
    assert "traits.tsv: summary-statistics file(s) missing and made by no rule: row 'mine': data/mine.fastGWA " \
           "does not exist" in r.stdout + r.stderr
    (tmp_path / "data").mkdir()
    (tmp_path / "data/mine.fastGWA").write_text("CHR SNP POS A1 A2 N AF1 BETA SE P\n")
    r = _dry_run(tmp_path, header + demo_row + "mine\tdata/mine.fastGWA\tfastgwa\t\t\n")
    assert "missing and made by no rule" not in r.stdout + r.stderr   # (the demo's oracle then wants its truth)


def test_reference_frequency_table_errors_name_the_file(tmp_path):
    from deepwas.formats.frequencies import FrequencyFormatError, read_reference_frequencies

    (tmp_path / "f.tsv").write_text("chromosome\tposition\tallele1\tallele2\tmaf\n1\t100\tA\tG\t0.2\n")
    with pytest.raises(FrequencyFormatError, match=r"f\.tsv: reference frequency table lacks column\(s\) \['freq'\]"):
        read_reference_frequencies(tmp_path / "f.tsv")
    (tmp_path / "g.tsv").write_text("chromosome\tposition\tallele1\tallele2\tfreq\n1\t100\ta\tg\t0.2\n1\t200\tA\tC\t1.5\n")
    with pytest.raises(FrequencyFormatError, match=r"g\.tsv: line 3: .*freq outside \[0, 1\]"):
        read_reference_frequencies(tmp_path / "g.tsv")
