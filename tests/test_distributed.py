"""Data-parallel training over windows (deepwas.distributed): 2 CPU processes with the gloo backend.

Five overlapping msprime windows, accumulation groups of 4 windows (each rank takes 2 neighbouring windows
of every group, the last group of 1 window goes to rank 1 alone). Two processes end with the parameters and
metrics of one process with the same effective accumulation (float tolerance: the all-reduce sums in
another order); a 2-process run killed mid-epoch and resumed by 2 fresh processes ends identical, with
dropout on (each rank's RNG state is in the checkpoint).
"""
import csv
import os
import socket
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from deepwas.window import make_window
from deepwas.ld_factors import factorise
from deepwas.priors import build_prior
from deepwas.training import TrainConfig, Trainer

N, S2, D_PRED, D_FUNC, W = 2_000.0, 0.8, 3, 4, 32


@pytest.fixture(scope="module")
def data_file(msprime_ld, tmp_path_factory):
    R = msprime_ld(n_people=100, length=100_000, seed=3)
    rng = np.random.default_rng(0)
    n_var = R.shape[0]
    keys = np.array([f"1:{1000 + 10 * i}:A:G" for i in range(n_var)])
    freq, pred = rng.uniform(0.05, 0.95, size=n_var), rng.normal(size=(n_var, D_PRED))
    tracks = rng.normal(size=(n_var, D_FUNC, W)).astype(np.float32)
    out = []
    for start in range(0, n_var - 42 + 1, 14)[:5]:
        idx = np.arange(start, start + 42)
        fac = factorise(R[np.ix_(idx, idx)], np.arange(14, 28), rtol=1e-6)
        factors = dict(G=fac.G, lam=fac.lam, U=fac.U, core=fac.core, ldscore=fac.ldscore, freq=freq[idx],
                       keys=keys[idx])
        out.append(make_window(f"chr1_{start}", factors, fac.whiten(rng.normal(size=14) * 1.3), pred[idx],
                               tracks=tracks[idx]))
    path = tmp_path_factory.mktemp("ddp") / "windows.pt"
    torch.save(out, path)
    return path


def _prior(model, dropout):
    torch.manual_seed(11)
    return build_prior(model, D_PRED, D_FUNC, init_log_scale=-6.0,
                       network=dict(size="tiny", w=W, norm="layer", dropout=dropout))


def _run(windows, model, dropout, root, kill_at=None):
    prior = _prior(model, dropout)
    cfg = TrainConfig.from_config(model, epochs=2, lr=1e-3 if model == "transformer" else 2e-2, warmup_steps=2,
                                  accumulate=4, clip_grad_norm=1.0, seed=5, checkpoint_every=1, progress=False,
                                  shared_forward=True)
    out = Trainer(prior, windows, N, S2, cfg, root / "ckpt", root / "metrics.tsv").fit(stop_after_windows=kill_at)
    return prior, out


def _worker(rank, world, port, data_path, root):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from deepwas import distributed
    distributed.init_from_env("gloo")
    windows = torch.load(data_path, weights_only=False)
    for model, dropout in [("glm", 0.0), ("transformer", 0.0)]:
        prior, _ = _run(windows, model, dropout, root / f"{model}")
        if rank == 0:
            torch.save(prior.state_dict(), root / f"{model}.pt")
    # exact resume across ranks, dropout on
    prior, _ = _run(windows, "transformer", 0.3, root / "full")
    if rank == 0:
        torch.save(prior.state_dict(), root / "full.pt")
    _run(windows, "transformer", 0.3, root / "kill", kill_at=9)    # stops before epoch 1's last group: mid-epoch resume
    prior, _ = _run(windows, "transformer", 0.3, root / "kill")
    if rank == 0:
        torch.save(prior.state_dict(), root / "resumed.pt")
    dist.barrier()
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(path):
    with open(path) as fh:
        return [r[:-1] for r in csv.reader(fh, delimiter="\t")]


def test_two_processes_equal_one_process_and_resume_exactly(data_file, tmp_path, torch_one_thread):
    ctx = mp.start_processes(_worker, args=(2, _free_port(), str(data_file), tmp_path), nprocs=2, join=False,
                             start_method="spawn")
    deadline = time.time() + 240
    while not ctx.join(timeout=5):
        if time.time() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("2-process training did not finish in 240 s")
    windows = torch.load(data_file, weights_only=False)
    for model in ("glm", "transformer"):
        ref, out = _run(windows, model, 0.0, tmp_path / f"single_{model}")
        got = torch.load(tmp_path / f"{model}.pt")
        assert out["steps"] == 4
        for k, v in ref.state_dict().items():
            torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-7)
        init = _prior(model, 0.0).state_dict()
        assert any(not torch.equal(v, init[k]) for k, v in ref.state_dict().items())   # training moved them
        single = _rows(tmp_path / f"single_{model}" / "metrics.tsv")
        multi = _rows(tmp_path / model / "metrics.tsv")
        assert [r[:4] for r in single] == [r[:4] for r in multi]     # rank 0 wrote every window's row
        np.testing.assert_allclose([float(r[4]) for r in multi[1:]], [float(r[4]) for r in single[1:]], rtol=1e-5)
    full, resumed = torch.load(tmp_path / "full.pt"), torch.load(tmp_path / "resumed.pt")
    for k in full:
        assert torch.equal(full[k], resumed[k]), k
    assert _rows(tmp_path / "full" / "metrics.tsv") == _rows(tmp_path / "kill" / "metrics.tsv")
