"""The finite-panel correction of LD from a reference panel (`likelihood.mismatch.panel_correction`; paper
Sec. 4.1 and App. C.1 with the Ledoit-Wolf shrinkage of the panel's spectrum): the shrinkage ratio against the
true variance of an msprime panel's eigenvectors, the Marchenko-Pastur edge on a null matrix, the corrected
likelihood against a dense float64 reference (values and gradients), and the windows that training (in
memory and streamed) and evaluation read.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepwas.ld_factors import factorise, whiten
from deepwas.likelihood import exact, mismatch
from deepwas.likelihood.mismatch import Mismatch

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _corr(X):
    Xs = (X - X.mean(1, keepdims=True)) / np.maximum(X.std(1, keepdims=True), 1e-12)
    R = Xs @ Xs.T / X.shape[1]
    R[np.diag_indices_from(R)] = 1.0
    return R


@pytest.fixture(scope="module")
def panel(msprime_chromosome):
    """One msprime region of 1,400 people: a 'truth' R from 1,200 and a panel R^ from the other 200; the core
    is 120 common variants (p / n = 0.6), the extended set 360."""
    chrom = msprime_chromosome(1400, 200_000, 31)
    G = chrom.genotypes.astype(np.float64)
    f = G.mean(1) / 2
    ok = np.flatnonzero((np.minimum(f, 1 - f) > 0.05) & (G[:, 1200:].std(1) > 0))
    sel = ok[:360]
    R_true, R_panel = _corr(G[sel][:, :1200]), _corr(G[sel][:, 1200:])
    core = np.arange(120, 240)
    return R_true, R_panel, core, 200


def test_shrinkage_ratio_recovers_the_true_variance_of_panel_eigenvectors(panel):
    R_true, R_panel, core, n = panel
    lam, U = np.linalg.eigh(R_panel[np.ix_(core, core)])
    keep = lam > 1e-8 * lam.max()
    lam, U = lam[keep], U[:, keep]
    t = np.einsum("ik,ij,jk->k", U, R_true[np.ix_(core, core)], U) / lam      # oracle u^T R u / lam
    d = mismatch.shrinkage_ratio(lam, len(core), n - 1)
    low = lam < np.quantile(lam, 0.25)
    # the small directions are inflated (true variance above lam) and the estimate goes the same way
    assert np.median(t[low]) > 1.5 and np.median(d[low]) > 1.2
    err_none = np.mean(np.abs(np.log(t)))
    err_lw = np.mean(np.abs(np.log(t / d)))
    assert err_lw < 0.75 * err_none, (err_lw, err_none)
    # Ledoit-Wolf preserve the trace to first order: the corrected spectrum has the panel's total variance
    assert np.sum(d * lam) == pytest.approx(np.sum(lam), rel=0.1)


def _flank_rows(R, core, n):
    """(G_flank, U, lam, d, flank): the uncorrected factor's flank rows R[flank, core] U lam^-1/2 on the directions
    that the finite-panel correction keeps (U, lam: their eigenvectors and eigenvalues, d: their shrinkage ratios),
    for an n-person panel's R; flank: the flank variants' indices."""
    lam, U = np.linalg.eigh(R[np.ix_(core, core)])
    keep, d = mismatch.panel_correction(lam, len(core), n)
    flank = np.setdiff1d(np.arange(R.shape[0]), core)
    return R[np.ix_(flank, core)] @ U[:, keep] / np.sqrt(lam[keep]), U[:, keep], lam[keep], d, flank


def test_flank_rows_in_no_ld_with_the_core_are_chance_and_calibrated_away(msprime_chromosome, panel):
    """Flank variants from an independently simulated region: the panel's regression on the core's r kept scores
    has R^2 of chance, r / (n - 1) on average, and the regression calibration removes nearly all of it; while the
    flank rows of the LD region itself keep most of theirs (module docstring)."""
    _, _, core, n = panel
    a = msprime_chromosome(1400, 200_000, 31).genotypes[:, 1200:].astype(np.float64)
    b = msprime_chromosome(1400, 200_000, 37).genotypes[:, 1200:].astype(np.float64)
    fa, fb = a.mean(1) / 2, b.mean(1) / 2
    ka = np.flatnonzero((np.minimum(fa, 1 - fa) > 0.05) & (a.std(1) > 0))[120:240]
    kb = np.flatnonzero((np.minimum(fb, 1 - fb) > 0.05) & (b.std(1) > 0))[:240]
    R = _corr(np.vstack([a[ka], b[kb]]))
    Gf, _, _, _, _ = _flank_rows(R, np.arange(120), n)
    r = Gf.shape[1]
    R2 = (Gf ** 2).sum(1)
    assert np.mean(R2) == pytest.approx(r / (n - 1), rel=0.15), (np.mean(R2), r / (n - 1))
    rho = mismatch.flank_reliability(Gf, n)
    assert np.mean(rho ** 2 * R2) < 0.1 * np.mean(R2), np.mean(rho ** 2 * R2) / np.mean(R2)
    # the region's own flanks: mostly kept
    Gf_own, _, _, _, _ = _flank_rows(panel[1], core, n)
    assert np.median(mismatch.flank_reliability(Gf_own, n)) > 0.8
    # the adjusted R^2 identity, and the torch path agrees
    assert np.allclose(rho, np.maximum(1 - (1 - R2) * (n - 1) / (n - 1 - r), 0) / R2)
    assert np.allclose(mismatch.flank_reliability(torch.as_tensor(Gf), n).numpy(), rho, rtol=1e-12)
    assert not mismatch.flank_reliability(Gf[:, :1].repeat(n, 1), n).any()      # r >= n - 1: nothing estimable


def test_calibrated_flank_rows_are_closer_to_the_truth(panel):
    """Against the 1,200-person 'truth' in the panel's basis, the calibrated flank rows of the 200-person panel
    have a smaller squared error than the rows as sampled (measured 34.4 against 35.3 when written)."""
    R_true, R_panel, core, n = panel
    Gf, U, lam, _, flank = _flank_rows(R_panel, core, n)
    G_true = R_true[np.ix_(flank, core)] @ U / np.sqrt(lam)
    rho = mismatch.flank_reliability(Gf, n)
    err_raw = ((Gf - G_true) ** 2).sum()
    err_cal = ((Gf * rho[:, None] - G_true) ** 2).sum()
    assert err_cal < 0.99 * err_raw, (err_cal, err_raw)


@pytest.mark.parametrize("p, n", [(100, 400), (300, 200)])
def test_noise_edge_bounds_a_null_correlation_spectrum(p, n):
    rng = np.random.default_rng(p)
    lam = np.linalg.eigvalsh(_corr(rng.normal(size=(p, n + 1))))
    lam = lam[lam > 1e-8]
    edge = mismatch.noise_edge(p, n)
    assert edge == pytest.approx((1 - math.sqrt(p / n)) ** 2)
    assert lam.min() > 0.8 * edge and lam.min() < 1.6 * edge     # the edge is where a null spectrum starts
    # and the shrinkage of a null spectrum is towards 1 (the truth): smaller spread than lam
    d = mismatch.shrinkage_ratio(lam, p, n)
    assert np.std(np.log(d * lam)) < 0.5 * np.std(np.log(lam))


def test_keep_threshold_has_a_floor_where_the_edge_vanishes():
    """A core as large as the panel (p = n): the Marchenko-Pastur edge is 0, the floor 1 / n keeps the
    unresolved directions out; for p / n = 0.3 the edge (0.20) decides."""
    assert mismatch.noise_edge(399, 399) == 0.0 and mismatch.keep_threshold(399, 399) == pytest.approx(1 / 399)
    assert mismatch.keep_threshold(150, 499) == pytest.approx((1 - math.sqrt(150 / 499)) ** 2)
    assert mismatch.keep_threshold(150, 499) == pytest.approx(0.2041, abs=1e-4)
    lam = np.concatenate([[1e-4, 1e-3], np.linspace(0.01, 3.0, 397)])      # rank n = 399: limited by the panel
    keep, d = mismatch.panel_correction(lam, 400, 400)
    assert keep[:3].tolist() == [False, False, True] and keep.all() == False and d.shape == (397,)  # noqa: E712
    keep, _ = mismatch.panel_correction(np.array([1e-5, 2e-5]), 400, 400)       # at least the largest
    assert keep.tolist() == [False, True]


def test_near_duplicate_variants_do_not_break_the_shrinkage():
    """A core of 620 variants from 500 people with duplicated and near-duplicate variants: rank 320 < n, and
    kept eigenvalues down to 1e-6. The Hilbert transform's closed form cancels catastrophically there (it
    gave d = 1e-14 and whitened statistics of 1e14 on the msprime simulation with 600-variant cores); the
    shrunk variances of the kept directions are near the true ones (2 and 3)."""
    rng = np.random.default_rng(8)
    base = rng.normal(size=(300, 500))
    X = np.concatenate([base, base, base[:20] + 1e-3 * rng.normal(size=(20, 500))])  # duplicates, near-duplicates
    lam = np.linalg.eigvalsh(_corr(X))
    lam = lam[lam > 1e-8 * lam.max()]
    assert lam.min() < 1e-5 and 300 < lam.size < 499
    assert mismatch.effective_p(600, lam.size, 499) == lam.size and mismatch.effective_p(600, 499, 499) == 600
    keep, d = mismatch.panel_correction(lam, 620, 500)
    t = d * lam[keep]              # true variances: 2 along duplicated pairs, 3 along the 20 triplets
    assert np.all(np.isfinite(t)) and keep.sum() >= 250
    assert 1.6 < np.median(t) < 2.4 and t.min() > 1.0 and t.max() < 4.0, (np.median(t), t.min(), t.max())
    assert lam[keep].min() >= mismatch.noise_edge(lam.size, 499)


def _factors(R, core, z):
    fac = factorise(R, core, rtol=1e-8)
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
    return fac, t(fac.G), t(whiten(fac.U, fac.lam, z)), t(fac.lam)


def _dense(phi, s2, R, core, z, n, shrunk_core=True, calibrated=True):
    """Dense float64 reference: the kept statistic x = U_keep^T z_(i) of the panel's R^[i,i] = V diag(lam) V^T, with
    the n x n covariance A = R*[i,+] diag(phi) R*[+,i] + s2 R_s projected on U_keep, where R_s = V diag(t) V^T is
    the shrunk core block (t = d lam on the kept directions, lam on the dropped ones: they are projected out) and
    R*[+,i] is the panel's R^[+,i] with its core rows replaced by R_s and its flank rows regression-calibrated,
    R*[flank,i] = diag(rho) R^[flank,i] U U^T with rho_j = max(0, 1 - r sigma_j^2 / ((n - 1) R2_j)), R2_j the R^2
    of flank variant j on the r kept core directions and sigma_j^2 = (1 - R2_j) (n - 1) / (n - 1 - r) (module
    docstring). shrunk_core False: the panel's core rows as they are (the model before the shrunk core);
    calibrated False: the flank rows as sampled."""
    Rt = torch.as_tensor(R)
    lam, V = np.linalg.eigh(R[np.ix_(core, core)])
    keep0 = lam > 1e-8 * lam.max()
    keep, d = mismatch.panel_correction(lam[keep0], len(core), n)
    t_all = lam.copy()
    t_all[np.flatnonzero(keep0)[keep]] *= d
    R_s = torch.as_tensor((V * t_all) @ V.T)
    R_star = Rt[:, core].clone()                            # m x n: R*[+,i]
    if shrunk_core:
        R_star[core] = R_s
    P = torch.as_tensor(V[:, np.flatnonzero(keep0)[keep]])
    if calibrated:
        flank = np.setdiff1d(np.arange(R.shape[0]), core)
        Pn, r, dof = P.numpy(), P.shape[1], n - 1
        R2 = ((R[np.ix_(flank, core)] @ Pn) ** 2 / lam[np.flatnonzero(keep0)[keep]]).sum(1)
        sigma2 = (1.0 - R2) * dof / (dof - r)
        rho = np.clip(1.0 - r * sigma2 / (dof * R2), 0.0, 1.0)
        R_star[flank] = torch.as_tensor(rho[:, None] * (R[np.ix_(flank, core)] @ Pn @ Pn.T))
    A = (R_star.T * phi) @ R_star + s2 * R_s
    Ap = P.T @ A @ P
    x = P.T @ torch.as_tensor(z)
    return 0.5 * (x @ torch.linalg.solve(Ap, x) + torch.linalg.slogdet(Ap)[1] + x.shape[0] * exact.LOG_2PI)


def _value_and_grads(f, phi0):
    phi = phi0.clone().requires_grad_(True)
    s2 = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    v = f(phi, s2)
    return (float(v.detach()), *torch.autograd.grad(v, (phi, s2)))


def test_corrected_likelihood_matches_dense_reference(panel):
    R_true, R_panel, core, n = panel
    rng = np.random.default_rng(5)
    z = rng.normal(size=len(core)) * 1.3
    fac, G, y, lam = _factors(R_panel, core, z)
    G2, y2, lam2 = mismatch.correct_panel(G, y, lam, torch.as_tensor(core), n)
    assert 0 < lam2.shape[0] < lam.shape[0]                 # some directions below the edge are dropped
    phi0 = torch.as_tensor(rng.lognormal(0, 1, R_panel.shape[0]) * 0.05)
    a, ga, sa = _value_and_grads(lambda ph, s: exact.nll(ph, s, G2, y2, lam2), phi0)
    b, gb, sb = _value_and_grads(lambda ph, s: _dense(ph, s, R_panel, core, z, n), phi0)
    assert a == pytest.approx(b, rel=1e-10)
    assert float((ga - gb).abs().max()) < 1e-8 * float(gb.abs().max())
    assert float(sa) == pytest.approx(float(sb), rel=1e-8)
    # the shrunk core block is a different model from the panel's core block as is (the earlier one)
    old, g_old, _ = _value_and_grads(lambda ph, s: _dense(ph, s, R_panel, core, z, n, shrunk_core=False), phi0)
    assert abs(old - a) > 1e-2 and float((g_old[core] - ga[core]).abs().max()) > 0.1 * float(ga.abs().max())
    # and so is the one with the flank rows as sampled (the model before their calibration)
    raw, g_raw, _ = _value_and_grads(lambda ph, s: _dense(ph, s, R_panel, core, z, n, calibrated=False), phi0)
    flank = np.setdiff1d(np.arange(R_panel.shape[0]), core)
    assert abs(raw - a) > 1e-2 and float((g_raw[flank] - ga[flank]).abs().max()) > 0.1 * float(ga[flank].abs().max())
    # in corrected coordinates: core rows U sqrt(t), flank rows the panel's G / sqrt(d), each times its rho in [0, 1]
    keep, d = mismatch.panel_correction(fac.lam, len(core), n)
    assert np.allclose(G2[core].numpy(), fac.U[:, keep] * np.sqrt(fac.lam[keep] * d), atol=1e-12)
    g = fac.G[np.ix_(flank, np.flatnonzero(keep))]
    rho = mismatch.flank_reliability(g, n)
    assert 0.0 <= rho.min() and rho.max() <= 1.0 and 0.5 < np.median(rho) < 1.0, rho
    assert np.allclose(G2[flank].numpy(), rho[:, None] * g / np.sqrt(d), rtol=1e-13)
    assert np.allclose(lam2.numpy(), fac.lam[keep] * d, rtol=1e-13)
    # numpy and torch inputs give the same arrays, and the inputs are not modified
    G_in = fac.G.copy()
    Gn, yn, ln = mismatch.correct_panel(fac.G, whiten(fac.U, fac.lam, z), fac.lam, core, n)
    assert np.array_equal(fac.G, G_in) and torch.equal(G, torch.as_tensor(G_in))
    assert np.allclose(Gn, G2.numpy(), rtol=1e-12) and np.allclose(ln, lam2.numpy(), rtol=1e-12)


def test_in_sample_ld_reduces_to_the_exact_solver(panel):
    """With the LD the statistics' own (correction off: `Mismatch()`, as for in-sample LD) the factors are the
    inputs; and the dense reference with d = 1 (no shrinkage) is `exact.nll` on the uncorrected factors: the shrunk
    core block U diag(lam) U^T is then the panel's own core block."""
    R_true, _, core, _ = panel
    rng = np.random.default_rng(6)
    z = rng.normal(size=len(core))
    fac, G, y, lam = _factors(R_true, core, z)
    phi0 = torch.as_tensor(rng.lognormal(0, 1, R_true.shape[0]) * 0.05)
    a, ga, sa = _value_and_grads(lambda ph, s: exact.nll(ph, s, *mismatch.regularise(
        G, y, lam, torch.as_tensor(fac.U), torch.as_tensor(core), Mismatch())), phi0)
    b, gb, sb = _value_and_grads(lambda ph, s: mismatch.nll_dense(ph, s, 0.0, torch.as_tensor(R_true),
                                                                 torch.as_tensor(core), torch.as_tensor(z)), phi0)
    assert a == pytest.approx(b, rel=1e-9) and float(sa) == pytest.approx(float(sb), rel=1e-8)
    assert float((ga - gb).abs().max()) < 1e-7 * float(gb.abs().max())


def test_no_correction_is_the_exact_solver_bit_for_bit(panel):
    _, R_panel, core, _ = panel
    z = np.random.default_rng(2).normal(size=len(core))
    fac, G, y, lam = _factors(R_panel, core, z)
    G2, y2, lam2 = mismatch.regularise(G, y, lam, torch.as_tensor(fac.U), torch.as_tensor(core), Mismatch())
    assert G2 is G and y2 is y and lam2 is lam
    assert not Mismatch() and Mismatch(0.0, 200) and Mismatch.from_record({"s2": 1.0}) == Mismatch()
    assert Mismatch.from_record({"lambda": 0.0, "panel_size": 500}) == Mismatch(0.0, 500)


def test_panel_correction_moves_s2_towards_one_on_an_out_of_sample_window(panel):
    """z of a GWAS of N = 2,000 with the 'truth' LD (h2 0.03 over the region's 360 variants: sum phi / n = 0.3),
    LD from the 200-person panel: without the correction the fitted s2 (at the true phi) is 4.1, with it 0.92
    (measured; the shrunk core block is in the signal term too, so less of the signal is left to s2)."""
    R_true, R_panel, core, n = panel
    rng = np.random.default_rng(9)
    m = R_true.shape[0]
    L = np.linalg.cholesky(R_true + 1e-6 * np.eye(m))
    Nn = 2000.0
    beta = rng.normal(size=m) * math.sqrt(0.03 / m)
    fits = {}
    for label, corr in (("none", False), ("panel", True)):
        s2s = []
        for rep in range(20):
            z = (math.sqrt(Nn) * R_true @ beta + L @ rng.normal(size=m))[core]
            _, G, y, lam = _factors(R_panel, core, z)
            if corr:
                G, y, lam = mismatch.correct_panel(G, y, lam, core, n)
            phi = torch.full((m,), Nn * 0.03 / m, dtype=torch.float64)
            grid = np.linspace(0.5, 8.0, 151)
            s2s.append(grid[np.argmin([float(exact.nll(phi, s, G, y, lam)) for s in grid])])
        fits[label] = float(np.mean(s2s))
    assert fits["none"] > 3.0, fits
    assert abs(fits["panel"] - 1) < 0.1 * abs(fits["none"] - 1), fits
