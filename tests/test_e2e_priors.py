"""End-to-end: prior files, h2 tables and an applied prior from the real DAG on tests/e2e (config.yaml + priors.yaml;
the session's run, tests/conftest.py e2e_run, adds ablations.yaml, which changes none of these outputs).

Six chromosomes, 5 and 6 held out, two chromosome folds (odd / even) for the training chromosomes, one
window per chromosome (so the jackknife has min(100, 4) = 4 blocks).
"""
import json

import numpy as np
import pandas as pd
import pytest

from deepwas.formats.priors import COLUMNS, read_priors


@pytest.fixture(scope="module")
def run_dir(e2e_run):
    return e2e_run.dir     # conftest.py: config.yaml + priors.yaml (+ ablations.yaml), one run per session


@pytest.mark.slow
def test_prior_files_out_of_chromosome(run_dir):
    for model in ("constant", "glm"):
        root = run_dir / f"results/priors/enriched/{model}/deepwas"
        summary = json.loads((root / "summary.json").read_text())
        total = 0.0
        for c in range(1, 7):
            t = read_priors(root / f"chr{c}.parquet")
            assert list(t.columns) == COLUMNS and len(t) > 100 and t["SNP"].is_unique
            assert (t["CHR"] == c).all() and t["BP38"].isna().all()      # no tracks here, so no liftover
            expected = "heldout" if c in (5, 6) else f"fold{1 if c % 2 else 2}"
            assert (t["MODEL"] == expected).all()
            pd.testing.assert_frame_equal(t, read_priors(root / f"chr{c}.txt.gz"))
            total += t["SNPVAR"].sum()
        assert summary["h2"] == pytest.approx(total, rel=1e-12)
        assert 0.05 < total < 3.0                            # the simulated h2 is 0.6
    assert (run_dir / "results/train_folds/enriched/glm/deepwas/fold1/model.pt").exists()


@pytest.mark.slow
def test_h2_table(run_dir):
    t = pd.read_csv(run_dir / "results/h2/enriched/glm/deepwas.tsv", sep="\t").set_index("Category")
    for col in ("Prop._SNPs", "Prop._h2", "Prop._h2_std_error", "Enrichment", "Enrichment_std_error"):
        assert col in t.columns
    assert (t["n_blocks"] == 4).all() and t.loc["total", "h2_std_error"] > 0
    assert (t["se_method"] == "block jackknife, refit").all()          # 'auto' refits below 20 blocks
    assert np.isfinite(t.loc["total", "h2_ldsr"])
    chroms = t[t["Kind"] == "chromosome"]
    assert len(chroms) == 6 and chroms["h2"].sum() == pytest.approx(t.loc["total", "h2"], rel=1e-9)
    assert chroms["Prop._SNPs"].sum() == pytest.approx(1.0)
    binary = t[t["Kind"] == "binary"]
    assert len(binary) >= 1 and (binary["Enrichment_std_error"] > 0).all()
    np.testing.assert_allclose(binary["Enrichment"], binary["Prop._h2"] / binary["Prop._SNPs"], rtol=1e-12)
    snpvar = json.loads((run_dir / "results/priors/enriched/glm/deepwas/summary.json").read_text())["h2"]
    assert t.loc["total", "h2_snpvar"] == pytest.approx(snpvar, rel=1e-12)


@pytest.mark.slow
def test_applied_prior_equals_the_prior_files(run_dir):
    for c in (5, 6):      # scored by the same main model in both
        a = read_priors(run_dir / f"results/priors_applied/enriched_again/chr{c}.parquet")
        p = read_priors(run_dir / f"results/priors/enriched/glm/deepwas/chr{c}.parquet")
        assert (a["SNP"].to_numpy() == p["SNP"].to_numpy()).all()
        assert (a["F"].to_numpy() == p["F"].to_numpy()).all()
        assert (a["MODEL"] == "enriched/glm/deepwas").all()


@pytest.fixture(scope="module")
def tracks_dir(tracks_run):
    """tests/e2e/tracks.yaml: tracks, liftover, constant / GLM / transformer, both objectives; chromosome 3 held
    out (conftest.py: one run per session, shared with test_e2e_tracks)."""
    return tracks_run


@pytest.mark.slow
def test_prior_files_and_h2_with_tracks(tracks_dir):
    for model in ("constant", "glm", "transformer"):
        for objective in ("deepwas", "ldsr"):
            root = tracks_dir / f"results/priors/tracked/{model}/{objective}"
            parts = [read_priors(root / f"chr{c}.parquet") for c in (1, 2, 3)]
            assert [p["MODEL"].iloc[0] for p in parts] == ["fold1", "fold2", "heldout"]
            for p in parts:
                assert p["BP38"].notna().mean() > 0.5 and (p["SNPVAR"] > 0).all()
            total = sum(p["SNPVAR"].sum() for p in parts)
            assert json.loads((root / "summary.json").read_text())["h2"] == pytest.approx(total, rel=1e-12)
            t = pd.read_csv(tracks_dir / f"results/h2/tracked/{model}/{objective}.tsv", sep="\t").set_index("Category")
            tracks = [c for c in t.index if c.startswith("track:")]
            assert len(tracks) >= 4 and np.isfinite(t.loc[tracks, "tau_star"]).all()
            # point estimates only: the transformer, and here (2 training windows) the others too
            assert t["h2_std_error"].isna().all() and (t["n_blocks"] == 0).all()
            assert (t["se_method"] == ("none (point estimate)" if model == "transformer" else
                                       "none (fewer than 4 training windows for the jackknife)")).all()
    # the held-out chromosome's f in the prior file is the evaluated model's f: same model file, same features
    assert (tracks_dir / "results/train_folds/tracked/transformer/ldsr/fold2/model.pt").exists()
