"""Held-out evaluation (paper Sec. 6.2, App. C.2).

For every held-out window, the exact NLL under the model and under the null (f = 0); then

    Delta = sum_i [NLL_i(0) - NLL_i(phi_theta)],    pct_per_person = 100 (exp(Delta / N) - 1),

the percentage likelihood increase per person. Evaluation always uses the exact solver, whatever solver
trained the model, with the prior in eval() mode.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import pandas as pd
import torch

from .likelihood import exact, nll_null
from .window import WindowData

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
    delta = float(table["delta"].sum())
    return {"trait": trait, "model": model, "objective": objective, "n_windows": int(len(table)),
            "delta_nll": delta, "pct_per_person": pct_per_person(delta, N)}


def combine(summaries: list[pd.DataFrame]) -> pd.DataFrame:
    df = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame(columns=SUMMARY_COLUMNS)
    return df[SUMMARY_COLUMNS].sort_values(["trait", "pct_per_person"], ascending=[True, False]).reset_index(drop=True)
