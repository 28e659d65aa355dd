"""End-to-end with functional tracks (tests/e2e/tracks.yaml): synthetic bigWigs -> liftover -> track store ->
normalisation -> constant / GLM / transformer priors, both objectives, exact held-out evaluation."""
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch



@pytest.fixture(scope="module")
def run_dir(tracks_run):
    return tracks_run       # conftest.py: one run per session, shared with test_e2e_priors


@pytest.mark.slow
def test_track_path_and_models(run_dir):
    s = pd.read_csv(run_dir / "results/evaluation/summary.tsv", sep="\t")
    assert set(zip(s["model"], s["objective"])) == {(m, o) for m in ("constant", "glm", "transformer")
                                                    for o in ("deepwas", "ldsr")} | {("oracle", "truth")}
    assert (s["n_windows"] == 1).all()
    # every prior, trained either way, beats the null on the held-out chromosome
    assert (s["delta_nll"] > 0).all()
    # the liftover went through the synthetic chain: chromosome 1 has an unaligned gap, the others none
    r1 = json.loads((run_dir / "results/liftover/chr1.report.json").read_text())
    r2 = json.loads((run_dir / "results/liftover/chr2.report.json").read_text())
    assert r1["unmapped"] >= 1 and r1["ok"] + r1["unmapped"] == r1["variants"]
    assert r2["unmapped"] == 0 and r2["ok"] == r2["variants"]
    # the store holds the 4 tracks + all_eCLIP, normalisation statistics in the same order
    norm = json.loads((run_dir / "results/features/normalisation.json").read_text())
    names = ["peaks_0", "conservation_1", "sparse_signal_2", "peaks_3", "all_eCLIP"]
    assert norm["track_names"] == names
    ck = torch.load(run_dir / "results/train/tracked/transformer/deepwas/model.pt", weights_only=False)
    assert ck["d_func"] == 5 and ck["track_names"] == names and ck["network"]["w"] == 32
    assert ck["scaler"]["names"][-1] == "tracks_missing"
    # the GLM read the tracks: its weights on the 5 window-averaged tracks moved away from their zero start
    glm = torch.load(run_dir / "results/train/tracked/glm/deepwas/model.pt", weights_only=False)
    w = glm["state"]["body.lin.weight"].numpy().ravel()
    assert w.shape[0] == len(glm["scaler"]["names"]) + 5
    assert np.abs(w[-5:]).max() > 1e-3
    log = (run_dir / "logs/train/tracked/transformer/deepwas.log").read_text()
    # streamed (train.stream: true); the variants without features are exactly chromosome 1's unmapped ones
    m = re.search(r"streaming 2 windows \(1 workers\); (\d+) of (\d+) variants without track features", log)
    assert m and int(m.group(1)) == r1["unmapped"] and int(m.group(2)) <= r1["variants"] + r2["variants"]


@pytest.mark.slow
def test_retraining_and_reevaluation_give_an_identical_summary(run_dir, tmp_path_factory, run_workflow):
    """Same config and seed, the first run's upstream outputs reused: a copy of its directory without the
    trained priors, their checkpoints and the evaluation reruns the six trainings (with the threads the rules
    pin) and the exact evaluation, and writes a byte-identical summary.tsv and bit-identical trained models
    and per-step losses, so a demo's summary reproduces on the same machine. The upstream steps (cohort,
    tracks, liftover, store, s2) are not rerun (and so not checked for reproducibility) here: their outputs
    are the first run's files, untouched."""
    again = tmp_path_factory.mktemp("e2e_tracks_rerun") / "run"
    shutil.copytree(run_dir, again, symlinks=True)               # copy2: modification times kept
    for d in ("results/train", "results/checkpoints", "results/evaluation", "logs/train"):
        shutil.rmtree(again / d)
    (again / "results/summary.txt").unlink()                     # the summary rule's other output
    upstream = {p.relative_to(again): p.stat().st_mtime_ns for p in (again / "results").rglob("*") if p.is_file()}
    assert any(str(p).startswith("results/features/") for p in upstream)
    run_workflow(again, "tracks.yaml", targets=("results/evaluation/summary.tsv",))
    # only training and evaluation ran: every other file is the first run's, untouched
    assert {p: again.joinpath(p).stat().st_mtime_ns for p in upstream} == upstream
    first = (run_dir / "results/evaluation/summary.tsv").read_bytes()
    second = (again / "results/evaluation/summary.tsv").read_bytes()
    s = pd.read_csv(run_dir / "results/evaluation/summary.tsv", sep="\t")
    assert len(s) == 7 and s["delta_nll"].nunique() == 7       # six trained priors and the oracle, all distinct
    assert second == first
    assert (again / "results/summary.txt").read_bytes() == (run_dir / "results/summary.txt").read_bytes()
    # each training itself repeated bit for bit (every step's loss, the final parameters), not only the
    # rounded summary
    for model in ("constant", "glm", "transformer"):
        for objective in ("deepwas", "ldsr"):
            d = f"results/train/tracked/{model}/{objective}"
            metrics = [pd.read_csv(r / d / "metrics.tsv", sep="\t").drop(columns="seconds") for r in (run_dir, again)]
            assert len(metrics[0]) > 0
            pd.testing.assert_frame_equal(metrics[1], metrics[0], check_exact=True)
            states = [torch.load(r / d / "model.pt", weights_only=False)["state"] for r in (run_dir, again)]
            assert states[0].keys() == states[1].keys()
            assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
