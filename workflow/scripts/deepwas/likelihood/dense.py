"""Dense reference computations of the per-window likelihood, for tests and benchmarks only.

`nll_dense` is the float64 reference every solver is tested against: it forms
A = R[i,+] diag(phi) R[+,i] + s2 R[i,i] (paper Eqn 5) and evaluates the Gaussian NLL with the
pseudo-inverse and pseudo-determinant on the support of R[i,i] (App. C.1), by projecting onto the
eigenvectors of R[i,i] whose eigenvalues exceed `rtol * max(eig)`.

`nll_reference_style` repeats, every call, what the authors' released code does every training step:
eigendecompose R[i,i], form R^+, L and W (m x m), and factor B = I + Phi^1/2 W Phi^1/2 / s2 by
Cholesky. It exists as the baseline of the benchmarks.
"""
from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2.0 * math.pi)


def _support(R_core: torch.Tensor, rtol: float):
    lam, U = torch.linalg.eigh(R_core)
    keep = lam > rtol * lam.max()
    return lam[keep], U[:, keep]


def nll_dense(phi: torch.Tensor, s2, R: torch.Tensor, core: torch.Tensor, z_core: torch.Tensor,
              rtol: float = 1e-8) -> torch.Tensor:
    """Reference NLL of z_(i) ~ N(0, A) on the support of R[i,i].

    R: (m, m) LD of the extended set (i)+; core: index tensor of (i) into (i)+; z_core: (n,) z-scores.
    """
    R_ce = R[core]                       # R[i,+], n x m
    R_cc = R_ce[:, core]                 # R[i,i]
    _, P = _support(R_cc, rtol)
    A = (R_ce * phi) @ R_ce.T + s2 * R_cc
    Ap = P.T @ A @ P
    zp = P.T @ z_core
    r = zp.shape[0]
    sign, logdet = torch.linalg.slogdet(Ap)
    if float(sign.detach()) <= 0:
        raise FloatingPointError("dense reference: projected A is not positive definite")
    return 0.5 * (zp @ torch.linalg.solve(Ap, zp) + logdet + r * LOG_2PI)


def nll_null_dense(s2, R: torch.Tensor, core: torch.Tensor, z_core: torch.Tensor, rtol: float = 1e-8):
    """Reference NLL(0) = NLL of z_(i) ~ N(0, s2 R[i,i]) on the support of R[i,i]."""
    return nll_dense(torch.zeros(R.shape[0], dtype=R.dtype), s2, R, core, z_core, rtol)


def nll_reference_style(phi: torch.Tensor, s2, R: torch.Tensor, core: torch.Tensor, z_core: torch.Tensor,
                        rtol: float = 1e-8) -> torch.Tensor:
    """The authors' per-step computation (Woodbury form, App. C.1), redone from R on every call."""
    R_ec = R[:, core]                    # R[+,i], m x n
    R_cc = R_ec[core]
    lam, U = _support(R_cc, rtol)
    R_pinv = (U / lam) @ U.T
    L = R_ec @ R_pinv                    # m x n
    W = L @ R_ec.T                       # m x m
    sq = torch.sqrt(phi)
    B = (sq.unsqueeze(1) * W * sq.unsqueeze(0)) / s2
    B.diagonal().add_(1.0)
    LB = torch.linalg.cholesky(B)
    u = sq * (L @ z_core)
    w = torch.cholesky_solve(u.unsqueeze(1), LB).squeeze(1)
    quad = (z_core @ (R_pinv @ z_core)) / s2 - (u @ w) / s2**2
    r = lam.shape[0]
    logdet = r * math.log(s2) + torch.log(lam).sum() + 2.0 * torch.log(torch.diagonal(LB)).sum()
    return 0.5 * (quad + logdet + r * LOG_2PI)
