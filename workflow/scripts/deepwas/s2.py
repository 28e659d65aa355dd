"""The residual variance s2 of the per-window likelihood (paper Eqn 2; App. A.4 and A.5).

For one window's z the genetic effects of all other windows act as noise: with y standardised,
Cov(z_w) = N R F R + (sigma^2 + h2_rest) R, so the s2 of the per-window likelihood is 1 - h2_window
(about 1), not 1 - h2_SNP. Two estimates:

- maximum likelihood, jointly with a constant prior, over the training windows (exact likelihood, L-BFGS):
  the value the workflow uses unless the trait sheet gives one; `fit_constant_and_s2` over windows in
  memory, `fit_constant_streamed` over their sufficient statistics (below; the rule's path);
- `estimate_s2`: the intercept of LD score regression (`ldsr.ldsr_intercept`), E[z_m^2] = N h2 l_m / M + s2,
  recorded beside it as a cross-check.

LD that is not the statistics' own (a reference panel of n people) is corrected by default with the
finite-panel correction of `likelihood.mismatch` (`correct_panel`: the core block of the panel's R, in the
residual and the signal term, replaced by its Ledoit-Wolf shrinkage estimate U diag(t) U^T, the flank rows of
the signal term regression-calibrated for the panel's sampling noise, and directions below the Marchenko-Pastur
lower edge or 1 / n dropped; computed from n and the window's LD, nothing fitted), after
which s2 and the constant prior are fitted as for in-sample LD, streamed like them (`panel_statistics`,
`fit_panel`; `resolve_mismatch_mode` reads the setting). Alternatively (`likelihood.mismatch:
lambda`) it is modelled by R~ = (1 - l) R + l I (SuSiE-RSS's lambda). `fit_mismatch` then estimates l by
maximum likelihood jointly with s2
and the constant prior: the profile likelihood over a log grid of l (each point an L-BFGS fit of (c, s2)),
refined jointly from the best grid point. l is then chosen by a likelihood-ratio test against l = 0: with
D = 2 [NLL(0) - NLL(l^)], and l = 0 on the boundary of [0, 1), D is asymptotically 1/2 chi2_0 + 1/2 chi2_1
under l = 0 (Self and Liang 1987), so l^ is used when D > 9.55 (p < 0.001) and otherwise exactly l = 0, with
s2 and c from the very fit the workflow does without the mismatch model (in-sample LD reproduces today's
numbers). The windows' likelihoods are multiplied as in the paper (a composite likelihood across windows
whose extended sets overlap), so the test is approximate; the threshold is deliberately strict.

At UK Biobank size (about 2,300 training windows, G of 13,000 x 4,700 per window: about 0.5 GB each in
float64) the windows do not fit in memory together, and an L-BFGS over them would factorise every window at
every evaluation. For the constant prior the fit does not need either: with phi_j = N e^c w_j,
w_j = (p_j (1 - p_j))^alpha (Eqn 6 with NN = c, alpha fixed), one window's C = s2 I + N e^c G^T W G (App. C.1,
W = diag(w)); with the eigendecomposition G^T W G = V diag(mu) V^T and t = (V^T y)^2,

    NLL_i(c, s2) = 1/2 sum_k [ t_k / (N e^c mu_k + s2) + log(N e^c mu_k + s2) ] + 1/2 [ sum(log lam) + r log(2 pi) ]

exactly. `constant_prior_statistics` reduces one window to (mu, t) (one m r^2 product and one r x r
eigendecomposition, once), `estimate_trait_s2` streams the windows one at a time into these r-vectors and
`fit_constant_streamed` fits (c, s2) on all of them at the cost of vector operations. The mismatch model
has no such reduction in (c, s2, l) jointly: `fit_mismatch` runs on a seeded random subset of the training
windows (`s2.mismatch_windows`, `choose_mismatch_windows`); when it keeps l = 0, s2 and c are those of the
all-window streamed fit.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from . import likelihood
from .likelihood import mismatch as mm_lik
from .formats.factors import ok_windows, read_manifest
from .io import write_json
from .ldsr import ldsr_intercept
from .priors import init_log_scale
from .sources import iter_windows, trait_sample_size
from .window import WindowData, make_window

log = logging.getLogger("deepwas.s2")


def fit_constant_and_s2(windows: list[WindowData], N: float, alpha: float, init_log_scale: float,
                        s2_init: float = 1.0, max_iter: int = 100) -> tuple[float, float]:
    """Maximum-likelihood s2 and constant prior scale c over the given windows (exact likelihood, L-BFGS).

    s2 is the per-window residual variance: for one window the genetic effects elsewhere act as noise,
    so it is about 1 - h2_window, not 1 - h2_SNP (see the module docstring). Returns (s2, c).
    """
    c = torch.tensor(float(init_log_scale), dtype=torch.float64, requires_grad=True)
    log_s2 = torch.tensor(float(np.log(s2_init)), dtype=torch.float64, requires_grad=True)
    logpq = [alpha * torch.log((w.inputs["freq"] * (1 - w.inputs["freq"])).clamp_min(1e-12)) for w in windows]
    opt = torch.optim.LBFGS([c, log_s2], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        s2 = torch.exp(log_s2)
        total = sum(likelihood.exact.nll(N * torch.exp(lp + c), s2, w.G, w.y, w.lam) for lp, w in zip(logpq, windows))
        total.backward()
        return total

    opt.step(closure)
    return float(torch.exp(log_s2.detach())), float(c.detach())


LR_THRESHOLD = 9.55        # 2 x NLL gain; p = 0.001 under 1/2 chi2_0 + 1/2 chi2_1 (l = 0 on the boundary)
MISMATCH_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)


def _constant_nll(windows, aux, logpq, N, c, s2, mm):
    if aux is None or (not torch.is_tensor(mm) and mm == 0.0):
        return sum(likelihood.exact.nll(N * torch.exp(lp + c), s2, w.G, w.y, w.lam) for lp, w in zip(logpq, windows))
    return sum(mm_lik.nll(N * torch.exp(lp + c), s2, mm, w.G, w.y, w.lam, U, core)
               for lp, w, (U, core) in zip(logpq, windows, aux))


def _fit(windows, aux, N, alpha, c0, s2_init, mm, fit_mm=False, max_iter=100):
    """L-BFGS of (c, log s2) at mismatch `mm` (and log mm too when `fit_mm`). Returns (nll, s2, c, mm)."""
    c = torch.tensor(float(c0), dtype=torch.float64, requires_grad=True)
    log_s2 = torch.tensor(float(np.log(s2_init)), dtype=torch.float64, requires_grad=True)
    params = [c, log_s2]
    if fit_mm:
        log_mm = torch.tensor(float(np.log(mm)), dtype=torch.float64, requires_grad=True)
        params.append(log_mm)
    logpq = [alpha * torch.log((w.inputs["freq"] * (1 - w.inputs["freq"])).clamp_min(1e-12)) for w in windows]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        mm_now = torch.exp(log_mm).clamp(max=0.95) if fit_mm else mm
        total = _constant_nll(windows, aux, logpq, N, c, torch.exp(log_s2), mm_now)
        total.backward()
        return total

    opt.step(closure)
    mm_out = float(torch.exp(log_mm.detach()).clamp(max=0.95)) if fit_mm else float(mm)
    with torch.no_grad():
        value = float(_constant_nll(windows, aux, logpq, N, c, torch.exp(log_s2), mm_out))
    return value, float(torch.exp(log_s2.detach())), float(c.detach()), mm_out


S2_PANEL_WARN = 1.5   # panel-corrected s2 above this: the panel does not describe the statistics' LD


def _report_panel(trait, s2, s2_uncorrected, panel_size, kept, total):
    """Log the finite-panel correction's outcome; warn when the corrected s2 says the panel does not fit."""
    log.info("%s: finite-panel correction (panel of %d people): %d of %d whitened directions kept, s2 = %.4g "
             "(without the correction %.4g)", trait, panel_size, kept, total, s2, s2_uncorrected)
    if s2 > S2_PANEL_WARN:
        log.warning("%s: the LD panel does not match the statistics: s2 = %.4g after the finite-panel correction "
                    "for a panel of %d people (%.4g without it; about 1 expected). A panel of another ancestry, "
                    "statistics on another build or strand, or a wrong N: the prior's scale (h2) is biased "
                    "downwards, read the results with care.", trait, s2, panel_size, s2_uncorrected)


MISMATCH_MODES = ("auto", "none", "panel", "lambda")


def resolve_mismatch_mode(setting, panel_size: int = 0):
    """The mismatch model that `likelihood.mismatch` (`setting`) selects for LD from a panel of `panel_size`
    people (0: the statistics' own LD, or a panel of unknown size). 'auto' is 'panel' (the finite-panel
    correction) when the panel size is known, i.e. LD from a reference panel (ld.source plink or local), else
    'none'; a lambda of 0 (or None) is 'none'. Returns 'none', 'panel', 'lambda' or a lambda in (0, 1)."""
    if setting is None:
        return "none"
    if isinstance(setting, str):
        if setting not in MISMATCH_MODES:
            raise ValueError(f"likelihood.mismatch = {setting!r}: use auto, none, panel, lambda or a number in [0, 1)")
        if setting == "auto":
            return "panel" if panel_size else "none"
        if setting == "panel" and not panel_size:
            raise ValueError("likelihood.mismatch: panel needs the LD panel's size (ld.panel_size, or ld.source: "
                             "plink)")
        return setting
    mm = float(setting)
    if not 0.0 <= mm < 1.0:
        raise ValueError(f"likelihood.mismatch = {setting}: the mismatch lambda must be in [0, 1), or auto / none")
    return "none" if mm == 0.0 else mm


def fit_mismatch(windows: list[WindowData], aux: list[tuple[torch.Tensor, torch.Tensor]], N: float, alpha: float,
                 init_log_scale: float, mode="auto", s2_init: float = 1.0, trait: str = "trait",
                 panel_size: int = 0) -> dict:
    """s2 and the constant prior scale c with LD that may not be the statistics' own (module docstring).

    aux: per window (U, core) of its factors ('lambda' uses both, 'panel' the core). mode: the config's
    likelihood.mismatch, read by `resolve_mismatch_mode`: 'auto' ('panel' when `panel_size` > 0, LD from a
    reference panel of that many people, else 'none'), 'panel' (the finite-panel correction, then (s2, c) by
    `fit_panel`: the streamed fit of the rule), 'lambda' (l of R~ = (1 - l) R + l I by profile + refine +
    likelihood-ratio choice), 'none' (l = 0: the fit of `fit_constant_and_s2`), or a number (l fixed).
    Returns a dict with the chosen 'lambda', 's2', 'init_log_scale', 'panel_size' (0: no panel correction),
    the uncorrected fit ('s2_lambda0', ...), and for 'lambda' the fitted 'lambda_ml', the profile
    [{lambda, nll, s2, init_log_scale}], the NLL gain over l = 0 and the likelihood-ratio statistic.
    """
    mode = resolve_mismatch_mode(mode, panel_size)
    s2_0, c_0 = fit_constant_and_s2(windows, N, alpha, init_log_scale, s2_init)
    logpq = [alpha * torch.log((w.inputs["freq"] * (1 - w.inputs["freq"])).clamp_min(1e-12)) for w in windows]
    with torch.no_grad():
        nll_0 = float(_constant_nll(windows, None, logpq, N, torch.tensor(c_0, dtype=torch.float64), s2_0, 0.0))
    base = {"lambda": 0.0, "s2": s2_0, "init_log_scale": c_0, "nll": nll_0, "s2_lambda0": s2_0,
            "init_log_scale_lambda0": c_0, "nll_lambda0": nll_0}
    if mode == "none":
        return {**base, "panel_size": 0, "lambda_source": "none (likelihood.mismatch: none)"}
    if mode == "panel":
        pstats = [panel_statistics(w.G, w.y, w.lam, core, w.inputs["freq"], alpha, panel_size)
                  for w, (_, core) in zip(windows, aux)]
        return {**base, **fit_panel(pstats, N, init_log_scale, panel_size, sum(w.rank for w in windows), s2_0, trait,
                                    s2_init)}
    if not isinstance(mode, str):
        mm = mode
        nll_mm, s2, c, _ = _fit(windows, aux, N, alpha, c_0, s2_0, mm)
        return {**base, "lambda": mm, "s2": s2, "init_log_scale": c, "nll": nll_mm, "panel_size": 0,
                "lambda_source": "config (likelihood.mismatch)", "nll_gain": nll_0 - nll_mm}
    profile = [{"lambda": 0.0, "nll": nll_0, "s2": s2_0, "init_log_scale": c_0}]
    for mm in MISMATCH_GRID:     # each from the starting point, not the last fit: a collapsed c (h2 -> 0) stays
        v, s2_w, c_w, _ = _fit(windows, aux, N, alpha, init_log_scale, s2_init, mm)
        profile.append({"lambda": mm, "nll": v, "s2": s2_w, "init_log_scale": c_w})
    best = min(profile, key=lambda p: p["nll"])
    if best["lambda"] > 0:
        v, s2, c, mm = _fit(windows, aux, N, alpha, best["init_log_scale"], best["s2"], best["lambda"], fit_mm=True)
        fitted = {"lambda": mm, "nll": v, "s2": s2, "init_log_scale": c} if v <= best["nll"] else best
    else:
        fitted = best
    gain = nll_0 - fitted["nll"]
    lr = 2.0 * gain
    use = lr > LR_THRESHOLD
    out = {**base, "panel_size": 0, "lambda_ml": fitted["lambda"], "nll_gain": gain, "lr_statistic": lr,
           "lr_threshold": LR_THRESHOLD,
           "lambda_profile": profile,
           "lambda_source": ("maximum likelihood (likelihood-ratio test vs lambda = 0: significant)" if use else
                             "0: maximum-likelihood lambda not significantly better than 0 (likelihood-ratio test)")}
    if use:
        out.update(**{k: fitted[k] for k in ("lambda", "s2", "init_log_scale", "nll")})
        log.warning("%s: the LD does not match the statistics: mismatch lambda = %.4g of R~ = (1 - lambda) R + lambda I "
                    "(maximum likelihood with s2 = %.4g; NLL gain %.1f over lambda = 0 on %d training windows, "
                    "likelihood-ratio statistic %.1f > %.2f). Expected with reference-panel LD; training and evaluation "
                    "use R~. A lambda above about 0.05 or an s2 far from 1 means a panel of another ancestry, a small "
                    "panel or statistics that do not belong to the LD: the prior's scale (h2) is then biased "
                    "downwards, read the results with care.", trait, out["lambda"], out["s2"], gain, len(windows),
                    lr, LR_THRESHOLD)
    return out


def estimate_s2(z2: np.ndarray, ldscore: np.ndarray, N: float, M: int, iterations: int = 3) -> tuple[float, float]:
    """Per-window residual variance s2 as the intercept of LD score regression (App. A.4 weights,
    re-estimated `iterations` times; see `ldsr.ldsr_intercept`). Returns (s2, h2)."""
    return ldsr_intercept(z2, ldscore, N, M, iterations)


@dataclass
class ConstantPriorStatistics:
    """One window reduced for the constant prior (module docstring): the eigenvalues `mu` of G^T W G,
    t = (V^T y)^2 and the constant sum(log lam) + r log(2 pi) of its NLL."""

    mu: np.ndarray
    t: np.ndarray
    const: float

    @property
    def rank(self) -> int:
        return int(self.mu.shape[0])


def constant_prior_statistics(G: np.ndarray, y: np.ndarray, lam: np.ndarray, freq: np.ndarray, alpha: float,
                              chunk: int = 4096) -> ConstantPriorStatistics:
    """Reduce one window to the sufficient statistics of its constant-prior NLL (paper Eqn 5-6, App. C.1).

    G (m x r, any float dtype: read in float64 row blocks of `chunk`, so no second m x r copy is held), y (r,)
    whitened statistics, lam (r,) kept eigenvalues of R[i,i], freq (m,) effect-allele frequencies of (i)+.
    W = diag((p (1 - p))^alpha) with p (1 - p) floored at 1e-12, as in `fit_constant_and_s2`. Cost: m r^2 for
    G^T W G and one r x r eigendecomposition; memory: two r x r float64 matrices besides G.
    """
    p = np.asarray(freq, dtype=np.float64)
    w = np.exp(alpha * np.log(np.clip(p * (1 - p), 1e-12, None)))
    r = G.shape[1]
    A = np.zeros((r, r), dtype=np.float64)
    for a in range(0, G.shape[0], chunk):
        Gb = np.asarray(G[a:a + chunk], dtype=np.float64)
        A += Gb.T @ (w[a:a + chunk, None] * Gb)
    mu, V = np.linalg.eigh(A)
    del A
    t = (V.T @ np.asarray(y, dtype=np.float64)) ** 2
    lam = np.asarray(lam, dtype=np.float64)
    # G^T W G is PSD: eigenvalues below 0 are rounding (of the order 1e-16 mu_max); C stays s2-definite
    return ConstantPriorStatistics(np.clip(mu, 0.0, None), t, float(np.log(lam).sum() + r * likelihood.exact.LOG_2PI))


def streamed_constant_nll(stats: list[ConstantPriorStatistics], N: float, c, s2) -> torch.Tensor:
    """Sum over windows of the exact constant-prior NLL_i(c, s2) from their `constant_prior_statistics`
    (equal to `likelihood.exact.nll` with phi = N e^c (p (1 - p))^alpha); differentiable in c and s2."""
    mu = torch.as_tensor(np.concatenate([st.mu for st in stats]), dtype=torch.float64)
    t = torch.as_tensor(np.concatenate([st.t for st in stats]), dtype=torch.float64)
    const = sum(st.const for st in stats)
    return _vector_nll(mu, t, const, N, c, s2)


def _vector_nll(mu, t, const, N, c, s2):
    c = c if torch.is_tensor(c) else torch.tensor(float(c), dtype=torch.float64)
    s2 = s2 if torch.is_tensor(s2) else torch.tensor(float(s2), dtype=torch.float64)
    d = N * torch.exp(c) * mu + s2
    return 0.5 * ((t / d).sum() + torch.log(d).sum() + const)


def fit_constant_streamed(stats: list[ConstantPriorStatistics], N: float, init_log_scale: float,
                          s2_init: float = 1.0, max_iter: int = 500) -> tuple[float, float, float]:
    """Maximum-likelihood (s2, c) of the constant prior over all windows from their sufficient statistics
    (the fit of `fit_constant_and_s2`, without holding or factorising any window). L-BFGS in (c, log s2)
    to a gradient of 1e-10; each evaluation costs O(sum of ranks). Returns (s2, c, nll)."""
    mu = torch.as_tensor(np.concatenate([st.mu for st in stats]), dtype=torch.float64)
    t = torch.as_tensor(np.concatenate([st.t for st in stats]), dtype=torch.float64)
    const = sum(st.const for st in stats)
    c = torch.tensor(float(init_log_scale), dtype=torch.float64, requires_grad=True)
    log_s2 = torch.tensor(float(np.log(s2_init)), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([c, log_s2], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        total = _vector_nll(mu, t, const, N, c, torch.exp(log_s2))
        total.backward()
        return total

    opt.step(closure)
    with torch.no_grad():
        value = float(_vector_nll(mu, t, const, N, c, torch.exp(log_s2)))
    return math.exp(log_s2.item()), c.item(), value


def panel_statistics(G, y, lam, core, freq, alpha: float, panel_size: int) -> ConstantPriorStatistics:
    """One window's finite-panel correction (`likelihood.mismatch.correct_panel`, a fixed transform of its
    factors; `core`: the core's indices into (i)+) reduced to the `constant_prior_statistics` of the corrected
    window (numpy or CPU torch arrays)."""
    Gc, yc, lc = mm_lik.correct_panel(G, y, lam, core, panel_size)
    return constant_prior_statistics(Gc, yc, lc, freq, alpha)


def fit_panel(pstats: list[ConstantPriorStatistics], N: float, init_log_scale: float, panel_size: int,
              directions: int, s2_uncorrected: float, trait: str = "trait", s2_init: float = 1.0) -> dict:
    """(s2, c) by maximum likelihood on finite-panel-corrected windows (`panel_statistics` of each, fitted by
    `fit_constant_streamed`), logged with a warning when s2 says the panel does not fit (`S2_PANEL_WARN`).
    `directions`: the whitened directions before the correction; `s2_uncorrected`: the fit without it.
    Returns the record's 'lambda' (0), 's2', 'init_log_scale', 'nll', 'panel_size', 'kept_directions',
    'directions' and 'lambda_source'."""
    s2, c, value = fit_constant_streamed(pstats, N, init_log_scale, s2_init)
    kept = sum(st.rank for st in pstats)
    _report_panel(trait, s2, s2_uncorrected, panel_size, kept, directions)
    return {"lambda": 0.0, "s2": s2, "init_log_scale": c, "nll": value, "panel_size": int(panel_size),
            "kept_directions": kept, "directions": int(directions),
            "lambda_source": f"none: finite-panel correction for a panel of {int(panel_size)} people"}


def choose_mismatch_windows(names: list[str], k: int, seed: int) -> list[str]:
    """The seeded random subset of `k` training windows on which `fit_mismatch` runs (all when k >= their
    number), in the given (genomic) order. Depends only on the window names, k and the seed."""
    names = list(names)
    if k >= len(names):
        return names
    pick = np.sort(np.random.default_rng(seed).choice(len(names), size=k, replace=False))
    return [names[i] for i in pick]


def estimate_trait_s2(chrom_inputs, manifests, s2_sheet, alpha, out, s2_range=(0.5, 2.0), accept_outside=False,
                      trait="trait", mismatch="auto", mismatch_windows: int = 16, mismatch_seed: int = 0,
                      panel_size: int = 0) -> dict:
    """The estimate_s2 rule: the trait's per-window residual variance s2, sample size N and the starting
    scale of every prior. s2 is fitted by maximum likelihood jointly with a constant prior on all training
    windows, streamed one window at a time into their sufficient statistics (`constant_prior_statistics`,
    `fit_constant_streamed`: memory of one window); `s2_sheet`, the trait sheet's value, wins when given. The
    LD-score-regression intercept is recorded beside it as a cross-check. `manifests`: the factor manifests of
    all chromosomes (M). A fitted s2 outside `s2_range` stops the run with an explanation unless
    `accept_outside`. Writes and returns the JSON record.

    `mismatch` (config likelihood.mismatch): 'auto' ('panel' when `panel_size` > 0, the people of an LD
    panel that is not the statistics' own; else 'none'), 'none', 'panel' (the finite-panel correction
    `likelihood.mismatch.correct_panel` of every window, a fixed transform, so still streamed), 'lambda' or a
    fixed lambda of R~ = (1 - l) R + l I (`fit_mismatch`, on `mismatch_windows` training windows drawn with
    `mismatch_seed`, `choose_mismatch_windows`; they are held in memory together); read by
    `resolve_mismatch_mode`. The chosen 'lambda' and
    'panel_size' are recorded and used by training and evaluation (`likelihood.mismatch.Mismatch.from_record`).
    'h2_constant' is the fitted constant prior's heritability M mean_m (p_m(1 - p_m))^alpha e^c (App. A.5)."""
    mode = resolve_mismatch_mode(mismatch, panel_size)
    # M: every variant that has LD and statistics lies in exactly one core
    M = int(sum(read_manifest(m)["n_core"].sum() for m in manifests))
    use_mm = mode not in ("none", "panel")
    names = [n for n, *_ in ok_windows(chrom_inputs)]
    subset = set(choose_mismatch_windows(names, int(mismatch_windows), int(mismatch_seed))) if use_mm else set()
    stats, pstats, z2, l, ns, freq, held = [], [], [], [], [], [], []
    for name, fac, st, p in iter_windows(chrom_inputs):
        stats.append(constant_prior_statistics(fac["G"], st["y"], fac["lam"], fac["freq"], alpha))
        if mode == "panel":
            pstats.append(panel_statistics(fac["G"], st["y"], fac["lam"], fac["core"], fac["freq"],
                                           alpha, panel_size))
        z2.append(st["z2"])
        l.append(st["ldscore"])
        ns.append(st["n"])
        freq.append(fac["freq"][fac["core"]])
        if name in subset:
            held.append((make_window(name, fac, st["y"], p), (torch.as_tensor(fac["U"], dtype=torch.float64),
                                                              torch.as_tensor(fac["core"], dtype=torch.long))))
        del fac
    if not stats:
        raise ValueError(f"{trait}: no training window with LD factors ({[c[1] for c in chrom_inputs]}): nothing to "
                         "fit s2 on; check the factor manifests (status column)")
    N = trait_sample_size([(None, None, {"n": n}, None) for n in ns])
    z2, l, freq = np.concatenate(z2), np.concatenate(l), np.concatenate(freq)
    s2_ldsr, h2_ldsr = estimate_s2(z2, l, N, M)
    c0 = init_log_scale(freq, min(max(h2_ldsr, 0.01), 0.9), M, alpha)
    given = s2_sheet is not None and not (isinstance(s2_sheet, float) and math.isnan(s2_sheet))
    s2_all, c_all, nll_all = fit_constant_streamed(stats, N, c0)
    n_windows, directions = len(stats), sum(st.rank for st in stats)
    del stats
    if use_mm:
        sub = fit_mismatch([w for w, _ in held], [x for _, x in held], N, alpha, c0, mode=mode, trait=trait)
        lam_mm = float(sub["lambda"])
        # lambda = 0: the all-window fit (the subset only decided that the mismatch model is not needed)
        s2_ml, c_ml = (sub["s2"], sub["init_log_scale"]) if lam_mm > 0 else (s2_all, c_all)
        mm_info = {k: v for k, v in sub.items() if k not in ("s2", "init_log_scale", "lambda", "lambda_source")}
        mm_info.update(windows=[w.name for w, _ in held], n_windows=len(held), seed=int(mismatch_seed))
        fit = {"lambda": lam_mm, "lambda_source": sub["lambda_source"], "panel_size": 0}
    elif mode == "panel":
        fit = fit_panel(pstats, N, c0, panel_size, directions, s2_all, trait)
        del pstats
        s2_ml, c_ml, lam_mm = fit["s2"], fit["init_log_scale"], 0.0
        mm_info = {"nll": fit["nll"], "s2_lambda0": s2_all, "init_log_scale_lambda0": c_all, "nll_lambda0": nll_all,
                   "kept_directions": fit["kept_directions"], "directions": directions}
    else:
        s2_ml, c_ml, lam_mm = s2_all, c_all, 0.0
        mm_info = {"nll": nll_all, "s2_lambda0": s2_all, "init_log_scale_lambda0": c_all, "nll_lambda0": nll_all}
        fit = {"lambda": 0.0, "lambda_source": "none (likelihood.mismatch: none)", "panel_size": 0}
    s2 = float(s2_sheet) if given else s2_ml
    lo, hi = s2_range
    if not (math.isfinite(s2) and s2 > 0):
        raise ValueError(f"{trait}: s2 = {s2} is not a usable residual variance; set a valid 's2' for this trait "
                         "in the trait sheet")
    if not given and not lo <= s2_ml <= hi:
        msg = (f"{trait}: maximum-likelihood s2 = {s2_ml:.4g} is outside the plausible range [{lo:g}, {hi:g}] (config "
               f"s2.min / s2.max; LDSR intercept {s2_ldsr:.4g}, h2 {h2_ldsr:.4g}, N = {N:.0f}, {n_windows} windows, "
               f"LD mismatch lambda {lam_mm:.4g}). "
               "s2 is about 1 - h2 of one window for in-sample LD: a value far from 1 means a wrong N, sign errors, "
               "statistics that do not belong to the LD (another build or strand, an out-of-sample panel) or very "
               "few matched variants; check results/harmonised/" f"{trait}.report.json. If it is deliberate (a "
               "simulation), widen s2.min / s2.max or set s2.accept_outside: true; or give 's2' in the trait sheet.")
        if not accept_outside:
            raise ValueError(msg)
        log.warning(msg)
    h2_const = float(M * np.mean(np.clip(freq * (1 - freq), 1e-12, None) ** alpha) * math.exp(c_ml))
    info = {"s2": s2, "source": "trait sheet" if given else "maximum likelihood (constant prior)",
            "s2_ml": s2_ml, "init_log_scale": c_ml, "lambda": lam_mm, "lambda_source": fit["lambda_source"],
            "panel_size": fit["panel_size"],
            "h2_constant": h2_const, "s2_ldsr_intercept": s2_ldsr, "h2_ldsr": h2_ldsr,
            "N": N, "M": M, "n_windows": n_windows, "s2_all_windows": s2_all, "init_log_scale_all_windows": c_all,
            "nll_all_windows": nll_all, "mismatch": mm_info}
    write_json(out, info)
    log.info("s2 = %.4f (ML %.4f, LDSR intercept %.4f), mismatch lambda = %.4g, N = %.0f, M = %d", s2, s2_ml,
             s2_ldsr, lam_mm, N, M)
    return info
