"""The streamed s2 fit (paper Eqn 5-6, App. C.1): per-window sufficient statistics of the constant prior
reproduce the exact likelihood and the all-window L-BFGS fit; the LD-mismatch fit on a seeded subset of windows
agrees with the fit on all of them."""
import math

import numpy as np
import pytest
import torch

from deepwas import likelihood
from deepwas.ld_factors import factorise, whiten
from deepwas.s2 import (choose_mismatch_windows, constant_prior_statistics, fit_constant_and_s2,
                        fit_constant_streamed, fit_mismatch, resolve_mismatch_mode, streamed_constant_nll)
from deepwas.window import make_window

ALPHA = 0.7
N = 50_000.0


def _windows(X, freq, m, n, stride, n_windows, z_all, name="w"):
    """Demo-like tiling: extended windows of m variants, cores of the middle n, stepping by `stride`."""
    out, aux = [], []
    for i in range(n_windows):
        s = i * stride
        Xw = X[s:s + m]
        R = Xw @ Xw.T / Xw.shape[1]
        R[np.diag_indices(m)] = 1.0
        core = np.arange((m - n) // 2, (m - n) // 2 + n)
        fac = factorise(R, core, rtol=1e-6)
        y = whiten(fac.U, fac.lam, z_all[s:s + m][core])
        factors = {"G": fac.G, "lam": fac.lam, "U": fac.U, "core": core, "freq": freq[s:s + m]}
        out.append(make_window(f"{name}{i}", factors, y, np.zeros((m, 3))))
        aux.append((torch.as_tensor(fac.U), torch.as_tensor(core)))
    return out, aux


@pytest.fixture(scope="module")
def demo_like(msprime_chromosome, torch_one_thread):
    """Six overlapping windows (m = 240, n = 80) of a 600-person msprime cohort; z = R beta + noise with
    beta_k ~ N(0, phi_k), phi = N e^c (p (1 - p))^0.7 summing to 2 per 240 variants (z units), s2 = 1.2."""
    chrom = msprime_chromosome(600, 300_000, 31)
    X = chrom.standardised()
    rng = np.random.default_rng(5)
    M = X.shape[0]
    pq = np.clip(chrom.freq * (1 - chrom.freq), 1e-12, None) ** ALPHA
    phi = 2.0 / 240 * pq / pq.mean()
    beta = rng.normal(size=M) * np.sqrt(phi)
    z = X @ (X.T @ beta) / X.shape[1] + math.sqrt(1.2) * X @ rng.normal(size=X.shape[1]) / math.sqrt(X.shape[1])
    assert M >= 240 + 5 * 80
    windows, aux = _windows(X, chrom.freq, 240, 80, 80, 6, z)
    c0 = math.log(0.3 / 240 / N) - math.log(pq.mean())      # the truth is log(2 / 240 / N) - log(mean)
    return windows, c0, aux


def _stats(windows):
    return [constant_prior_statistics(w.G.numpy().astype(np.float32) if i == 0 else w.G.numpy(), w.y.numpy(),
                                      w.lam.numpy(), w.inputs["freq"].numpy(), ALPHA, chunk=50)
            for i, w in enumerate(windows)]


def test_sufficient_statistics_give_the_exact_nll_and_gradient(demo_like):
    windows, c0, _ = demo_like
    stats = [constant_prior_statistics(w.G.numpy(), w.y.numpy(), w.lam.numpy(), w.inputs["freq"].numpy(), ALPHA,
                                       chunk=50) for w in windows]
    assert [s.rank for s in stats] == [w.rank for w in windows]
    for c, s2 in [(c0, 1.0), (c0 + 2.0, 0.7), (c0 - 3.0, 1.6)]:
        ct = torch.tensor(c, dtype=torch.float64, requires_grad=True)
        st = torch.tensor(s2, dtype=torch.float64, requires_grad=True)
        ref = sum(likelihood.exact.nll(N * torch.exp(ALPHA * torch.log((w.inputs["freq"] * (1 - w.inputs["freq"]))
                                                                        .clamp_min(1e-12)) + ct), st, w.G, w.y, w.lam)
                  for w in windows)
        g_ref = torch.autograd.grad(ref, [ct, st])
        ct2, st2 = ct.detach().clone().requires_grad_(True), st.detach().clone().requires_grad_(True)
        val = streamed_constant_nll(stats, N, ct2, st2)
        g = torch.autograd.grad(val, [ct2, st2])
        assert val.item() == pytest.approx(ref.item(), rel=1e-11)
        for a, b in zip(g, g_ref):
            assert a.item() == pytest.approx(b.item(), rel=1e-8, abs=1e-8 * abs(ref.item()))


def _exact_fit(windows, c0, tol=1e-10):
    """The all-window fit of `fit_constant_and_s2` (exact solver, every window factorised per evaluation),
    iterated to a gradient of `tol` (its own L-BFGS stops at a gradient of about 1e-4 here)."""
    c = torch.tensor(c0, dtype=torch.float64, requires_grad=True)
    log_s2 = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    logpq = [ALPHA * torch.log((w.inputs["freq"] * (1 - w.inputs["freq"])).clamp_min(1e-12)) for w in windows]
    opt = torch.optim.LBFGS([c, log_s2], max_iter=500, tolerance_grad=tol, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        total = sum(likelihood.exact.nll(N * torch.exp(lp + c), torch.exp(log_s2), w.G, w.y, w.lam)
                    for lp, w in zip(logpq, windows))
        total.backward()
        return total

    opt.step(closure)
    return math.exp(log_s2.item()), c.item()


def test_streamed_fit_equals_the_all_window_fit(demo_like):
    windows, c0, _ = demo_like
    s2, c, nll = fit_constant_streamed(_stats(windows), N, c0)
    s2_ref, c_ref = _exact_fit(windows, c0)
    assert abs(s2 - s2_ref) < 1e-6 * s2_ref and abs(c - c_ref) < 1e-6 * abs(c_ref)
    # the workflow's previous fit agrees to its own stopping tolerance
    s2_old, c_old = fit_constant_and_s2(windows, N, ALPHA, c0)
    assert abs(s2 - s2_old) < 1e-5 * s2_old and abs(c - c_old) < 1e-5 * abs(c_old)
    assert 0.9 < s2 < 1.5                                      # simulated s2 = 1.2 (plus the far windows' h2)
    assert abs(c - (c0 + math.log(2.0 / 0.3))) < 1.5           # the signal is found (six windows: within e^1.5)
    # the window whose G was stored in float32 (as ld.factor_dtype float32 files are) changes nothing at 1e-6
    stats64 = [constant_prior_statistics(w.G.numpy(), w.y.numpy(), w.lam.numpy(), w.inputs["freq"].numpy(), ALPHA)
               for w in windows]
    s2_64, c_64, nll_64 = fit_constant_streamed(stats64, N, c0)
    assert abs(s2_64 - s2) < 1e-6 * s2 and abs(c_64 - c) < 1e-6 * abs(c)
    assert nll_64 == pytest.approx(streamed_constant_nll(stats64, N, c_64, s2_64).item(), rel=1e-14)


def test_choose_mismatch_windows_is_seeded_and_ordered():
    names = [f"chr1_{i}" for i in range(30)]
    a = choose_mismatch_windows(names, 8, 0)
    assert a == choose_mismatch_windows(names, 8, 0) and len(set(a)) == 8
    assert a == sorted(a, key=names.index)                        # genomic order kept
    assert a != choose_mismatch_windows(names, 8, 1)
    assert choose_mismatch_windows(names, 40, 0) == names


@pytest.fixture(scope="module")
def panel_like(msprime_chromosome, torch_one_thread):
    """Twelve overlapping windows (m = 160, n = 60) with LD from a panel of 150 people and z of 450 others."""
    chrom = msprime_chromosome(600, 600_000, 41)
    G = chrom.genotypes.astype(np.float64)
    rng = np.random.default_rng(2)
    Xp = G[:, :150]
    keep = Xp.std(1) > 0
    G, freq = G[keep], chrom.freq[keep]
    Xp = (G[:, :150] - G[:, :150].mean(1, keepdims=True)) / G[:, :150].std(1, keepdims=True)
    Xo = (G[:, 150:] - G[:, 150:].mean(1, keepdims=True)) / np.maximum(G[:, 150:].std(1, keepdims=True), 1e-12)
    z = Xo @ rng.normal(size=450) / math.sqrt(450)
    assert G.shape[0] >= 160 + 11 * 60
    windows, aux = _windows(Xp * math.sqrt(150 / Xp.shape[1]), freq, 160, 60, 60, 12, z)
    c0 = math.log(0.05 / 160 / N) - math.log(np.mean(np.clip(freq * (1 - freq), 1e-12, None) ** ALPHA))
    return windows, c0, aux


def test_mismatch_fit_on_a_window_subset_agrees_with_all_windows(panel_like):
    """Panel LD (R from 150 people, z of 450 others): lambda, s2 and c of `fit_mismatch` on 6 of 12 windows
    (seeded subset) are those of all 12 windows within the sampling error of half the data."""
    windows, c0, aux = panel_like
    full = fit_mismatch(windows, aux, N, ALPHA, c0, mode="lambda")
    names = choose_mismatch_windows([w.name for w in windows], 6, 0)
    pick = [i for i, w in enumerate(windows) if w.name in names]
    sub = fit_mismatch([windows[i] for i in pick], [aux[i] for i in pick], N, ALPHA, c0, mode="lambda")
    assert full["lambda"] > 0.01 and sub["lambda"] > 0.01            # both find the mismatch, significantly
    assert sub["lambda"] == pytest.approx(full["lambda"], rel=0.35)
    assert sub["s2"] == pytest.approx(full["s2"], rel=0.1)


@pytest.mark.parametrize("case, panel_size", [("panel_like", 150), ("demo_like", 600)])
def test_panel_mode_is_the_exact_fit_on_the_corrected_windows(case, panel_size, request):
    """fit_mismatch(mode='panel') (the rule's streamed fit, `fit_panel`) is the maximum of the exact likelihood
    of the finite-panel-corrected windows held in memory: s2 and c within 1e-6, the NLL within 1e-10. The
    in-memory fit that it replaces (`fit_constant_and_s2` on the corrected windows, L-BFGS at its default
    tolerances) stopped 1.2-1.6e-6 (s2) and 1e-6-5e-6 (c) away, at an NLL higher by 5e-11-5e-10 (measured)."""
    from deepwas.likelihood.mismatch import correct_panel
    from deepwas.window import WindowData

    windows, c0, aux = request.getfixturevalue(case)
    fit = fit_mismatch(windows, aux, N, ALPHA, c0, mode="panel", panel_size=panel_size)
    corrected = []
    for w, (_, core) in zip(windows, aux):
        G, y, lam = correct_panel(w.G, w.y, w.lam, core, panel_size)
        corrected.append(WindowData(w.name, G, lam, y, w.inputs, w.n_core))
    assert fit["panel_size"] == panel_size and fit["lambda"] == 0.0
    assert fit["kept_directions"] == sum(w.rank for w in corrected) < fit["directions"] == sum(w.rank for w in windows)
    s2_ref, c_ref = _exact_fit(corrected, c0)
    assert abs(fit["s2"] - s2_ref) < 1e-6 * s2_ref and abs(fit["init_log_scale"] - c_ref) < 1e-6 * abs(c_ref)
    with torch.no_grad():
        ref = sum(likelihood.exact.nll(N * torch.exp(ALPHA * torch.log((w.inputs["freq"] * (1 - w.inputs["freq"]))
                                                                       .clamp_min(1e-12)) + fit["init_log_scale"]),
                                       fit["s2"], w.G, w.y, w.lam) for w in corrected)
    assert fit["nll"] == pytest.approx(float(ref), rel=1e-10)
    s2_old, c_old = fit_constant_and_s2(corrected, N, ALPHA, c0)
    assert abs(fit["s2"] - s2_old) < 1e-5 * s2_old and abs(fit["init_log_scale"] - c_old) < 1e-5 * abs(c_old)
    # the uncorrected fit beside it is that of mode 'none'
    none = fit_mismatch(windows, aux, N, ALPHA, c0, mode="none")
    assert (fit["s2_lambda0"], fit["nll_lambda0"]) == (none["s2"], none["nll"])


@pytest.mark.parametrize("setting, panel_size, mode", [
    ("auto", 0, "none"), ("auto", 500, "panel"), ("none", 500, "none"), ("panel", 500, "panel"),
    ("lambda", 0, "lambda"), ("lambda", 500, "lambda"), (0.0, 500, "none"), (0, 0, "none"), (None, 500, "none"),
    (0.05, 0, 0.05), (0.05, 500, 0.05)])
def test_resolve_mismatch_mode(setting, panel_size, mode):
    assert resolve_mismatch_mode(setting, panel_size) == mode


@pytest.mark.parametrize("setting, panel_size, match", [
    ("panel", 0, "needs the LD panel's size"), ("fit", 500, "use auto, none, panel, lambda"),
    (1.0, 500, r"must be in \[0, 1\)"), (-0.1, 0, r"must be in \[0, 1\)")])
def test_bad_mismatch_settings_stop_both_fits_before_any_work(setting, panel_size, match, demo_like):
    """fit_mismatch and the rule's estimate_trait_s2 read likelihood.mismatch through `resolve_mismatch_mode`: a
    bad setting stops them with the same message, before any window or manifest is read."""
    from deepwas.s2 import estimate_trait_s2

    windows, c0, aux = demo_like
    with pytest.raises(ValueError, match=match):
        fit_mismatch(windows, aux, N, ALPHA, c0, mode=setting, panel_size=panel_size)
    with pytest.raises(ValueError, match=match):
        estimate_trait_s2([("/nonexistent", "/nonexistent.tsv", "/nonexistent.npz")], ["/nonexistent.tsv"], None,
                          ALPHA, "/nonexistent/s2.json", mismatch=setting, panel_size=panel_size)


def test_estimate_trait_s2_streams_the_windows_and_fits_lambda_on_a_subset(demo_like, tmp_path):
    """The rule function on factor and statistics files (formats.factors / formats.whitened): s2 and c are the
    streamed all-window fit; with likelihood.mismatch lambda the lambda fit runs on the seeded subset of
    s2.mismatch_windows windows, and in-sample LD keeps lambda = 0 with the all-window s2 (as with none)."""
    import json

    from deepwas.formats.factors import save_factors, write_manifest
    from deepwas.formats.whitened import write_whitened
    from deepwas.ld_factors import WindowFactors
    from deepwas.s2 import estimate_trait_s2

    windows, c0, aux = demo_like
    fdir = tmp_path / "chr1"
    fdir.mkdir()
    rows, stats = [], {}
    for i, w in enumerate(windows):
        m, core = w.m, np.arange((240 - 80) // 2, (240 - 80) // 2 + 80)
        fac = WindowFactors(name=w.name, G=w.G.numpy(), lam=w.lam.numpy(), U=aux[i][0].numpy(), core=core,
                            ldscore=np.ones(m))
        keys = np.array([f"1:{1000 * i + k}:A:G" for k in range(m)])
        save_factors(fdir / f"{w.name}.npz", fac, np.arange(m), keys, w.inputs["freq"].numpy())
        rows.append({"window": w.name, "status": "ok", "n_core": 80, "n_extended": m, "rank": w.rank})
        stats[w.name] = {"y": w.y.numpy(), "z2": np.ones(80), "ldscore": np.full(80, 20.0), "n": np.full(80, N)}
    write_manifest(tmp_path / "chr1.manifest.tsv", rows)
    write_whitened(tmp_path / "chr1.npz", stats)
    inputs = [(str(fdir), str(tmp_path / "chr1.manifest.tsv"), str(tmp_path / "chr1.npz"))]
    res = {}
    for mode in ("none", "lambda"):
        out = tmp_path / f"s2_{mode}.json"
        estimate_trait_s2(inputs, [inputs[0][1]], None, ALPHA, str(out), trait="t", accept_outside=True,
                          mismatch=mode, mismatch_windows=3, mismatch_seed=0)
        res[mode] = json.loads(out.read_text())
    none, auto = res["none"], res["lambda"]
    assert none["n_windows"] == 6 and none["lambda"] == 0.0
    s2_ref, c_ref = _exact_fit(windows, none["init_log_scale"] + 1.0)
    assert abs(none["s2"] - s2_ref) < 1e-6 * s2_ref and abs(none["init_log_scale"] - c_ref) < 1e-6 * abs(c_ref)
    assert auto["mismatch"]["windows"] == choose_mismatch_windows([w.name for w in windows], 3, 0)
    assert auto["mismatch"]["n_windows"] == 3 and len(auto["mismatch"]["lambda_profile"]) == 9
    assert auto["lambda"] == 0.0 and auto["s2"] == none["s2"] and auto["init_log_scale"] == none["init_log_scale"]
