"""dbNSFP scores of LD variants (paper App. D.2): the real header, streaming, reduction, matching, counts.

tests/data/dbnsfp/ holds two per-chromosome files in the layout of the dbNSFP 4.x archive
(`dbNSFP4.4a_variant.chr1.gz`, real column names in the real order, abridged to 55 columns)."""
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepwas.features.dbnsfp import SCORES, DbNSFPError, dbnsfp_columns, dbnsfp_scores, reduce_cell, reduce_cells
from deepwas.formats.dbnsfp import DbNSFPFormatError, read_dbnsfp_chunks

DATA = Path(__file__).parent / "data" / "dbnsfp"

VARIANTS = pd.DataFrame({
    "chromosome": ["1"] * 9,
    "position": [1000, 1000, 2000, 3000, 4000, 5000, 7000, 600, 2000],
    "allele1": ["A", "T", "T", "G", "A", "G", "C", "C", "T"],
    "allele2": ["G", "A", "C", "A", "C", "A", "G", "T", "G"],
    "POS38": [1100, 1100, 2100, 3100, pd.NA, 5100, 7100, 600, 2100],
    "liftover_status": ["ok"] * 4 + ["unmapped"] + ["ok"] * 4,
})


def _zip(tmp_path) -> Path:
    z = tmp_path / "dbNSFP.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(DATA.glob("*.gz")):
            zf.write(p, f"dbNSFP4.4a/{p.name}")
        zf.writestr("dbNSFP4.4a/dbNSFP4.4a.readme.txt", "readme")
    return z


def test_reduce_cell_cases():
    assert reduce_cell("0.25", "min") == 0.25
    assert reduce_cell("0.4;0.01;.", "min") == 0.01
    assert reduce_cell(".;0.2;0.9", "max") == 0.9
    assert np.isnan(reduce_cell(".;.", "min"))
    assert np.isnan(reduce_cell("", "max"))
    assert np.isnan(reduce_cell(".", "max"))
    assert reduce_cell("-1;-4.5", "min") == -4.5
    vals, multi, differ = reduce_cells(["0.3", "0.1;0.1", "-1;-4.5;.", ".", "7;."], "min")
    np.testing.assert_array_equal(vals[[0, 1, 2, 4]], [0.3, 0.1, -4.5, 7.0])
    assert np.isnan(vals[3])
    assert multi.tolist() == [False, True, True, False, False] and differ.tolist() == [False, False, True, False, False]


@pytest.mark.parametrize("source", ["zip", "directory", "single_file"])
def test_streamed_in_chunks_from_every_layout(tmp_path, source):
    path = {"zip": _zip(tmp_path), "directory": DATA, "single_file": DATA / "dbNSFP4.4a_variant.chr1.gz"}[source]
    chunks = list(read_dbnsfp_chunks(path, "1", dbnsfp_columns("grch37"), chunk_rows=4))
    assert [len(c) for c in chunks] == [4, 4, 1]                    # 9 lines of chr1, 4 at a time
    assert list(chunks[0].columns) == ["hg19_chr", "hg19_pos(1-based)", "ref", "alt", *SCORES]
    assert chunks[0]["hg19_pos(1-based)"].tolist() == [".", "1000", "1000", "2000"]
    if source != "single_file":
        (c2,) = read_dbnsfp_chunks(path, "2", dbnsfp_columns("grch38"))
        assert c2["pos(1-based)"].tolist() == ["1500"]


def test_wrong_header_and_missing_chromosome_name_the_file(tmp_path):
    old = tmp_path / "dbNSFP4.1a_variant.chr1.gz"
    pd.DataFrame({"#chr": ["1"], "pos": ["10"], "ref": ["A"], "alt": ["G"]}).to_csv(old, sep="\t", index=False)
    with pytest.raises(DbNSFPFormatError, match=r"dbNSFP4\.1a_variant\.chr1\.gz: dbNSFP header lacks column\(s\) "
                                                r"\['hg19_chr', 'hg19_pos\(1-based\)'"):
        next(read_dbnsfp_chunks(old, "1", dbnsfp_columns("grch37")))
    with pytest.raises(DbNSFPFormatError, match=r"zip has no dbNSFP variant file for chromosome 7"):
        next(read_dbnsfp_chunks(_zip(tmp_path), "7", dbnsfp_columns("grch37")))
    with pytest.raises(DbNSFPError, match="features.dbnsfp.match"):
        dbnsfp_columns("hg18")


def _scores(match, indicator=False, chunk_rows=3, tmp_path=None):
    chunks = read_dbnsfp_chunks(DATA, "1", dbnsfp_columns(match), chunk_rows=chunk_rows)
    return dbnsfp_scores(VARIANTS, chunks, match=match, indicator=indicator)


def test_grch37_match_reduction_and_counts():
    t, rep = _scores("grch37", indicator=True)
    assert list(t.columns) == ["chromosome", "position", "allele1", "allele2", *SCORES, "dbnsfp_missing"]
    assert t["position"].tolist() == VARIANTS["position"].tolist()          # one row per variant, input order
    S = t[SCORES].to_numpy()
    # ESM1b GERP++_RS SIFT PROVEAN FATHMM EVE
    np.testing.assert_allclose(S[0], [-5.2, 4.1, 0.02, -3.1, 1.5, 0.8])         # A>G
    np.testing.assert_allclose(S[1], [-1.0, 4.1, 0.5, -0.5, 2.0, 0.0])          # A>T given as (T, A); EVE '.' -> 0
    np.testing.assert_allclose(S[2], [-7.5, 2.2, 0.01, -4.5, -2.1, 0.9])        # transcripts: min, max for GERP/EVE
    np.testing.assert_array_equal(S[3], 0.0)                                   # in dbNSFP, every score '.'
    np.testing.assert_array_equal(S[4], 0.0)                                   # not in dbNSFP (non-coding)
    np.testing.assert_allclose(S[5], [-8.1, 3.3, 0.03, -2.6, -1.6, 0.7])        # C/T of dbNSFP = G/A other strand
    np.testing.assert_allclose(S[6], [-2.0, 2.0, 0.1, -2.0, 0.5, 0.6])          # two GRCh38 rows, one variant
    np.testing.assert_array_equal(S[7], 0.0)                                   # hg19 '.': not matched on GRCh37
    np.testing.assert_array_equal(S[8], 0.0)                                   # alleles T/G: not C/T
    assert t["dbnsfp_missing"].tolist() == [0, 0, 0, 0, 1, 0, 0, 1, 1]
    assert rep["variants"] == 9 and rep["in_dbnsfp"] == 6 and rep["in_dbnsfp_complement_strand"] == 1
    assert rep["not_in_dbnsfp_set_to_0"] == 3 and rep["lines_read"] == 9
    assert rep["lines_at_variant_positions"] == 7      # not the hg19 '.' line nor chr2's position 1000
    assert rep["scores"]["EVE_score"]["with_value"] == 4 and rep["scores"]["EVE_score"]["set_to_0"] == 5
    assert rep["scores"]["SIFT_score"]["several_values_reduced"] == 2          # 2000's and 7000's '0.1;0.1'
    assert rep["scores"]["SIFT_score"]["several_values_differing"] == 1
    assert rep["scores"]["GERP++_RS"]["several_values_reduced"] == 0
    assert rep["liftover_status_of_variants_not_in_dbnsfp"] == {"ok": 2, "unmapped": 1}
    assert json.loads(json.dumps(rep)) == rep
    # the chunking does not change anything
    t1, rep1 = _scores("grch37", indicator=True, chunk_rows=1)
    pd.testing.assert_frame_equal(t, t1)
    assert rep1 == rep


def test_grch38_match_through_lifted_positions():
    t, rep = _scores("grch38")
    assert "dbnsfp_missing" not in t.columns                                  # the paper's six columns only
    S = t[SCORES].to_numpy()
    np.testing.assert_allclose(S[7], [-9.0, 5.5, 0.01, -5.0, -2.0, 0.95])       # GRCh38 600: no hg19 position needed
    np.testing.assert_allclose(S[0], [-5.2, 4.1, 0.02, -3.1, 1.5, 0.8])
    np.testing.assert_allclose(S[6], [-2.0, 1.0, 0.3, -1.0, 0.5, 0.4])          # only the row at GRCh38 7100
    assert rep["not_looked_up_no_position"] == 1 and rep["looked_up"] == 8
    np.testing.assert_array_equal(S[4], 0.0)


def test_dbnsfp_rule_script_writes_an_annotation_table(tmp_path):
    """The rule scripts: per chromosome, then one table that `formats.annotations.read_annotations` reads."""
    import dbnsfp_features as script
    from deepwas.formats.annotations import read_annotations
    from deepwas.harmonise import variant_key
    from deepwas.io import write_table

    lift = tmp_path / "chr1.tsv.gz"
    write_table(lift, VARIANTS.assign(rsid=[f"rs{i}" for i in range(9)]))
    arch = _zip(tmp_path)
    script.chromosome(str(arch), str(lift), "1", "grch37", False, 2, str(tmp_path / "c1.tsv.gz"),
                      str(tmp_path / "c1.json"))
    script.combine([str(tmp_path / "c1.tsv.gz")], [str(tmp_path / "c1.json")], str(tmp_path / "dbnsfp.tsv.gz"),
                   str(tmp_path / "dbnsfp.report.json"))
    ann = read_annotations(tmp_path / "dbnsfp.tsv.gz")
    assert list(ann.columns) == SCORES
    assert ann.loc["1:2000:T:C", "SIFT_score"] == pytest.approx(0.01)
    assert list(ann.index) == variant_key(VARIANTS).tolist()
    rep = json.loads((tmp_path / "dbnsfp.report.json").read_text())
    assert rep["in_dbnsfp"] == 6 and rep["chromosomes"]["1"]["variants"] == 9
