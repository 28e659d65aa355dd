"""LDSR objective (App. A.4): exact value on an msprime window and recovery of a simulated h2."""
import numpy as np
import pytest
import torch

from deepwas.ldsr import ldsr_loss, ldsr_weights, r2_rows


@pytest.fixture(scope="module")
def R(msprime_ld):
    return msprime_ld(seed=7)


def test_loss_equals_a_direct_evaluation_of_app_a4(R):
    rng = np.random.default_rng(0)
    m = R.shape[0]
    core = np.arange(m // 3, 2 * m // 3)
    N, h2, M, s2 = 50_000, 0.4, 1_000_000, 0.6
    phi = rng.gamma(2.0, N * h2 / M / 2.0, size=m)
    z = rng.normal(size=m) * 2.0
    # App. A.4 term by term, in z units: w_i (sum_k R_ik^2 phi_k + s2 - z_i^2)^2
    expected = 0.0
    for i in core:
        l_i = np.sum(R[i] ** 2)
        w_i = 1.0 / (l_i * (N * h2 * l_i / M + 1.0) ** 2)
        expected += w_i * (np.sum(R[i] ** 2 * phi) + s2 - z[i] ** 2) ** 2
    phi_t = torch.tensor(phi, requires_grad=True)
    for R2, zz in [(torch.tensor(R**2), torch.tensor(z[core])),        # full matrix, core z
                   (torch.tensor(r2_rows(R, core)), torch.tensor(z))]:  # core rows, window z
        loss = ldsr_loss(phi_t, s2, R2, zz, core, N, h2, M)
        assert loss.dtype == torch.float64
        assert loss.item() == pytest.approx(expected, rel=1e-12)
    # gradient: 2 R2c^T (w * resid), weights constant
    loss.backward()
    R2c = R[core] ** 2
    w = ldsr_weights(R2c.sum(1), N, h2, M)
    resid = R2c @ phi + s2 - z[core] ** 2
    np.testing.assert_allclose(phi_t.grad.numpy(), 2 * R2c.T @ (w * resid), rtol=1e-10)
    mean = ldsr_loss(phi_t, s2, torch.tensor(R**2), torch.tensor(z), core, N, h2, M, reduction="mean")
    assert mean.item() == pytest.approx(expected / w.sum(), rel=1e-12)


def test_weights_and_input_checks(R):
    np.testing.assert_allclose(ldsr_weights(np.array([0.5, 1.0, 4.0]), 100, 0.5, 100),
                               [1 / 1.5**2, 1 / 1.5**2, 1 / (4 * 3.0**2)])
    phi = torch.ones(R.shape[0], dtype=torch.float64)
    with pytest.raises(ValueError, match="rows"):
        ldsr_loss(phi, 0.5, torch.ones(5, R.shape[0]), torch.ones(3), np.arange(3), 1e4, 0.5, 1e6)
    with pytest.raises(ValueError, match="z has"):
        ldsr_loss(phi, 0.5, torch.tensor(R**2), torch.ones(7), np.arange(3), 1e4, 0.5, 1e6)


def test_minimiser_for_a_constant_prior_recovers_h2(R):
    """Simulate z = R b + e, b ~ N(0, phi I), e ~ N(0, s2 R), and fit a constant phi by minimising the loss."""
    rng = np.random.default_rng(1)
    m = R.shape[0]
    N, M, h2, s2 = 10_000, m, 0.3, 0.7           # the window is the whole "genome"
    phi_true = N * h2 / M
    lam, V = np.linalg.eigh(R)
    half = V * np.sqrt(np.clip(lam, 0, None))    # R = half half^T
    reps = 100
    b = rng.normal(scale=np.sqrt(phi_true), size=(reps, m))
    Z = b @ R.T + rng.normal(size=(reps, m)) @ half.T * np.sqrt(s2)
    R2 = torch.tensor(R**2)
    core = np.arange(m)
    Zt = torch.tensor(Z)

    c = torch.ones((), dtype=torch.float64, requires_grad=True)   # the constant prior, phi_k = c
    opt = torch.optim.LBFGS([c], lr=1.0, max_iter=20, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        phi = c * torch.ones(m, dtype=torch.float64)
        loss = sum(ldsr_loss(phi, s2, R2, Zt[r], core, N, h2, M, reduction="mean") for r in range(reps)) / reps
        loss.backward()
        return loss

    opt.step(closure)
    phi_hat = c.item()
    # the minimiser of a quadratic in phi_c: weighted least squares slope through the fixed intercept s2
    l = (R**2).sum(1)
    w = ldsr_weights(l, N, h2, M)
    slope = np.sum(w * l * (Z**2 - s2).mean(0)) / np.sum(w * l * l)
    assert phi_hat == pytest.approx(slope, rel=1e-6)
    h2_hat = phi_hat * M / N
    assert abs(h2_hat - h2) < 0.06, h2_hat   # sd of h2_hat over seeds is 0.013 here


def test_objective_inputs_bias_correct_r2_with_the_panel_size(R):
    """ldsr_inputs: r2_ik = r_ik^2 - (1 - r_ik^2) / (n - 2) with n the LD panel size of the factor file (LD score
    regression's correction), rebuilt from the stored factors; the loss moves by what the correction predicts."""
    from deepwas.ld_factors import factorise
    from deepwas.ldscore import unbiased_r2
    from deepwas.ldsr import ldsr_inputs

    # hand numbers: r = 0.5 in a panel of 102 people -> 0.25 - 0.75 / 100; r = 0 -> -1 / 100; the diagonal stays 1
    np.testing.assert_allclose(r2_rows(np.array([[1.0, 0.5, 0.0]]), [0], panel_size=102), [[1.0, 0.2425, -0.01]],
                               rtol=1e-14)
    m = 60
    Rw = 0.9 * R[:m, :m] + 0.1 * np.eye(m)        # full rank: the factors rebuild R[(i), (i)+] to rounding
    core = np.arange(20, 40)
    fac = factorise(Rw, core, rtol=1e-12)
    z = np.random.default_rng(1).normal(size=core.size) * 1.5
    factors = {"G": fac.G, "lam": fac.lam, "U": fac.U, "core": fac.core, "ldscore": fac.ldscore,
               "panel_size": np.float64(200)}
    r2, zc, l = ldsr_inputs(factors, z ** 2)
    np.testing.assert_allclose(r2.numpy(), unbiased_r2(Rw[core] ** 2, 200), atol=1e-12)
    np.testing.assert_allclose(r2.numpy(), Rw[core] ** 2 - (1 - Rw[core] ** 2) / 198, atol=1e-12)
    assert float(r2[0, 20]) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(zc.numpy(), np.abs(z))
    # the raw r^2 sum over the window is larger by (m - l_raw) / (n - 2) for every core variant
    raw = (Rw[core] ** 2).sum(1)
    np.testing.assert_allclose(raw - r2.numpy().sum(1), (m - raw) / 198, rtol=1e-10)
    # an explicit n wins; a factor file without one is refused
    np.testing.assert_allclose(ldsr_inputs(factors, z ** 2, panel_size=337_545)[0].numpy(),
                               Rw[core] ** 2 - (1 - Rw[core] ** 2) / 337_543, atol=1e-12)
    with pytest.raises(ValueError, match="do not record the LD panel size.*rerun the ld_factors rule"):
        ldsr_inputs({k: v for k, v in factors.items() if k != "panel_size"}, z ** 2)
    # the loss with the corrected r2: sum_i w_i (sum_k r2_ik phi_k + s2 - z_i^2)^2, term by term
    N, h2, M, s2 = 50_000, 0.4, 100_000, 0.9
    phi = np.full(m, N * h2 / M)
    w = 1.0 / (np.maximum(l.numpy(), 1) * (N * h2 * np.maximum(l.numpy(), 1) / M + 1.0) ** 2)
    expected = np.sum(w * (unbiased_r2(Rw[core] ** 2, 200) @ phi + s2 - z ** 2) ** 2)
    got = ldsr_loss(torch.tensor(phi), s2, r2, zc, np.arange(core.size), N, h2, M, ldscore=l)
    assert float(got) == pytest.approx(expected, rel=1e-10)
    uncorrected = ldsr_loss(torch.tensor(phi), s2, torch.tensor(Rw[core] ** 2), zc, np.arange(core.size), N, h2, M,
                            ldscore=l)
    assert abs(float(uncorrected) - expected) > 1e-3 * expected
