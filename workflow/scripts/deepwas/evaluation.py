"""Held-out evaluation (paper Sec. 6.2, App. C.2).

For every held-out window, the exact NLL under the model and under the null (f = 0); then

    Delta = sum_i [NLL_i(0) - NLL_i(phi_theta)],    pct_per_person = 100 (exp(Delta / N) - 1),

the percentage likelihood increase per person. Evaluation always uses the exact solver, whatever solver
trained the model, with the prior in eval() mode.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from .dataset import WindowData
from .likelihood import exact, nll_null

WINDOW_COLUMNS = ["window", "n_core", "n_extended", "rank", "nll_model", "nll_null", "delta"]
SUMMARY_COLUMNS = ["trait", "model", "objective", "n_windows", "delta_nll", "pct_per_person"]


@torch.no_grad()
def evaluate_windows(phi_of: Callable[[WindowData], torch.Tensor], windows: Iterable[WindowData], s2: float) -> pd.DataFrame:
    """Per-window table; `phi_of(window)` gives phi = N f for the window's extended variants."""
    rows = []
    for w in windows:
        phi = phi_of(w).double()
        if not torch.all(torch.isfinite(phi)) or bool((phi < 0).any()):
            raise FloatingPointError(f"window {w.name}: the prior produced negative or non-finite values")
        model = float(exact.nll(phi, s2, w.G, w.y, w.lam))
        null = float(nll_null(s2, w.y, w.lam))
        rows.append([w.name, w.n_core, w.m, w.rank, model, null, null - model])
    return pd.DataFrame(rows, columns=WINDOW_COLUMNS)


def prior_phi(prior: torch.nn.Module, N: float) -> Callable[[WindowData], torch.Tensor]:
    prior.eval()
    return lambda w: N * prior(w.inputs)


def pct_per_person(delta: float, N: float) -> float:
    x = delta / N
    return math.inf if x > 700 else 100.0 * math.expm1(x)


def summarise(table: pd.DataFrame, trait: str, model: str, objective: str, N: float) -> dict:
    """Held-out summary (Sec. 6.2); an evaluation over zero windows is an error, not a 0 % result."""
    if len(table) == 0:
        raise ValueError(f"{trait} / {model} / {objective}: no held-out window to evaluate (no held-out window has "
                         "core variants with statistics); check heldout_chromosomes and that the statistics cover them "
                         f"(results/harmonised/{trait}.report.json, results/ld_factors/chr*.manifest.tsv)")
    delta = float(table["delta"].sum())
    return {"trait": trait, "model": model, "objective": objective, "n_windows": int(len(table)),
            "delta_nll": delta, "pct_per_person": pct_per_person(delta, N)}


def combine(summaries: list[pd.DataFrame]) -> pd.DataFrame:
    df = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame(columns=SUMMARY_COLUMNS)
    return df[SUMMARY_COLUMNS].sort_values(["trait", "pct_per_person"], ascending=[True, False]).reset_index(drop=True)


def estimate_s2(z2: np.ndarray, ldscore: np.ndarray, N: float, M: int, iterations: int = 3) -> tuple[float, float]:
    """Per-window residual variance s2 as the intercept of LD score regression (App. A.4 weights).

    For one window's z the genetic effects of all other windows act as noise: with y standardised,
    Cov(z_w) = N R F R + (sigma^2 + h2_rest) R, so the s2 of the per-window likelihood is
    1 - h2_window (about 1), not 1 - h2_SNP. LDSR estimates exactly that as its intercept:
    E[z_m^2] = N h2 l_m / M + s2. Weighted least squares with weights 1 / (l (N h2 l / M + 1)^2),
    re-estimated `iterations` times. Returns (s2, h2).
    """
    x = N * ldscore / M
    h2 = 0.1
    for _ in range(iterations):
        wts = 1.0 / (np.maximum(ldscore, 1.0) * (N * max(h2, 0.0) * ldscore / M + 1.0) ** 2)
        A = np.stack([x, np.ones_like(x)], 1) * np.sqrt(wts)[:, None]
        (h2, s2), *_ = np.linalg.lstsq(A, z2 * np.sqrt(wts), rcond=None)
    return float(s2), float(h2)
