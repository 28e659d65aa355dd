"""Randomized Nystrom approximation and the preconditioner built from it (Frangella, Tropp & Udell 2021).

`nystrom` sketches A ~ Q diag(lhat) Q^T of a PSD operator; `LowRankPlusScaled` is the preconditioner
M = Q diag(d) Q^T + c (I - Q Q^T), whose inverse square root, square root and determinant are explicit.
"""
from __future__ import annotations

import math

import torch


class LowRankPlusScaled:
    """M = Q diag(d) Q^T + c (I - Q Q^T) with orthonormal Q (r x l); everything about M is explicit."""

    def __init__(self, r: int, c, Q: torch.Tensor | None = None, d: torch.Tensor | None = None):
        self.r, self.c, self.Q, self.d = r, c, Q, d

    @property
    def rank(self) -> int:
        return 0 if self.Q is None else self.Q.shape[1]

    def to(self, dtype) -> "LowRankPlusScaled":
        """The same M with Q, d held in `dtype` (for low-precision operator applications)."""
        if self.Q is None or self.Q.dtype == dtype:
            return self
        return LowRankPlusScaled(self.r, self.c, self.Q.to(dtype), self.d.to(dtype))

    def _apply(self, V, fd, fc):
        out = fc * V
        if self.Q is not None:
            scale = (fd - fc).unsqueeze(1) if V.dim() == 2 else fd - fc
            out = out + self.Q @ (scale * (self.Q.T @ V))
        return out

    def inv_sqrt(self, V):
        return self._apply(V, None if self.Q is None else self.d.rsqrt(), self.c ** -0.5)

    def sqrt(self, V):
        return self._apply(V, None if self.Q is None else self.d.sqrt(), self.c ** 0.5)

    def logdet(self):
        ld = (self.r - self.rank) * math.log(float(self.c))
        return ld if self.Q is None else ld + torch.log(self.d).sum()

    def quad_rows(self, F, f_norm2):
        """diag(F M^-1 F^T) for F (m x r), given the row norms |F_k|^2."""
        out = f_norm2 / self.c
        if self.Q is not None:
            FQ = F @ self.Q
            out = out + (FQ * FQ) @ (1.0 / self.d - 1.0 / self.c)
        return out

    def trace_inv_weighted(self, dvec):
        """tr(M^-1 diag(dvec))."""
        out = dvec.sum() / self.c
        if self.Q is not None:
            out = out + ((self.Q * self.Q) * dvec.unsqueeze(1)).sum(0) @ (1.0 / self.d - 1.0 / self.c)
        return out


def nystrom(matvec, r: int, rank: int, gen: torch.Generator, dtype, device):
    """Randomized Nystrom approximation A ~ Q diag(lhat) Q^T of a PSD operator (Frangella, Tropp, Udell
    2021, Alg. 2.1, with the stabilising shift nu)."""
    Om = torch.randn(r, rank, generator=gen, dtype=dtype, device=device)
    Om, _ = torch.linalg.qr(Om)
    Y = matvec(Om)
    nu = math.sqrt(r) * torch.finfo(dtype).eps * torch.linalg.matrix_norm(Y, ord="fro")
    Yn = Y + nu * Om
    S = Om.T @ Yn
    Lc, info = torch.linalg.cholesky_ex(0.5 * (S + S.T))
    if int(info) != 0:
        return None, None
    Bm = torch.linalg.solve_triangular(Lc, Yn.T, upper=False).T
    Uq, sv, _ = torch.linalg.svd(Bm, full_matrices=False)
    lhat = (sv * sv - nu).clamp_min(0)
    return Uq, lhat
