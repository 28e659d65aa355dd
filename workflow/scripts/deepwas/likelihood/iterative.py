"""Matrix-free iterative solver for the per-window likelihood (paper Sec. 4, App. C.1).

The solver works on C = s2 I_r + G^T diag(phi) G (r x r), applied through the stored LD factor G
(v -> s2 v + G^T (phi * (G v))); neither C nor B is ever formed. One call

- sketches a randomized Nystrom preconditioner M = s2 I + F^T Pi F of C (F = Phi^1/2 G; Pi projects onto
  the range of F Omega, Omega = orth(K Omega_0) after `power_iters` subspace iterations on a Gaussian
  Omega_0; Frangella, Tropp & Udell 2021). M's inverse, square root and determinant are explicit;
- runs one batched preconditioned CG on [y, probes] (phase A), and finishes the y column in G's own
  precision (phase B), reading off:
  - the quadratic term y^T C^-1 y (CG, relative residual `rtol`, checked on the true residual);
  - log|C| = log|M| + SLQ on the remainder: the Lanczos tridiagonals are recovered from the CG
    coefficients of the probe columns (as in GPyTorch's modified batched CG), so SLQ costs no products;
  - dNLL/dphi_k = 1/2 [g_k^T C^-1 g_k - (g_k^T C^-1 y)^2]: g_k^T M^-1 g_k exactly, the remainder
    g_k^T (C^-1 - M^-1) g_k by Hutchinson probes, the quadratic part from the CG solution;
    dNLL/ds2 = 1/2 [tr C^-1 - |C^-1 y|^2] likewise.

Variance reduction (see `estimate_gram`): the probes are v = F^T (I - Pi) zeta, so E[v v^T] = C - M and the
stochastic part only covers what the preconditioner misses; with the deflated spectrum in [1, 1 + small],
CG needs a handful of steps and 40 probes give a gradient error of about 1% at n = 2000 (target: 3%).
The estimator is unbiased for any M independent of the probes (checked in tests over probe seeds).
What M misses grows with the window (the number of LD blocks), so by default (`grad_error_target`) the rank
and the number of probes are chosen per call: the rank from the sketch's captured spectrum, the probes
from their own sample variance (see `IterativeSolver`); Fig. 2 at n = 8000: rank 400, 76 probes, 1.9%.

Cost (what the profile at n = 4000, m = 12000, r = 3556 showed): everything is G products; the step
costs about (2 + 2 power_iters) l + p + 2 (p + 1) T columns through G (l = precond_rank, p = probes,
T = CG steps, 3-6 here) instead of the exact solver's O(r) columns. To keep it there:
- the products CG needs for the gradient are not redone: CG accumulates G C^-1 V alongside C^-1 V (an
  axpy per step, `batched_cg(with_aux=True)`) and reads G M^-1 V off its first product; G C^-1 y comes
  from phase B's residual check;
- `matvec_dtype='float32'` (default): the sketch, the probes and phase A run their G products in float32
  (about 2.5x the float64 GEMM rate on this CPU); the recurrences, M and every reduction stay float64,
  and phase B brings the y column to `rtol` on the true float64 residual. Float32 rounding (relative
  1e-7) is far below the probe noise (1e-2) and probe_rtol; tests check that same-seed values and
  gradients agree with all-float64 products to about 1e-6. Float32 is not used when probe_rtol < 1e-4;
- probe columns stop at `probe_rtol` (1e-2): their truncation error is far below their noise (a bias
  check over 100 seeds at n = 1000 gave the same mean as all-float64 products at 1e-6);
- `reuse_sketch` (off by default): start a window's sketch from its previous Q (one more subspace
  iteration per visit; n = 2000, l = 200, no power iteration: gradient error 2.0% -> 0.55% after one
  revisit). Costs r x l floats per cached window and makes results depend on the call history.

The gradient is supplied by `_Estimated`, our own torch.autograd.Function; cola-ml 0.0.7's backward passes
are not used. The forward solves are plain torch: cola's CG returns neither per-column
Lanczos coefficients nor per-column convergence, which the batched SLQ and the fallback need.

A solve that does not reach its tolerance within `max_iters` (or meets a non-positive curvature) is
logged at WARNING on the "deepwas.likelihood" logger with its residual, counted in `stats["fallbacks"]`,
and that window is computed by the exact solver instead.

The Krylov and Nystrom building blocks (`linalg.cg.batched_cg`, `linalg.lanczos.slq_logdet`,
`linalg.nystrom`) and the estimator `estimate` are shared with the Fig. 2 baselines in `baselines.py`, which
apply them to A (n x n) and B (m x m).
"""
from __future__ import annotations

import logging
import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from ..config import block_defaults
from ..linalg.cg import CGResult, NotConverged, batched_cg
from ..linalg.lanczos import draw_probes, log_over_xm1, slq_logdet
from ..linalg.nystrom import LowRankPlusScaled
from . import exact, register

log = logging.getLogger("deepwas.likelihood")

LOG_2PI = math.log(2.0 * math.pi)

# The solver's settings and their defaults are the config's `likelihood` block (the schema is their only source).
DEFAULTS = {k: v for k, v in block_defaults("likelihood").items() if k != "solver"}


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------

@dataclass
class Estimate:
    quad: torch.Tensor
    logdet: torch.Tensor
    alpha: torch.Tensor
    grad_phi: torch.Tensor | None
    grad_s2: torch.Tensor | None
    cg: CGResult
    info: dict = field(default_factory=dict)
    Q: torch.Tensor | None = None       # r-space basis of the preconditioner (estimate_gram)


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


# Working precision of the batched G products: float32 is used only for columns whose tolerance it can reach
LOW_PRECISION_MIN_RTOL = {torch.float32: 1e-4, torch.float64: 0.0}


@dataclass
class ProbeSums:
    """Sums over the probes of each stochastic term of `estimate_gram`, so that batches of probes drawn for
    the same preconditioner can be pooled and the estimator's variance read off (n probes; the estimate is
    sum / n). `g_sum`, `g_sq`: per-variant terms t_kj = (g_k^T C^-1 v_j)(g_k^T M^-1 v_j) and their squares;
    `logdet_sum`: SLQ values; `s2_sum`: v_j^T M^-1 C^-1 v_j."""
    n: int
    g_sum: torch.Tensor | None
    g_sq: torch.Tensor | None
    logdet_sum: torch.Tensor
    s2_sum: torch.Tensor | None

    def __add__(self, other: "ProbeSums") -> "ProbeSums":
        add = lambda a, b: None if a is None or b is None else a + b  # noqa: E731
        return ProbeSums(self.n + other.n, add(self.g_sum, other.g_sum), add(self.g_sq, other.g_sq),
                         self.logdet_sum + other.logdet_sum, add(self.s2_sum, other.s2_sum))


def nystrom_preconditioner(G_low, phi, s2, rank, gen, *, power_iters=0, sketch=None, dtype=torch.float64):
    """(M, Qm): the randomized Nystrom preconditioner M = s2 I + F^T Pi F of C = s2 I + F^T F (F = Phi^1/2 G,
    Pi = Qm Qm^T onto the range of F Omega) and Qm (m x rank), see `estimate_gram`. The captured spectrum is
    M.d - s2 (the top `rank` eigenvalues of F^T Pi F); rank 0 gives M = s2 I."""
    m, r = G_low.shape
    lo = G_low.dtype
    device = G_low.device
    s2f = float(s2)
    if rank <= 0:
        return LowRankPlusScaled(r, s2f), None
    sq_l, phi_l = phi.sqrt().to(lo), phi.to(lo)
    if sketch is not None and sketch.shape == (r, rank):
        Om = sketch.to(lo)
    else:
        Om = torch.randn(r, rank, generator=gen, dtype=dtype, device=device).to(lo)
    for _ in range(int(power_iters)):             # subspace iteration: Om <- orth(K Om)
        Om, _ = torch.linalg.qr(G_low.T @ (phi_l.unsqueeze(1) * (G_low @ Om)))
    Qm, _ = torch.linalg.qr(sq_l.unsqueeze(1) * (G_low @ Om))
    Qm = Qm.to(dtype)
    Bt = (G_low.T @ (sq_l.unsqueeze(1) * Qm.to(lo))).to(dtype)          # F^T Qm (r x l)
    Q, sv, _ = torch.linalg.svd(Bt, full_matrices=False)
    return LowRankPlusScaled(r, s2f, Q, sv * sv + s2f), Qm


def estimate_gram(G, phi, s2, y, precond_rank, probes, gen, *, rtol, max_iters, lanczos_iters,
                  probe_rtol=None, need_grad=True, x0_y=None, G_low=None, g_norm2=None,
                  sketch=None, power_iters=0, precond=None, solve_y=True) -> Estimate:
    """The main estimator, for C = s2 I + F^T F with F = Phi^1/2 G (m x r); F is never formed.

    Preconditioner: a Nystrom range sketch gives an orthonormal Qm (m x l) spanning F Omega, Pi = Qm Qm^T,
    and M = s2 I + F^T Pi F (exactly PSD; its eigenpairs come from the SVD of F^T Qm). What M misses is
    C - M = F^T (I - Pi) F, so the probes are v = F^T (I - Pi) zeta with Rademacher zeta in R^m
    (E[v v^T] = C - M); they are matched to the remainder, which is what keeps their variance small:

        g^T C^-1 g  = g^T M^-1 g - E[(g^T C^-1 v)(g^T M^-1 v)]
        tr C^-1     = tr M^-1 - E[v^T M^-1 C^-1 v]
        log|C|      = log|M| + E[w^T h(C_hat) w],  w = M^-1/2 v, C_hat = M^-1/2 C M^-1/2, h(x) = log(x)/(x-1)

    (the last by tr log(I + X) = tr X h(I + X) with X = C_hat - I = H^T H, H = (I - Pi) F M^-1/2). The
    deterministic parts (g^T M^-1 g, tr M^-1, log|M|) are exact; the probes only cover the remainder.

    Phase A: one batched CG on C_hat with right-hand sides [M^-1/2 y, M^-1/2 V] gives C^-1 y (recurrence
    residual to rtol), C^-1 V (to probe_rtol) and, from its coefficients, the
    Lanczos tridiagonals for the SLQ term. Its G products run in G_low's dtype (float32 when the solver's
    `matvec_dtype` says so; the CG recurrences stay float64), and CG accumulates G C^-1 V and reads
    G M^-1 V off its first product, so the gradient needs no further pass over G.
    Phase B: CG in G's dtype on the y column alone, started from phase A's solution: it checks the true
    residual, refines it to rtol (usually 0-2 steps) and yields G C^-1 y in full precision.

    `power_iters` subspace iterations Omega <- orth(K Omega) (2 l more G products each) sharpen the sketch:
    at n = 2000 one iteration at l = 200 beat a plain sketch at l = 400 (gradient error 0.75% vs 0.9% with
    fewer probes, in 0.55 vs 0.71 s). `sketch` (r x l, optional): start from this test matrix instead of a
    fresh Gaussian one (the previous step's Q). Any sketch independent of the probes keeps the estimator
    unbiased.

    `precond` = (M, Qm) of an earlier call on the same (G, phi, s2) skips the sketch; with `solve_y=False`
    only the probe columns are solved (more probes for the same preconditioner: pool the `sums` of the two
    calls, `IterativeSolver` does so). The returned `sums` hold the per-probe terms' sums and squares, from
    which `info["grad_err_est"]` is the estimated relative error of grad_phi (the probe mean's standard
    error over |grad_phi|).
    """
    m, r = G.shape
    dtype, device = G.dtype, G.device
    s2f = float(s2)
    Gl = G if G_low is None else G_low
    lo = Gl.dtype
    phi_l = phi.to(lo)
    sq_l = phi.sqrt().to(lo)
    if precond is None:
        rank = min(int(precond_rank), r // 2, m // 2)
        precond = nystrom_preconditioner(Gl, phi, s2f, rank, gen, power_iters=power_iters, sketch=sketch,
                                         dtype=dtype)
    M, Qm = precond
    if probes == "exact":
        Z, weight = torch.eye(m, dtype=dtype, device=device), 1.0
    else:
        Z, weight = draw_probes(m, probes, gen, dtype, device)
    n_probes = 1 if probes == "exact" else int(probes)
    if Qm is not None:
        Z = Z - Qm @ (Qm.T @ Z)
    V = (Gl.T @ (sq_l.unsqueeze(1) * Z.to(lo))).to(dtype)                # F^T (I - Pi) Z
    M_l = M.to(lo)

    def op_low(X):
        W = M_l.inv_sqrt(X.to(lo))
        GW = Gl @ W
        return M_l.inv_sqrt(s2f * W + Gl.T @ (phi_l.unsqueeze(1) * GW)).to(dtype), GW

    def op_full(X):
        W = M.inv_sqrt(X)
        GW = G @ W
        return M.inv_sqrt(s2f * W + G.T @ (phi.unsqueeze(1) * GW)), GW

    o = 1 if solve_y else 0                     # column of the first probe
    y_hat = M.inv_sqrt(y)
    rhs = M.inv_sqrt(V)
    if solve_y:
        rhs = torch.cat([y_hat.unsqueeze(1), rhs], dim=1)
    x0 = None
    if x0_y is not None and solve_y:
        # only the y column is warm-started; probe columns must start at 0 for the Lanczos tridiagonals
        x0 = torch.zeros_like(rhs)
        x0[:, 0] = M.sqrt(x0_y)
    probe_rtol = rtol if probe_rtol is None else max(rtol, probe_rtol)
    tols = torch.full((rhs.shape[1],), probe_rtol, dtype=dtype, device=device)
    if solve_y:
        tols[0] = rtol      # the recurrence residual; phase B checks the true one in full precision
    cg = batched_cg(op_low, rhs, rtol=tols, max_iters=max_iters, x0=x0, with_aux=True)
    if not cg.converged:
        raise NotConverged(f"CG did not reach rtol={rtol:g} (probes {probe_rtol:g}) in {max_iters} "
                           f"iterations ({str(lo).replace('torch.', '')} products)", float(cg.residual.max()), cg.iters)
    alpha = quad = cg_y = None
    if solve_y:
        cg_y = batched_cg(op_full, y_hat.unsqueeze(1), rtol=rtol, max_iters=max_iters, x0=cg.X[:, :1],
                          with_aux=True)
        if not cg_y.converged:
            raise NotConverged(f"CG on the y column did not reach rtol={rtol:g} in {max_iters} iterations",
                               float(cg_y.residual.max()), cg.iters + cg_y.iters)
        alpha = M.inv_sqrt(cg_y.X[:, 0])
        quad = y @ alpha
    slq = slq_logdet(cg, slice(o, None), lanczos_iters, log_over_xm1)
    sums = ProbeSums(n_probes, None, None, slq.sum(), None)
    logdet = M.logdet() + weight * sums.logdet_sum
    grad_phi = grad_s2 = None
    info = dict(iters_a=cg.iters, iters_b=0 if cg_y is None else cg_y.iters, precond_rank=M.rank,
                probes=n_probes, probe_iters=int(cg.col_iters[o:].max()) if cg.col_iters.numel() > o else 0,
                matvec_dtype=str(lo).replace("torch.", ""))
    if need_grad:
        Y = M.inv_sqrt(cg.X[:, o:])            # C^-1 V
        MV = M.inv_sqrt(rhs[:, o:])            # M^-1 V
        if cg.aux is None:                     # nothing to solve: every right-hand side was 0
            GY = GMV = torch.zeros(m, Y.shape[1], dtype=dtype, device=device)
        else:
            GY = cg.aux[:, o:].to(dtype)       # G C^-1 V (accumulated by CG)
            GMV = cg.aux0[:, o:].to(dtype)     # G M^-1 V (CG's first product; probe columns start at 0)
        T = GY * GMV                           # per-probe terms t_kj
        sums.g_sum, sums.g_sq = T.sum(1), (T * T).sum(1)
        sums.s2_sum = (MV * Y).sum()
        if solve_y:
            G_alpha = G @ alpha if cg_y.aux is None else cg_y.aux[:, 0]   # G C^-1 y in full precision
            if g_norm2 is None:
                g_norm2 = (G * G).sum(1)
            trace = g_norm2 / s2f
            if M.Q is not None:
                GQ = (Gl @ M.Q.to(lo)).to(dtype)
                trace = trace + (GQ * GQ) @ (1.0 / M.d - 1.0 / s2f)
            det_phi = 0.5 * (trace - G_alpha ** 2)
            det_s2 = 0.5 * (M.trace_inv_weighted(torch.ones(r, dtype=dtype, device=device)) - alpha @ alpha)
            grad_phi = det_phi - 0.5 * weight * sums.g_sum
            grad_s2 = det_s2 - 0.5 * weight * sums.s2_sum
            info.update(det_phi=det_phi, det_s2=det_s2, det_logdet=M.logdet())
            info["grad_err_est"] = grad_error_estimate(grad_phi, sums) if probes != "exact" else 0.0
    info["sums"] = sums
    info["precond"] = precond
    return Estimate(quad, logdet, alpha, grad_phi, grad_s2, cg, info, M.Q)


def grad_error_estimate(grad_phi, sums: ProbeSums) -> float:
    """Estimated relative error |grad_phi - E grad_phi| / |grad_phi| of a probe mean: the standard error of
    the mean of the per-probe terms (sample variance over the n probes; the probes are i.i.d. given the
    preconditioner), summed over variants."""
    n = sums.n
    if n < 2 or sums.g_sum is None:
        return float("inf")
    mean = sums.g_sum / n
    var = (sums.g_sq / n - mean * mean).clamp_min(0) * (n / (n - 1))
    se2 = 0.25 * var.sum() / n                  # grad_phi = ... - 1/2 mean_j t_kj
    return float(se2.sqrt() / grad_phi.norm().clamp_min(torch.finfo(grad_phi.dtype).tiny))


def pool(est: Estimate, extra: Estimate) -> Estimate:
    """`est` with the probes of `extra` (same preconditioner, `solve_y=False`) pooled into its stochastic terms."""
    sums = est.info["sums"] + extra.info["sums"]
    info = dict(est.info, sums=sums, probes=sums.n, probe_iters=max(est.info["probe_iters"], extra.info["probe_iters"]))
    logdet = info["det_logdet"] + sums.logdet_sum / sums.n
    grad_phi = info["det_phi"] - 0.5 * sums.g_sum / sums.n
    grad_s2 = info["det_s2"] - 0.5 * sums.s2_sum / sums.n
    info["grad_err_est"] = grad_error_estimate(grad_phi, sums)
    return Estimate(est.quad, logdet, est.alpha, grad_phi, grad_s2, est.cg, info, est.Q)


# --------------------------------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------------------------------

class _PerWindow:
    """A small LRU cache keyed by the identity of G (a weak reference plus its in-place version counter,
    so a freed or modified G never hits a stale entry)."""

    def __init__(self, size: int):
        self.size = int(size)
        self._d: OrderedDict = OrderedDict()

    def get(self, G, extra=None):
        hit = self._d.get((id(G), extra))
        if hit is None:
            return None
        ref, version, value = hit
        if ref() is not G or G._version != version:
            del self._d[(id(G), extra)]
            return None
        self._d.move_to_end((id(G), extra))
        return value

    def put(self, G, value, extra=None):
        if self.size <= 0:
            return
        self._d[(id(G), extra)] = (weakref.ref(G), G._version, value)
        self._d.move_to_end((id(G), extra))
        while len(self._d) > self.size:
            self._d.popitem(last=False)


class IterativeSolver:
    """`solver(phi, s2, G, y, lam) -> NLL_i(phi)` by preconditioned CG + SLQ + Hutchinson on C.

    Options: rtol (CG relative residual of the y column, which gives the quadratic term and the
    quadratic part of the gradient; always reached with G's own precision), probe_rtol (looser CG tolerance
    of the probe columns, whose solves feed only the stochastic terms: their error is far below the probe
    noise; None = rtol), max_iters, probes (int, or 'exact' for identity probes), lanczos_iters (Lanczos
    steps used by SLQ), precond_rank (Nystrom rank, 0 = none), seed, fallback (use the exact solver when CG
    fails; otherwise raise), warm_start (start the y column from the last solution for the same window),
    matvec_dtype ('float32' or None: working precision of the batched G products of the sketch, the probes
    and phase-A CG; used only when probe_rtol >= 1e-4, otherwise everything runs in G's dtype; the y column
    is always finished in G's dtype), reuse_sketch (start the preconditioner's range sketch of a window from
    its previous Q instead of a fresh Gaussian matrix: one subspace iteration per visit, better
    preconditioner when phi moves slowly; the result then depends on the window's call history),
    grad_error_target / max_precond_rank / max_probes (settings chosen per window, below).

    Settings per window (`grad_error_target` not None): the gradient's stochastic error is the Hutchinson
    error of the remainder g_k^T (M^-1 - C^-1) g_k, about sqrt(2 / p) times its size, and that remainder grows
    with the part of K = G^T Phi G's spectrum above s2 that the rank-l preconditioner misses, i.e. with the
    number of LD blocks in the window (Fig. 2 at fixed l = 200, p = 40: 0.75% at n = 2,000, 5.4% at
    n = 8,000; 93% on a synthetic factor with 1,000 eigenvalues per decade at m = 13,000, r = 5,000). So
    each call
    1. sizes the preconditioner from the window's captured spectrum: from `precond_rank`, the rank doubles
       (a new sketch, no probes) while the smallest captured eigenvalue of K exceeds `precond_tail` * s2;
    2. reads the estimated relative error of grad_phi off the probes' own sample variance
       (`grad_error_estimate`) and, while it is above the target, takes the cheaper (in G-product columns)
       of: more probes for the same preconditioner (pooled with the first ones; the number follows from
       error ~ p^-1/2), or twice the rank with `probes` fresh probes (costed as if the error halved per
       doubling, as measured at n >= 2,000 in Fig. 2; what it gives is then measured and topped up),
       within `max_probes` and `max_precond_rank`.
    Nothing is remembered between calls, so a call's result depends only on its inputs, the seed and the
    call counter (exact resume). The probes of the final estimate are independent of the preconditioner
    it uses, so the estimator stays unbiased apart from the data-dependent number of pooled probes.
    Each call draws fresh probes from seed and a call counter, so a run is reproducible; `reset(seed)`
    restarts the counter.
    """

    def __init__(self, rtol=DEFAULTS["rtol"], probe_rtol=DEFAULTS["probe_rtol"], max_iters=DEFAULTS["max_iters"],
                 probes=DEFAULTS["probes"], lanczos_iters=DEFAULTS["lanczos_iters"], precond_rank=DEFAULTS["precond_rank"],
                 seed=DEFAULTS["seed"], fallback=DEFAULTS["fallback"], warm_start=DEFAULTS["warm_start"],
                 matvec_dtype=DEFAULTS["matvec_dtype"], reuse_sketch=DEFAULTS["reuse_sketch"],
                 power_iters=DEFAULTS["power_iters"], grad_error_target=DEFAULTS["grad_error_target"],
                 max_precond_rank=DEFAULTS["max_precond_rank"], max_probes=DEFAULTS["max_probes"],
                 precond_tail=DEFAULTS["precond_tail"],
                 warm_cache=256, low_cache=2):
        if probes != "exact" and int(probes) < 1:
            raise ValueError(f"iterative solver: probes must be >= 1 or 'exact', got {probes!r}")
        if rtol <= 0 or int(max_iters) < 1:
            raise ValueError(f"iterative solver: need rtol > 0 and max_iters >= 1 (got {rtol}, {max_iters})")
        if matvec_dtype not in (None, "float32", "float64"):
            raise ValueError(f"iterative solver: matvec_dtype must be 'float32', 'float64' or None, got {matvec_dtype!r}")
        self.rtol, self.max_iters, self.probes = float(rtol), int(max_iters), probes
        self.probe_rtol = None if probe_rtol is None else float(probe_rtol)
        self.lanczos_iters, self.precond_rank = int(lanczos_iters), int(precond_rank)
        self.fallback, self.warm_start = bool(fallback), bool(warm_start)
        self.matvec_dtype = None if matvec_dtype is None else getattr(torch, matvec_dtype)
        self.reuse_sketch = bool(reuse_sketch)
        if int(power_iters) < 0:
            raise ValueError(f"iterative solver: power_iters must be >= 0, got {power_iters}")
        self.power_iters = int(power_iters)
        if grad_error_target is not None and not grad_error_target > 0:
            raise ValueError(f"iterative solver: grad_error_target must be > 0 or None, got {grad_error_target}")
        self.grad_error_target = None if grad_error_target is None else float(grad_error_target)
        self.max_precond_rank, self.max_probes = int(max_precond_rank), int(max_probes)
        self.precond_tail = float(precond_tail)
        self._warm = _PerWindow(warm_cache)       # last alpha (per G and y) and last preconditioner Q (per G)
        self._low = _PerWindow(low_cache)         # G in matvec_dtype and the row norms |g_k|^2 (LD-only)
        self.reset(seed)

    def reset(self, seed=None):
        if seed is not None:
            self.seed = int(seed)
        self._counter = 0
        self.stats = dict(calls=0, fallbacks=0, iterations_last=0, iterations_mean=0.0, residual_last=0.0,
                          precond_rank_last=0, probes_last=0, grad_err_est_last=0.0, adapt_rounds_last=0)

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
        try:
            with torch.no_grad():
                est = self._estimate(phi.detach(), s2_t.detach(), G, y, gen, need_grad)
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
        iters = est.cg.iters + est.info.get("iters_b", 0)
        self.stats["iterations_last"] = iters
        self.stats["iterations_mean"] += (iters - self.stats["iterations_mean"]) / max(n_ok, 1)
        self.stats["residual_last"] = float(est.cg.residual.max())
        r = y.shape[0]
        value = 0.5 * (est.quad + est.logdet + torch.log(lam).sum() + r * LOG_2PI)
        if not need_grad:
            return value
        return attach_gradient(phi, s2_t, value, est.grad_phi, est.grad_s2)

    def _low_precision(self, G):
        """(G in the working precision, |g_k|^2), cached per G."""
        hit = self._low.get(G)
        if hit is None:
            lo = self.matvec_dtype
            probe_tol = self.rtol if self.probe_rtol is None else max(self.rtol, self.probe_rtol)
            usable = (lo is not None and lo != G.dtype and G.is_floating_point()
                      and probe_tol >= LOW_PRECISION_MIN_RTOL.get(lo, 1.0))
            hit = (G.to(lo) if usable else None, (G * G).sum(1))
            self._low.put(G, hit)
        return (G if hit[0] is None else hit[0]), hit[1]

    def _estimate(self, phi, s2, G, y, gen, need_grad):
        if bool((phi < 0).any()):
            raise ValueError("iterative solver: phi has negative entries")
        G_low, g_norm2 = self._low_precision(G)
        x0 = self._warm.get(G, ("alpha", y.data_ptr())) if self.warm_start else None
        sketch = self._warm.get(G, "Q") if self.reuse_sketch else None
        adapt = self.grad_error_target is not None and need_grad and self.probes != "exact"
        run = dict(rtol=self.rtol, max_iters=self.max_iters, lanczos_iters=self.lanczos_iters, need_grad=need_grad,
                   probe_rtol=self.probe_rtol, x0_y=x0, G_low=G_low, g_norm2=g_norm2)
        precond = None
        if adapt:
            precond = self._sized_preconditioner(G, G_low, phi, s2, gen, sketch)
        est = estimate_gram(G, phi, s2, y, self.precond_rank, self.probes, gen, sketch=sketch,
                            power_iters=self.power_iters, precond=precond, **run)
        rounds = 0
        if adapt:
            est, rounds = self._adapt(est, G, phi, s2, y, gen, run)
            self.stats["grad_err_est_last"] = est.info["grad_err_est"]
        self.stats.update(precond_rank_last=est.info["precond_rank"], probes_last=est.info["probes"],
                          adapt_rounds_last=rounds)
        if self.warm_start:
            self._warm.put(G, est.alpha, ("alpha", y.data_ptr()))
        if self.reuse_sketch and est.Q is not None:
            self._warm.put(G, est.Q.to(G_low.dtype), "Q")
        return est

    def _rank_cap(self, G):
        m, r = G.shape
        return min(max(self.max_precond_rank, self.precond_rank), r // 2, m // 2)

    def _sized_preconditioner(self, G, G_low, phi, s2, gen, sketch):
        """Nystrom preconditioner from rank `precond_rank` up, doubled (sketch only, no probes) while the
        smallest eigenvalue it captures is above `precond_tail` * s2 (Fig. 2: the gradient error at 40
        probes was 0.7% where that ratio was 0.14 and 2.3% where it was 0.34)."""
        cap = self._rank_cap(G)
        rank = min(self.precond_rank, cap)
        s2f = float(s2)
        while True:
            precond = nystrom_preconditioner(G_low, phi, s2f, rank, gen, power_iters=self.power_iters,
                                             sketch=sketch, dtype=G.dtype)
            M = precond[0]
            if M.Q is None or rank >= cap or float(M.d.min()) - s2f <= self.precond_tail * s2f:
                return precond
            rank = min(2 * rank, cap)

    def _adapt(self, est, G, phi, s2, y, gen, run, max_rounds=6):
        """More probes or a larger preconditioner until the estimated gradient error is below the target
        (see the class docstring). Returns (estimate, rounds)."""
        m, r = G.shape
        target = self.grad_error_target
        rank_cap = self._rank_cap(G)
        sketch_cols = 2 + 2 * self.power_iters            # G-product columns per sketch column
        rounds = 0
        while rounds < max_rounds:
            err = est.info["grad_err_est"]
            if not err > target:
                break
            p = est.info["probes"]
            per_probe = 2 * est.info["probe_iters"] + 2   # G-product columns per probe (V, CG, G M^-1 V)
            p_more = math.ceil(p * (err / target) ** 2 * 1.1) - p
            cost_probes = p_more * per_probe if p + p_more <= self.max_probes else math.inf
            rank2 = min(max(2 * est.info["precond_rank"], 1), rank_cap)
            if rank2 > est.info["precond_rank"]:
                p2 = min(max(math.ceil(p * (err / (2 * target)) ** 2 * 1.1), int(self.probes)), self.max_probes)
                cost_rank = sketch_cols * rank2 + 2 * rank2 + p2 * per_probe
            else:
                cost_rank = math.inf
            if math.isinf(cost_probes) and math.isinf(cost_rank):
                if p < self.max_probes:           # neither fits: use what the probe budget still allows
                    p_more, cost_probes = self.max_probes - p, 0.0
                else:
                    log.debug("iterative solver: window m=%d r=%d: estimated gradient error %.3g above target "
                              "%.3g at rank %d, %d probes (the limits)", m, r, err, target, est.info["precond_rank"], p)
                    break
            rounds += 1
            if cost_probes <= cost_rank:
                extra = estimate_gram(G, phi, s2, y, 0, p_more, gen, precond=est.info["precond"], solve_y=False, **run)
                est = pool(est, extra)
            else:
                # the fresh probes start at the base count: the error after the doubling is measured, not assumed
                est = estimate_gram(G, phi, s2, y, rank2, int(self.probes), gen, power_iters=self.power_iters, **run)
        return est, rounds


def make_solver(**options) -> IterativeSolver:
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"iterative solver: unknown option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    return IterativeSolver(**options)


register("iterative", make_solver)
