"""Semi-synthetic experiment (Sec. 6.1, App. A.5, B.1): statistics, variant table and one replicate.

Three msprime chromosomes (about 300 common variants each) cut into overlapping windows with stored factors,
synthetic smooth tracks; chromosome 3 is held out.
"""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from deepwas.ld_factors import factorise
from deepwas.plots import simulation_rmse_bars
from deepwas.simulation.semisynthetic import (RMSE_COLUMNS, FactorWindow, run_simulation,
                                              simulate_whitened, simulate_z_windows, simulation_config, variant_table)
from deepwas.simulation.truths import normalise_f

D_FUNC, W = 4, 32
REPO = Path(__file__).resolve().parents[1]


def tile(chrom, R, core_len=50, flank=25):
    """Windows of one chromosome: cores of core_len variants (the last one takes the rest), flank each side."""
    m = R.shape[0]
    freq = np.random.default_rng(int(chrom)).uniform(0.05, 0.95, m)
    out, truth_windows = [], []
    starts = list(range(0, m - core_len // 2, core_len))
    for i, s in enumerate(starts):
        e = m if i == len(starts) - 1 else s + core_len
        lo, hi = max(0, s - flank), min(m, e + flank)
        ext, core = np.arange(lo, hi), np.arange(s - lo, e - lo)
        fac = factorise(R[np.ix_(ext, ext)], core, rtol=1e-6)
        keys = np.array([f"{chrom}:{1000 + 10 * j}:A:G" for j in ext])
        out.append(FactorWindow(f"chr{chrom}_{lo}_{hi}", chrom, dict(G=fac.G, lam=fac.lam, U=fac.U, core=fac.core,
                                ldscore=fac.ldscore, keys=keys, freq=freq[ext],
                                panel_size=200)))                   # msprime_ld's 200 people
        truth_windows.append((R[np.ix_(ext, ext)], ext, core))
    return out, truth_windows


class Tracks:
    """keys -> smooth random [k, D_FUNC, W] windows, a fixed function of the key; every 25th variant missing."""

    def __call__(self, keys):
        rows, miss = [], []
        for k in keys:
            pos = int(k.split(":")[1])
            rng = np.random.default_rng([int(k.split(":")[0]), pos])
            x = rng.normal(size=(D_FUNC, W + 8))
            x = np.stack([np.convolve(r, np.ones(9) / 3, "valid") for r in x])
            missing = (pos // 10) % 25 == 0
            rows.append(np.zeros_like(x) if missing else x)
            miss.append(missing)
        return np.asarray(rows, dtype=np.float32), np.asarray(miss)


@pytest.fixture(scope="module")
def case(msprime_ld, torch_one_thread):
    windows, truth_windows = [], {}
    for chrom, seed in (("1", 7), ("2", 8), ("3", 9)):
        w, t = tile(chrom, msprime_ld(seed=seed))
        windows += w
        truth_windows[chrom] = t
    return windows, truth_windows, variant_table(windows, Tracks())


def test_variant_table(case):
    windows, _, v = case
    n_core = sum(len(w.factors["core"]) for w in windows)
    assert v.M == n_core and v.in_core.all()                     # every variant in exactly one core
    assert len(set(v.keys)) == v.M
    assert v.pred_names == ["frequency", "maf", "ldscore", "tracks_missing"]
    assert v.tracks.shape == (v.M, D_FUNC, W) and v.tracks.dtype == np.float32
    for w, idx in zip(windows, v.ext_index):
        np.testing.assert_array_equal(v.keys[idx], w.factors["keys"])
        core = w.factors["core"]
        np.testing.assert_array_equal(v.pred[idx[core], 2], w.factors["ldscore"][core])   # the core window's LD score
        tr, miss = Tracks()(w.factors["keys"])
        np.testing.assert_array_equal(v.tracks[idx], tr)
        np.testing.assert_array_equal(v.pred[idx, 3], miss)
    assert 0 < v.pred[:, 3].sum() < v.M / 10


def test_whitened_statistics_equal_the_windowed_z_law(case):
    """z_(i) = U lam^1/2 y with y = sqrt(N) G^T beta + sqrt(s2) xi is simulate_z_windows' law, one global beta."""
    windows, truth_windows, v = case
    wins = [w for w in windows if w.chrom == "1"]
    idx = [i for w, i in zip(windows, v.ext_index) if w.chrom == "1"]
    M = sum(len(w.factors["core"]) for w in wins)
    f = normalise_f(np.exp(np.random.default_rng(0).normal(size=M)), 1e4, M, 0.5)
    ours, beta = simulate_whitened(wins, idx, f, 1e4, 0.0, np.random.default_rng(1), return_beta=True)
    ref, beta_ref = simulate_z_windows(truth_windows["1"], f, 1e4, 0.0, np.random.default_rng(1), return_beta=True)
    np.testing.assert_array_equal(beta, beta_ref)                 # the same global beta ...
    for (y, z_core), w, i in zip(ours, wins, idx):                # ... reaches every overlapping window
        core_global = i[w.factors["core"]]
        np.testing.assert_allclose(z_core, ref[core_global], rtol=1e-6, atol=1e-6 * np.abs(ref).max())
        np.testing.assert_allclose(y, (w.factors["U"].T @ z_core) / np.sqrt(w.factors["lam"]), rtol=1e-8, atol=1e-8)
    # the noise: y ~ N(0, s2 I_r), so z_(i) ~ N(0, s2 R[i,i])
    rng = np.random.default_rng(2)
    Y = np.stack([simulate_whitened(wins[:1], idx[:1], np.zeros(M), 1e4, 0.7, rng)[0][0] for _ in range(3000)])
    assert np.abs(Y.T @ Y / 3000 - 0.7 * np.eye(Y.shape[1])).max() < 0.12


STRONG_THRESHOLD = dict(dims=[0, 1], values=[2.5, 2.0], active_fractions=[0.5, 0.3])


def _cfg(**kw):
    return simulation_config({**dict(n_gwas=20_000, h2=0.5, seed=0, epochs=10, warmup_steps=5, accumulate=1,
                                     lr={"constant": 0.05, "glm": 0.05, "transformer": 0.003},
                                     threshold=STRONG_THRESHOLD), **kw})


@pytest.fixture(scope="module")
def threshold_run(case, tmp_path_factory):
    windows, _, v = case
    return run_simulation("threshold", windows, v, ["3"], _cfg(), tmp_path_factory.mktemp("sim"),
                          network=dict(size="tiny", norm="layer"))


def test_threshold_truth_table_and_ordering(case, threshold_run):
    table, det = threshold_run
    assert list(table.columns) == RMSE_COLUMNS and len(table) == 6
    assert set(zip(table["model"], table["objective"])) == {(m, o) for m in ("constant", "glm", "transformer")
                                                           for o in ("deepwas", "ldsr")}
    assert (table["truth"] == "threshold").all() and np.isfinite(table["rmse_log_f"]).all()
    assert det["n_heldout_variants"] == int((case[2].chrom == "3").sum())
    rmse = table.set_index(["model", "objective"])["rmse_log_f"]
    # the constant prior predicts log f = alpha log(p(1-p)) + c: its RMSE is the spread of the true log f
    # beyond the frequency term around c, sqrt(sd^2 + (mean - c)^2) ...
    for obj in ("deepwas", "ldsr"):
        c = det["models"][f"constant/{obj}"]["level_mean"]
        assert det["models"][f"constant/{obj}"]["level_sd"] < 1e-6
        assert rmse["constant", obj] == pytest.approx(np.hypot(det["truth_level_sd"], det["truth_level_mean"] - c),
                                                      rel=1e-9)
    # ... and the likelihood-fitted c matches E f (not E log f): c ~ log mean exp(true log f beyond frequency)
    assert det["models"]["constant/deepwas"]["level_mean"] == pytest.approx(det["truth_level_logmean"], abs=0.2)
    assert det["truth_level_sd"] > 1.0                           # a strong truth: 1.49 here
    # features help: the DeepWAS-trained GLM and transformer beat the constant prior clearly
    assert rmse["glm", "deepwas"] < 0.8 * rmse["constant", "deepwas"]
    assert rmse["transformer", "deepwas"] < 0.9 * rmse["constant", "deepwas"]
    assert det["models"]["glm/deepwas"]["corr_log_f"] > 0.5


def test_network_truth_table(case, tmp_path):
    windows, _, v = case
    table, det = run_simulation("network", windows, v, ["3"], _cfg(epochs=2, network_log_sd=1.2), tmp_path,
                                network=dict(size="tiny", norm="layer"))
    assert list(table.columns) == RMSE_COLUMNS and len(table) == 6 and (table["truth"] == "network").all()
    assert det["truth_level_sd"] == pytest.approx(1.2, rel=0.15)  # pinned over all variants; held-out subset here
    assert (table["rmse_log_f"] > 0).all() and np.isfinite(table["rmse_log_f"]).all()


def test_rerun_resumes_from_checkpoints_to_the_same_table(case, threshold_run, tmp_path):
    windows, _, v = case
    cfg = _cfg(models=["glm"], objectives=["deepwas"])
    per_model = {"weight_decay": {"constant": 0.01, "glm": 0.01, "transformer": 0.1}}   # given per model
    t1, _ = run_simulation("threshold", windows, v, ["3"], cfg, tmp_path, network=dict(size="tiny", norm="layer"),
                           train=per_model)
    assert (tmp_path / "checkpoints/glm/deepwas/last.pt").exists()
    t2, _ = run_simulation("threshold", windows, v, ["3"], cfg, tmp_path, network=dict(size="tiny", norm="layer"))
    assert t1.equals(t2)
    assert t1["rmse_log_f"].iloc[0] == threshold_run[0].set_index(["model", "objective"]).loc[("glm", "deepwas"),
                                                                                            "rmse_log_f"]


def test_config_defaults_come_from_the_schema_and_the_demo_config_is_valid():
    schema = yaml.safe_load(open(REPO / "config/schema/config.schema.yaml"))["properties"]["simulation"]
    filled = simulation_config({})
    assert set(filled) == set(schema["properties"])
    assert filled["epochs"] == 10 and filled["accumulate"] == 12 and filled["warmup_steps"] == 100   # App. A.3
    assert filled["lr"] == {"constant": 1e-3, "glm": 1e-3, "transformer": 1e-4}
    assert filled["threshold"] == {"dims": [0, 2, 7, 12], "values": [0.7, 0.5, 1.37, 0.5],      # App. B.1
                                   "active_fractions": [0.5, 0.25, 1.0, 0.5]}
    assert simulation_config({"lr": {"glm": 0.5}})["lr"] == {"constant": 1e-3, "glm": 0.5, "transformer": 1e-4}
    demo = yaml.safe_load(open(REPO / "config/config.yaml")).get("simulation", {})
    assert simulation_config(demo) == demo                        # the demo's block is valid and complete
    with pytest.raises(ValueError, match="unknown key 'simulation.n_gwass'.*did you mean 'simulation.n_gwas'"):
        simulation_config({"n_gwass": 1})
    with pytest.raises(ValueError, match="simulation.truths"):
        simulation_config({"truths": ["oracle"]})


def test_plot(threshold_run, tmp_path):
    table = threshold_run[0]
    other = table.assign(truth="network")
    simulation_rmse_bars(pd.concat([table, other], ignore_index=True), tmp_path / "rmse.png")
    png = (tmp_path / "rmse.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
