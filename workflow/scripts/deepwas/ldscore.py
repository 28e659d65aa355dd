"""Bias-corrected LD scores (Bulik-Sullivan et al. 2015, as used by the paper's LDSR baseline, Sec. 2.2, App. A.4).

A squared correlation r_hat^2 estimated from a panel of n people is biased upwards by sampling noise,
E[r_hat^2] ~ r^2 + (1 - r^2) / n. LD score regression replaces it by the approximately unbiased

    r2_adj = r_hat^2 - (1 - r_hat^2) / (n - 2),

which is exactly 1 on the diagonal (r_hat^2 = 1) and may be slightly negative for unlinked pairs. Summed over
the m variants of a window, the LD score l = sum_k r_hat_mk^2 becomes

    l_adj = l - (m - l) / (n - 2),

computable from l and m alone (no second m x m pass). At UKBB's n = 337,545 the correction is below
m / n ~ 0.04 per variant; for a reference panel of a few hundred people it removes several units.
"""
from __future__ import annotations

import numpy as np


def _check_n(n) -> float:
    n = float(n)
    if not n > 2:
        raise ValueError(f"LD-score bias correction needs the LD panel size n > 2 (got {n:g}); set ld.panel_size")
    return n


def unbiased_r2(r2, n):
    """r^2 - (1 - r^2) / (n - 2) entry-wise (numpy array or torch tensor); n = LD panel size."""
    n = _check_n(n)
    return r2 - (1.0 - r2) / (n - 2.0)


def unbiased_ldscore(ldscore, m: int, n) -> np.ndarray:
    """Sum over k of `unbiased_r2(r_mk^2, n)` from the raw LD score l_m = sum_k r_mk^2 over m variants."""
    n = _check_n(n)
    l = np.asarray(ldscore, dtype=np.float64)
    return l - (m - l) / (n - 2.0)
