"""App. C.2: the public-statistics gain NLL(0) - NLL(phi) equals the individual-level marginal-likelihood
gain of paper Eqn 1 when the core equals the extended set (App. C.1; a prototype agreed to 1e-14).

Individual level: y ~ N(0, X^T F X + sigma^2 I) with X standardised genotypes (M x N), F = diag(f).
Public: z = X y / sqrt(N), R = X X^T / N, phi = N f, s2 = sigma^2.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from deepwas.evaluation import pct_per_person
from deepwas.ld_factors import factorise, whiten
from deepwas.likelihood.exact import nll, nll_null

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _gain_individual(X, y, f, sigma2):
    N = X.shape[1]
    K = (X.T * f) @ X
    K[np.diag_indices(N)] += sigma2
    L = np.linalg.cholesky(K)
    a = np.linalg.solve(L, y)
    quad_alt = a @ a
    logdet_alt = 2.0 * np.log(np.diag(L)).sum()
    quad_null = y @ y / sigma2
    logdet_null = N * math.log(sigma2)
    return 0.5 * (quad_null - quad_alt + logdet_null - logdet_alt)


def _gain_public(X, y, f, sigma2, rtol):
    N = X.shape[1]
    z = X @ y / math.sqrt(N)
    R = X @ X.T / N
    fac = factorise(R, np.arange(R.shape[0]), rtol=rtol)
    yw = torch.as_tensor(whiten(fac.U, fac.lam, z))
    G, lam = torch.as_tensor(fac.G), torch.as_tensor(fac.lam)
    phi = torch.as_tensor(N * f)
    gain = nll_null(sigma2, yw, lam) - nll(phi, sigma2, G, yw, lam)
    return float(gain), fac.rank


@pytest.mark.parametrize("n_ind,length,seed,m,expect_rank_deficient", [
    (150, 300_000, 21, 600, True),       # more variants than people: R has rank < N
    (100, 200_000, 22, 500, True),
    (400, 150_000, 23, 150, False),      # fewer variants than people (R still singular: identical variants)
    (400, 150_000, 23, "independent", False),   # a linearly independent variant subset: R has full rank
    (300, 100_000, 24, "independent", False),
])
@pytest.mark.parametrize("h2", [0.1, 0.5])
def test_public_gain_equals_individual_gain(msprime_chromosome, msprime_genotypes, n_ind, length, seed, m,
                                            expect_rank_deficient, h2):
    X_all = msprime_genotypes(n_ind, length, seed)
    p_all = msprime_chromosome(n_ind, length, seed).freq
    independent = m == "independent"
    if independent:
        _, T, piv = scipy.linalg.qr(X_all.T, pivoting=True, mode="economic")
        sel = np.sort(piv[: int((np.abs(np.diag(T)) > 1e-2 * abs(T[0, 0])).sum())])
        m = len(sel)
        assert 30 <= m < n_ind
    else:
        assert X_all.shape[0] >= m
        sel = np.arange(m)
    X = np.ascontiguousarray(X_all[sel])
    p = p_all[sel]
    rng = np.random.default_rng(seed)
    # prior of Eqn 6 form with a random feature effect, sum f = h2
    f = (p * (1 - p)) ** 0.7 * np.exp(rng.normal(size=m) * 0.5)
    f *= h2 / f.sum()
    sigma2 = 1.0 - h2
    beta = rng.normal(size=m) * np.sqrt(f)
    y = X.T @ beta + rng.normal(size=n_ind) * math.sqrt(sigma2)

    rank_X = np.linalg.matrix_rank(X)
    gain_pub, rank = _gain_public(X, y, f, sigma2, rtol=1e-10)
    gain_ind = _gain_individual(X, y, f, sigma2)
    assert rank == rank_X
    if expect_rank_deficient:
        assert rank < m and rank <= n_ind - 1
    if independent:
        assert rank == m                 # full rank: the pseudo-inverse is the inverse
    assert abs(gain_ind) > 1e-3
    assert gain_pub == pytest.approx(gain_ind, rel=1e-6)
    # and the per-person metric built on it agrees too
    assert pct_per_person(gain_pub, n_ind) == pytest.approx(pct_per_person(gain_ind, n_ind), rel=1e-6)


def test_gain_is_zero_at_phi_zero(msprime_genotypes):
    X = np.ascontiguousarray(msprime_genotypes(150, 300_000, 21)[:600])
    y = np.random.default_rng(0).normal(size=X.shape[1])
    gain_pub, _ = _gain_public(X, y, np.zeros(X.shape[0]), 0.8, rtol=1e-10)
    assert gain_pub == pytest.approx(0.0, abs=1e-9)
    assert _gain_individual(X, y, np.zeros(X.shape[0]), 0.8) == pytest.approx(0.0, abs=1e-9)
