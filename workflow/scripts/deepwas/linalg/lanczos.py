"""Stochastic Lanczos quadrature from CG coefficients, and Hutchinson probes (paper Sec. 4.2).

log|A| ~= sum over probes of |b|^2 e1^T log(T) e1, with T the Lanczos tridiagonal of A started at the probe b,
rebuilt from the coefficients `cg.batched_cg` records (Ubaru, Chen & Saad 2017; Gardner et al. 2018).
"""
from __future__ import annotations

import torch

from .cg import CGResult


def safe_log(theta):
    return torch.log(theta.clamp_min(torch.finfo(theta.dtype).tiny))


def log_over_xm1(theta):
    """log(x) / (x - 1), continuous at x = 1."""
    d = theta - 1.0
    small = d.abs() < 1e-6
    d_safe = torch.where(small, torch.ones_like(d), d)
    return torch.where(small, 1.0 - d / 2, safe_log(theta) / d_safe)


def slq_logdet(cg: CGResult, cols: slice, max_steps: int, f=safe_log) -> torch.Tensor:
    """Per column, |b|^2 e1^T f(T) e1 (default f = log) from the Lanczos tridiagonal T rebuilt out of CG
    coefficients (T_tt = 1/a_t + b_{t-1}/a_{t-1}, T_t,t+1 = sqrt(b_t)/a_t); converged columns are padded
    with a decoupled unit block whose e1 weight is 0."""
    a = cg.alphas[:max_steps, cols].T          # (k, T)
    b = cg.betas[:max_steps, cols].T
    k, T = a.shape
    if T == 0:
        return torch.zeros(k, dtype=cg.X.dtype, device=cg.X.device)
    valid = a > 0
    a_safe = torch.where(valid, a, torch.ones_like(a))
    diag = 1.0 / a_safe
    diag[:, 1:] += torch.where(valid[:, 1:], b[:, :-1] / a_safe[:, :-1], torch.zeros_like(diag[:, 1:]))
    diag = torch.where(valid, diag, torch.ones_like(diag))
    off = torch.where(valid[:, 1:], b[:, :-1].clamp_min(0).sqrt() / a_safe[:, :-1], torch.zeros_like(diag[:, 1:]))
    Tm = torch.diag_embed(diag) + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    theta, V = torch.linalg.eigh(Tm)
    w = V[:, 0, :] ** 2
    return cg.b_norm2[cols] * (w * f(theta)).sum(1)


def draw_probes(r: int, probes, gen, dtype, device):
    """Rademacher probes (r x p) and the Hutchinson weight; probes='exact' uses the identity (weight 1)."""
    if probes == "exact":
        return torch.eye(r, dtype=dtype, device=device), 1.0
    p = int(probes)
    U = torch.randint(0, 2, (r, p), generator=gen, device=device).to(dtype) * 2 - 1
    return U, 1.0 / p
