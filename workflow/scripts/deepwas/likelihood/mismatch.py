"""A mismatch-robust per-window likelihood: LD that is not the statistics' own (paper Sec. 4.1, App. C.1).

The likelihood of paper Sec. 4.1 assumes the LD matrix R is the LD of the GWAS sample. With LD from a
reference panel (a few hundred people, or another ancestry) z_(i) does not lie in the column space of the
panel's R[i,i], and whitening by its smallest eigenvalues (App. C.1) amplifies the mismatch: the fitted
s2 grows and the prior shrinks. Following SuSiE-RSS (Zou et al. 2022, PLoS Genet. 18:e1010299), the
statistics are modelled with a regularised LD matrix

    R~ = (1 - l) R + l I,            0 <= l < 1  (`mm` below; l = 0 is the model of Sec. 4.1)

applied to the whole extended set (i)+ (m variants):

    z_(i) ~ N(0, A),   A = R~[i,+] diag(phi) R~[+,i] + s2 R~[i,i]                     (Eqn 5 with R -> R~)

Factored form. With R[i,i] = U diag(lam) U^T (the r kept eigenpairs, App. C.1), the factor
G = R[+,i] U lam^-1/2 (m x r) and S = I[i,+] (n x m, selects the core columns of (i)+),

    R~[i,+] = (1 - l) R[i,+] + l S,          R~[i,i] = (1 - l) R[i,i] + l I_n.

The likelihood scores the statistic the exact solver scores, x = U^T z_(i) (r numbers; y = lam^-1/2 x is
its whitened form). Its covariance is U^T A U, and in whitened coordinates

    C(l) = lam^-1/2 U^T A U lam^-1/2 = Gt^T diag(phi) Gt + s2 diag(d),
    Gt   = (1 - l) G + l S^T Q,    Q = U lam^-1/2 (n x r; S^T Q puts row j of Q at core variant j),
    d_k  = (1 - l) + l / lam_k,

    NLL_i(phi, s2, l) = 1/2 [ y^T C^-1 y + log|C| + sum(log lam) + r log(2 pi) ].

At l = 0, Gt = G and d = 1: this is `exact.nll` term for term (the same r x r Cholesky, the same
constant), so in-sample LD with l = 0 reproduces today's numbers exactly. The cost is that of the exact
solver: the m r^2 product forming C and one r x r Cholesky. Two consequences of the model:

- the l S term of R~[i,+] selects the core rows, so the prior variance phi_j of a *core* variant enters
  also through l Q[j] (in A: an extra l^2 diag(phi_core) and the (1 - l) l cross terms), while extended
  non-core variants enter only through (1 - l) G: the identity does not couple them to the core;
- directions of small lam_k get the residual variance s2 ((1 - l) lam_k + l) instead of s2 lam_k, i.e.
  d_k = 1 - l + l / lam_k in whitened units: the amplification by lam_k^-1/2 is bounded by l.

Why the r-dimensional statistic and not all n z-scores: with l > 0, A has full rank n and the component
of z_(i) outside the column space of R[i,i] (the n - r null directions of the truncated R[i,i]) would be
scored too, with variance s2 l + l^2 phi-terms. But at l = 0 that component has variance 0: the
n-dimensional model is degenerate there, its likelihood is infinite for in-sample LD and zero for
panel LD, so it cannot be compared with l = 0 by a likelihood ratio, and it cannot reduce to the exact
solver's likelihood (which is the density of x = U^T z_(i), App. C.1). The r-dimensional model is nested
in l (continuous at l = 0, equal to today's likelihood there), so l is estimated by maximum likelihood on
the training windows jointly with s2 and the constant prior (`s2.fit_constant_s2_mismatch`) and
compared with l = 0 by a likelihood-ratio test. The mismatch shows within the support: the directions
of small lam_k are exactly those where panel LD differs from the sample's.

Gradients (alpha = C^-1 y, K = L^-1 Gt^T with C = L L^T, H = dGt/dl = S^T Q - G, e = 1/lam - 1):

    dNLL/dphi_k = 1/2 [ |K[:, k]|^2 - (Gt alpha)_k^2 ]
    dNLL/ds2    = 1/2 [ sum_k d_k (C^-1)_kk - sum_k d_k alpha_k^2 ]
    dNLL/dl     = sum_k phi_k [ K[:, k] . (L^-1 H^T)[:, k] - (Gt alpha)_k (H alpha)_k ]
                  + s2/2 [ sum_k e_k (C^-1)_kk - sum_k e_k alpha_k^2 ]

are supplied analytically; autograd never differentiates through the factorisation.

At a fixed l the model is the exact solver on other factors: with D = diag(d), C = D^1/2 C' D^1/2 where

    C'  = G'^T diag(phi) G' + s2 I_r,   G' = Gt D^-1/2,   y' = D^-1/2 y,   lam' = lam d = (1 - l) lam + l,

so NLL_i(phi, s2, l) = exact.nll(phi, s2, G', y', lam') (the constant sum(log lam') = sum(log lam) +
sum(log d) carries log|D|). lam' are the eigenvalues of R~[i,i] on the span of U, y' = lam'^-1/2 U^T z_(i) is
the statistic whitened by R~, and G' = R~[+,i] U lam'^-1/2: the factorisation of App. C.1 applied to R~.
`regularise` computes (G', y', lam') once per window, so training and evaluation, with any solver, use the
mismatch model by changing only the arrays they read.
"""
from __future__ import annotations

import torch

from .exact import LOG_2PI


def mismatch_factor(G: torch.Tensor, U: torch.Tensor, lam: torch.Tensor, core: torch.Tensor, mm) -> tuple:
    """(Gt, H, d, e): Gt = (1 - l) G + l S^T Q, H = dGt/dl, d = 1 - l + l / lam, e = dd/dl (see the module
    docstring). `core`: (n,) indices of the core variants into (i)+; U: (n, r) kept eigenvectors of R[i,i]."""
    mm_t = mm if torch.is_tensor(mm) else torch.as_tensor(float(mm), dtype=G.dtype, device=G.device)
    SQ = torch.zeros_like(G)
    SQ[core] = U / torch.sqrt(lam)
    H = SQ - G
    Gt = G + mm_t * H
    e = 1.0 / lam - 1.0
    d = 1.0 + mm_t * e
    return Gt, H, d, e


class _MismatchNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, phi, s2, mm, G, y, lam, U, core):
        r = y.shape[0]
        Gt, H, d, e = mismatch_factor(G, U, lam, core, mm.detach())
        C = Gt.T @ (phi.unsqueeze(1) * Gt)
        C = C + torch.diag(s2 * d)
        L, info = torch.linalg.cholesky_ex(C)
        if int(info) != 0:
            raise FloatingPointError(
                "mismatch solver: C = Gt^T diag(phi) Gt + s2 diag(d) is not positive definite "
                f"(leading minor {int(info)} of {r}); phi has negative or non-finite entries, s2 <= 0 or the "
                f"mismatch parameter {float(mm):g} is outside [0, 1)"
            )
        v = torch.linalg.solve_triangular(L, y.unsqueeze(1), upper=False).squeeze(1)
        out = 0.5 * (v @ v + 2.0 * torch.log(torch.diagonal(L)).sum() + torch.log(lam).sum() + r * LOG_2PI)
        ctx.save_for_backward(L, Gt, H, d, e, v, phi, s2)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        L, Gt, H, d, e, v, phi, s2 = ctx.saved_tensors
        need_phi, need_s2, need_mm = ctx.needs_input_grad[:3]
        grad_phi = grad_s2 = grad_mm = None
        alpha = torch.linalg.solve_triangular(L.T, v.unsqueeze(1), upper=True).squeeze(1)
        Ga = Gt @ alpha
        if need_phi or need_mm:
            K = torch.linalg.solve_triangular(L, Gt.T, upper=False)
        if need_s2 or need_mm:
            Linv = torch.linalg.solve_triangular(L, torch.eye(L.shape[0], dtype=L.dtype, device=L.device), upper=False)
            cinv_diag = (Linv * Linv).sum(0)
        if need_phi:
            grad_phi = 0.5 * ((K * K).sum(0) - Ga ** 2) * grad_out
        if need_s2:
            grad_s2 = 0.5 * (d @ cinv_diag - d @ alpha ** 2) * grad_out
        if need_mm:
            KH = torch.linalg.solve_triangular(L, H.T, upper=False)
            g = phi @ ((K * KH).sum(0) - Ga * (H @ alpha)) + 0.5 * s2 * (e @ cinv_diag - e @ alpha ** 2)
            grad_mm = g * grad_out
        return grad_phi, grad_s2, grad_mm, None, None, None, None, None


def regularise(G, y, lam, U, core, mm: float):
    """(G', y', lam') of R~ = (1 - l) R + l I at a fixed l (numpy or torch arrays, float64), such that
    `exact.nll(phi, s2, G', y', lam') == nll(phi, s2, l, G, y, lam, U, core)`; l = 0 returns the inputs."""
    if mm == 0.0:
        return G, y, lam
    if not 0.0 < mm < 1.0:
        raise ValueError(f"mismatch lambda = {mm}: must be in [0, 1)")
    d = 1.0 + mm * (1.0 / lam - 1.0)
    Gt = (1.0 - mm) * G
    Gt[core] += mm * U / (lam ** 0.5)
    return Gt / d ** 0.5, y / d ** 0.5, lam * d


def _t(x, like: torch.Tensor) -> torch.Tensor:
    return x if torch.is_tensor(x) else torch.as_tensor(float(x), dtype=like.dtype, device=like.device)


def nll(phi: torch.Tensor, s2, mm, G: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, U: torch.Tensor,
        core: torch.Tensor) -> torch.Tensor:
    """NLL_i(phi, s2, l) of one window under R~ = (1 - l) R + l I; differentiable in phi, s2 and l.

    phi: (m,) prior variances in z units. s2, mm (the mismatch l, in [0, 1)): floats or 0-d tensors.
    G: (m, r) LD factor, y: (r,) whitened statistics, lam: (r,) kept eigenvalues, U: (n, r) kept
    eigenvectors of R[i,i], core: (n,) indices of the core into (i)+. At l = 0 equals `exact.nll`.
    """
    core = torch.as_tensor(core, dtype=torch.long, device=G.device)
    return _MismatchNLL.apply(phi, _t(s2, G), _t(mm, G), G, y, lam, U, core)


def nll_null(s2, mm, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """NLL_i(0) under R~: the null model f = 0, C = s2 diag(1 - l + l / lam) (diagonal, closed form)."""
    s2_t, mm_t = _t(s2, y), _t(mm, y)
    var = s2_t * (1.0 + mm_t * (1.0 / lam - 1.0))
    r = y.shape[0]
    return 0.5 * ((y * y / var).sum() + torch.log(var).sum() + torch.log(lam).sum() + r * LOG_2PI)


def nll_dense(phi: torch.Tensor, s2, mm, R: torch.Tensor, core: torch.Tensor, z_core: torch.Tensor,
              rtol: float = 1e-8, full: bool = False) -> torch.Tensor:
    """Dense float64 reference (tests only): forms R~ (m x m) and the n x n covariance
    A = R~[i,+] diag(phi) R~[+,i] + s2 R~[i,i], then scores x = P^T z_(i) on the support P of R[i,i]
    (eigenvalues above rtol * max), or all n z-scores when `full` (defined for l > 0 or full-rank R[i,i])."""
    m = R.shape[0]
    Rt = (1.0 - mm) * R + mm * torch.eye(m, dtype=R.dtype)
    Rt_ce = Rt[core]
    A = (Rt_ce * phi) @ Rt_ce.T + s2 * Rt_ce[:, core]
    if full:
        P = torch.eye(len(core), dtype=R.dtype)
    else:
        lam, V = torch.linalg.eigh(R[core][:, core])
        P = V[:, lam > rtol * lam.max()]
    Ap = P.T @ A @ P
    x = P.T @ z_core
    sign, logdet = torch.linalg.slogdet(Ap)
    if float(sign.detach()) <= 0:
        raise FloatingPointError("dense mismatch reference: projected A is not positive definite")
    return 0.5 * (x @ torch.linalg.solve(Ap, x) + logdet + x.shape[0] * LOG_2PI)
