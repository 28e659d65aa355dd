"""Semi-synthetic ground truth and statistics (paper Sec. 6.1, App. A.5 and B.1), as pure functions.

Units. Genotypes standardised per variant, trait Var(y) = 1, y = X^T beta + eps with beta_m ~ N(0, f_m) and
eps ~ N(0, s2). Then (App. A.5) 1 = Var(y) = s2 + sum_m f_m E[X_m^2] ~= s2 + M E_m f_m, so the truth must have

    E_m f_m = (1 - s2) / M          equivalently   E_m phi_m = N (1 - s2) / M  with phi = N f

(the paper's F of A.5 is N f, hence its E F = N (1 - s2) / M). Summary statistics in z units,
z = sqrt(N) beta_hat, are z = R b + e with b = sqrt(N) beta ~ N(0, diag(phi)) and e ~ N(0, s2 R), i.e.
z ~ N(0, R Phi R + s2 R) (Eqn 2 times N). Each variant has ONE global beta: simulate on a chromosome-wide
(or block-diagonal) R with `simulate_z`, or window by window with `simulate_z_windows`, which reuses the
global beta in every window that contains the variant.

Call sequence for one semi-synthetic replicate (results/simulation/{truth}/rmse.tsv):

    f_tilde = truth_from_network(net, tracks, pred)                  # or threshold_enrichment_truth(...)
    f       = normalise_f(f_tilde, N, M, s2)                         # E f = (1 - s2) / M
    z       = simulate_z(R_blocks, f, N, s2, rng)                    # or simulate_z_windows(windows, ...)
    ... train each model x objective on the training chromosomes with these z ...
    rows.append(rmse_row(truth, model, objective, f_hat_heldout, f[heldout]))
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np
import torch

RMSE_COLUMNS = ["truth", "model", "objective", "rmse_log_f"]

# App. B.1 as published for the paper's 165 + 9 features and w = 256: dimensions of C = [C_func, C_pred],
# values v_d, thresholds e_d and the central positions 113..143 (inclusive).
PAPER_B1 = dict(dims=(0, 2, 7, 12), values=(0.7, 0.5, 1.37, 0.5), thresholds=(0.0, 0.0, -20.0, -10.0),
                centre=slice(113, 144))
# App. B.1 chose thresholds so that the four dimensions are active for about these fractions of variants;
# `threshold_enrichment_truth(..., active_fractions=...)` recalibrates them on other features (the demo).
PAPER_B1_ACTIVE_FRACTIONS = (0.5, 0.25, 1.0, 0.5)


def normalise_f(f_tilde, N: float, M: float, s2: float, units: str = "f") -> np.ndarray:
    """Scale f_tilde so that its mean is (1 - s2) / M (App. A.5); units="phi" returns N f instead.

    The mean is taken over the variants given, which stand for the M variants of the genome.
    """
    f_tilde = np.asarray(f_tilde, dtype=np.float64)
    if not np.all(np.isfinite(f_tilde)) or np.any(f_tilde < 0) or f_tilde.mean() <= 0:
        raise ValueError("normalise_f: f_tilde must be finite, non-negative and not all zero "
                         "(compute exp(.) of a shifted log to avoid overflow)")
    if not 0 <= s2 < 1:
        raise ValueError(f"normalise_f: s2 = {s2} must lie in [0, 1) (the residual variance fraction)")
    f = f_tilde * ((1.0 - s2) / M / f_tilde.mean())
    if units == "f":
        return f
    if units == "phi":
        return N * f
    raise ValueError(f"units must be 'f' or 'phi', not {units!r}")


@torch.no_grad()
def truth_from_network(net: torch.nn.Module, tracks, pred, scale: float = 10.0, log_sd: Optional[float] = None,
                       batch_size: int = 1024) -> np.ndarray:
    """f_tilde = exp(scale * NN(C)) for a randomly initialised network (App. A.5: scale 10), up to a constant.

    The network is put in eval mode (no dropout, BatchNorm running statistics). The result is shifted in
    log space by its maximum so that exp cannot overflow; the constant disappears in `normalise_f`.
    log_sd: if given, `scale` is chosen so that the standard deviation of log f_tilde over these variants
    is log_sd (a randomly initialised network's output spread depends on its size and inputs; this pins
    the difficulty of the task instead). Build the network with head_init_std=1.0 for a truth network.
    """
    was_training = net.training
    net.eval()
    try:
        tracks = torch.as_tensor(tracks)
        pred = torch.as_tensor(pred)
        out = torch.cat([net(tracks[i:i + batch_size], pred[i:i + batch_size]).double()
                         for i in range(0, tracks.shape[0], batch_size)]).numpy()
    finally:
        net.train(was_training)
    if log_sd is not None:
        sd = out.std()
        if sd == 0:
            raise ValueError("truth_from_network: the network output is constant over these variants")
        scale = log_sd / sd
    log_f = scale * out
    return np.exp(log_f - log_f.max())


def _concat_features(tracks, pred) -> np.ndarray:
    tracks = np.asarray(tracks, dtype=np.float64)
    if pred is None:
        return tracks
    pred = np.asarray(pred, dtype=np.float64)
    return np.concatenate([tracks, np.broadcast_to(pred[:, :, None], pred.shape + (tracks.shape[2],))], axis=1)


def _default_centre(w: int) -> slice:
    # 113..143 of 256: the variant at w // 2 and 15 positions either side
    c = w // 2
    return slice(max(0, c - 15), min(w, c + 16))


def threshold_enrichment_truth(tracks, pred, M: Optional[float] = None, dims: Sequence[int] = PAPER_B1["dims"],
                               values: Sequence[float] = PAPER_B1["values"],
                               thresholds: Optional[Sequence[float]] = PAPER_B1["thresholds"],
                               centre: Optional[slice] = None,
                               active_fractions: Optional[Sequence[float]] = None) -> np.ndarray:
    """App. B.1: log f(C) = sum_{d in dims} v_d 1( sum_{w in centre} C[d, w] > e_d ) - log M.

    C = [C_func, C_pred] with C_pred broadcast along the window (so d >= d_func selects a pred feature).
    centre defaults to positions w//2 - 15 .. w//2 + 15 (113..143 for w = 256). Either thresholds e_d are
    given, or active_fractions (e.g. PAPER_B1_ACTIVE_FRACTIONS), from which e_d is the (1 - fraction)
    quantile over these variants (fraction 1: always active) - use that when the features differ from the
    paper's (the demo has fewer tracks: pass dims that exist). M=None drops the constant -log M, which
    `normalise_f` removes anyway. Returns f (not log f), float64 [n].
    """
    C = _concat_features(tracks, pred)
    dims = list(dims)
    if max(dims) >= C.shape[1]:
        raise ValueError(f"threshold truth: dims {dims} exceed the {C.shape[1]} feature channels; "
                         "pass dims that exist in these features")
    if len(values) != len(dims):
        raise ValueError("threshold truth: one value v_d per dimension is needed")
    cs = centre if centre is not None else _default_centre(C.shape[2])
    s = C[:, dims, cs].sum(axis=2)                                   # [n, len(dims)]
    if active_fractions is not None:
        e = np.array([-np.inf if a >= 1 else np.quantile(s[:, j], 1.0 - a) for j, a in enumerate(active_fractions)])
    elif thresholds is not None:
        e = np.asarray(thresholds, dtype=np.float64)
    else:
        raise ValueError("threshold truth: give thresholds or active_fractions")
    log_f = (s > e[None, :]).astype(np.float64) @ np.asarray(values, dtype=np.float64)
    if M is not None:
        log_f = log_f - np.log(M)
    return np.exp(log_f)


def _half_factor(R: np.ndarray) -> np.ndarray:
    """F with F F^T = R after clipping negative eigenvalues (R from a reference panel may be indefinite)."""
    lam, V = np.linalg.eigh(np.asarray(R, dtype=np.float64))
    return V * np.sqrt(np.clip(lam, 0.0, None))


def simulate_z(R, f, N: float, s2: float, rng: np.random.Generator, n_draws: Optional[int] = None,
               return_beta: bool = False):
    """z = sqrt(N) R beta + e, beta ~ N(0, diag f), e ~ N(0, s2 R) on a chromosome-wide or block R.

    R: one (M x M) matrix, or a sequence of diagonal blocks whose sizes add up to len(f) (variants in
    order). One beta per variant. n_draws: number of independent replicates (rows); default one vector.
    Returns z [M] (or [n_draws, M]); with return_beta also beta (same shape).
    """
    f = np.asarray(f, dtype=np.float64)
    blocks = [np.asarray(R)] if not isinstance(R, (list, tuple)) else [np.asarray(b) for b in R]
    if sum(b.shape[0] for b in blocks) != f.shape[0]:
        raise ValueError(f"simulate_z: LD blocks cover {sum(b.shape[0] for b in blocks)} variants, f has {f.shape[0]}")
    reps = 1 if n_draws is None else n_draws
    beta = rng.normal(size=(reps, f.shape[0])) * np.sqrt(f)
    z = np.empty_like(beta)
    start = 0
    for B in blocks:
        k = B.shape[0]
        sl = slice(start, start + k)
        noise = rng.normal(size=(reps, k)) @ _half_factor(B).T * np.sqrt(s2)
        z[:, sl] = np.sqrt(N) * beta[:, sl] @ B.T + noise
        start += k
    if n_draws is None:
        z, beta = z[0], beta[0]
    return (z, beta) if return_beta else z


def simulate_z_windows(windows: Iterable, f, N: float, s2: float, rng: np.random.Generator,
                       return_beta: bool = False):
    """z for the core variants of overlapping LD windows (e.g. UKBB 3 Mb windows), one global beta.

    windows: iterable of (R_ext [m x m], ext [m] global variant indices of (i)+, core [n] positions of (i)
    within (i)+). Each variant must be in exactly one core. For the core of window i

        z_(i) = sqrt(N) R[i,+] beta_(i)+ + e_(i),    e_(i) ~ N(0, s2 R[i,i]) ,

    with the same beta for a variant in every window, so each window's z_(i) has exactly the marginal
    law N(0, R[i,+] Phi R[+,i] + s2 R[i,i]) that the likelihood uses; only the noise correlation between
    neighbouring cores is dropped (the windowed likelihood ignores it too). Variants in no core get NaN.
    """
    f = np.asarray(f, dtype=np.float64)
    beta = rng.normal(size=f.shape[0]) * np.sqrt(f)
    z = np.full(f.shape[0], np.nan)
    for R_ext, ext, core in windows:
        R_ext = np.asarray(R_ext, dtype=np.float64)
        ext = np.asarray(ext, dtype=np.int64)
        core = np.asarray(core, dtype=np.int64)
        target = ext[core]
        if np.any(np.isfinite(z[target])):
            raise ValueError("simulate_z_windows: a variant is in more than one core")
        noise = _half_factor(R_ext[np.ix_(core, core)]) @ rng.normal(size=core.shape[0]) * np.sqrt(s2)
        z[target] = np.sqrt(N) * R_ext[core] @ beta[ext] + noise
    return (z, beta) if return_beta else z


def rmse_log_f(f_hat, f_true) -> float:
    """sqrt(mean((log f_hat - log f_true)^2)) over the variants given (Fig. 4 and 7: held-out variants)."""
    f_hat = np.asarray(f_hat, dtype=np.float64)
    f_true = np.asarray(f_true, dtype=np.float64)
    if f_hat.shape != f_true.shape:
        raise ValueError(f"rmse_log_f: shapes differ {f_hat.shape} vs {f_true.shape}")
    if np.any(f_hat <= 0) or np.any(f_true <= 0):
        raise ValueError("rmse_log_f: f must be positive")
    return float(np.sqrt(np.mean((np.log(f_hat) - np.log(f_true)) ** 2)))


def rmse_row(truth: str, model: str, objective: str, f_hat, f_true) -> dict:
    """One row of results/simulation/{truth}/rmse.tsv (columns RMSE_COLUMNS)."""
    return dict(truth=truth, model=model, objective=objective, rmse_log_f=rmse_log_f(f_hat, f_true))
