"""Iterative (CG + SLQ + Hutchinson) solver: value, unbiased gradient, gradcheck, fallback (paper Sec. 4)."""
import logging

import numpy as np
import pytest
import torch

from deepwas.ld_factors import factorise
from deepwas.likelihood import exact, get_solver
from deepwas.likelihood.iterative import IterativeSolver, estimate_gram
from deepwas.linalg.cg import NotConverged, batched_cg

pytestmark = pytest.mark.usefixtures("torch_one_thread")   # small linear algebra: 1 thread


# ---- windows from the shared msprime_ld fixture (tests/conftest.py) ---------------------------------

def thin(R, max_sites):
    """LD of an evenly spaced subset of the sites (R of a subset is the submatrix of R)."""
    if max_sites is None or R.shape[0] <= max_sites:
        return np.array(R)
    idx = np.linspace(0, R.shape[0] - 1, max_sites).astype(int)
    return R[np.ix_(idx, idx)]


def make_window(R, n_core, seed=0, phi_scale=0.02, s2=0.5):
    """Factor, realistic log-normal phi, and z simulated from the model."""
    m = R.shape[0]
    start = (m - n_core) // 2
    core = np.arange(start, start + n_core)
    wf = factorise(R, core)
    rng = np.random.default_rng(seed)
    phi_true = phi_scale * rng.lognormal(0, 1, m) / np.exp(0.5)
    beta = rng.normal(size=m) * np.sqrt(phi_true)
    Rcc = R[np.ix_(core, core)]
    w, V = np.linalg.eigh(Rcc)
    noise = (V * np.sqrt(np.clip(w, 0, None))) @ rng.normal(size=n_core)
    z = R[core] @ beta + np.sqrt(s2) * noise
    phi = phi_true * rng.lognormal(0, 0.5, m)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return dict(G=t(wf.G), lam=t(wf.lam), y=t(wf.whiten(z)), phi=t(phi), s2=s2, R=R, core=core, z=z)


@pytest.fixture(scope="module")
def win(msprime_ld):
    R = np.array(msprime_ld(300, 600_000, 11, 0.02))      # 938 sites, 300 people
    return make_window(R, n_core=min(150, R.shape[0] // 2))


def exact_value_grad(w, s2=None):
    phi = w["phi"].clone().requires_grad_(True)
    v = exact.nll(phi, w["s2"] if s2 is None else s2, w["G"], w["y"], w["lam"])
    v.backward()
    return v.item(), phi.grad.clone()


def solver_value_grad(solver, w):
    phi = w["phi"].clone().requires_grad_(True)
    v = solver(phi, w["s2"], w["G"], w["y"], w["lam"])
    v.backward()
    return v.item(), phi.grad.clone()


# ---- tests -----------------------------------------------------------------------------------------

def test_registered_and_options(win):
    s = get_solver("iterative", rtol=1e-7, max_iters=200, probes=20, seed=3, lanczos_iters=40,
                   precond_rank=10, fallback=True, warm_start=True)
    assert isinstance(s, IterativeSolver)
    with pytest.raises(ValueError, match="unknown option"):
        get_solver("iterative", tolerance=1e-6)
    with pytest.raises(ValueError, match="matvec_dtype"):
        get_solver("iterative", matvec_dtype="float16")
    with pytest.raises(ValueError, match="power_iters"):
        get_solver("iterative", power_iters=-1)
    v = s(win["phi"], win["s2"], win["G"], win["y"], win["lam"])
    assert v.dim() == 0 and s.stats["calls"] == 1 and s.stats["fallbacks"] == 0


def test_value_matches_exact(win):
    ve, _ = exact_value_grad(win)
    r = win["G"].shape[1]
    # exact probes: SLQ over the identity; then only CG tolerance separates the values
    s = IterativeSolver(rtol=1e-10, probe_rtol=None, probes="exact", lanczos_iters=r + 1, precond_rank=20)
    vi, _ = solver_value_grad(s, win)
    assert abs(vi - ve) < 1e-6 * abs(ve) + 1e-6
    # stochastic value with the default options: quad term to rtol, log-det by SLQ within its noise
    vals = []
    for seed in range(5):
        vals.append(IterativeSolver(seed=seed)(win["phi"], win["s2"], win["G"], win["y"], win["lam"]).item())
    assert abs(np.mean(vals) - ve) < 0.05 + 1e-3 * abs(ve)


def test_quadratic_term_to_tolerance(win):
    """The CG solution alpha = C^-1 y reaches the configured relative residual."""
    G, y, phi, s2 = win["G"], win["y"], win["phi"], win["s2"]
    C = G.T @ (phi.unsqueeze(1) * G) + s2 * torch.eye(G.shape[1], dtype=G.dtype)
    for rtol in (1e-4, 1e-8):
        for G_low in (None, G.float()):     # float32 G products: the y column is finished in float64
            est = estimate_gram(G, phi, s2, y, 10, 4, torch.Generator().manual_seed(0), rtol=rtol,
                                max_iters=500, lanczos_iters=50, probe_rtol=1e-2, G_low=G_low, power_iters=1)
            res = torch.linalg.vector_norm(C @ est.alpha - y) / torch.linalg.vector_norm(y)
            assert res < 50 * rtol          # preconditioned residual vs plain residual: cond(M)^1/2 apart
            assert abs(est.quad.item() - (y @ torch.linalg.solve(C, y)).item()) < 1e3 * rtol * (y @ y).item()


ESTIMATORS = {
    # float64 products, every column to 1e-10, plain Gaussian sketch
    "float64_tight": dict(rtol=1e-10, probe_rtol=None, power_iters=0, matvec_dtype=None),
    # the defaults: float32 products for sketch/probes/phase A, probe columns to 1e-2, power-iterated sketch
    "defaults": dict(),
    # the previous call's Q as the sketch (independent of the current probes, so still unbiased)
    "reuse_sketch": dict(reuse_sketch=True),
}


@pytest.mark.parametrize("config", sorted(ESTIMATORS))
def test_gradient_unbiased_and_shrinks(win, config):
    ve, ge = exact_value_grad(win)
    spreads = {}
    for probes in (5, 40):
        grads, values = [], []
        s = IterativeSolver(probes=probes, precond_rank=5, seed=probes, grad_error_target=None, **ESTIMATORS[config])
        for _ in range(60):
            v, g = solver_value_grad(s, win)
            grads.append(g)
            values.append(v)
        assert s.stats["fallbacks"] == 0
        # the value: quadratic term to rtol, log-det unbiased (SLQ) -> mean within 4 standard errors
        values = np.array(values)
        assert abs(values.mean() - ve) < 4 * values.std() / np.sqrt(len(values)) + 1e-6 * abs(ve)
        g = torch.stack(grads)
        mean, se = g.mean(0), g.std(0) / np.sqrt(g.shape[0])
        z = (mean - ge) / (se + 1e-12 * ge.abs().max())
        # unbiased: standardised errors of the mean look N(0,1) (5 sigma bound, checked on many coordinates)
        assert z.abs().max() < 6.0
        assert z.abs().mean() < 1.2
        spreads[probes] = (g - ge).norm(dim=1).mean().item()
    # error ~ probes^-1/2: 8x the probes, about 2.8x smaller spread
    assert spreads[40] < spreads[5] / 2.0


def test_default_gradient_error_small(win):
    _, ge = exact_value_grad(win)
    _, gi = solver_value_grad(IterativeSolver(seed=1), win)
    assert ((gi - ge).norm() / ge.norm()).item() < 0.05


def test_s2_gradient(win):
    s2 = torch.tensor(win["s2"], dtype=torch.float64, requires_grad=True)
    exact.nll(win["phi"], s2, win["G"], win["y"], win["lam"]).backward()
    ge = s2.grad.item()
    s2b = torch.tensor(win["s2"], dtype=torch.float64, requires_grad=True)
    IterativeSolver(probes="exact", rtol=1e-10, probe_rtol=None)(win["phi"], s2b, win["G"], win["y"], win["lam"]).backward()
    assert abs(s2b.grad.item() - ge) < 1e-6 * abs(ge) + 1e-8


def test_gradcheck_tiny_window(msprime_ld):
    R = thin(msprime_ld(100, 200_000, 5, 0.02), 24)
    w = make_window(R, n_core=12, seed=2)
    r = w["G"].shape[1]
    s = IterativeSolver(probes="exact", rtol=1e-13, probe_rtol=None, max_iters=500, lanczos_iters=r + 2, precond_rank=0)
    phi = w["phi"].clone().requires_grad_(True)
    s2 = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, t: s(p, t, w["G"], w["y"], w["lam"]), (phi, s2),
                                    eps=1e-6, atol=1e-6, rtol=1e-4)


def test_ill_conditioned_window_falls_back(win, caplog):
    # s2 tiny against phi: C's eigenvalues spread over ~10 orders, CG cannot reach rtol in 5 steps
    phi = win["phi"] * 1e3
    s = IterativeSolver(rtol=1e-10, max_iters=5, precond_rank=0, probes=4)
    with caplog.at_level(logging.WARNING, logger="deepwas.likelihood"):
        v = s(phi, 1e-8, win["G"], win["y"], win["lam"])
    ref = exact.nll(phi, 1e-8, win["G"], win["y"], win["lam"])
    assert v.item() == pytest.approx(ref.item(), rel=1e-12)
    assert s.stats["fallbacks"] == 1 and s.stats["calls"] == 1
    assert any("falling back to the exact solver" in r.message and "relative residual" in r.message
               for r in caplog.records)
    strict = IterativeSolver(rtol=1e-10, max_iters=5, precond_rank=0, probes=4, fallback=False)
    with pytest.raises(NotConverged):
        strict(phi, 1e-8, win["G"], win["y"], win["lam"])


def test_reproducible_and_warm_start(win):
    a = IterativeSolver(seed=7)
    b = IterativeSolver(seed=7)
    va, ga = solver_value_grad(a, win)
    vb, gb = solver_value_grad(b, win)
    assert va == vb and torch.equal(ga, gb)
    va2, _ = solver_value_grad(a, win)
    assert va2 != va                          # fresh probes per call
    ws = IterativeSolver(seed=7, warm_start=True, rtol=1e-8)
    solver_value_grad(ws, win)
    it_cold = ws.stats["iterations_last"]
    solver_value_grad(ws, win)
    assert ws.stats["fallbacks"] == 0 and ws.stats["iterations_last"] <= it_cold


def test_batched_cg_accumulates_side_products():
    """with_aux: CG returns aux(X) for the linear side map (here G @ .) without applying it to X, and
    aux(B) from its first product; warm-started columns include aux(x0)."""
    gen = torch.Generator().manual_seed(0)
    r, m, k = 30, 50, 4
    A0 = torch.randn(r, r, generator=gen, dtype=torch.float64)
    A = A0 @ A0.T + r * torch.eye(r, dtype=torch.float64)
    Gm = torch.randn(m, r, generator=gen, dtype=torch.float64)
    B = torch.randn(r, k, generator=gen, dtype=torch.float64)
    tols = torch.tensor([1e-12, 1e-3, 1e-12, 1e-6], dtype=torch.float64)   # columns stop at different steps
    cg = batched_cg(lambda P: (A @ P, Gm @ P), B, rtol=tols, max_iters=200, with_aux=True)
    assert cg.converged and len(set(cg.col_iters.tolist())) > 1
    assert torch.allclose(cg.aux, Gm @ cg.X, rtol=1e-10, atol=1e-10)
    assert torch.allclose(cg.aux0, Gm @ B, rtol=1e-12, atol=1e-12)
    X_true = torch.linalg.solve(A, B)
    x0 = torch.zeros(r, k, dtype=torch.float64)
    x0[:, 0] = 0.9 * X_true[:, 0]
    cg2 = batched_cg(lambda P: (A @ P, Gm @ P), B, rtol=1e-12, max_iters=200, x0=x0, with_aux=True)
    assert torch.allclose(cg2.X, X_true, rtol=1e-8, atol=1e-10)
    assert torch.allclose(cg2.aux, Gm @ cg2.X, rtol=1e-10, atol=1e-10)


def test_float32_products_change_only_rounding(win):
    """Same seed, same probes: float32 G products (the default) move value and gradient only at float32
    rounding level against all-float64 products."""
    for kw in (dict(), dict(probes=10, precond_rank=8)):
        va, ga = solver_value_grad(IterativeSolver(seed=4, **kw), win)
        vb, gb = solver_value_grad(IterativeSolver(seed=4, matvec_dtype=None, **kw), win)
        assert abs(va - vb) < 1e-6 * abs(vb) + 1e-4
        assert ((ga - gb).norm() / gb.norm()).item() < 1e-4
    # float32 is not used where its precision cannot reach the probe tolerance
    s = IterativeSolver(probe_rtol=1e-6)
    assert s._low_precision(win["G"])[0] is win["G"]


# ---- rank and probes chosen per window (grad_error_target) ------------------------------------------

def dense_value_grad(w, s2=None):
    """Dense float64 reference: C = s2 I + G^T diag(phi) G formed, Cholesky, autograd to phi."""
    G, y, lam = w["G"], w["y"], w["lam"]
    phi = w["phi"].clone().requires_grad_(True)
    s2 = w["s2"] if s2 is None else s2
    C = s2 * torch.eye(G.shape[1], dtype=G.dtype) + G.T @ (phi.unsqueeze(1) * G)
    L = torch.linalg.cholesky(C)
    a = torch.cholesky_solve(y.unsqueeze(1), L).squeeze(1)
    v = 0.5 * (y @ a + 2 * torch.log(torch.diagonal(L)).sum() + torch.log(lam).sum()
               + G.shape[1] * np.log(2 * np.pi))
    v.backward()
    return v.item(), phi.grad.clone()


@pytest.fixture(scope="module")
def windows_by_size(msprime_ld):
    R = np.array(msprime_ld(300, 600_000, 11, 0.02))      # 938 sites
    return {n: make_window(R, n_core=n) for n in (150, 300)}


@pytest.mark.parametrize("n_core", [150, 300])
def test_adaptive_settings_hold_the_gradient_error(windows_by_size, n_core):
    """Starting from rank 10 and 10 probes (about 10% gradient error at both sizes), the solver grows rank
    (from the captured spectrum) and probes (from their variance) until its estimated error is below 2%; the measured error against a dense float64 reference
    is then at most 3% for every seed, and the value is within the SLQ noise of the reference."""
    w = windows_by_size[n_core]
    vd, gd = dense_value_grad(w)
    ve, ge = exact_value_grad(w)
    assert abs(ve - vd) < 1e-9 * abs(vd) and ((ge - gd).norm() / gd.norm()).item() < 1e-9
    fixed_errs, errs, vals = [], [], []
    for seed in range(4):
        fixed = IterativeSolver(seed=seed, precond_rank=10, probes=10, grad_error_target=None)
        _, g = solver_value_grad(fixed, w)
        fixed_errs.append(((g - gd).norm() / gd.norm()).item())
        assert fixed.stats["precond_rank_last"] == 10 and fixed.stats["probes_last"] == 10
        s = IterativeSolver(seed=seed, precond_rank=10, probes=10, grad_error_target=0.02)
        v, g = solver_value_grad(s, w)
        err = ((g - gd).norm() / gd.norm()).item()
        errs.append(err)
        vals.append(v)
        assert s.stats["precond_rank_last"] > 10 or s.stats["probes_last"] > 10
        assert s.stats["grad_err_est_last"] <= 0.02
        # the error estimate (probe sample variance) tracks the measured error
        assert 0.5 < s.stats["grad_err_est_last"] / err < 2.0
    assert min(fixed_errs) > 0.05
    assert max(errs) <= 0.03
    assert abs(np.mean(vals) - vd) < 0.5


def test_adaptive_estimator_unbiased(win):
    """With the settings chosen per call (pooled probes included), the gradient's mean over seeds matches the
    dense reference within its standard error."""
    _, gd = dense_value_grad(win)
    grads = []
    for seed in range(40):
        s = IterativeSolver(seed=seed, precond_rank=5, probes=5, grad_error_target=0.05)
        grads.append(solver_value_grad(s, win)[1])
    g = torch.stack(grads)
    z = (g.mean(0) - gd) / (g.std(0) / np.sqrt(g.shape[0]) + 1e-12 * gd.abs().max())
    assert z.abs().max() < 6.0 and z.abs().mean() < 1.2


def test_adaptive_settings_stateless_spectrum_sized_and_bounded(win):
    s = IterativeSolver(seed=0, precond_rank=5, probes=5, grad_error_target=0.02)
    v1, g1 = solver_value_grad(s, win)
    first = (s.stats["precond_rank_last"], s.stats["probes_last"])
    assert first != (5, 5)
    # nothing is remembered between calls: a fresh solver at the same call counter gives the same numbers
    solver_value_grad(s, win)
    again = IterativeSolver(seed=0, precond_rank=5, probes=5, grad_error_target=0.02)
    again._counter = 1
    ref = IterativeSolver(seed=0, precond_rank=5, probes=5, grad_error_target=0.02)
    ref._counter = 1
    va, ga = solver_value_grad(again, win)
    vb, gb = solver_value_grad(ref, win)
    assert va == vb and torch.equal(ga, gb)
    # the captured spectrum sizes the preconditioner before any probe: a strict tail doubles the rank
    K = win["G"].T @ (win["phi"].unsqueeze(1) * win["G"])
    ev = torch.linalg.eigvalsh(K).flip(0)
    assert ev[4] > 0.25 * win["s2"]                    # rank 5 leaves a large tail on this window
    t = IterativeSolver(seed=0, precond_rank=5, probes=5, grad_error_target=1.0, precond_tail=1e-3)
    solver_value_grad(t, win)
    r = win["G"].shape[1]
    assert t.stats["adapt_rounds_last"] == 0 and t.stats["precond_rank_last"] in (40, r // 2)
    loose = IterativeSolver(seed=0, precond_rank=5, probes=5, grad_error_target=1.0, precond_tail=1e6)
    solver_value_grad(loose, win)
    assert loose.stats["precond_rank_last"] == 5 and loose.stats["probes_last"] == 5
    # limits: never above max_probes / max_precond_rank, no error when the target is out of reach
    b = IterativeSolver(seed=0, precond_rank=5, probes=5, grad_error_target=1e-4, max_probes=12, max_precond_rank=5)
    solver_value_grad(b, win)
    assert b.stats["precond_rank_last"] == 5 and b.stats["probes_last"] == 12
    assert b.stats["grad_err_est_last"] > 1e-4
    with pytest.raises(ValueError, match="grad_error_target"):
        IterativeSolver(grad_error_target=0)
