"""LD score regression objective for training any prior f_theta (paper Sec. 2.2, Eqn 4 and App. A.4).

In z units (z_i = sqrt(N) beta_hat_i, phi_k = N f_k, s2 = sigma^2 of the standardised trait), Eqn 4 reads

    E[z_i^2] = sum_k R_ik^2 phi_k + s2 .

App. A.4 (after Finucane et al. 2015) fits this by weighted least squares over the core variants i of a
window, with the extended variants k of the window on the right-hand side:

    L_LDSR(phi) = sum_{i in (i)}  w_i ( sum_{k in (i)+} r2_ik phi_k + s2 - z_i^2 )^2 ,
    w_i = 1 / ( l_i (N h2 l_i / M + 1)^2 ) ,      l_i = sum_k r2_ik  (LD score),

with r2_ik the bias-corrected squared correlation of LD score regression (Bulik-Sullivan et al. 2015),
r2 = r_hat^2 - (1 - r_hat^2) / (n - 2) for LD estimated from a panel of n people (`ldscore.unbiased_r2`;
n = 337,545 for UKBB LD, the .fam of a PLINK panel, ld.panel_size for local windows, the demo's cohort): the
raw r_hat^2 is biased upwards by about 1/n per pair, which inflates sum_k r_hat_ik^2 phi_k by about
sum_k phi_k / n and biases the fitted scale of phi and the intercept s2. The LD scores l_i of the factor files
are corrected the same way (`ld_factors` rule).

where h2 is a ballpark heritability fixed before training (not a function of theta) and M the number of
variants genome-wide (so N h2 / M is the mean phi). The first factor down-weights variants in LD with many
others (their z^2 are counted many times); the second divides by the rough variance of z_i^2 (a scaled
chi-squared with mean about N h2 l_i / M + 1). The weights are constants: only phi carries gradient.
With phi = N f this is App. A.4's expression multiplied through by N (their R_i^2 f N / M carries the
A.5 scaling of f; here phi is already in z units). Models trained with this loss are scored with the
exact likelihood (`deepwas.likelihood`), like every other model.

The product R^2[(i), (i)+] phi is the only theta-dependent work: one (n x m) matrix-vector product per
window on the squared LD rows of the core variants, which can be precomputed once per window
(`r2_rows`) and stored in float32 to halve memory.

This module holds all of LDSR: the weights and the loss above, the training objective over windows
(`ldsr_objective`, with `ldsr_inputs` per window and `LdsrExtras` for streamed windows), and the classical
regression whose intercept cross-checks the residual variance (`ldsr_intercept`, used by `s2`).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from .formats.factors import load_factors, ok_windows
from .formats.whitened import WhitenedStats
from .ld_factors import core_rows
from .ldscore import unbiased_r2
from .whitening import trait_factors
from .window import WindowData


def r2_rows(R, core, panel_size: float | None = None) -> np.ndarray:
    """Squared LD of the core variants against the whole window, R[(i), (i)+]^2 (n x m); precompute once.
    With `panel_size` (the LD panel's n) the bias-corrected r^2 - (1 - r^2) / (n - 2) (`ldscore.unbiased_r2`)."""
    R = np.asarray(R)
    r2 = R[np.asarray(core, dtype=np.int64)] ** 2
    return r2 if panel_size is None else unbiased_r2(r2, panel_size)


def ldsr_weights(ldscore, N: float, h2_guess: float, M: float):
    """w_i = 1 / (l_i (N h2 l_i / M + 1)^2), with l_i clipped below at 1 (as ldsc does)."""
    is_t = torch.is_tensor(ldscore)
    l = ldscore.clamp(min=1.0) if is_t else np.maximum(np.asarray(ldscore, dtype=np.float64), 1.0)
    if not (N > 0 and M > 0 and h2_guess >= 0):
        raise ValueError(f"LDSR weights need N > 0, M > 0 and h2_guess >= 0 (got N={N}, M={M}, h2={h2_guess})")
    return 1.0 / (l * (N * h2_guess * l / M + 1.0) ** 2)


def ldsr_loss(phi: torch.Tensor, s2, R2: torch.Tensor, z: torch.Tensor, core, N: float, h2_guess: float,
              M: float, ldscore: Optional[torch.Tensor] = None, reduction: str = "sum") -> torch.Tensor:
    """App. A.4 weighted least-squares LDSR loss of one window (see the module docstring).

    phi : (m,) prior variances in z units (phi = N f) of the extended variants (i)+; carries the gradient.
    s2 : residual variance (float or 0-d tensor; a tensor with requires_grad is learnt too).
    R2 : squared LD, either the full (m x m) matrix over (i)+, or already the core rows (n x m) from
         `r2_rows` (recognised by its shape: n rows == len(core) and n != m, or pass the full matrix).
    z : z-scores of the core variants (n,), or of the whole window (m,) from which z[core] is taken.
    core : (n,) indices of (i) into (i)+.
    N, h2_guess, M : GWAS sample size, ballpark SNP heritability, number of variants genome-wide.
    ldscore : (n,) LD scores l_i for the weights; default the core rows' sums of R2 within the window.
        Pass the full LD score when the window does not hold all of a variant's LD partners.
    reduction : "sum" (default; windows add up) or "mean" (divided by the sum of the weights).
    """
    core_t = torch.as_tensor(np.asarray(core, dtype=np.int64), device=phi.device)
    n, m = core_t.numel(), phi.shape[0]
    R2 = torch.as_tensor(R2, device=phi.device)
    if R2.dim() != 2 or R2.shape[1] != m:
        raise ValueError(f"R2 must have m = {m} columns (one per extended variant), got shape {tuple(R2.shape)}")
    if R2.shape[0] == m:
        R2c = R2[core_t]
    elif R2.shape[0] == n:
        R2c = R2
    else:
        raise ValueError(f"R2 has {R2.shape[0]} rows: expected m = {m} (full window) or n = {n} (core rows)")
    z = torch.as_tensor(z, device=phi.device, dtype=phi.dtype)
    if z.shape[0] == m and m != n:
        z = z[core_t]
    elif z.shape[0] != n:
        raise ValueError(f"z has {z.shape[0]} entries: expected n = {n} (core) or m = {m} (window)")
    R2c = R2c.to(phi.dtype)
    l = R2c.sum(1) if ldscore is None else torch.as_tensor(ldscore, device=phi.device, dtype=phi.dtype)
    if l.shape[0] != n:
        raise ValueError(f"ldscore must have n = {n} entries (core variants), got {l.shape[0]}")
    w = ldsr_weights(l.detach(), N, h2_guess, M)
    s2_t = s2 if torch.is_tensor(s2) else torch.as_tensor(s2, dtype=phi.dtype, device=phi.device)
    resid = R2c @ phi + s2_t - z * z
    loss = (w * resid * resid).sum()
    if reduction == "sum":
        return loss
    if reduction == "mean":
        return loss / w.sum()
    raise ValueError(f"reduction must be 'sum' or 'mean', not {reduction!r}")


def ldsr_intercept(z2: np.ndarray, ldscore: np.ndarray, N: float, M: int, iterations: int = 3) -> tuple[float, float]:
    """LD score regression E[z_m^2] = N h2 l_m / M + a by weighted least squares (App. A.4 weights
    `ldsr_weights`, with h2 re-estimated `iterations` times from h2 = 0.1, negative h2 clipped to 0 in the
    weights). Returns (intercept a, h2)."""
    x = N * ldscore / M
    h2 = 0.1
    for _ in range(iterations):
        wts = ldsr_weights(ldscore, N, max(h2, 0.0), M)
        A = np.stack([x, np.ones_like(x)], 1) * np.sqrt(wts)[:, None]
        (h2, a), *_ = np.linalg.lstsq(A, z2 * np.sqrt(wts), rcond=None)
    return float(a), float(h2)


def ldsr_objective(extras: dict, N: float, h2_guess: float, M: int) -> Callable:
    """Loss of the LDSR objective (App. A.4) per window; `extras[name]` = (R2 core rows, z_core, ldscore_core)."""

    def loss(prior, w: WindowData, N_: float, s2: float, autocast) -> torch.Tensor:
        R2c, z, l = extras[w.name]
        with autocast:
            f = prior(w.inputs)
        core = torch.arange(R2c.shape[0])
        # the core's rows are passed directly: ldsr_loss recognises R2 of shape (n, m)
        return ldsr_loss(N * f.double(), s2, R2c, z, core, N, h2_guess, M, ldscore=l)
    return loss


def ldsr_inputs(factors: dict, z2_core, ldscore_core=None, panel_size: float | None = None) -> tuple:
    """What `ldsr_objective` reads for one window: (bias-corrected r2[(i), (i)+], |z_(i)|, LD scores of (i)).

    R[(i), (i)+] is rebuilt from the stored factors (`ld_factors.core_rows`: exact on the support of R[i,i])
    and its squares bias-corrected with the LD panel size n (`panel_size`, default the factor file's
    'panel_size'); z2_core are the squared core z-scores (only z^2 enters the loss); ldscore_core defaults
    to the factor file's whole-window (bias-corrected) LD score of the core variants.
    """
    if panel_size is None:
        if "panel_size" not in factors:
            raise ValueError("LDSR objective: the LD factors do not record the LD panel size (needed for the r^2 bias "
                             "correction r^2 - (1 - r^2)/(n - 2)); rerun the ld_factors rule, or pass panel_size")
        panel_size = float(np.asarray(factors["panel_size"]))
    if ldscore_core is None:
        ldscore_core = np.asarray(factors["ldscore"])[np.asarray(factors["core"])]
    r2 = unbiased_r2(core_rows(factors["U"], factors["lam"], factors["G"]) ** 2, panel_size)
    return (torch.as_tensor(r2), torch.as_tensor(np.sqrt(np.asarray(z2_core))),
            torch.as_tensor(np.asarray(ldscore_core)))


class LdsrExtras:
    """Lazy `{name: ldsr_inputs(...)}` for `ldsr_objective` over streamed windows (each look-up rereads
    the window's factor file and statistics; nothing is kept)."""

    def __init__(self, chrom_inputs):
        self.paths = {r[0]: (r[1], r[2]) for r in ok_windows(chrom_inputs)}

    def __getitem__(self, name):
        factor_path, stats_path = self.paths[name]
        with WhitenedStats(stats_path) as st:
            s = st.window(name, ("z2", "ldscore"))
            view = st.view(name)
        fac = load_factors(factor_path)
        return ldsr_inputs(fac if view is None else trait_factors(fac, view), s["z2"], s["ldscore"])
