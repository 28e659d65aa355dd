"""The baselines of the paper's Fig. 2, for benchmarks only (paper Sec. 4).

Every method is `method(phi, s2, problem) -> NLL_i(phi)` (0-d tensor, differentiable in phi) on a
`WindowProblem`, which holds what each needs: R of the extended set, the core index, z_(i), and the
LD-only precomputation (U, lam of R[i,i], G, y). All return the same number (App. C.1: the
likelihood on the support of R[i,i]); the A-methods work on A projected onto that support,
A_s = U^T A U = U^T R[i,+] Phi R[+,i] U + s2 diag(lam) (r x r), applied through the R blocks.

- chol_A:        Cholesky of A_s formed from R (autograd through the factorisation).
- cg_A:          CG + SLQ + Hutchinson on A_s, matrix-free through R[+,i] and U.
- cg_A_nystrom:  the same with a randomized Nystrom preconditioner of A_s (Frangella, Tropp, Udell 2021).
- cg_B:          CG + SLQ + Hutchinson on B = I_m + Phi^1/2 W Phi^1/2 / s2 (m x m), W = G G^T matrix-free.
- exact:         exact low-rank solver on C (exact.nll).
- reference:     the authors' per-step path (dense.nll_reference_style), autograd backward.
- iterative:     our solver on C (iterative.IterativeSolver; batched G products in float32 by default).
- iterative_f64: the same with every G product in G's dtype.

The iterative building blocks (batched CG, SLQ from CG coefficients, Nystrom: `deepwas.linalg`; the
estimator: `iterative.estimate`) are shared with the iterative solver; nothing is re-implemented here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..ld_factors import factorise
from ..linalg.cg import NotConverged, batched_cg
from ..linalg.lanczos import draw_probes, slq_logdet
from ..linalg.nystrom import LowRankPlusScaled, nystrom
from . import dense, exact
from .iterative import DEFAULTS, IterativeSolver, attach_gradient, estimate

LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class WindowProblem:
    R: torch.Tensor | None  # (m, m) LD of the extended set (None: only the factor-based methods can run)
    core: torch.Tensor     # (n,) index of (i) into (i)+
    z_core: torch.Tensor   # (n,)
    U: torch.Tensor        # (n, r) kept eigenvectors of R[i,i]
    lam: torch.Tensor      # (r,)
    G: torch.Tensor        # (m, r)
    y: torch.Tensor        # (r,) = lam^-1/2 U^T z
    rtol_rank: float = 1e-8

    @classmethod
    def build(cls, R, core, z_core, rtol=1e-8, dtype=torch.float64, device="cpu"):
        R = np.asarray(R, dtype=np.float64)
        wf = factorise(R, np.asarray(core), rtol)
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype, device=device)  # noqa: E731
        return cls(t(R), torch.as_tensor(np.asarray(core), device=device), t(z_core), t(wf.U), t(wf.lam),
                   t(wf.G), t(wf.whiten(z_core)), rtol)

    @property
    def m(self):
        return self.G.shape[0]

    @property
    def n(self):
        return self.core.shape[0]

    @property
    def r(self):
        return self.lam.shape[0]

    def const(self):
        return self.r * LOG_2PI

    def R_ec(self):
        if self.R is None:
            raise ValueError("this WindowProblem was built without R; R-based methods cannot run on it")
        return self.R[:, self.core]


def _s2(s2, like):
    return s2 if torch.is_tensor(s2) else torch.as_tensor(s2, dtype=like.dtype, device=like.device)


def chol_A(phi, s2, pb: WindowProblem, **_):
    R_ec = pb.R_ec()
    A = (R_ec.T * phi) @ R_ec + s2 * R_ec[pb.core]
    As = pb.U.T @ A @ pb.U
    L = torch.linalg.cholesky(0.5 * (As + As.T))
    zt = pb.U.T @ pb.z_core
    v = torch.linalg.solve_triangular(L, zt.unsqueeze(1), upper=False).squeeze(1)
    return 0.5 * (v @ v + 2.0 * torch.log(torch.diagonal(L)).sum() + pb.const())


class _CGA:
    """CG + SLQ + Hutchinson on A_s, optionally Nystrom-preconditioned."""

    def __init__(self, precond_rank=0, rtol=DEFAULTS["rtol"], max_iters=DEFAULTS["max_iters"],
                 probes=DEFAULTS["probes"], lanczos_iters=DEFAULTS["lanczos_iters"], seed=0):
        self.precond_rank, self.rtol, self.max_iters = precond_rank, rtol, max_iters
        self.probes, self.lanczos_iters, self.seed, self.calls = probes, lanczos_iters, seed, 0
        self.stats = dict(iterations_last=0)

    def __call__(self, phi, s2, pb: WindowProblem, **_):
        gen = torch.Generator(device=pb.G.device).manual_seed(self.seed * 1_000_003 + self.calls)
        self.calls += 1
        s2_t = _s2(s2, pb.G)
        R_ec, U, lam = pb.R_ec(), pb.U, pb.lam
        ph = phi.detach()
        s2d = s2_t.detach()

        def feats(V):                       # rows a_k^T V, a_k = U^T R[i,k]
            return R_ec @ (U @ V)

        def op(V):                          # A_s V
            return U.T @ (R_ec.T @ (ph.unsqueeze(1) * feats(V))) + s2d * lam.unsqueeze(1) * V

        r = pb.r
        M = LowRankPlusScaled(r, 1.0)
        rank = min(self.precond_rank, r // 2)
        if rank > 0:
            Q, lhat = nystrom(op, r, rank, gen, pb.G.dtype, pb.G.device)
            if Q is not None:
                c = float(lhat[-1].clamp_min(torch.finfo(lhat.dtype).tiny))
                M = LowRankPlusScaled(r, c, Q, lhat.clamp_min(c))
        feat_norm2 = ((pb.G * pb.G) * lam).sum(1)  # |a_k|^2 (LD-only)
        with torch.no_grad():
            est = estimate(op, feats, feat_norm2, U.T @ pb.z_core, M, self.probes, gen, rtol=self.rtol,
                           max_iters=self.max_iters, lanczos_iters=self.lanczos_iters, need_grad=True)
        self.stats["iterations_last"] = est.cg.iters
        value = 0.5 * (est.quad + est.logdet + pb.const())
        return attach_gradient(phi, s2_t, value, est.grad_phi, None)


class _CGB:
    """CG + SLQ + Hutchinson on B (m x m): log|C| = log|B| + r log s2 and, by Woodbury,
    C^-1 = (I - G^T Phi^1/2 B^-1 Phi^1/2 G / s2) / s2, so with u = Phi^1/2 G y

        y^T C^-1 y = |y|^2/s2 - u^T B^-1 u / s2^2,
        g_k^T C^-1 g_k = |g_k|^2/s2 - E[(w_k^T B^-1 xi)(w_k^T xi)] / s2^2,  w_k = Phi^1/2 G g_k."""

    def __init__(self, rtol=DEFAULTS["rtol"], max_iters=DEFAULTS["max_iters"], probes=DEFAULTS["probes"],
                 lanczos_iters=DEFAULTS["lanczos_iters"], seed=0):
        self.rtol, self.max_iters, self.probes = rtol, max_iters, probes
        self.lanczos_iters, self.seed, self.calls = lanczos_iters, seed, 0
        self.stats = dict(iterations_last=0)

    def __call__(self, phi, s2, pb: WindowProblem, **_):
        gen = torch.Generator(device=pb.G.device).manual_seed(self.seed * 1_000_003 + self.calls)
        self.calls += 1
        s2_t = _s2(s2, pb.G)
        G, y = pb.G, pb.y
        with torch.no_grad():
            sq = phi.detach().sqrt()
            s2f = float(s2_t)

            def wmap(V):                    # rows w_k^T V = (G G^T (sq * V))_k
                return G @ (G.T @ (sq.unsqueeze(1) * V))

            def op(V):
                return V + sq.unsqueeze(1) * wmap(V) / s2f

            m = G.shape[0]
            Xi, weight = draw_probes(m, self.probes, gen, G.dtype, G.device)
            u = sq * (G @ y)
            cg = batched_cg(op, torch.cat([u.unsqueeze(1), Xi], 1), rtol=self.rtol, max_iters=self.max_iters)
            if not cg.converged:
                raise NotConverged("cg_B did not converge", float(cg.residual.max()), cg.iters)
            self.stats["iterations_last"] = cg.iters
            Binv_u = cg.X[:, 0]
            quad = (y @ y) / s2f - (u @ Binv_u) / s2f ** 2
            logdet = pb.r * math.log(s2f) + weight * slq_logdet(cg, slice(1, None), self.lanczos_iters).sum()
            alpha = (y - G.T @ (sq * Binv_u) / s2f) / s2f
            W = wmap(torch.cat([cg.X[:, 1:], Xi], 1))
            p = Xi.shape[1]
            trace = (G * G).sum(1) / s2f - weight * (W[:, :p] * W[:, p:]).sum(1) / s2f ** 2
            grad_phi = 0.5 * (trace - (G @ alpha) ** 2)
        value = 0.5 * (quad + logdet + torch.log(pb.lam).sum() + pb.const())
        return attach_gradient(phi, s2_t, value, grad_phi, None)


class _Iterative:
    def __init__(self, **options):
        self.solver = IterativeSolver(**options)
        self.stats = self.solver.stats

    def __call__(self, phi, s2, pb: WindowProblem, **_):
        out = self.solver(phi, s2, pb.G, pb.y, pb.lam)
        self.stats = self.solver.stats
        return out


def exact_C(phi, s2, pb: WindowProblem, **_):
    return exact.nll(phi, s2, pb.G, pb.y, pb.lam)


def reference(phi, s2, pb: WindowProblem, **_):
    return dense.nll_reference_style(phi, s2, pb.R, pb.core, pb.z_core, pb.rtol_rank)


# settings of the CG baselines on A and B (paper: 100 probes); the iterative solver uses its own DEFAULTS
BASELINE_PROBES = 100
BASELINE_PRECOND_RANK = 200


def make_methods(probes=None, rtol=None, precond_rank=None, seed=0, a_max_iters=DEFAULTS["max_iters"],
                 iterative_options=None):
    """Name -> method callable, in the order of the Fig. 2 legend.

    probes / rtol / precond_rank: None keeps each method's default (baselines: 100 probes, Nystrom rank 200,
    rtol 1e-6; iterative: iterative.DEFAULTS); a value applies to every method. `iterative_f64` is the
    iterative solver with every G product in G's dtype (matvec_dtype=None), for comparison."""
    base = dict(probes=BASELINE_PROBES if probes is None else probes,
                rtol=DEFAULTS["rtol"] if rtol is None else rtol)
    rank_a = BASELINE_PRECOND_RANK if precond_rank is None else precond_rank
    it_opts = {k: v for k, v in dict(probes=probes, rtol=rtol, precond_rank=precond_rank).items() if v is not None}
    it_opts.update(seed=seed, **(iterative_options or {}))
    return {
        "reference": reference,
        "chol_A": chol_A,
        "cg_A": _CGA(0, seed=seed, max_iters=a_max_iters, **base),
        "cg_A_nystrom": _CGA(rank_a, seed=seed, max_iters=a_max_iters, **base),
        "cg_B": _CGB(seed=seed, **base),
        "exact": exact_C,
        "iterative": _Iterative(**it_opts),
        "iterative_f64": _Iterative(**{**it_opts, "matvec_dtype": None}),
    }
