"""Harmonisation of summary statistics to LD variants (DESIGN sec. 4): every case, every count."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deepwas.formats.sumstats import SumstatsFormatError, read_sumstats
from deepwas.harmonise import correlation_z, harmonise, variant_key
from deepwas.simulate import gwas

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
