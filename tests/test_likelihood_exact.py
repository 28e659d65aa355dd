"""The exact low-rank likelihood equals the dense float64 reference (paper App. C.1), values and gradients.

Windows are cut from msprime cohorts, including rank-deficient ones (more variants than people), with
the core placed at random in the middle third of the window or at one of its edges. Gradients are with
respect to the parameters theta = (w, c) of a prior phi = N (p(1-p))^alpha exp(X w + c).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy import stats as sps

from deepwas.ld_factors import factorise, whiten
from deepwas.likelihood.dense import nll_dense, nll_null_dense, nll_reference_style
from deepwas.likelihood.exact import nll, nll_null

RTOL = 1e-8
VALUE_RTOL = 1e-8
GRAD_RTOL = 1e-6

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# (people, sequence length, seed, m extended variants, n core variants, core placement)
CASES = [
    pytest.param((100, 200_000, 1, 600, 150, "middle"), id="rankdef-100x600-middle"),
    pytest.param((100, 200_000, 1, 600, 150, "left"), id="rankdef-100x600-left"),
    pytest.param((150, 300_000, 7, 600, 200, "right"), id="rankdef-150x600-right"),
    pytest.param((200, 300_000, 11, 450, 120, "middle"), id="rankdef-200x450-middle"),
    pytest.param((400, 150_000, 3, 300, 90, "middle"), id="morepeople-400x300-middle"),
    pytest.param((400, 150_000, 5, 300, 80, "left"), id="morepeople-400x300-left"),
]


def _window(chrom_fn, geno_fn, n_ind, length, seed, m, n, where):
    chrom = chrom_fn(n_ind, length, seed)
    X = geno_fn(n_ind, length, seed)
    assert X.shape[0] >= m, f"simulation has only {X.shape[0]} variants"
    rng = np.random.default_rng(seed + 1000)
    s = int(rng.integers(0, X.shape[0] - m + 1))
    Xw = X[s:s + m]
    p = chrom.freq[s:s + m]
    R = Xw @ Xw.T / n_ind
    if where == "middle":
        c0 = int(rng.integers(m // 3, 2 * m // 3 - n + 1))
    elif where == "left":
        c0 = 0
    else:
        c0 = m - n
    core = np.arange(c0, c0 + n)
    # phenotype with a genetic part; public z = X y / sqrt(N) (in the column space of R[i,i])
    beta = rng.normal(size=m) * math.sqrt(0.4 / m)
    y = Xw.T @ beta + rng.normal(size=n_ind) * math.sqrt(0.6)
    z = Xw @ y / math.sqrt(n_ind)
    return R, core, z[core], p, rng


def _prior(p, rng, N, h2=0.5, alpha=0.7, d=3):
    feats = torch.as_tensor(rng.normal(size=(len(p), d)))
    w = torch.as_tensor(rng.normal(size=d) * 0.3).requires_grad_(True)
    base = (p * (1 - p)) ** alpha
    c = torch.tensor(math.log(h2 / len(p) / base.mean()), dtype=torch.float64).requires_grad_(True)
    pq = torch.as_tensor(base)

    def phi():
        return N * pq * torch.exp(feats @ w + c)

    return phi, (w, c)


def _grads(loss, params):
    return torch.autograd.grad(loss, params)


def _assert_grad_close(g, g_ref, rtol=GRAD_RTOL):
    g, g_ref = torch.as_tensor(g), torch.as_tensor(g_ref)
    scale = float(g_ref.abs().max())
    assert scale > 0
    err = float((g - g_ref).abs().max()) / scale
    assert err < rtol, f"gradient relative error {err:.3g} (scale {scale:.3g})"


@pytest.fixture(params=CASES)
def window(request, msprime_chromosome, msprime_genotypes):
    n_ind, length, seed, m, n, where = request.param
    R, core, z_core, p, rng = _window(msprime_chromosome, msprime_genotypes, n_ind, length, seed, m, n, where)
    fac = factorise(R, core, rtol=RTOL)
    y = whiten(fac.U, fac.lam, z_core)
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
    return dict(n_ind=n_ind, R=t(R), core=torch.as_tensor(core), z=t(z_core), G=t(fac.G), y=t(y),
                lam=t(fac.lam), p=p, rng=rng, rank=fac.rank, n=n)


def test_rank_matches_reference_support(window):
    R, core = window["R"], window["core"]
    lam = torch.linalg.eigvalsh(R[core][:, core])
    assert window["rank"] == int((lam > RTOL * lam.max()).sum())
    if window["n_ind"] <= window["n"]:
        assert window["rank"] < window["n"]          # rank-deficient core: the pseudo-likelihood matters
        assert window["rank"] <= window["n_ind"] - 1


def test_value_and_theta_gradient_match_dense(window):
    phi_of, theta = _prior(window["p"], window["rng"], N=window["n_ind"])
    s2 = 0.7
    v_exact = nll(phi_of(), s2, window["G"], window["y"], window["lam"])
    g_exact = _grads(v_exact, theta)
    v_dense = nll_dense(phi_of(), s2, window["R"], window["core"], window["z"], rtol=RTOL)
    g_dense = _grads(v_dense, theta)
    assert float(v_exact.detach()) == pytest.approx(float(v_dense.detach()), rel=VALUE_RTOL)
    for a, b in zip(g_exact, g_dense):
        _assert_grad_close(a, b)


def test_phi_and_s2_gradients_match_dense(window):
    m = window["G"].shape[0]
    rng = window["rng"]
    phi0 = torch.as_tensor(rng.lognormal(0, 1, m) * 2.0 / m)
    out = []
    for f in (lambda phi, s2: nll(phi, s2, window["G"], window["y"], window["lam"]),
              lambda phi, s2: nll_dense(phi, s2, window["R"], window["core"], window["z"], rtol=RTOL)):
        phi = phi0.clone().requires_grad_(True)
        s2 = torch.tensor(0.55, dtype=torch.float64, requires_grad=True)
        v = f(phi, s2)
        out.append((v.detach(), *torch.autograd.grad(v, (phi, s2))))
    (v1, gp1, gs1), (v2, gp2, gs2) = out
    assert float(v1) == pytest.approx(float(v2), rel=VALUE_RTOL)
    _assert_grad_close(gp1, gp2)
    assert float(gs1) == pytest.approx(float(gs2), rel=GRAD_RTOL)


@pytest.mark.parametrize("s2", [0.3, 1.0])
def test_null_matches_dense(window, s2):
    v = nll_null(s2, window["y"], window["lam"])
    ref = nll_dense(torch.zeros(window["G"].shape[0], dtype=torch.float64), s2, window["R"], window["core"],
                    window["z"], rtol=RTOL)
    assert float(v) == pytest.approx(float(ref), rel=VALUE_RTOL)
    assert float(nll_null_dense(s2, window["R"], window["core"], window["z"], rtol=RTOL)) == pytest.approx(
        float(ref), rel=1e-12)
    # phi = 0 in the exact solver is the null model too
    v0 = nll(torch.zeros(window["G"].shape[0], dtype=torch.float64), s2, window["G"], window["y"], window["lam"])
    assert float(v0) == pytest.approx(float(v), rel=1e-12)


def test_null_s2_gradient_matches_dense(window):
    grads = []
    for f in (lambda s2: nll_null(s2, window["y"], window["lam"]),
              lambda s2: nll_null_dense(s2, window["R"], window["core"], window["z"], rtol=RTOL)):
        s2 = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
        grads.append(float(torch.autograd.grad(f(s2), s2)[0]))
    assert grads[0] == pytest.approx(grads[1], rel=GRAD_RTOL)


def test_reference_style_matches_dense(window):
    phi_of, theta = _prior(window["p"], window["rng"], N=window["n_ind"])
    s2 = 0.7
    v_ref = nll_reference_style(phi_of(), s2, window["R"], window["core"], window["z"], rtol=RTOL)
    g_ref = _grads(v_ref, theta)
    v_dense = nll_dense(phi_of(), s2, window["R"], window["core"], window["z"], rtol=RTOL)
    g_dense = _grads(v_dense, theta)
    assert float(v_ref.detach()) == pytest.approx(float(v_dense.detach()), rel=VALUE_RTOL)
    for a, b in zip(g_ref, g_dense):
        _assert_grad_close(a, b)


def test_dense_reference_is_the_gaussian_nll_when_full_rank(msprime_chromosome, msprime_genotypes):
    """Sanity check of the reference itself: on a full-rank core it is the ordinary Gaussian NLL of N(0, A)."""
    R, core, z, p, rng = _window(msprime_chromosome, msprime_genotypes, 400, 150_000, 3, 300, 40, "middle")
    # msprime puts many variants on the same branches: keep a linearly independent subset of the core
    _, T, piv = scipy.linalg.qr(R[np.ix_(core, core)], pivoting=True)
    k = int((np.abs(np.diag(T)) > 1e-3 * abs(T[0, 0])).sum())
    keep = np.sort(piv[:k])
    core, z = core[keep], z[keep]
    Rc = R[np.ix_(core, core)]
    assert len(core) >= 10 and np.linalg.eigvalsh(Rc).min() > 1e-8
    phi = rng.lognormal(0, 1, R.shape[0]) / R.shape[0]
    s2 = 0.6
    A = (R[core] * phi) @ R[core].T + s2 * Rc
    expected = -sps.multivariate_normal(mean=np.zeros(len(core)), cov=A).logpdf(z)
    got = nll_dense(torch.as_tensor(phi), s2, torch.as_tensor(R), torch.as_tensor(core), torch.as_tensor(z),
                    rtol=RTOL)
    assert float(got) == pytest.approx(expected, rel=1e-10)
