"""Every supported summary-statistics format reads to the same aligned z-scores; malformed files fail clearly."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepwas.formats.sumstats import FORMATS, SumstatsFormatError, detect_format, read_sumstats

DATA = Path(__file__).parent / "data" / "sumstats"
N = 400000
FIXTURES = {
    "ukbb_409k": ("ukbb_409k.sumstats.gz", None),
    "bolt_lmm": ("bolt_lmm.txt", N),
    "ldsc": ("ldsc.sumstats", None),
    "fastgwa": ("fastgwa.fastGWA", None),
    "regenie": ("regenie.regenie", None),
    "gwas_ssf": ("gwas_ssf.tsv", None),
}


@pytest.fixture(scope="module")
def truth():
    return pd.read_csv(DATA / "truth.tsv", sep="\t", dtype={"CHR": str})


def _positions(truth):
    return truth[["SNP", "CHR", "POS"]]


def _read(fmt, truth, **kw):
    name, n = FIXTURES[fmt]
    return read_sumstats(DATA / name, "auto", n, positions=_positions(truth), **kw)


def _aligned(df, truth):
    """z of the truth's A1 allele for each truth variant (sign flipped where the file swapped alleles)."""
    m = truth.merge(df, on=["CHR", "POS"], suffixes=("", "_s"))
    same = (m["A1_s"] == m["A1"]) & (m["A2_s"] == m["A2"])
    swap = (m["A1_s"] == m["A2"]) & (m["A2_s"] == m["A1"])
    assert (same | swap).all()
    return m.assign(z=np.where(same, m["Z_s"], -m["Z_s"]))[["SNP", "z"]].set_index("SNP")["z"]


@pytest.mark.parametrize("fmt", sorted(FIXTURES))
def test_format_detected_from_header(fmt):
    assert detect_format(DATA / FIXTURES[fmt][0]) == fmt


@pytest.mark.parametrize("fmt", sorted(FIXTURES))
def test_each_format_gives_the_same_aligned_z(fmt, truth):
    df, report = _read(fmt, truth)
    assert report["format"] == fmt
    assert report["rows_kept"] == len(truth) == len(df)
    assert set(df["CHR"]) == {"1", "2", "22"}
    assert df["POS"].dtype == np.int64
    np.testing.assert_allclose(df["N"], N)
    z = _aligned(df, truth)
    np.testing.assert_allclose(z.loc[truth["SNP"]].to_numpy(), truth["Z"].to_numpy(), rtol=1e-12)
    # two variants are written with the effect allele swapped, so the raw file signs differ there
    assert (np.sign(df.set_index("SNP").loc[truth["SNP"], "Z"].to_numpy()) != np.sign(truth["Z"].to_numpy())).sum() == 2
    if fmt not in ("ldsc",):
        # EAF is the frequency of the file's effect allele: swapped rows have 1 - f
        assert df["EAF"].between(0, 1).all()


@pytest.mark.parametrize("fmt", sorted(FIXTURES))
def test_round_trip_through_harmoniser(fmt, truth):
    harmonise = pytest.importorskip("deepwas.harmonise").harmonise
    df, _ = _read(fmt, truth)
    ld = truth.rename(columns={"SNP": "rsid", "CHR": "chromosome", "POS": "position", "A1": "allele1", "A2": "allele2"})
    ld = ld[["rsid", "chromosome", "position", "allele1", "allele2"]]
    import inspect

    kw = {"z_scale": "raw"} if "z_scale" in inspect.signature(harmonise).parameters else {}
    if fmt == "ldsc":
        # LDSC .sumstats carry no allele frequency: without one from the LD panel harmonisation stops
        with pytest.raises(ValueError, match=r"ldsc\.sumstats\).*no allele frequency.*reference_frequencies"):
            harmonise(df, ld, palindromic_max_maf=0.4, trait="t", source=str(DATA / FIXTURES[fmt][0]), **kw)
        ld = ld.assign(freq=0.3)
    out, rep = harmonise(df, ld, palindromic_max_maf=0.4, **kw)  # the file's own statistic, unscaled
    if fmt == "ldsc":
        assert rep["frequency_from_reference"] == len(truth) and (out["eaf"] == 0.3).all()
    assert rep["matched"] == len(truth)
    got = out.set_index("rsid").loc[truth["SNP"], "z"].to_numpy()
    np.testing.assert_allclose(got, truth["Z"].to_numpy(), rtol=1e-12)


def test_regenie_keeps_additive_test_only(truth):
    _, report = _read("regenie", truth)
    assert report["rows_read"] == len(truth) + 1
    assert report["dropped_test_not_add"] == 1


def test_ldsc_needs_positions_and_counts_unplaced(truth):
    with pytest.raises(SumstatsFormatError, match=r"ldsc\.sumstats: .*positions"):
        read_sumstats(DATA / "ldsc.sumstats", "ldsc")
    df, report = read_sumstats(DATA / "ldsc.sumstats", "ldsc", positions=_positions(truth).iloc[:4])
    assert report["dropped_no_position"] == 2 and len(df) == 4


def test_bolt_needs_trait_n():
    with pytest.raises(SumstatsFormatError, match=r"bolt_lmm\.txt: .*sample-size"):
        read_sumstats(DATA / "bolt_lmm.txt", "auto", None)


def test_info_and_maf_filters_are_counted(truth):
    df, report = _read("ukbb_409k", truth, min_info=0.9, min_maf=0.1)
    # INFO < 0.9: rs4 (0.87), rs6 (0.80); MAF < 0.1: rs6 (0.05), already dropped by INFO
    assert report["dropped_info"] == 2
    assert report["dropped_maf"] == 0
    assert report["maf_unknown"] == 0
    assert sorted(df["SNP"]) == ["rs1", "rs2", "rs3", "rs5"]
    df, report = _read("fastgwa", truth, min_maf=0.1)  # fastGWA has no INFO: the INFO filter keeps all
    assert report["dropped_maf"] == 1 and "rs6" not in set(df["SNP"])


def test_missing_column_names_file_and_column():
    with pytest.raises(SumstatsFormatError, match=r"bad_missing_column\.tsv: missing required column\(s\) \['SE'\]"):
        read_sumstats(DATA / "bad_missing_column.tsv", "fastgwa")
    with pytest.raises(SumstatsFormatError, match=r"bad_missing_column\.tsv: cannot detect"):
        read_sumstats(DATA / "bad_missing_column.tsv")


def test_non_numeric_value_names_line_and_column():
    # line 3 has 'NA' (a missing value, dropped and counted); line 4 has '0.0x2' (an error)
    with pytest.raises(SumstatsFormatError, match=r"bad_nonnumeric\.tsv: line 4: column BETA: non-numeric value '0\.0x2'"):
        read_sumstats(DATA / "bad_nonnumeric.tsv")


def test_duplicated_variants_are_dropped_and_counted():
    df, report = read_sumstats(DATA / "bad_duplicates.tsv")
    assert report["dropped_duplicate"] == 2
    assert report["duplicate_example"] == {"variant": "1:10583:A:G", "lines": [2, 4]}
    assert list(df["SNP"]) == ["rs2"]


def test_chromosome_naming():
    df, report = read_sumstats(DATA / "bad_chrom_mixed.tsv")
    assert list(df["CHR"]) == ["1", "X"]  # 'chr1' -> '1', PLINK '23' -> 'X'
    assert report["dropped_chrom_other"] == 2
    assert report["chrom_other_examples"] == ["MT", "chrUn_gl000220"]
    with pytest.raises(SumstatsFormatError, match=r"bad_chrom_refseq\.tsv: line 2: no variant is on a recognised chromosome.*'NC_000001\.10'"):
        read_sumstats(DATA / "bad_chrom_refseq.tsv")


def test_unknown_format_and_table_is_complete():
    with pytest.raises(SumstatsFormatError, match="unknown format 'plink'"):
        read_sumstats(DATA / "fastgwa.fastGWA", "plink")
    for name, spec in FORMATS.items():
        assert set(spec.required) - {"TEST"} <= set(spec.mapping), name
        assert {"A1", "A2"} <= set(spec.mapping.values()), name


# source column names of SE, EAF and N per format (None: the format has no such column)
_COLS = {"ukbb_409k": ("se", "EAF", "N"), "bolt_lmm": ("SE", "A1FREQ", None), "ldsc": (None, None, "N"),
         "fastgwa": ("SE", "AF1", "N"), "regenie": ("SE", "A1FREQ", "N"), "gwas_ssf": ("standard_error",
         "effect_allele_frequency", "n")}


def _corrupt(fmt, tmp_path, edits):
    """The fixture file of `fmt` with {rsid: {column: value}} applied, written in the same layout."""
    import gzip

    name, _ = FIXTURES[fmt]
    path = DATA / name
    text = gzip.open(path, "rt").read() if name.endswith(".gz") else path.read_text()
    lines = text.splitlines()
    sep = "\t" if "\t" in lines[0] else " "
    header = lines[0].split(sep)
    snp = header.index({"regenie": "ID", "gwas_ssf": "rsid"}.get(fmt, "SNP"))
    out = [lines[0]]
    for line in lines[1:]:
        f = line.split(sep)
        for col, value in edits.get(f[snp], {}).items():
            if not (fmt == "regenie" and f[header.index("TEST")] != "ADD"):
                f[header.index(col)] = value
        out.append(sep.join(f))
    dest = tmp_path / name.removesuffix(".gz")
    dest.write_text("\n".join(out) + "\n")
    return dest


@pytest.mark.parametrize("fmt", sorted(FIXTURES))
def test_invalid_values_dropped_and_counted_in_every_format(fmt, truth, tmp_path):
    """SE < 0 (used to flip the sign of Z silently), SE = 0, EAF outside [0, 1] (used to exempt palindromic
    variants from the MAF rule) and N <= 2 (used to give NaN z) are dropped and counted, never passed on."""
    se, eaf, n = _COLS[fmt]
    edits, expect = {}, {}
    if se:
        edits["rs1"] = {se: "-0.004"}
        edits["rs2"] = {se: "0"}
        expect["dropped_se_nonpositive"] = 2
    if eaf:
        edits["rs3"] = {eaf: "1.3"}
        expect["dropped_eaf_out_of_range"] = 1
    if n:
        edits["rs4"] = {n: "2"}
        expect["dropped_n_too_small"] = 1
    path = _corrupt(fmt, tmp_path, edits)
    df, report = read_sumstats(path, "auto", FIXTURES[fmt][1], positions=_positions(truth))
    for k, v in expect.items():
        assert report[k] == v, k
    assert report["rows_kept"] == len(truth) - sum(expect.values())
    assert set(df["SNP"]) == set(truth["SNP"]) - set(edits)
    z = _aligned(df, truth)
    np.testing.assert_allclose(z.loc[df["SNP"]].to_numpy(), truth.set_index("SNP").loc[df["SNP"], "Z"].to_numpy(),
                               rtol=1e-12)
