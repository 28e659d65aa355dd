"""Matrix-free iterative solver for the per-window likelihood (paper Sec. 4.2, DESIGN section 2).

The solver works on C = s2 I_r + G^T diag(phi) G (r x r), applied through the stored LD factor G
(v -> s2 v + G^T (phi * (G v))); neither C nor B is ever formed. One call runs a single batched
conjugate-gradient solve on [y, probes] and reads off:

- the quadratic term y^T C^-1 y from the y column (CG, relative residual `rtol`);
- log|C| by stochastic Lanczos quadrature (SLQ): the Lanczos tridiagonals are recovered from the CG
  coefficients of the probe columns (as in GPyTorch's modified batched CG), so SLQ costs no extra products;
- dNLL/dphi_k = 1/2 [g_k^T C^-1 g_k - (g_k^T C^-1 y)^2] with the trace term by Hutchinson probes and the
  quadratic term exact from the CG solution; dNLL/ds2 = 1/2 [tr C^-1 - |C^-1 y|^2] likewise.

Variance reduction (what makes 100 probes give a gradient error of a few per cent): a randomized Nystrom
approximation K_l = Q diag(lhat) Q^T of K = G^T diag(phi) G (Frangella, Tropp & Udell 2021; rank
`precond_rank`) gives M = s2 I + K_l, whose inverse, square root and determinant are explicit. CG and SLQ
run on the symmetrically preconditioned M^-1/2 C M^-1/2 (eigenvalues in [1, 1 + lambda_{l+1}/s2]), and
the Hutchinson probes only estimate the small remainder g^T (C^-1 - M^-1) g; g^T M^-1 g is computed
exactly. The estimator stays unbiased for any M (the probes are independent of the sketch). With
`precond_rank=0`, M = s2 I and the exact part is |g_k|^2 / s2.

The gradient is supplied by `_Estimated`, our own torch.autograd.Function; cola-ml 0.0.7's backward passes
are not used (DESIGN section 2). The forward solves are plain torch: cola's CG returns neither per-column
Lanczos coefficients nor per-column convergence, which the batched SLQ and the fallback need.

A solve that does not reach `rtol` within `max_iters` (or meets a non-positive curvature) is logged at
WARNING on the "deepwas.likelihood" logger with its residual, counted in `stats["fallbacks"]`, and that
window is computed by the exact solver instead.

The building blocks (`batched_cg`, `slq_logdet`, `nystrom`, `LowRankPlusScaled`, `estimate`) are shared with
the Fig. 2 baselines in `baselines.py`, which apply them to A (n x n) and B (m x m).
"""
from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from . import exact, register

log = logging.getLogger("deepwas.likelihood")

LOG_2PI = math.log(2.0 * math.pi)

DEFAULTS = dict(rtol=1e-6, probe_rtol=1e-3, max_iters=1000, probes=100, lanczos_iters=100, precond_rank=200,
                seed=0, fallback=True, warm_start=False)


class NotConverged(RuntimeError):
    """CG stopped before its tolerance; carries the worst relative residual."""

    def __init__(self, message: str, residual: float, iters: int):
        super().__init__(message)
        self.residual = residual
        self.iters = iters


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------

@dataclass
class CGResult:
    X: torch.Tensor                 # (r, k) solutions
    iters: int                      # iterations of the slowest column
    col_iters: torch.Tensor         # (k,) iterations per column
    residual: torch.Tensor          # (k,) final relative residuals |b - A x| / |b|
    converged: bool
    alphas: torch.Tensor            # (T, k) CG step sizes (0 after a column converged)
    betas: torch.Tensor             # (T, k) CG direction coefficients
    b_norm2: torch.Tensor           # (k,) |b|^2 (the Lanczos start vector is b / |b| when x0 = 0)


def batched_cg(matvec, B: torch.Tensor, rtol=1e-6, max_iters: int = 1000,
               x0: torch.Tensor | None = None) -> CGResult:
    """Conjugate gradients on all columns of B at once; converged columns are frozen and dropped from
    the matrix products. Returns the CG coefficients for the Lanczos tridiagonals (exact only for columns
    started from x0 = 0)."""
    k = B.shape[1]
    rtol = torch.as_tensor(rtol, dtype=B.dtype, device=B.device).expand(k)   # per-column tolerances
    X = torch.zeros_like(B) if x0 is None else x0.clone()
    Rs = B.clone() if x0 is None else B - matvec(X)
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
        Pa = P[:, idx]
        APa = matvec(Pa)
        pAp = (Pa * APa).sum(0)
        if bool((pAp <= 0).any()) or not bool(torch.isfinite(pAp).all()):
            res = (rr.sqrt() / b_norm).max().item()
            raise NotConverged(f"CG met non-positive curvature at iteration {it} (operator not positive "
                               f"definite in working precision)", res, it)
        a = rr[idx] / pAp
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
                    (B * B).sum(0))


def _log(theta):
    return torch.log(theta.clamp_min(torch.finfo(theta.dtype).tiny))


def _log_over_xm1(theta):
    """log(x) / (x - 1), continuous at x = 1."""
    d = theta - 1.0
    small = d.abs() < 1e-6
    d_safe = torch.where(small, torch.ones_like(d), d)
    return torch.where(small, 1.0 - d / 2, _log(theta) / d_safe)


def slq_logdet(cg: CGResult, cols: slice, max_steps: int, f=_log) -> torch.Tensor:
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


class LowRankPlusScaled:
    """M = Q diag(d) Q^T + c (I - Q Q^T) with orthonormal Q (r x l); everything about M is explicit."""

    def __init__(self, r: int, c, Q: torch.Tensor | None = None, d: torch.Tensor | None = None):
        self.r, self.c, self.Q, self.d = r, c, Q, d

    @property
    def rank(self) -> int:
        return 0 if self.Q is None else self.Q.shape[1]

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


def draw_probes(r: int, probes, gen, dtype, device):
    """Rademacher probes (r x p) and the Hutchinson weight; probes='exact' uses the identity (weight 1)."""
    if probes == "exact":
        return torch.eye(r, dtype=dtype, device=device), 1.0
    p = int(probes)
    U = torch.randint(0, 2, (r, p), generator=gen, device=device).to(dtype) * 2 - 1
    return U, 1.0 / p


@dataclass
class Estimate:
    quad: torch.Tensor
    logdet: torch.Tensor
    alpha: torch.Tensor
    grad_phi: torch.Tensor | None
    grad_s2: torch.Tensor | None
    cg: CGResult
    info: dict = field(default_factory=dict)


def estimate(op, feats, feat_norm2, y, M: LowRankPlusScaled, probes, gen, *, rtol, max_iters,
             lanczos_iters, need_grad=True, ds2_diag=None, x0_y=None) -> Estimate:
    """Value and gradient pieces of 1/2 [y^T S^-1 y + log|S|] for an SPD operator S (r x r) with
    dS/dphi_k = f_k f_k^T, f_k^T V = feats(V)[k]; dS/ds2 = diag(ds2_diag).

    Runs one batched CG on M^-1/2 S M^-1/2 with right-hand sides [M^-1/2 y, probes]."""
    r = y.shape[0]
    dtype, device = y.dtype, y.device
    Xi, weight = draw_probes(r, probes, gen, dtype, device)

    def op_hat(V):
        W = M.inv_sqrt(V)
        return M.inv_sqrt(op(W))

    rhs = torch.cat([M.inv_sqrt(y).unsqueeze(1), Xi], dim=1)
    x0 = None
    if x0_y is not None:
        # only the y column is warm-started; probe columns must start at 0 for the Lanczos tridiagonals
        x0 = torch.zeros_like(rhs)
        x0[:, 0] = M.sqrt(x0_y)
    cg = batched_cg(op_hat, rhs, rtol=rtol, max_iters=max_iters, x0=x0)
    if not cg.converged:
        raise NotConverged(f"CG did not reach rtol={rtol:g} in {max_iters} iterations",
                           float(cg.residual.max()), cg.iters)
    alpha = M.inv_sqrt(cg.X[:, 0])
    quad = y @ alpha
    logdet = M.logdet() + weight * slq_logdet(cg, slice(1, None), lanczos_iters).sum()
    grad_phi = grad_s2 = None
    if need_grad:
        D = M.inv_sqrt(cg.X[:, 1:] - Xi)        # M^-1/2 (S_hat^-1 - I) xi
        H = M.inv_sqrt(Xi)
        trace = M.quad_rows(_FeatMatrix(feats), feat_norm2)
        FD = feats(torch.cat([D, H, alpha.unsqueeze(1)], dim=1))
        p = D.shape[1]
        trace = trace + weight * (FD[:, :p] * FD[:, p:2 * p]).sum(1)
        grad_phi = 0.5 * (trace - FD[:, 2 * p] ** 2)
        if ds2_diag is not None:
            tr = M.trace_inv_weighted(ds2_diag) + weight * ((H * ds2_diag.unsqueeze(1)) * D).sum()
            grad_s2 = 0.5 * (tr - alpha @ (ds2_diag * alpha))
    return Estimate(quad, logdet, alpha, grad_phi, grad_s2, cg)


class _FeatMatrix:
    """Lets LowRankPlusScaled.quad_rows compute F @ Q through a feature map."""

    def __init__(self, feats):
        self.feats = feats

    def __matmul__(self, Q):
        return self.feats(Q)


class _Estimated(torch.autograd.Function):
    """Returns a precomputed value; backward hands back the precomputed (stochastic) gradients."""

    @staticmethod
    def forward(ctx, phi, s2, value, grad_phi, grad_s2):
        ctx.save_for_backward(grad_phi, grad_s2)
        return value.clone()

    @staticmethod
    def backward(ctx, grad_out):
        gp, gs = ctx.saved_tensors
        return grad_out * gp, (grad_out * gs if ctx.needs_input_grad[1] else None), None, None, None


def attach_gradient(phi, s2_t, value, grad_phi, grad_s2):
    if grad_phi is None:
        grad_phi = torch.zeros_like(phi)
    if grad_s2 is None:
        grad_s2 = torch.zeros_like(s2_t)
    return _Estimated.apply(phi, s2_t, value.detach(), grad_phi.detach(), grad_s2.detach().reshape(s2_t.shape))


def estimate_gram(G, phi, s2, y, precond_rank, probes, gen, *, rtol, max_iters, lanczos_iters,
                  probe_rtol=None, need_grad=True, x0_y=None) -> Estimate:
    """The main estimator, for C = s2 I + F^T F with F = Phi^1/2 G (m x r).

    Preconditioner: a Nystrom range sketch gives an orthonormal Qm (m x l) spanning F Omega, Pi = Qm Qm^T,
    and M = s2 I + F^T Pi F (exactly PSD; its eigenpairs come from the SVD of F^T Qm). What M misses is
    C - M = F^T (I - Pi) F, so the probes are v = F^T (I - Pi) zeta with Rademacher zeta in R^m
    (E[v v^T] = C - M); they are matched to the remainder, which is what keeps their variance small:

        g^T C^-1 g  = g^T M^-1 g - E[(g^T C^-1 v)(g^T M^-1 v)]
        tr C^-1     = tr M^-1 - E[v^T M^-1 C^-1 v]
        log|C|      = log|M| + E[w^T h(C_hat) w],  w = M^-1/2 v, C_hat = M^-1/2 C M^-1/2, h(x) = log(x)/(x-1)

    (the last by tr log(I + X) = tr X h(I + X) with X = C_hat - I = H^T H, H = (I - Pi) F M^-1/2). One
    batched CG on C_hat with right-hand sides [M^-1/2 y, M^-1/2 V] gives C^-1 y, C^-1 V and, from its
    coefficients, the Lanczos tridiagonals for the SLQ term.
    """
    m, r = G.shape
    dtype, device = G.dtype, G.device
    s2f = float(s2)
    F = phi.sqrt().unsqueeze(1) * G
    rank = min(int(precond_rank), r // 2, m // 2)
    M, Qm = LowRankPlusScaled(r, s2f), None
    if rank > 0:
        Om = torch.randn(r, rank, generator=gen, dtype=dtype, device=device)
        Qm, _ = torch.linalg.qr(F @ Om)
        Q, sv, _ = torch.linalg.svd(F.T @ Qm, full_matrices=False)
        M = LowRankPlusScaled(r, s2f, Q, sv * sv + s2f)
    if probes == "exact":
        Z, weight = torch.eye(m, dtype=dtype, device=device), 1.0
    else:
        Z, weight = draw_probes(m, probes, gen, dtype, device)
    if Qm is not None:
        Z = Z - Qm @ (Qm.T @ Z)
    V = F.T @ Z

    def op_hat(X):
        W = M.inv_sqrt(X)
        return M.inv_sqrt(s2 * W + F.T @ (F @ W))

    rhs = torch.cat([M.inv_sqrt(y).unsqueeze(1), M.inv_sqrt(V)], dim=1)
    x0 = None
    if x0_y is not None:
        x0 = torch.zeros_like(rhs)
        x0[:, 0] = M.sqrt(x0_y)
    probe_rtol = rtol if probe_rtol is None else max(rtol, probe_rtol)
    tols = torch.full((rhs.shape[1],), probe_rtol, dtype=dtype, device=device)
    tols[0] = rtol
    cg = batched_cg(op_hat, rhs, rtol=tols, max_iters=max_iters, x0=x0)
    if not cg.converged:
        raise NotConverged(f"CG did not reach rtol={rtol:g} (probes {probe_rtol:g}) in {max_iters} iterations",
                           float(cg.residual.max()), cg.iters)
    alpha = M.inv_sqrt(cg.X[:, 0])
    quad = y @ alpha
    logdet = M.logdet() + weight * slq_logdet(cg, slice(1, None), lanczos_iters, _log_over_xm1).sum()
    grad_phi = grad_s2 = None
    if need_grad:
        Y = M.inv_sqrt(cg.X[:, 1:])            # C^-1 V
        MV = M.inv_sqrt(rhs[:, 1:])            # M^-1 V
        p = Y.shape[1]
        GQ = G @ torch.cat([Y, MV, alpha.unsqueeze(1)] + ([M.Q] if M.Q is not None else []), dim=1)
        trace = (G * G).sum(1) / s2f
        if M.Q is not None:
            trace = trace + (GQ[:, 2 * p + 1:] ** 2) @ (1.0 / M.d - 1.0 / s2f)
        trace = trace - weight * (GQ[:, :p] * GQ[:, p:2 * p]).sum(1)
        grad_phi = 0.5 * (trace - GQ[:, 2 * p] ** 2)
        tr = M.trace_inv_weighted(torch.ones(r, dtype=dtype, device=device)) - weight * (MV * Y).sum()
        grad_s2 = 0.5 * (tr - alpha @ alpha)
    return Estimate(quad, logdet, alpha, grad_phi, grad_s2, cg)


# --------------------------------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------------------------------

class IterativeSolver:
    """`solver(phi, s2, G, y, lam) -> NLL_i(phi)` by preconditioned CG + SLQ + Hutchinson on C.

    Options: rtol (CG relative residual of the y column, which gives the quadratic term and the
    quadratic part of the gradient), probe_rtol (looser CG tolerance of the probe columns, whose solves feed
    only the stochastic terms: their error is far below the probe noise; None = rtol), max_iters, probes (int, or 'exact' for identity probes),
    lanczos_iters (Lanczos steps used by SLQ), precond_rank (Nystrom rank, 0 = none), seed, fallback
    (use the exact solver when CG fails; otherwise raise), warm_start (start the y column from the last
    solution for the same window). Each call draws fresh probes from seed and a call counter, so a run is
    reproducible; `reset(seed)` restarts the counter.
    """

    def __init__(self, rtol=DEFAULTS["rtol"], probe_rtol=DEFAULTS["probe_rtol"], max_iters=DEFAULTS["max_iters"],
                 probes=DEFAULTS["probes"], lanczos_iters=DEFAULTS["lanczos_iters"], precond_rank=DEFAULTS["precond_rank"],
                 seed=DEFAULTS["seed"], fallback=DEFAULTS["fallback"], warm_start=DEFAULTS["warm_start"],
                 warm_cache=256):
        if probes != "exact" and int(probes) < 1:
            raise ValueError(f"iterative solver: probes must be >= 1 or 'exact', got {probes!r}")
        if rtol <= 0 or int(max_iters) < 1:
            raise ValueError(f"iterative solver: need rtol > 0 and max_iters >= 1 (got {rtol}, {max_iters})")
        self.rtol, self.max_iters, self.probes = float(rtol), int(max_iters), probes
        self.probe_rtol = None if probe_rtol is None else float(probe_rtol)
        self.lanczos_iters, self.precond_rank = int(lanczos_iters), int(precond_rank)
        self.fallback, self.warm_start = bool(fallback), bool(warm_start)
        self._warm: OrderedDict = OrderedDict()
        self._warm_cache = warm_cache
        self.reset(seed)

    def reset(self, seed=None):
        if seed is not None:
            self.seed = int(seed)
        self._counter = 0
        self.stats = dict(calls=0, fallbacks=0, iterations_last=0, iterations_mean=0.0, residual_last=0.0)

    def _generator(self, device):
        gen = torch.Generator(device=device)
        gen.manual_seed((self.seed * 1_000_003 + self._counter) % (2 ** 63))
        self._counter += 1
        return gen

    def __call__(self, phi, s2, G, y, lam):
        s2_t = s2 if torch.is_tensor(s2) else torch.as_tensor(s2, dtype=G.dtype, device=G.device)
        need_grad = torch.is_grad_enabled() and (phi.requires_grad or s2_t.requires_grad)
        gen = self._generator(G.device)
        self.stats["calls"] += 1
        key = (G.data_ptr(), tuple(G.shape), y.data_ptr())
        try:
            with torch.no_grad():
                est = self._estimate(phi.detach(), s2_t.detach(), G, y, gen, need_grad, key)
        except NotConverged as err:
            self.stats["fallbacks"] += 1
            self.stats["residual_last"] = err.residual
            msg = (f"iterative solver: window m={G.shape[0]} r={G.shape[1]}: {err} "
                   f"(relative residual {err.residual:.3e} after {err.iters} iterations)")
            if not self.fallback:
                raise NotConverged(msg, err.residual, err.iters) from None
            log.warning("%s; falling back to the exact solver for this window (fallback %d of %d calls)",
                        msg, self.stats["fallbacks"], self.stats["calls"])
            return exact.nll(phi, s2_t, G, y, lam)
        n_ok = self.stats["calls"] - self.stats["fallbacks"]
        self.stats["iterations_last"] = est.cg.iters
        self.stats["iterations_mean"] += (est.cg.iters - self.stats["iterations_mean"]) / max(n_ok, 1)
        self.stats["residual_last"] = float(est.cg.residual.max())
        r = y.shape[0]
        value = 0.5 * (est.quad + est.logdet + torch.log(lam).sum() + r * LOG_2PI)
        if not need_grad:
            return value
        return attach_gradient(phi, s2_t, value, est.grad_phi, est.grad_s2)

    def _estimate(self, phi, s2, G, y, gen, need_grad, key):
        if bool((phi < 0).any()):
            raise ValueError("iterative solver: phi has negative entries")
        x0 = self._warm.get(key) if self.warm_start else None
        est = estimate_gram(G, phi, s2, y, self.precond_rank, self.probes, gen, rtol=self.rtol,
                            max_iters=self.max_iters, lanczos_iters=self.lanczos_iters, need_grad=need_grad,
                            probe_rtol=self.probe_rtol, x0_y=x0)
        if self.warm_start:
            self._warm[key] = est.alpha
            self._warm.move_to_end(key)
            while len(self._warm) > self._warm_cache:
                self._warm.popitem(last=False)
        return est


def make_solver(**options) -> IterativeSolver:
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"iterative solver: unknown option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    return IterativeSolver(**options)


register("iterative", make_solver)
