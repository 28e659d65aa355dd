"""Exact resume (training of App. A.3): a run killed mid-epoch and resumed ends with the same parameters as an uninterrupted run.

Small windows cut from an msprime LD matrix; constant, GLM and tiny-transformer priors (the transformer has
dropout, so the torch RNG state of the checkpoint matters) with gradient accumulation over 2 windows and a
checkpoint after every optimiser step. The kill points are not on a checkpoint boundary, so the windows
after the last checkpoint are replayed by the resumed run (with the gradients they had accumulated lost).
"""
import csv

import numpy as np
import pytest
import torch

from deepwas.ld_factors import core_rows, factorise
from deepwas.priors import build_prior
from deepwas.ldsr import ldsr_objective
from deepwas.training import TrainConfig, Trainer
from deepwas.window import make_window

N, S2, D_PRED, D_FUNC, W = 2_000.0, 0.8, 3, 4, 32


@pytest.fixture(scope="module")
def windows(msprime_ld, torch_one_thread):
    R = msprime_ld(n_people=100, length=100_000, seed=3)                  # ~114 common variants
    rng = np.random.default_rng(0)
    m_win, n_core, step = 40, 16, 16
    out, extras = [], {}
    for k, start in enumerate(range(0, R.shape[0] - m_win + 1, step)[:5]):   # 5 windows: odd, so each epoch
        idx = np.arange(start, start + m_win)                                #   ends on a partial accumulation
        Rw = R[np.ix_(idx, idx)]
        core = np.arange(12, 12 + n_core)
        fac = factorise(Rw, core, rtol=1e-6)
        z = rng.normal(size=n_core) * 1.3
        freq = rng.uniform(0.05, 0.95, size=m_win)
        factors = dict(G=fac.G, lam=fac.lam, U=fac.U, core=fac.core, ldscore=fac.ldscore, freq=freq)
        pred = rng.normal(size=(m_win, D_PRED))
        tracks = rng.normal(size=(m_win, D_FUNC, W)).astype(np.float32)
        name = f"chr1_{start}_{start + m_win}"
        out.append(make_window(name, factors, fac.whiten(z), pred, tracks=tracks))
        extras[name] = (torch.as_tensor(core_rows(fac.U, fac.lam, fac.G) ** 2), torch.as_tensor(z),
                        torch.as_tensor(fac.ldscore[core]))
    return out, extras


def _prior(model):
    torch.manual_seed(123)                    # the caller seeds the initialisation (as train_prior.py does)
    return build_prior(model, D_PRED, D_FUNC, init_log_scale=-6.0, network=dict(size="tiny", w=W))


def _cfg(model, objective, solver="exact"):
    options = dict(probes=4, rtol=1e-8, seed=3) if solver == "iterative" else {}
    return TrainConfig.from_config(model, objective, epochs=2, lr=1e-3 if model == "transformer" else 2e-2,
                                   warmup_steps=3, accumulate=2, clip_grad_norm=1.0, seed=5, checkpoint_every=1,
                                   solver=solver, solver_options=options, progress=False)


def _trainer(model, objective, data, root, solver="exact"):
    windows, extras = data
    loss_fn = ldsr_objective(extras, N, h2_guess=0.2, M=1_000) if objective == "ldsr" else None
    prior = _prior(model)
    return prior, Trainer(prior, windows, N, S2, _cfg(model, objective, solver), root / "ckpt",
                          root / "metrics.tsv", loss_fn=loss_fn)


def _metrics(path):
    with open(path) as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    return [r[:-1] for r in rows]             # drop the wall-clock column


@pytest.mark.parametrize("model,objective,kill_at,solver", [
    ("constant", "deepwas", 3, "exact"),      # epoch 0: last checkpoint after window 2, window 3 replayed
    ("glm", "deepwas", 8, "exact"),           # epoch 1: checkpoint at epoch 1 window 2, window 3 replayed
    ("transformer", "deepwas", 8, "exact"),
    ("glm", "ldsr", 3, "exact"),
    ("transformer", "ldsr", 3, "exact"),
    ("glm", "deepwas", 8, "iterative"),       # seeded Hutchinson probes: the solver's call counter is restored
])
def test_killed_and_resumed_run_ends_with_identical_parameters(windows, tmp_path, model, objective, kill_at, solver):
    ref_prior, ref = _trainer(model, objective, windows, tmp_path / "ref", solver)
    assert ref.fit()["stopped"] is False

    _, killed = _trainer(model, objective, windows, tmp_path / "run", solver)
    assert killed.fit(stop_after_windows=kill_at)["stopped"] is True
    assert killed.position % 2 == 1           # killed with a half-accumulated gradient, off a checkpoint
    resumed_prior, resumed = _trainer(model, objective, windows, tmp_path / "run", solver)   # a fresh process
    out = resumed.fit()
    assert out["stopped"] is False and out["steps"] == ref.step == 6

    ref_state, new_state = ref_prior.state_dict(), resumed_prior.state_dict()
    assert ref_state.keys() == new_state.keys()
    for k in ref_state:
        assert torch.equal(ref_state[k], new_state[k]), k
    assert any(not torch.equal(v, _prior(model).state_dict()[k]) for k, v in ref_state.items())   # it trained
    # the metrics file has one row per window step, the replayed windows not duplicated
    assert _metrics(tmp_path / "run" / "metrics.tsv") == _metrics(tmp_path / "ref" / "metrics.tsv")
    assert len(_metrics(tmp_path / "ref" / "metrics.tsv")) == 1 + 2 * 5


def test_kill_before_the_first_checkpoint_restarts_cleanly(windows, tmp_path):
    ref_prior, ref = _trainer("transformer", "deepwas", windows, tmp_path / "ref")
    ref.fit()
    _, killed = _trainer("transformer", "deepwas", windows, tmp_path / "run")
    killed.fit(stop_after_windows=1)
    assert not (tmp_path / "run" / "ckpt" / "last.pt").exists()
    resumed_prior, resumed = _trainer("transformer", "deepwas", windows, tmp_path / "run")
    resumed.fit()
    for k, v in ref_prior.state_dict().items():
        assert torch.equal(v, resumed_prior.state_dict()[k]), k
    assert _metrics(tmp_path / "run" / "metrics.tsv") == _metrics(tmp_path / "ref" / "metrics.tsv")


def test_a_finished_run_resumes_to_a_no_op(windows, tmp_path):
    prior, tr = _trainer("glm", "deepwas", windows, tmp_path)
    tr.fit()
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    rows = _metrics(tmp_path / "metrics.tsv")
    prior2, tr2 = _trainer("glm", "deepwas", windows, tmp_path)
    assert tr2.fit()["steps"] == 6
    for k, v in before.items():
        assert torch.equal(v, prior2.state_dict()[k])
    assert _metrics(tmp_path / "metrics.tsv") == rows
