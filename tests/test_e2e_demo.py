"""End-to-end: the real Snakemake DAG on a small msprime cohort (tests/e2e/config.yaml), outputs checked.

The run is the session's (tests/conftest.py e2e_run), shared with test_e2e_priors and test_report: priors.yaml
and ablations.yaml merged on top add prior files, an applied prior and an ablation, and change none of the
outputs checked here."""
import json

import pandas as pd
import pytest



@pytest.fixture(scope="module")
def run_dir(e2e_run):
    return e2e_run.dir


@pytest.mark.slow
def test_summary_and_ordering(run_dir):
    s = pd.read_csv(run_dir / "results/evaluation/summary.tsv", sep="\t")
    assert list(s.columns) == ["trait", "model", "objective", "n_windows", "delta_nll", "pct_per_person"]
    assert set(s["model"]) == {"constant", "glm", "oracle"}
    assert (s["n_windows"] == 2).all()
    by = s.set_index("model")
    # every trained prior beats the null (f = 0) on the held-out chromosomes
    assert (by.loc[["constant", "glm"], "delta_nll"] > 0).all()
    # the true f is at least as good as the fitted constant prior
    assert by.loc["oracle", "delta_nll"] >= by.loc["constant", "delta_nll"]
    # the paper's metric is 100 (exp(Delta / N) - 1)
    import math
    N = json.load(open(run_dir / "results/stats/enriched/s2.json"))["N"]
    assert by.loc["glm", "pct_per_person"] == pytest.approx(100 * math.expm1(by.loc["glm", "delta_nll"] / N), rel=1e-5)   # the TSV holds 6 significant digits


@pytest.mark.slow
def test_per_window_tables_and_reports(run_dir):
    t = pd.read_csv(run_dir / "results/evaluation/enriched/glm/deepwas.tsv", sep="\t")
    assert list(t.columns) == ["window", "n_core", "n_extended", "rank", "nll_model", "nll_null", "delta"]
    assert (t["delta"] == t["nll_null"] - t["nll_model"]).all()
    assert (t["n_core"] == t["n_extended"]).all()       # one window per chromosome: the core is everything
    rep = json.load(open(run_dir / "results/harmonised/enriched.report.json"))
    h = rep["harmonise"]
    assert h["matched"] > 1000 and h["allele_swapped"] > 0 and h["strand_flipped"] > 0
    assert h["matched"] + h["ld_without_stats"] == h["ld_variants"]
    man = pd.read_csv(run_dir / "results/ld_factors/chr1.manifest.tsv", sep="\t")
    assert (man["status"] == "ok").all() and (man["rank"] <= man["n_core"]).all()
    png = (run_dir / "results/figures/heldout_pct.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    text = (run_dir / "results/summary.txt").read_text()
    assert "enriched:" in text and "oracle" in text
    assert (run_dir / "logs/train/enriched/glm/deepwas.log").stat().st_size > 0


@pytest.mark.slow
def test_in_sample_s2_is_about_one(run_dir):
    """The scenario's statistics are a GWAS of its own LD panel (demo.n_gwas: null): the maximum-likelihood s2
    of the window likelihood is about 1 - h2 of one window (here one chromosome of six: h2 0.1), the range the
    default demo must reach too."""
    s2 = json.load(open(run_dir / "results/stats/enriched/s2.json"))
    assert 0.8 <= s2["s2_ml"] <= 1.25


@pytest.mark.slow
def test_rerun_retrains_identically(e2e_run, tmp_path):
    """Same config, same seed: retraining a prior from scratch (threads pinned by the rule) gives the same
    parameters and the same metrics, bit for bit; evaluation is exact float64 without randomness, so the
    summary follows. Retrained in a copy of the session's run (modification times kept), which stays as it was."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import torch

    repo = Path(__file__).resolve().parents[1]
    run_dir = shutil.copytree(e2e_run.dir, tmp_path / "run", symlinks=True)
    target = "results/train/enriched/glm/deepwas/model.pt"            # relative to --directory
    out = run_dir / "results/train/enriched/glm/deepwas"
    metrics = lambda: pd.read_csv(out / "metrics.tsv", sep="\t").drop(columns="seconds")   # noqa: E731
    before = torch.load(out / "model.pt", weights_only=False), metrics()
    shutil.rmtree(run_dir / "results/checkpoints/enriched/glm/deepwas")   # a real retraining, not a resume
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(run_dir),
           "--configfile", *e2e_run.configfiles, "--cores", "2", "--quiet", "rules",
           "--forcerun", target, "--", target]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-4000:]
    log = (run_dir / "logs/train/enriched/glm/deepwas.log").read_text()
    assert "/glm/deepwas on" in log and "resumed from" not in log
    after = torch.load(out / "model.pt", weights_only=False), metrics()
    assert len(after[1]) == len(before[1]) > 0
    pd.testing.assert_frame_equal(after[1], before[1], check_exact=True)   # every step's loss, bit for bit
    _assert_same(after[0], before[0])


def _assert_same(a, b):
    import torch

    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b
