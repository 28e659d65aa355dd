"""Semi-synthetic truth and statistics (Sec. 6.1, App. A.5, B.1)."""
import numpy as np
import pytest
import torch

from deepwas.networks import EnformerNN
from deepwas.simulation import cohort
from deepwas.simulation.semisynthetic import RMSE_COLUMNS, rmse_log_f, rmse_row, simulate_z, simulate_z_windows
from deepwas.simulation.truths import (PAPER_B1, normalise_f, threshold_enrichment, threshold_enrichment_truth,
                                       truth_from_network)


@pytest.fixture(scope="module")
def R(msprime_ld):
    return msprime_ld(seed=11)


def test_normalisation_gives_the_target_mean():
    rng = np.random.default_rng(0)
    f_tilde = np.exp(rng.normal(size=1000) * 2)
    N, M, s2 = 407_527, 11_904_924, 0.5
    f = normalise_f(f_tilde, N, M, s2)
    assert f.mean() == pytest.approx((1 - s2) / M, rel=1e-12)
    np.testing.assert_allclose(f / f_tilde, f[0] / f_tilde[0])          # a pure rescaling
    phi = normalise_f(f_tilde, N, M, s2, units="phi")
    assert phi.mean() == pytest.approx(N / (2 * M), rel=1e-12)        # App. A.5: E F = N / (2M) at s2 = 1/2
    with pytest.raises(ValueError):
        normalise_f(np.array([np.inf, 1.0]), N, M, s2)


def test_h2_of_a_simulated_individual_level_trait_matches_1_minus_s2():
    # App. A.5's derivation: with standardised genotypes and E f = (1 - s2) / M, Var(X^T beta) ~= 1 - s2
    rng = np.random.default_rng(1)
    M, n, s2 = 400, 20_000, 0.6
    f = normalise_f(np.exp(rng.normal(size=M)), 1.0, M, s2)
    X = rng.normal(size=(n, M))
    g = np.stack([X @ (rng.normal(size=M) * np.sqrt(f)) for _ in range(20)])
    assert g.var() == pytest.approx(1 - s2, rel=0.05)


def test_simulated_z_has_the_right_covariance(R):
    rng = np.random.default_rng(2)
    idx = np.arange(40, 70)                                       # a small window of 30 variants
    Rw = R[np.ix_(idx, idx)]
    N, M, s2 = 5_000, 30, 0.7
    f = normalise_f(np.exp(rng.normal(size=30)), N, M, s2)
    Z = simulate_z(Rw, f, N, s2, rng, n_draws=40_000)
    expected = N * Rw @ np.diag(f) @ Rw + s2 * Rw
    emp = Z.T @ Z / Z.shape[0]
    scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
    assert np.max(np.abs(emp - expected) / scale) < 0.04            # entry sd ~ 0.007 at 40,000 draws
    assert np.abs(Z.mean(0)).max() < 0.05 * np.sqrt(np.diag(expected)).max()


def test_blocks_and_windows_reuse_one_beta(R):
    rng = np.random.default_rng(3)
    m = R.shape[0]
    f = normalise_f(np.ones(m), 1e4, m, 0.5)
    # two diagonal blocks: z of block 1 must not depend on beta of block 2
    z, beta = simulate_z([R[:100, :100], R[100:, 100:]], f, 1e4, 0.0, rng, return_beta=True)
    np.testing.assert_allclose(z[:100], 100 * R[:100, :100] @ beta[:100], rtol=1e-10)
    # overlapping windows: without noise, every core z is R[core, ext] beta with the SAME global beta,
    # which equals the chromosome-wide R beta when the window holds all LD partners of its core
    windows = [(R[:150, :150], np.arange(150), np.arange(0, 100)),
               (R[50:250, 50:250], np.arange(50, 250), np.arange(50, 150)),
               (R[150:, 150:], np.arange(150, m), np.arange(50, m - 150))]
    z, beta = simulate_z_windows(windows, f, 1e4, 0.0, np.random.default_rng(4), return_beta=True)
    assert np.all(np.isfinite(z))
    np.testing.assert_allclose(z[100:200], 100 * R[100:200, 50:250] @ beta[50:250], rtol=1e-10)
    with pytest.raises(ValueError, match="more than one core"):
        simulate_z_windows(windows + [windows[0]], f, 1e4, 0.0, rng)


def test_window_noise_has_core_covariance(R):
    idx = np.arange(30)
    windows = [(R[:60, :60], np.arange(60), idx)]
    f = np.zeros(R.shape[0])
    rng = np.random.default_rng(5)
    Z = np.stack([simulate_z_windows(windows, f, 1e4, 0.5, rng)[idx] for _ in range(2000)])
    assert np.max(np.abs(Z.T @ Z / 2000 - 0.5 * R[:30, :30])) < 0.1


def test_threshold_function_matches_a_hand_computation():
    # 3 variants, d_func = 3 tracks, d_pred = 2, w = 8; centre slice 2..5
    tracks = np.zeros((3, 3, 8))
    pred = np.zeros((3, 2))
    tracks[0, 0, 2:6] = 1.0           # sum 4 > 0        -> v0
    tracks[0, 0, 0] = -100.0          # outside the centre: ignored
    tracks[1, 2, 3] = -1.0            # track 2 sum -1 > -2 for every variant but variant 2
    tracks[2, 2, 2:6] = -1.0          # sum -4, not > -2
    pred[1, 1] = 0.5                  # pred feature 1 = channel 4, broadcast: 4 x 0.5 = 2 > 1 -> v4
    f = threshold_enrichment_truth(tracks, pred, M=10.0, dims=(0, 2, 4), values=(0.7, 1.37, 0.5),
                                   thresholds=(0.0, -2.0, 1.0), centre=slice(2, 6))
    expected_log = np.array([0.7 + 1.37, 1.37 + 0.5, 0.0]) - np.log(10.0)
    np.testing.assert_allclose(np.log(f), expected_log, rtol=1e-12)
    # the paper's defaults on 256-long windows use positions 113..143
    big = np.zeros((2, 13, 256))
    big[0, 0, 113] = 1.0
    big[1, 0, 112] = 1.0
    big[1, 0, 144] = 1.0
    f = threshold_enrichment_truth(big, None)
    assert PAPER_B1["centre"] == slice(113, 144)
    # d=7 (threshold -20) and d=12 (threshold -10) are active for zero features; d=2 (0) is not
    np.testing.assert_allclose(np.log(f), [0.7 + 1.37 + 0.5, 1.37 + 0.5], rtol=1e-12)


def test_threshold_active_fractions_and_agreement_with_feature_module():
    rng = np.random.default_rng(6)
    tracks = rng.normal(size=(2000, 4, 64))
    f = threshold_enrichment_truth(tracks, None, dims=(0, 1, 3), values=(1.0, 2.0, 4.0),
                                   active_fractions=(0.5, 0.25, 1.0))
    log_f = np.log(f)
    active0 = np.isin(np.round(log_f).astype(int), [1, 3, 5, 7])
    active1 = np.isin(np.round(log_f).astype(int), [2, 3, 6, 7])
    assert abs(active0.mean() - 0.5) < 0.01 and abs(active1.mean() - 0.25) < 0.01 and np.all(log_f >= 4)
    other = threshold_enrichment(tracks, (0, 1, 3), (1.0, 2.0, 4.0), thresholds=(0.0, 0.5, -1.0))
    mine = threshold_enrichment_truth(tracks, None, dims=(0, 1, 3), values=(1.0, 2.0, 4.0),
                                      thresholds=(0.0, 0.5, -1.0))
    np.testing.assert_allclose(np.log(mine), other, rtol=1e-12, atol=1e-12)
    # the demo cohort's track term is the same App. B.1 function (one implementation)
    demo = cohort.track_enrichment(tracks, [0, 1, 3], [0.5, 0.25, 1.0], [1.0, 2.0, 4.0])
    np.testing.assert_array_equal(demo, threshold_enrichment(tracks, (0, 1, 3), (1.0, 2.0, 4.0),
                                                             active_fractions=(0.5, 0.25, 1.0)))
    np.testing.assert_allclose(demo, log_f, rtol=1e-12)


def test_threshold_enrichment_numbers():
    win = np.zeros((3, 4, 256), dtype=np.float32)
    win[0, 0, 113:144] = 1.0       # centre sum 31 on dim 0
    win[1, 0, 0:100] = 5.0         # outside the centre: no effect
    win[2, 2, 128] = -3.0
    logf = threshold_enrichment(win, [0, 2], [0.7, 0.5], thresholds=[30.0, -1.0])
    np.testing.assert_allclose(logf, [0.7 + 0.5, 0.5, 0.0])


def test_truth_from_network():
    torch.manual_seed(0)
    net = EnformerNN.from_size("tiny", 6, 3, 32, head_init_std=1.0)
    g = torch.Generator().manual_seed(1)
    tracks, pred = torch.randn(300, 6, 32, generator=g), torch.randn(300, 3, generator=g)
    f_tilde = truth_from_network(net, tracks, pred, batch_size=128)
    assert net.training                                                # mode restored
    with torch.no_grad():
        nn_out = net.eval()(tracks, pred).double().numpy()
    log_f = np.log(f_tilde)
    np.testing.assert_allclose(log_f - log_f.max(), 10 * (nn_out - nn_out.max()), atol=1e-4)
    f2 = truth_from_network(net, tracks, pred, log_sd=1.5)
    assert np.log(f2).std() == pytest.approx(1.5, rel=1e-6)


def test_rmse():
    f = np.array([1.0, 2.0, 4.0])
    assert rmse_log_f(f, f) == 0.0
    assert rmse_log_f(f * np.e, f) == pytest.approx(1.0)
    row = rmse_row("transformer", "glm", "deepwas", f * np.e, f)
    assert list(row) == RMSE_COLUMNS and row["rmse_log_f"] == pytest.approx(1.0)
