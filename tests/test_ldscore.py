"""Bias-corrected LD scores: r^2 - (1 - r^2) / (n - 2) against a dense reference and on msprime panels."""
import numpy as np
import pytest
import torch

from deepwas.ldscore import unbiased_ldscore, unbiased_r2


def _panel_ld(genotypes):
    X = genotypes.astype(np.float64)
    X = (X - X.mean(1, keepdims=True)) / X.std(1, keepdims=True)
    return X @ X.T / X.shape[1]


def test_unbiased_r2_values():
    r2 = np.array([1.0, 0.5, 0.0])
    np.testing.assert_allclose(unbiased_r2(r2, 102), [1.0, 0.5 - 0.5 / 100, -1 / 100], rtol=1e-15)
    t = unbiased_r2(torch.tensor([1.0, 0.25], dtype=torch.float64), 12)
    assert torch.allclose(t, torch.tensor([1.0, 0.25 - 0.075], dtype=torch.float64))
    with pytest.raises(ValueError, match="panel size n > 2.*ld.panel_size"):
        unbiased_r2(r2, 2)


def test_unbiased_ldscore_equals_the_sum_of_corrected_r2(msprime_chromosome):
    chrom = msprime_chromosome(300, 200_000, 5)
    R = _panel_ld(chrom.genotypes)
    n = 300
    dense = unbiased_r2(R * R, n).sum(1)                      # entry by entry, diagonal included (it stays 1)
    np.testing.assert_allclose(unbiased_ldscore((R * R).sum(1), len(R), n), dense, rtol=1e-12)


def test_correction_removes_the_small_panel_bias(msprime_chromosome):
    """Two independent msprime chromosomes of the same 200 people: their variants are unlinked, so each variant's
    LD score over the other chromosome is 0 in the population. The panel's raw r^2 puts about m / n there (several
    units); the corrected r^2 removes it."""
    n = 200
    a, b = msprime_chromosome(n, 200_000, 31), msprime_chromosome(n, 200_000, 32)
    R = _panel_ld(np.concatenate([a.genotypes, b.genotypes]))
    ma = len(a.positions)
    cross = R[:ma, ma:] ** 2                                     # population r^2 = 0 for every pair
    mb = cross.shape[1]
    raw = cross.sum(1)
    adj = unbiased_r2(cross, n).sum(1)
    assert raw.mean() == pytest.approx(mb / (n - 1), rel=0.1)   # E[r_hat^2] = 1 / (n - 1) for unlinked pairs
    assert raw.mean() > 1.0
    assert abs(adj.mean()) < 0.1 * raw.mean()
    # the window-level score of the whole matrix carries the same correction
    full = unbiased_ldscore((R * R).sum(1), len(R), n)
    np.testing.assert_allclose(full[:ma], unbiased_r2(R[:ma] ** 2, n).sum(1), rtol=1e-12)
