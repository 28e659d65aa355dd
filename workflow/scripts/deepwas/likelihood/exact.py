"""Exact low-rank solver for the per-window DeepWAS likelihood (paper Sec. 4, App. C.1).

With the LD factor G (m x r) of a window and its whitened statistics y (length r),

    C = s2 I_r + G^T diag(phi) G
    NLL_i(phi) = 1/2 [ y^T C^-1 y + log|C| + sum(log lam) + r log(2 pi) ]

which equals the paper's Woodbury form (Eqn 5 and App. C.1) with B = I_m + Phi^1/2 W Phi^1/2 / s2,
log|C| = log|B| + r log s2. The gradient is supplied analytically,

    dNLL/dphi_k = 1/2 [ g_k^T C^-1 g_k - (g_k^T C^-1 y)^2 ]
    dNLL/ds2    = 1/2 [ tr(C^-1) - |C^-1 y|^2 ]

so one step costs one r x r Cholesky, the m r^2 product that forms C and one triangular solve with
G^T; autograd never differentiates through the factorisation.
"""
from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2.0 * math.pi)


def _constant(lam: torch.Tensor, r: int) -> torch.Tensor:
    return torch.log(lam).sum() + r * LOG_2PI


class _ExactNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, phi, s2, G, y, lam):
        r = y.shape[0]
        C = G.T @ (phi.unsqueeze(1) * G)
        C.diagonal().add_(s2)
        L, info = torch.linalg.cholesky_ex(C)
        if int(info) != 0:
            raise FloatingPointError(
                "exact solver: C = s2 I + G^T diag(phi) G is not positive definite "
                f"(leading minor {int(info)} of {r}); phi has negative or non-finite entries, or s2 <= 0"
            )
        v = torch.linalg.solve_triangular(L, y.unsqueeze(1), upper=False).squeeze(1)
        quad = v @ v
        logdet = 2.0 * torch.log(torch.diagonal(L)).sum()
        ctx.save_for_backward(L, G, v)
        ctx.needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return 0.5 * (quad + logdet + _constant(lam, r))

    @staticmethod
    def backward(ctx, grad_out):
        L, G, v = ctx.saved_tensors
        grad_phi = grad_s2 = None
        # alpha = C^-1 y ; K = L^-1 G^T so that g_k^T C^-1 g_k = |K[:, k]|^2
        alpha = torch.linalg.solve_triangular(L.T, v.unsqueeze(1), upper=True).squeeze(1)
        if ctx.needs[0]:
            K = torch.linalg.solve_triangular(L, G.T, upper=False)
            grad_phi = 0.5 * ((K * K).sum(0) - (G @ alpha) ** 2) * grad_out
        if ctx.needs[1]:
            Linv = torch.linalg.solve_triangular(L, torch.eye(L.shape[0], dtype=L.dtype, device=L.device), upper=False)
            grad_s2 = 0.5 * ((Linv * Linv).sum() - alpha @ alpha) * grad_out
        return grad_phi, grad_s2, None, None, None


def nll(phi: torch.Tensor, s2, G: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Exact NLL_i(phi) of one window; differentiable in phi (and s2 when it is a tensor).

    phi: (m,) prior variances in z units, phi = N f. s2: residual variance (float or 0-d tensor).
    G: (m, r) LD factor. y: (r,) whitened statistics. lam: (r,) kept eigenvalues of R[i,i].
    """
    s2_t = s2 if torch.is_tensor(s2) else torch.as_tensor(s2, dtype=G.dtype, device=G.device)
    return _ExactNLL.apply(phi, s2_t, G, y, lam)


def nll_null(s2, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """NLL_i(0): the null model f = 0, C = s2 I_r."""
    r = y.shape[0]
    s2_t = s2 if torch.is_tensor(s2) else torch.as_tensor(s2, dtype=y.dtype, device=y.device)
    return 0.5 * ((y @ y) / s2_t + r * torch.log(s2_t) + _constant(lam, r))
