"""Ground truths f of the simulations (paper Sec. 6.1, App. A.5 and B.1), as pure functions.

The App. B.1 threshold enrichment (`threshold_enrichment`) is used by both the demo cohort (its track term,
`cohort.track_enrichment`) and the semi-synthetic experiment (`threshold_enrichment_truth`); the network
truth of App. A.5 is `truth_from_network`; `normalise_f` sets the level E f = (1 - s2) / M.

Units. Genotypes standardised per variant, trait Var(y) = 1, y = X^T beta + eps with beta_m ~ N(0, f_m) and
eps ~ N(0, s2). Then (App. A.5) 1 = Var(y) = s2 + sum_m f_m E[X_m^2] ~= s2 + M E_m f_m, so the truth must have

    E_m f_m = (1 - s2) / M          equivalently   E_m phi_m = N (1 - s2) / M  with phi = N f

(the paper's F of A.5 is N f, hence its E F = N (1 - s2) / M). Summary statistics in z units,
z = sqrt(N) beta_hat, are z = R b + e with b = sqrt(N) beta ~ N(0, diag(phi)) and e ~ N(0, s2 R), i.e.
z ~ N(0, R Phi R + s2 R) (Eqn 2 times N). Each variant has ONE global beta: simulate on a chromosome-wide
(or block-diagonal) R with `simulate_z`, or window by window with `simulate_z_windows`, which reuses the
global beta in every window that contains the variant (both in `semisynthetic`).

Call sequence for one semi-synthetic replicate (results/simulation/{truth}/rmse.tsv):

    f_tilde = truth_from_network(net, tracks, pred)                  # or threshold_enrichment_truth(...)
    f       = normalise_f(f_tilde, N, M, s2)                         # E f = (1 - s2) / M
    z       = semisynthetic.simulate_z(R_blocks, f, N, s2, rng)      # or simulate_z_windows(windows, ...)
    ... train each model x objective on the training chromosomes with these z ...
    rows.append(semisynthetic.rmse_row(truth, model, objective, f_hat_heldout, f[heldout]))
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

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


def centre_slice(w: int) -> slice:
    """App. B.1's centre: positions 113..143 of a 256 window (variant at w // 2), 15 positions either side."""
    c = w // 2
    return slice(max(0, c - 15), min(w, c + 16))


def _centre_sums(C, dims, centre: Optional[slice]) -> np.ndarray:
    """sum_{w in centre} C[:, d, w] for d in dims, [n, len(dims)] float64."""
    C = np.asarray(C)
    dims = list(dims)
    if max(dims) >= C.shape[1]:
        raise ValueError(f"threshold truth: dims {dims} exceed the {C.shape[1]} feature channels; "
                         "pass dims that exist in these features")
    cs = centre if centre is not None else centre_slice(C.shape[2])
    return C[:, dims, cs].astype(np.float64).sum(axis=-1)


def calibrate_thresholds(C, dims, active_fractions, centre: Optional[slice] = None) -> np.ndarray:
    """Thresholds e_d such that dimension dims[j] is active for about active_fractions[j] of the variants
    (App. B.1 chose 50 %, 25 %, always, 50 %): the (1 - fraction) quantile; a fraction of 1 gives -inf."""
    s = _centre_sums(C, dims, centre)
    return np.array([-np.inf if a >= 1 else float(np.quantile(s[:, j], 1.0 - a))
                     for j, a in enumerate(active_fractions)])


def threshold_enrichment(C, dims, values, thresholds: Optional[Sequence[float]] = None,
                         active_fractions: Optional[Sequence[float]] = None,
                         centre: Optional[slice] = None) -> np.ndarray:
    """App. B.1's log-scale term sum_{d in dims} v_d 1( sum_{w in centre} C[d, w] > e_d ), per variant, [n] float64.

    C: [n, channels, w] features around each variant (missing variants with their zero windows: they get
    the enrichment of an all-zero neighbourhood, like the paper's 0-filled features). Either thresholds e_d
    are given, or active_fractions (`calibrate_thresholds` on these variants; they win when both are given).
    centre defaults to `centre_slice(w)`. The -log M term and the normalisation of E f are left to the caller.
    """
    if len(values) != len(list(dims)):
        raise ValueError("threshold truth: one value v_d per dimension is needed")
    s = _centre_sums(C, dims, centre)
    if active_fractions is not None:
        e = calibrate_thresholds(C, dims, active_fractions, centre)
    elif thresholds is not None:
        e = np.asarray(thresholds, dtype=np.float64)
    else:
        raise ValueError("threshold truth: give thresholds or active_fractions")
    return (s > e[None, :]).astype(np.float64) @ np.asarray(values, dtype=np.float64)


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
    log_f = threshold_enrichment(_concat_features(tracks, pred), dims, values, thresholds, active_fractions, centre)
    if M is not None:
        log_f = log_f - np.log(M)
    return np.exp(log_f)
