"""Checkpoints of the train rule's entry point (`training.train_prior`, App. A.3) under Snakemake's rules.

Five overlapping msprime windows are written as factor files, manifest, whitened statistics and s2.json,
and a GLM prior is trained on them with a checkpoint after every optimiser step:

- a run that fails after a checkpoint (an exception in the optimiser step, as a killed job) loses its
  metrics.tsv (Snakemake deletes a failed job's outputs); the unchanged rerun resumes and ends with the
  parameters and the metrics file of an uninterrupted run, every epoch's row included;
- toggling `prior.learn_alpha` (another parameter group for AdamW) starts afresh instead of loading the old
  optimiser state, and ends where a run in an empty checkpoint directory ends;
- settings that do not change the result (the progress bar) keep the checkpoint key; every setting that
  does (prior, network, solver, objective, optimisation) changes it.
"""
import csv
import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from deepwas.formats.factors import save_factors
from deepwas.formats.model_file import ModelFile
from deepwas.ld_factors import factorise
from deepwas.training import Trainer, TrainConfig, train_prior

N = 2_000.0
TRAIN = dict(epochs=3, lr={"glm": 2e-2}, warmup_steps=2, accumulate=2, checkpoint_every=1, clip_grad_norm=1.0,
             seed=5, progress=False, stream=False)


@pytest.fixture(scope="module")
def disk(msprime_ld, torch_one_thread, tmp_path_factory):
    root = tmp_path_factory.mktemp("entry")
    R = msprime_ld(n_people=100, length=100_000, seed=3)
    rng = np.random.default_rng(1)
    n_var = R.shape[0]
    pos = 100 + 60 * np.arange(n_var)
    keys = np.array([f"1:{p}:A:G" for p in pos])
    freq = rng.uniform(0.05, 0.95, size=n_var)
    (root / "factors").mkdir()
    rows, arrays = [], {}
    for start in range(0, n_var - 40 + 1, 16)[:5]:
        idx = np.arange(start, start + 40)
        fac = factorise(R[np.ix_(idx, idx)], np.arange(12, 28), rtol=1e-6)
        name = f"chr1_{start}_{start + 40}"
        save_factors(root / "factors" / f"{name}.npz", fac, pos[idx], keys[idx], freq[idx])
        z = rng.normal(size=16) * 1.3
        arrays.update({f"y/{name}": fac.whiten(z), f"z2/{name}": z ** 2, f"ldscore/{name}": fac.ldscore[fac.core],
                       f"n/{name}": np.full(16, N)})
        rows.append({"window": name, "status": "ok", "n_core": fac.n, "n_extended": fac.m, "rank": fac.rank})
    pd.DataFrame(rows).to_csv(root / "manifest.tsv", sep="\t", index=False)
    np.savez(root / "stats.npz", **arrays)
    (root / "s2.json").write_text(json.dumps({"s2": 0.8, "N": N, "init_log_scale": -6.0, "M": 1000,
                                              "h2_ldsr": 0.2, "lambda": 0.0}))
    return root


def train(disk, out, learn_alpha=False, train=None, fail_at_step=None, monkeypatch=None):
    """train_prior into out/ (model.pt, metrics.tsv, ckpt/); with fail_at_step, the optimiser step that
    would make step `fail_at_step` raises (after the checkpoints of the steps before it were written)."""
    if fail_at_step is not None:
        original = Trainer._optimiser_step

        def failing(self):
            if self.step + 1 == fail_at_step:
                raise RuntimeError("job killed")
            original(self)
        monkeypatch.setattr(Trainer, "_optimiser_step", failing)
    out.mkdir(exist_ok=True)
    try:
        return train_prior([(disk / "factors", disk / "manifest.tsv", disk / "stats.npz")], disk / "s2.json", None,
                           "glm", "deepwas", {"alpha": 0.7, "learn_alpha": learn_alpha}, dict(TRAIN, **(train or {})),
                           {"solver": "exact"}, out / "model.pt", out / "metrics.tsv", out / "ckpt")
    finally:
        if fail_at_step is not None:
            monkeypatch.undo()


def params(out):
    return ModelFile.load(out / "model.pt").state


def metrics(out):
    with open(out / "metrics.tsv") as fh:
        return [r[:-1] for r in csv.reader(fh, delimiter="\t")]          # without the wall-clock column


def test_resume_after_a_failed_job_rewrites_every_metrics_row(disk, tmp_path, monkeypatch, caplog):
    ref = tmp_path / "ref"
    assert train(disk, ref, train={"checkpoint_every": 2})["steps"] == 9                                # 3 epochs x 3 steps (5 windows, acc 2)
    rows = metrics(ref)
    assert len(rows) == 1 + 3 * 5 and [r[0] for r in rows[1:]] == [str(e) for e in range(3) for _ in range(5)]

    run = tmp_path / "run"                                               # checkpoints every 2 steps and at epoch ends
    with pytest.raises(RuntimeError, match="job killed"):
        train(disk, run, train={"checkpoint_every": 2}, fail_at_step=6, monkeypatch=monkeypatch)
    assert len(metrics(run)) == 1 + 5 + 4             # the failed job wrote epoch 0 and 4 rows of epoch 1 (2 after
    (run / "metrics.tsv").unlink()                    # its last checkpoint); Snakemake deletes its outputs
    with caplog.at_level(logging.INFO, logger="deepwas.training"):
        train(disk, run, train={"checkpoint_every": 2})
    assert "resumed from" in caplog.text and "at epoch 2/3, window 2, step 4" in caplog.text
    assert metrics(run) == rows                                          # every epoch's row, none twice
    got, want = params(run), params(ref)
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_toggling_learn_alpha_starts_afresh(disk, tmp_path, monkeypatch, caplog):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="job killed"):
        train(disk, run, fail_at_step=4, monkeypatch=monkeypatch)
    assert (run / "ckpt" / "last.pt").exists()
    with caplog.at_level(logging.INFO, logger="deepwas.training"):
        train(disk, run, learn_alpha=True)                               # loaded, this crashed in AdamW
    assert "another training configuration" in caplog.text and "resumed from" not in caplog.text
    fresh = tmp_path / "fresh"
    train(disk, fresh, learn_alpha=True)
    got, want = params(run), params(fresh)
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k
    assert float(got["alpha"]) != pytest.approx(0.7, abs=1e-6)          # alpha was learnt
    assert metrics(run) == metrics(fresh)


def test_checkpoint_key_covers_the_settings_that_change_training():
    base = dict(model="transformer", objective="deepwas", train={"progress": True}, likelihood={"solver": "exact"},
                prior={"alpha": 0.7, "learn_alpha": False}, network={"size": "tiny", "dropout": 0.1})

    def key(**change):
        kw = {k: (dict(v, **change[k]) if isinstance(v, dict) and k in change else change.get(k, v))
              for k, v in base.items()}
        cfg = TrainConfig.from_config(kw.pop("model"), kw.pop("objective"), **kw)
        return cfg.fingerprint()

    k0 = key()
    assert key(train={"progress": False}) == k0 and key(train={"compile": True}) == k0
    assert key(train={"device": "cpu"}) == k0 and key(likelihood={"probes": 8}) == k0   # exact ignores probes
    assert key(network={"checkpointing": True}) == k0
    changed = [key(prior={"learn_alpha": True}), key(prior={"alpha": 0.5}), key(network={"dropout": 0.2}),
               key(likelihood={"solver": "iterative"}), key(objective="ldsr"), key(model="glm"),
               key(train={"accumulate": 3}), key(train={"lr": {"transformer": 1e-3}}), key(train={"seed": 1}),
               key(train={"shared_forward": True}), key(train={"autocast": "bfloat16"})]
    assert len(set(changed + [k0])) == len(changed) + 1
