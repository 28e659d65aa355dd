"""dbNSFP reduction and matching (paper App. D.2)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepwas.features.dbnsfp import SCORES, DbNSFPError, dbnsfp_for_variants, read_dbnsfp, reduce_cell

DATA = Path(__file__).parent / "data" / "dbnsfp_small.tsv.gz"


def test_reduce_cell_cases():
    assert reduce_cell("0.25", "min") == 0.25
    assert reduce_cell("0.4;0.01;.", "min") == 0.01
    assert reduce_cell(".;0.2;0.9", "max") == 0.9
    assert np.isnan(reduce_cell(".;.", "min"))
    assert np.isnan(reduce_cell("", "max"))
    assert np.isnan(reduce_cell(".", "max"))
    assert reduce_cell("-1;-4.5", "min") == -4.5


def test_features_for_variants_hg19():
    variants = pd.DataFrame({
        "chrom": ["chr1", "1", "1", "1", "1", "2", "2"],
        "pos":   [1000, 1000, 2000, 3000, 4000, 5000, 5000],
        "a1":    ["A", "T", "T", "G", "A", "C", "G"],   # row 2: swapped alleles (alt, ref) of 2100 C>T
        "a2":    ["G", "A", "C", "A", "C", "T", "C"],   # row 4: not in table; row 6: alleles do not match
    })
    f = dbnsfp_for_variants(DATA, variants, build="hg19")
    assert list(f.columns[:6]) == SCORES
    # single values, A>G
    np.testing.assert_allclose(f.loc[0, SCORES].to_numpy(float), [-5.2, 4.1, 0.02, -3.1, 1.5, 0.8], rtol=1e-6)
    # the A>T row at the same position, EVE '.' -> 0 with its indicator
    np.testing.assert_allclose(f.loc[1, SCORES].to_numpy(float), [-1.0, 4.1, 0.5, -0.5, 2.0, 0.0], rtol=1e-6)
    assert f.loc[1, "EVE_score_missing"] == 1.0 and f.loc[1, "SIFT_score_missing"] == 0.0
    # several transcripts: min for ESM1b/SIFT/PROVEAN/FATHMM, max for GERP/EVE, '.' ignored
    np.testing.assert_allclose(f.loc[2, SCORES].to_numpy(float), [-7.5, 2.2, 0.01, -4.5, -2.1, 0.9], rtol=1e-6)
    assert f.loc[2, "dbnsfp_missing"] == 0.0
    # present but all '.': zeros, every per-score indicator set, variant itself found
    assert (f.loc[3, SCORES] == 0).all()
    assert (f.loc[3, [f"{s}_missing" for s in SCORES]] == 1).all() and f.loc[3, "dbnsfp_missing"] == 0
    # missing variant and allele mismatch: zeros with every indicator
    for i in (4, 6):
        assert (f.loc[i, SCORES] == 0).all()
        assert f.loc[i, "dbnsfp_missing"] == 1.0
        assert (f.loc[i, [f"{s}_missing" for s in SCORES]] == 1).all()
    assert f.loc[5, "dbnsfp_missing"] == 0.0


def test_hg38_coordinates_and_bad_build():
    t = read_dbnsfp(DATA, build="hg38")
    assert sorted(t.pos.tolist()) == [600, 1100, 1100, 2100, 3100, 5100]
    t19 = read_dbnsfp(DATA, build="hg19")
    assert 600 not in t19.pos.tolist() and len(t19) == 5          # '.' hg19 position dropped
    with pytest.raises(DbNSFPError):
        read_dbnsfp(DATA, build="hg18")
