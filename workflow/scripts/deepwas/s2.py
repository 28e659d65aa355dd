"""The residual variance s2 of the per-window likelihood (paper Eqn 2; App. A.4 and A.5).

For one window's z the genetic effects of all other windows act as noise: with y standardised,
Cov(z_w) = N R F R + (sigma^2 + h2_rest) R, so the s2 of the per-window likelihood is 1 - h2_window
(about 1), not 1 - h2_SNP. Two estimates:

- `fit_constant_and_s2`: maximum likelihood, jointly with a constant prior, over the training windows
  (exact likelihood, L-BFGS): the value the workflow uses unless the trait sheet gives one;
- `estimate_s2`: the intercept of LD score regression (`ldsr.ldsr_intercept`), E[z_m^2] = N h2 l_m / M + s2,
  recorded beside it as a cross-check.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch

from . import likelihood
from .formats.factors import read_manifest
from .io import write_json
from .ldsr import ldsr_intercept
from .priors import init_log_scale
from .sources import load_windows, trait_sample_size
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
    return float(torch.exp(log_s2)), float(c)


def estimate_s2(z2: np.ndarray, ldscore: np.ndarray, N: float, M: int, iterations: int = 3) -> tuple[float, float]:
    """Per-window residual variance s2 as the intercept of LD score regression (App. A.4 weights,
    re-estimated `iterations` times; see `ldsr.ldsr_intercept`). Returns (s2, h2)."""
    return ldsr_intercept(z2, ldscore, N, M, iterations)


def estimate_trait_s2(chrom_inputs, manifests, s2_sheet, alpha, out, s2_range=(0.5, 2.0), accept_outside=False,
                      trait="trait") -> dict:
    """The estimate_s2 rule: the trait's per-window residual variance s2, sample size N and the starting
    scale of every prior. s2 is fitted by maximum likelihood jointly with a constant prior on the training
    windows (`s2_sheet`, the trait sheet's value, wins when given); the LD-score-regression intercept is
    recorded beside it as a cross-check. `manifests`: the factor manifests of all chromosomes (M). A fitted
    s2 outside `s2_range` stops the run with an explanation unless `accept_outside`. Writes and returns the
    JSON record."""
    # M: every variant that has LD and statistics lies in exactly one core
    M = int(sum(read_manifest(m)["n_core"].sum() for m in manifests))
    loaded = load_windows(chrom_inputs)
    N = trait_sample_size(loaded)
    z2 = np.concatenate([st["z2"] for _, _, st, _ in loaded])
    l = np.concatenate([st["ldscore"] for _, _, st, _ in loaded])
    s2_ldsr, h2_ldsr = estimate_s2(z2, l, N, M)
    windows = [make_window(name, fac, st["y"], p) for name, fac, st, p in loaded]
    freq = np.concatenate([fac["freq"][fac["core"]] for _, fac, _, _ in loaded])
    c0 = init_log_scale(freq, min(max(h2_ldsr, 0.01), 0.9), M, alpha)
    given = s2_sheet is not None and not (isinstance(s2_sheet, float) and math.isnan(s2_sheet))
    s2_ml, c_ml = fit_constant_and_s2(windows, N, alpha, c0)
    s2 = float(s2_sheet) if given else s2_ml
    lo, hi = s2_range
    if not (math.isfinite(s2) and s2 > 0):
        raise ValueError(f"{trait}: s2 = {s2} is not a usable residual variance; set a valid 's2' for this trait "
                         "in the trait sheet")
    if not given and not lo <= s2_ml <= hi:
        msg = (f"{trait}: maximum-likelihood s2 = {s2_ml:.4g} is outside the plausible range [{lo:g}, {hi:g}] (config "
               f"s2.min / s2.max; LDSR intercept {s2_ldsr:.4g}, h2 {h2_ldsr:.4g}, N = {N:.0f}, {len(windows)} windows). "
               "s2 is about 1 - h2 of one window for in-sample LD: a value far from 1 means a wrong N, sign errors, "
               "statistics that do not belong to the LD (another build or strand, an out-of-sample panel) or very "
               "few matched variants; check results/harmonised/" f"{trait}.report.json. If it is deliberate (a "
               "simulation), widen s2.min / s2.max or set s2.accept_outside: true; or give 's2' in the trait sheet.")
        if not accept_outside:
            raise ValueError(msg)
        log.warning(msg)
    info = {"s2": s2, "source": "trait sheet" if given else "maximum likelihood (constant prior)",
            "s2_ml": s2_ml, "init_log_scale": c_ml, "s2_ldsr_intercept": s2_ldsr, "h2_ldsr": h2_ldsr,
            "N": N, "M": M, "n_windows": len(windows)}
    write_json(out, info)
    log.info("s2 = %.4f (ML %.4f, LDSR intercept %.4f), N = %.0f, M = %d", s2, s2_ml, s2_ldsr, N, M)
    return info
