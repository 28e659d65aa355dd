"""Derived per-variant features: frequency, MAF, LD score (issue 5 item 4)."""
import numpy as np
import pytest
import scipy.sparse as sp

from deepwas.features.derived import derived_features, ld_score, maf


def _corr(m, seed=0):
    X = np.random.default_rng(seed).normal(size=(200, m)).cumsum(axis=1)
    return np.corrcoef(X, rowvar=False)


def test_ldscore_dense_sparse_and_bias():
    R = _corr(30)
    direct = (R ** 2).sum(axis=1)
    np.testing.assert_allclose(ld_score(R, block=7), direct, rtol=1e-12)
    np.testing.assert_allclose(ld_score(sp.csr_matrix(np.triu(R) + np.triu(R, 1).T)), direct, rtol=1e-12)
    n = 500
    adj = R ** 2 - (1 - R ** 2) / (n - 2)
    np.fill_diagonal(adj, 1.0)
    expect = adj.sum(axis=1)
    np.testing.assert_allclose(ld_score(R, bias_correct=True, n_ld=n, block=4), expect, rtol=1e-12)
    Rs = R.copy(); Rs[np.abs(Rs) < 0.5] = 0
    adj = Rs ** 2 - (1 - Rs ** 2) / (n - 2); np.fill_diagonal(adj, 1.0)
    np.testing.assert_allclose(ld_score(sp.csr_matrix(Rs), bias_correct=True, n_ld=n), adj.sum(axis=1), rtol=1e-12)
    with pytest.raises(ValueError, match="n_ld"):
        ld_score(R, bias_correct=True)


def test_maf_and_stack():
    f = np.array([0.1, 0.5, 0.93])
    np.testing.assert_allclose(maf(f), [0.1, 0.5, 0.07])
    D = derived_features(f, np.eye(3))
    assert D.shape == (3, 3) and D.dtype == np.float32
    np.testing.assert_allclose(D[:, 2], 1.0)
    with pytest.raises(ValueError):
        maf([1.2])
