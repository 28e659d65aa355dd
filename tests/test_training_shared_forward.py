"""One prior forward per variant per optimiser step (deepwas.shared_forward, Trainer shared_forward).

Overlapping windows cut from an msprime LD matrix (stride one third of the window, as UKBB's 3 Mb windows
with a 1 Mb stride) with per-variant keys, frequencies, features and tracks. In float64 the shared forward's
accumulated gradient equals the per-window computation for the constant, GLM and tiny transformer priors
(dropout 0 / eval mode, layer norm), whole-union and chunked; rows of the same variant with different
features are not merged; chunked recomputation replays the dropout masks; a Trainer with shared_forward
resumes exactly and ends where the per-window Trainer ends.
"""
import csv

import numpy as np
import pytest
import torch

from deepwas.window import make_window
from deepwas.ld_factors import factorise
from deepwas.priors import build_prior
from deepwas.shared_forward import NeighbourRuns, group_backward, run_window_order, union_rows
from deepwas.training import TrainConfig, Trainer, _autocast, deepwas_loss
from deepwas import likelihood

N, S2, D_PRED, D_FUNC, W = 2_000.0, 0.8, 3, 4, 32
M_WIN, STRIDE, N_CORE = 42, 14, 14


@pytest.fixture(scope="module")
def windows(msprime_ld, torch_one_thread):
    R = msprime_ld(n_people=100, length=100_000, seed=3)
    rng = np.random.default_rng(0)
    n_var = R.shape[0]
    keys = np.array([f"1:{1000 + 10 * i}:A:G" for i in range(n_var)])
    freq = rng.uniform(0.05, 0.95, size=n_var)
    pred = rng.normal(size=(n_var, D_PRED))
    tracks = rng.normal(size=(n_var, D_FUNC, W)).astype(np.float32)
    out = []
    for start in range(0, n_var - M_WIN + 1, STRIDE)[:5]:
        idx = np.arange(start, start + M_WIN)
        core = np.arange(STRIDE, 2 * STRIDE)
        fac = factorise(R[np.ix_(idx, idx)], core, rtol=1e-6)
        z = rng.normal(size=N_CORE) * 1.3
        factors = dict(G=fac.G, lam=fac.lam, U=fac.U, core=fac.core, ldscore=fac.ldscore, freq=freq[idx],
                       keys=keys[idx])
        out.append(make_window(f"chr1_{start}", factors, fac.whiten(z), pred[idx], tracks=tracks[idx]))
    assert len(out) == 5
    return out


def _double(w):
    w = w.to("cpu")
    w.inputs = {k: v.double() for k, v in w.inputs.items()}
    return w


def _prior(model, dropout=0.0, double=True):
    torch.manual_seed(11)
    net = dict(size="tiny", w=W, norm="layer", dropout=dropout, head_init_std=1.0)
    prior = build_prior(model, D_PRED, D_FUNC, init_log_scale=-6.0, network=net)
    prior = prior.double() if double else prior
    if model == "glm":                       # non-zero weights, so that f differs between variants
        torch.nn.init.normal_(prior.body.lin.weight, std=0.3)
    return prior


def _grads(prior):
    return torch.cat([p.grad.flatten() for p in prior.parameters() if p.grad is not None])


def _per_window(prior, group, weight):
    loss_fn = deepwas_loss(likelihood.get_solver("exact"))
    prior.zero_grad(set_to_none=True)
    for w in group:
        (loss_fn(prior, w, N, S2, _autocast(None, torch.device("cpu"))) * weight).backward()
    return _grads(prior)


def _shared(prior, group, weight, chunk):
    loss_fn = deepwas_loss(likelihood.get_solver("exact"))
    prior.zero_grad(set_to_none=True)
    losses, rows = group_backward(prior, group, loss_fn, N, S2, _autocast(None, torch.device("cpu")), weight,
                                  "cpu", chunk=chunk)
    return _grads(prior), losses, rows


def test_union_merges_rows_of_the_same_variant(windows):
    group = windows[:4]
    u = union_rows(group)
    # 4 windows of 42 variants with stride 14: 42 + 3 * 14 = 84 distinct variants of 168 rows
    assert u.size == M_WIN + 3 * STRIDE and sum(len(i) for i in u.index) == 4 * M_WIN
    for j, w in enumerate(group):
        src = [group[a].variants[b] for a, b in zip(u.window[u.index[j].numpy()], u.row[u.index[j].numpy()])]
        assert list(src) == list(w.variants)
    # without variant keys nothing is shared
    bare = [type(w)(w.name, w.G, w.lam, w.y, w.inputs, w.n_core) for w in group]
    assert union_rows(bare).size == 4 * M_WIN


@pytest.mark.parametrize("model", ["constant", "glm", "transformer"])
@pytest.mark.parametrize("chunk", [0, 17])
def test_shared_forward_gradient_equals_per_window(windows, model, chunk):
    group = [_double(w) for w in windows[:4]]
    prior = _prior(model)
    prior.train()                            # dropout 0 and layer norm: rows independent even in training mode
    ref = _per_window(prior, group, weight=0.3)
    got, losses, rows = _shared(prior, group, 0.3, chunk)
    assert rows == {"rows": 4 * M_WIN, "union": M_WIN + 3 * STRIDE}
    assert ref.abs().max() > 0
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12 * float(ref.abs().max()))
    loss_fn = deepwas_loss(likelihood.get_solver("exact"))
    with torch.no_grad():
        ref_losses = [loss_fn(prior, w, N, S2, _autocast(None, torch.device("cpu"))) for w in group]
    torch.testing.assert_close(torch.stack(losses), torch.stack(ref_losses), rtol=1e-12, atol=0)


def test_window_dependent_features_are_not_merged(windows):
    # an LD score summed over each window's own matrix differs between windows: such rows stay apart,
    # and the gradient is still the per-window one
    group = [_double(w) for w in windows[:3]]
    for j, w in enumerate(group):
        w.inputs["pred"] = w.inputs["pred"].clone()
        w.inputs["pred"][:, -1] += 0.1 * j
    prior = _prior("glm")
    ref = _per_window(prior, group, 1.0)
    got, _, rows = _shared(prior, group, 1.0, chunk=0)
    assert rows["union"] == 3 * M_WIN
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12 * float(ref.abs().max()))


def test_chunked_recompute_replays_dropout_masks(windows):
    # with dropout, the chunked pass recomputes each chunk with the masks of the no-grad pass: the gradient
    # equals autograd through the same chunked forward, and the RNG ends where that forward left it
    group = [_double(w) for w in windows[:3]]
    prior = _prior("transformer", dropout=0.3)
    prior.train()
    loss_fn = deepwas_loss(likelihood.get_solver("exact"))
    u = union_rows(group)
    from deepwas.shared_forward import union_inputs
    inputs = union_inputs(group, u, "cpu")
    torch.manual_seed(5)
    F = torch.cat([prior({k: v[a:a + 10] for k, v in inputs.items()}) for a in range(0, u.size, 10)])
    total = sum(loss_fn(lambda _, idx=u.index[j]: F[idx], w, N, S2, _autocast(None, torch.device("cpu")))
                for j, w in enumerate(group))
    prior.zero_grad(set_to_none=True)
    total.backward()
    ref, rng_ref = _grads(prior), torch.get_rng_state()
    torch.manual_seed(5)
    got, _, _ = _shared(prior, group, 1.0, chunk=10)
    assert torch.equal(torch.get_rng_state(), rng_ref)
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12 * float(ref.abs().max()))


def test_run_window_order_groups_are_runs_of_neighbours():
    for n, run in [(11, 3), (12, 4), (5, 1)]:
        a = run_window_order(n, run, seed=2, epoch=1)
        assert sorted(a.tolist()) == list(range(n))
        assert np.array_equal(a, run_window_order(n, run, seed=2, epoch=1))
        for g in range(0, n - n % run, run):
            assert np.all(np.diff(a[g:g + run]) == 1) and a[g] % run == 0
    assert not np.array_equal(run_window_order(40, 4, 2, 0), run_window_order(40, 4, 2, 1))


def _cfg(**kw):
    base = dict(epochs=2, lr=2e-2, warmup_steps=3, accumulate=2, clip_grad_norm=1.0, seed=5, checkpoint_every=1,
                progress=False)
    base.update(kw)
    return TrainConfig.from_config("glm", **base)


def _metrics(path):
    with open(path) as fh:
        return [r[:-1] for r in csv.reader(fh, delimiter="\t")]


@pytest.mark.parametrize("model", ["glm", "transformer"])
def test_shared_trainer_ends_where_the_per_window_trainer_ends(windows, tmp_path, model):
    data = [_double(w) for w in windows]
    order = NeighbourRuns(data, 2)                 # the order the shared Trainer gives a list, for both
    params = []
    for shared in (False, True):
        prior = _prior(model)
        Trainer(prior, order, N, S2, _cfg(shared_forward=shared, lr=1e-3 if model == "transformer" else 2e-2),
                tmp_path / f"ck{shared}", tmp_path / f"m{shared}.tsv").fit()
        params.append(torch.cat([p.detach().flatten() for p in prior.parameters()]))
    torch.testing.assert_close(params[1], params[0], rtol=1e-8, atol=1e-10)
    assert not torch.equal(params[0], torch.cat([p.detach().flatten() for p in _prior(model).parameters()]))
    rows = [_metrics(tmp_path / f"m{s}.tsv") for s in (False, True)]
    assert [r[:4] for r in rows[0]] == [r[:4] for r in rows[1]]          # epoch, position, window, step


@pytest.mark.parametrize("model,kill_at", [("glm", 3), ("transformer", 7)])
def test_shared_forward_resumes_exactly(windows, tmp_path, model, kill_at):
    # dropout on: the checkpoint's RNG state makes the replayed groups draw the same masks
    def make(root):
        prior = _prior(model, dropout=0.2, double=False)
        return prior, Trainer(prior, windows, N, S2, _cfg(shared_forward=True, variant_chunk=25,
                                                          lr=1e-3 if model == "transformer" else 2e-2),
                              root / "ckpt", root / "metrics.tsv")
    ref_prior, ref = make(tmp_path / "ref")
    out = ref.fit()
    assert out["distinct_rows"] < out["rows"]                          # groups of neighbours share rows
    prior, t = make(tmp_path / "run")
    assert t.fit(stop_after_windows=kill_at) == {"stopped": True}
    prior2, t2 = make(tmp_path / "run")
    t2.fit()
    for a, b in zip(ref_prior.state_dict().values(), prior2.state_dict().values()):
        assert torch.equal(a, b)
    assert _metrics(tmp_path / "ref" / "metrics.tsv") == _metrics(tmp_path / "run" / "metrics.tsv")


def test_static_chunks_send_full_chunks_to_the_compiled_graph(windows):
    from deepwas.shared_forward import StaticChunks
    prior = _prior("transformer")
    calls = []

    def compiled(inputs):
        calls.append(int(inputs["freq"].shape[0]))
        return prior(inputs)

    model = StaticChunks(prior, compiled, 25)
    group = [_double(w) for w in windows[:4]]
    ref = _per_window(prior, group, 0.3)
    got, _, rows = _shared(model, group, 0.3, chunk=25)
    assert rows["union"] == 84 and calls == [25, 25, 25] * 2          # 84 rows: 3 full chunks + 9, two passes
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12 * float(ref.abs().max()))
    assert [n for n, _ in model.named_parameters()] == [f"prior.{n}" for n, _ in prior.named_parameters()]


def test_compiled_trainer_ends_where_the_eager_trainer_ends(windows, tmp_path):
    # train.compile with chunks: torch.compile of static shapes (inductor on the CPU here), the same parameters
    data = [_double(w) for w in windows]
    order = NeighbourRuns(data, 2)
    params = []
    for compiled in (False, True):
        prior = _prior("glm")
        Trainer(prior, order, N, S2, _cfg(shared_forward=True, variant_chunk=32, compile=compiled),
                tmp_path / f"ck{compiled}", tmp_path / f"m{compiled}.tsv").fit()
        params.append(torch.cat([p.detach().flatten() for p in prior.parameters()]))
    torch.testing.assert_close(params[1], params[0], rtol=1e-7, atol=1e-10)


def test_static_chunks_scope_the_autotuner_and_say_when_a_union_runs_uncompiled(windows, caplog):
    # cuDNN's autotuner is on while group_backward runs a StaticChunks prior (forward and backward), and as
    # before afterwards; a union that fits in one chunk (84 rows, chunk 100) runs uncompiled, said once
    from deepwas.shared_forward import StaticChunks
    prior = _prior("transformer")
    seen = []

    def compiled(inputs):                     # records the flag in the forward and in the backward
        seen.append(("forward", torch.backends.cudnn.benchmark))
        out = prior(inputs)
        if out.requires_grad:
            out.register_hook(lambda g: seen.append(("backward", torch.backends.cudnn.benchmark)))
        return out

    group = [_double(w) for w in windows[:4]]
    before = torch.backends.cudnn.benchmark
    for previous in (False, True):
        torch.backends.cudnn.benchmark = previous
        try:
            _shared(StaticChunks(prior, compiled, 25), group, 0.3, chunk=25)
            after = torch.backends.cudnn.benchmark
        finally:
            torch.backends.cudnn.benchmark = before
        assert after is previous
    # per call: 3 full chunks without grad, then each again with grad and its backward
    assert seen == ([("forward", True)] * 3 + [("forward", True), ("backward", True)] * 3) * 2
    model = StaticChunks(prior, compiled, 100)
    seen.clear()
    with caplog.at_level("WARNING", logger="deepwas.shared_forward"):
        for _ in range(2):
            _shared(model, group, 0.3, chunk=100)
    assert seen == []                                                        # never the compiled graph
    said = [r for r in caplog.records if "runs uncompiled" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "WARNING"
    assert "has 84 distinct rows, fewer than train.variant_chunk = 100" in said[0].getMessage()
    # a union of exactly one chunk goes through the compiled graph: nothing to say
    caplog.clear()
    with caplog.at_level("WARNING", logger="deepwas.shared_forward"):
        _shared(StaticChunks(prior, compiled, 84), group, 0.3, chunk=84)
    assert seen == [("forward", True), ("backward", True)] and not caplog.records


def test_compile_prior_leaves_the_process_flags_as_they_were():
    # fallback_random is an option of the compilation (the compiled dropout equals the eager one, seed for
    # seed, which inductor's own random numbers would not), not a process-wide change; no autotuner either
    import torch._inductor.config as inductor_config
    from deepwas.shared_forward import StaticChunks, compile_prior

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.drop, self.out = torch.nn.Linear(D_PRED, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1)

        def forward(self, inputs):
            return self.out(self.drop(torch.tanh(self.lin(inputs["pred"])))).squeeze(-1)

    torch.manual_seed(0)
    net = Net().train()
    x = {"pred": torch.randn(10, D_PRED), "freq": torch.rand(10)}
    flags = (inductor_config.fallback_random, torch.backends.cudnn.benchmark)
    assert flags == (False, False)                                          # torch's defaults
    dynamic = compile_prior(net, 0)
    model = compile_prior(net, 10)
    assert isinstance(model, StaticChunks) and callable(dynamic)
    assert (inductor_config.fallback_random, torch.backends.cudnn.benchmark) == flags
    with torch.no_grad():
        torch.manual_seed(1)
        eager = net(x)
        torch.manual_seed(1)
        got = model(x)                                                       # 10 rows: the compiled graph
        torch.manual_seed(2)
        other = net(x)
    assert not torch.equal(other, eager) and torch.equal(got, eager)        # masks drawn, and the same
    assert (inductor_config.fallback_random, torch.backends.cudnn.benchmark) == flags
