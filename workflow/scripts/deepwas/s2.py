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

import numpy as np
import torch

from . import likelihood
from .ldsr import ldsr_intercept
from .window import WindowData


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
