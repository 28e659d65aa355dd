"""Batched conjugate gradients that keep the coefficients SLQ needs (paper Sec. 4.2).

`batched_cg` solves A X = B for all columns of B at once and records the CG step sizes and direction
coefficients per column, from which `lanczos.slq_logdet` rebuilds the Lanczos tridiagonals (as in GPyTorch's
modified batched CG), so the log-determinant costs no extra products.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


class NotConverged(RuntimeError):
    """CG stopped before its tolerance; carries the worst relative residual."""

    def __init__(self, message: str, residual: float, iters: int):
        super().__init__(message)
        self.residual = residual
        self.iters = iters


@dataclass
class CGResult:
    X: torch.Tensor                 # (r, k) solutions
    iters: int                      # iterations of the slowest column
    col_iters: torch.Tensor         # (k,) iterations per column
    residual: torch.Tensor          # (k,) final relative residuals |b - A x| / |b| (CG recurrence)
    converged: bool
    alphas: torch.Tensor            # (T, k) CG step sizes (0 after a column converged)
    betas: torch.Tensor             # (T, k) CG direction coefficients
    b_norm2: torch.Tensor           # (k,) |b|^2 (the Lanczos start vector is b / |b| when x0 = 0)
    aux: torch.Tensor | None = None     # with_aux: the linear side output of matvec, accumulated: aux(X)
    aux0: torch.Tensor | None = None    # with_aux: aux of the first search direction (= aux(B) when x0 = 0)


def batched_cg(matvec, B: torch.Tensor, rtol=1e-6, max_iters: int = 1000,
               x0: torch.Tensor | None = None, with_aux: bool = False) -> CGResult:
    """Conjugate gradients on all columns of B at once; converged columns are frozen and dropped from
    the matrix products. Returns the CG coefficients for the Lanczos tridiagonals (exact only for columns
    started from x0 = 0).

    The recurrences (X, residuals, directions, coefficients) are kept in B's dtype whatever precision
    `matvec` computes in. With `with_aux`, `matvec(P)` returns `(A P, aux(P))` for a linear map `aux`
    (here: the m-row products G M^-1/2 P that the operator computes anyway); CG accumulates
    aux(X) = sum_t a_t aux(P_t) alongside X at the cost of an axpy, so the caller gets aux of the
    solutions without another pass over G."""
    k = B.shape[1]
    rtol = torch.as_tensor(rtol, dtype=B.dtype, device=B.device).expand(k)   # per-column tolerances

    def mv(V):
        out = matvec(V)
        return out if with_aux else (out, None)

    X = torch.zeros_like(B) if x0 is None else x0.clone()
    aux_acc = aux0 = None
    Rs = B.clone()
    if x0 is not None:
        nz = (X != 0).any(0).nonzero().squeeze(1)       # only started columns need a product
        if nz.numel():
            AX0, aux_nz = mv(X[:, nz])
            Rs[:, nz] -= AX0.to(B.dtype)
            if aux_nz is not None:
                aux_acc = torch.zeros(aux_nz.shape[0], k, dtype=aux_nz.dtype, device=aux_nz.device)
                aux_acc[:, nz] = aux_nz
    b_norm = torch.linalg.vector_norm(B, dim=0)
    b_norm = torch.where(b_norm > 0, b_norm, torch.ones_like(b_norm))
    rr = (Rs * Rs).sum(0)
    P = Rs.clone()
    active = rr.sqrt() > rtol * b_norm
    col_iters = torch.zeros(k, dtype=torch.long, device=B.device)
    alphas, betas = [], []
    it = 0
    while bool(active.any()) and it < max_iters:
        idx = active.nonzero().squeeze(1)
        full = idx.numel() == k
        Pa = P if full else P[:, idx]
        APa, aux = mv(Pa)
        APa = APa.to(B.dtype)
        pAp = (Pa * APa).sum(0)
        if bool((pAp <= 0).any()) or not bool(torch.isfinite(pAp).all()):
            res = (rr.sqrt() / b_norm).max().item()
            raise NotConverged(f"CG met non-positive curvature at iteration {it} (operator not positive "
                               f"definite in working precision)", res, it)
        a = rr[idx] / pAp
        if aux is not None:
            if aux_acc is None:
                aux_acc = torch.zeros(aux.shape[0], k, dtype=aux.dtype, device=aux.device)
            if it == 0:
                aux0 = torch.zeros(aux.shape[0], k, dtype=aux.dtype, device=aux.device)
                aux0[:, idx] = aux
            if full:
                aux_acc.add_(aux * a.to(aux.dtype))
            else:
                aux_acc[:, idx] += aux * a.to(aux.dtype)
        if full:
            X.add_(a * Pa)
            Rs.sub_(a * APa)
            rr_new = (Rs * Rs).sum(0)
            bta = rr_new / rr
            P = Rs + bta * Pa
        else:
            X[:, idx] += a * Pa
            Rs[:, idx] -= a * APa
            rr_new = (Rs[:, idx] ** 2).sum(0)
            bta = rr_new / rr[idx]
            P[:, idx] = Rs[:, idx] + bta * Pa
        a_full = torch.zeros(k, dtype=B.dtype, device=B.device)
        b_full = torch.zeros(k, dtype=B.dtype, device=B.device)
        a_full[idx] = a
        b_full[idx] = bta
        alphas.append(a_full)
        betas.append(b_full)
        rr[idx] = rr_new
        col_iters[idx] += 1
        active = rr.sqrt() > rtol * b_norm
        it += 1
    residual = rr.sqrt() / b_norm
    empty = torch.zeros(0, k, dtype=B.dtype, device=B.device)
    return CGResult(X, it, col_iters, residual, not bool(active.any()),
                    torch.stack(alphas) if alphas else empty, torch.stack(betas) if betas else empty,
                    (B * B).sum(0), aux_acc, aux0)
