"""The demo's summary-level GWAS (deepwas.simulation.cohort.summary_gwas / sumstats_from_z) against its definition."""
import numpy as np
import pandas as pd
import pytest

from deepwas.simulation import cohort as simulate
from deepwas.harmonise import correlation_z


def test_summary_gwas_moments(msprime_genotypes):
    X = msprime_genotypes(300, 60_000, 4)[:40]
    n = X.shape[1]
    R = X @ X.T / n
    rng = np.random.default_rng(0)
    beta = rng.normal(0, 0.01, X.shape[0])
    N, s2, draws = 20_000.0, 0.7, 4000
    Z = np.stack([simulate.summary_gwas(X, beta, N, s2, rng) for _ in range(draws)])
    mean = np.sqrt(N) * R @ beta
    # mean sqrt(N) R beta and covariance s2 R, within Monte-Carlo error
    se = np.sqrt(s2 * np.diag(R) / draws)
    assert np.all(np.abs(Z.mean(0) - mean) < 5 * se)
    C = np.cov(Z.T)
    assert np.abs(C - s2 * R).max() < 6 * s2 * np.sqrt(2.0 / draws)
    # z lies in the column space of R: no component outside the span of the panel's genotypes
    Q, _ = np.linalg.qr(X)
    resid = Z[:5] - (Z[:5] @ Q) @ Q.T
    assert np.abs(resid).max() < 1e-8 * np.abs(Z[:5]).max()


def test_sumstats_from_z_round_trips_through_the_harmoniser_scale():
    rng = np.random.default_rng(1)
    N = 50_000.0
    z = rng.normal(0, 4, 500)
    freq = rng.uniform(0.02, 0.98, 500)
    t = simulate.sumstats_from_z(z, freq, N)
    assert list(t.columns) == ["Beta", "se", "P", "EAF"]
    np.testing.assert_allclose(correlation_z(t["Beta"] / t["se"], N), z, rtol=1e-12)
    np.testing.assert_allclose(t["se"], 1 / np.sqrt(2 * freq * (1 - freq) * N))


def test_track_enrichment_active_fractions():
    rng = np.random.default_rng(2)
    W = rng.gamma(1.0, 1.0, (2000, 4, 64)).astype(np.float32)
    t = simulate.track_enrichment(W, [0, 2], [0.25, 0.5], [2.0, 1.0])
    assert set(np.unique(t)) <= {0.0, 1.0, 2.0, 3.0}
    assert abs((t >= 2).mean() - 0.25) < 0.01 and abs(np.isin(t, [1.0, 3.0]).mean() - 0.5) < 0.01


def test_truth_f_adds_the_track_term_and_keeps_h2():
    freq = np.full(4, 0.3)
    ann = pd.DataFrame({"a": [0.0, 1.0, 0.0, 1.0]})
    f = simulate.truth_f(freq, ann, {"a": np.log(2)}, 0.7, 0.4, extra_logf=np.array([0.0, 0.0, np.log(3), np.log(3)]))
    assert f.sum() == np.float64(0.4) or abs(f.sum() - 0.4) < 1e-15
    np.testing.assert_allclose(f / f[0], [1, 2, 3, 6])


def test_track_truth_config_errors_are_named():
    W = np.zeros((10, 3, 32), dtype=np.float32)
    with pytest.raises(ValueError, match="same length"):
        simulate.track_enrichment(W, [0, 1], [0.5], [1.0, 2.0])
    with pytest.raises(ValueError, match="track index 3 >= 3 demo tracks"):
        simulate.track_enrichment(W, [3], [0.5], [1.0])
