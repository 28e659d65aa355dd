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

Finite reference panel (`panel_correction`, the default for LD from a panel of n people). R^ = R + E is a
sample correlation matrix of n people. Its eigenvectors u_k are not those of R: in a direction of small
sample eigenvalue lam_k the true variance t_k = u_k^T R u_k exceeds lam_k (eigenvalue spreading; measured on
a 500-person msprime panel, 150-variant cores: 3.5 times in the lowest decile of lam, 1.0 above lam = 0.7).
Both terms of the covariance of x = U^T z_(i) (App. C.1) read the core block R[i,i] along u_k:

- the residual term s2 R[i,i] has variance s2 t_k, not s2 lam_k, along u_k; whitening by lam_k^-1/2 inflates
  it by t_k / lam_k, the fitted s2 absorbs the inflation (2.3 instead of 1) and the prior collapses;
- the signal term U^T R[i,+] diag(phi) R[+,i] U takes from the core rows R[i,i] u_k, whose squared norm is
  u_k^T R[i,i]^2 u_k >= (u_k^T R[i,i] u_k)^2 = t_k^2 (Cauchy-Schwarz, |u_k| = 1), while the panel's core block
  gives R^[i,i] u_k = lam_k u_k, i.e. lam_k^2: in the small directions the core's signal is under-predicted
  by at least (t_k / lam_k)^2, and the prior's scale (h2) comes out low.

The correction replaces the core block R^[i,i] in both terms by its shrinkage estimate U diag(t) U^T, calibrates
the flank rows of the signal term for their sampling error (below), both computed from the panel size n and the
window's own LD, nothing fitted, and drops the directions it cannot resolve:

- t_k is estimated by the analytical nonlinear shrinkage of Ledoit and Wolf (2020, Ann. Statist. 48:3043,
  Eqns 4.3-4.9 and C.4): a kernel estimate of the sample spectrum's density f and its Hilbert transform Hf
  gives, with c = p / n (p core variants, n - 1 degrees of freedom),
      t_k = lam_k / [(pi c lam_k f(lam_k))^2 + (1 - c - pi c lam_k Hf(lam_k))^2]       (p <= n)
      t_k = 1 / [pi^2 lam_k (f(lam_k)^2 + Hf(lam_k)^2)]                              (p > n, non-null lam)
  and d_k = t_k / lam_k;
- directions with lam_k below max((1 - sqrt(p / n))^2, 1 / n) are dropped. The first is the lower edge of
  the Marchenko-Pastur law of a p x p correlation matrix estimated from n people: a null correlation
  matrix of that size puts no eigenvalue below it, so a smaller one is a direction the panel cannot
  resolve, where even t_k is unreliable (shrinkage recovers half of the measured inflation there). The
  edge vanishes as p -> n (a window whose core has as many variants as the panel has people), so the
  floor 1 / n, the sampling variance of one correlation of the panel, keeps it from keeping everything.

The flank rows carry the panel's sampling error (errors in variables). Row j of the factor's flank rows,
G[j, :] = R^[j,i] U lam^-1/2, holds the coefficients of the panel's regression of flank variant j on the core's
kept standardised scores X_i u_k / sqrt(lam_k), and R2_j = |G[j, :]|^2 is that regression's R^2. Given the core's
genotypes each coefficient carries sampling noise of variance sigma_j^2 / (n - 1) (n - 1 degrees of freedom;
sigma_j^2 the residual variance of variant j given those r scores), independent across the r directions and of
the GWAS. Plugged into the signal term as they are, the noisy rows are the classical errors-in-variables problem:
the likelihood attenuates the prior's scale (h2 12 % low on average over 20 simulated GWAS, below).
Regression calibration (Carroll, Ruppert, Stefanski and Crainiceanu 2006, Measurement Error in Nonlinear Models,
ch. 4) replaces them by their expectation given the panel. With a row's true coefficients exchangeable across the
sample directions (the eigenbasis of the core knows nothing of variant j) that is the row scaled by its
reliability, estimated by moments with the unbiased residual variance sigma_j^2 = (1 - R2_j) (n - 1) / (n - 1 - r):

    E[g_j | g^_j] = rho_j g^_j,     rho_j = max(0, 1 - r sigma_j^2 / ((n - 1) R2_j)) = R2adj_j / R2_j,

the ratio of the regression's adjusted R^2, R2adj = 1 - (1 - R2) (n - 1) / (n - 1 - r), to its R^2: the textbook
correction of an in-sample R^2 for r coefficients fitted on n people. A flank variant that the core predicts
well keeps its row (rho near 1); one in no LD with the core, whose R^2 is the r / (n - 1) of chance, loses it.
The calibrated row has the squared norm rho_j R2adj_j: the rest is the posterior variance, a term proportional
to phi_j that is not of the factor form G^T diag(phi) G; for a constant prior it is about diagonal in the whitened
directions and s2 absorbs it (adding it moved h2 by at most 0.002 and s2 by up to 0.05; seed 1 of the benchmark,
GWAS of 25,000 to 400,000). Two alternatives measured and not adopted (`benchmarks/RESULTS.md`): one reliability
per column (direction), with the unconditional noise (f + |g_k|^2) / (n - 1) of f flank entries, over-shrinks in
strongly correlated regions (on the 200-person panel of the tests it scales the flank rows of the smallest third
of the kept directions by 0.06 on average where the truth's least-squares coefficient is 0.88, and raises their
squared error against the truth from 35.3 to 50.7; the row form lowers it to 34.4); and carrying the shrunk core
block to the flanks through the panel's regression (rows times d_k) lowers h2 (seed 1: 0.439 against 0.443).

With R*[+,i] the panel's R^[+,i] whose core rows are replaced by U diag(t) U^T and whose flank rows are calibrated,
R*[flank,i] U = diag(rho) R^[flank,i] U, the model of the kept statistic x = U_keep^T z_(i) is

    x ~ N(0, U^T R*[i,+] diag(phi) R*[+,i] U + s2 diag(t)),

and the factorisation of App. C.1 applied to it (whitening by t^-1/2) gives the corrected factors

    lam' = t = lam d,   y' = t^-1/2 x = y d^-1/2,
    G'[flank rows] = diag(rho) R^[flank,i] U t^-1/2 = diag(rho) G[flank] d^-1/2,
    G'[core rows]  = U diag(t) t^-1/2 = U t^1/2 = G[core] d^1/2

(G[core] = R^[i,i] U lam^-1/2 = U lam^1/2; rho from the kept columns of G[flank]), so the likelihood is
`exact.nll(phi, s2, G', y', lam')` (the constant sum(log t) carries the determinant of the whitening), for any
solver; `correct_panel` computes (G', y', lam') without U. It does not depend on phi or s2, so it is applied once
per window and training, evaluation, the s2 fit and streaming read the corrected arrays. For in-sample LD the
correction is off (`Mismatch()`) and the likelihood is exact.nll on the uncorrected factors.

t_k^2 is a lower bound: u_k^T R^2 u_k = t_k^2 + sum_(j != k) (u_j^T R u_k)^2, the second part the true core
block's coupling of u_k to the other sample directions, which the diagonal estimate U diag(t) U^T sets to 0. The
mean of the flank rows' error, E[E Phi E] = (sum_k phi_k R + R Phi R) / n for Wishart-type E (the LD-score bias of
r^2 - (1 - r^2) / (n - 2)), is proportional to the residual term for a constant prior, which s2 absorbs (moving it
in or out changed the fitted h2 by < 0.02). On the msprime block benchmark (benchmarks/RESULTS.md: 500-person panel,
150-variant cores, GWAS of 100,000, 4 sets of blocks x 5 simulated GWAS) the shrunk core block raises the constant
prior's h2 by 2-3 % over the panel's own core block and the calibrated flank rows by a further 8 %: h2 over the
in-sample fit on the same statistics went from 0.876 to 0.947 on average (0.952 and 0.968 for GWAS of 25,000 and
400,000). What remains is in the couplings between sample directions of the core block, which a diagonal residual
in whitened coordinates (the factor form of the exact solver) cannot hold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
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


def shrinkage_ratio(lam: np.ndarray, p: int, n: int) -> np.ndarray:
    """d_k = t_k / lam_k: the estimated true variance u_k^T R u_k of a sample eigenvector over its sample
    eigenvalue lam_k (Ledoit and Wolf 2020, analytical nonlinear shrinkage; see the module docstring).
    lam: the non-null sample eigenvalues of a p x p correlation matrix from n degrees of freedom (p is
    replaced by `effective_p`: near-duplicate variants make the rank smaller than min(p, n))."""
    lam = np.asarray(lam, dtype=np.float64)
    order = np.argsort(lam)
    ls = lam[order]
    r = ls.size
    pe = effective_p(p, r, n)
    h = n ** (-1.0 / 3.0)                                               # Eqn 4.9
    H = h * ls[None, :]
    x = (ls[:, None] - ls[None, :]) / H
    f = 3.0 / (4.0 * math.sqrt(5.0)) * np.mean(np.maximum(1.0 - x ** 2 / 5.0, 0.0) / H, 1)          # Eqn 4.7
    with np.errstate(divide="ignore", invalid="ignore"):
        hf = (-3.0 / (10.0 * math.pi)) * x + 3.0 / (4.0 * math.sqrt(5.0) * math.pi) * (1.0 - x ** 2 / 5.0) \
            * np.log(np.abs((math.sqrt(5.0) - x) / (math.sqrt(5.0) + x)))                         # Eqn 4.8
        # far from the kernel's support the closed form cancels catastrophically (|x| ~ 1e6 between an
        # eigenvalue and a near-zero one of near-duplicate variants): its expansion -(1 + 1 / x^2) / (pi x)
        far = np.abs(x) > 100.0
        hf[far] = -(1.0 + 1.0 / x[far] ** 2) / (math.pi * x[far])
    edge = ~np.isfinite(hf)
    hf[edge] = (-3.0 / (10.0 * math.pi)) * x[edge]
    hf = np.mean(hf / H, 1)
    if pe <= n:
        c = pe / n
        t = ls / ((math.pi * c * ls * f) ** 2 + (1.0 - c - math.pi * c * ls * hf) ** 2)           # Eqn 4.3
    else:
        t = ls / (math.pi ** 2 * ls ** 2 * (f ** 2 + hf ** 2))                                  # Eqn C.4
    out = np.empty(r)
    out[order] = t / ls
    return out


def effective_p(p: int, r: int, n: int) -> int:
    """Variables of the spectrum's random-matrix law: p when the core's rank r is limited by the panel
    (p > n, r about n - 1), else r (p <= n, or duplicated / perfectly correlated variants: r < p)."""
    return p if p > n and r >= n - 1 else r


def noise_edge(p: int, n: int) -> float:
    """(1 - sqrt(p / n))^2: the lower edge of the Marchenko-Pastur law of a p x p correlation matrix from n
    degrees of freedom (for p > n, of its non-null eigenvalues); no null eigenvalue falls below it."""
    return (1.0 - math.sqrt(p / n)) ** 2


def keep_threshold(p: int, n: int) -> float:
    """Smallest sample eigenvalue kept by the finite-panel correction: max(noise_edge(p, n), 1 / n)."""
    return max(noise_edge(p, n), 1.0 / n)


def panel_correction(lam, p: int, panel_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep, d) of the finite-panel correction of one window (module docstring): the kept directions (lam_k
    at or above `keep_threshold`; at least the largest) and their variance ratios d_k."""
    lam = np.asarray(lam, dtype=np.float64)
    n = int(panel_size) - 1                      # degrees of freedom of a correlation from centred genotypes
    if n < 2:
        raise ValueError(f"panel correction: panel size {panel_size} is too small (at least 3 people)")
    keep = lam >= keep_threshold(effective_p(p, lam.size, n), n)
    if not keep.any():
        keep[np.argmax(lam)] = True
    d = shrinkage_ratio(lam, p, n)[keep]
    return keep, d


@dataclass(frozen=True)
class Mismatch:
    """How a window's factors are corrected for LD that is not the statistics' own (s2.json): `lam`, the
    l of R~ = (1 - l) R + l I (needs U), and/or `panel_size`, the finite-panel correction (0: off)."""
    lam: float = 0.0
    panel_size: int = 0

    @classmethod
    def from_record(cls, s2info: dict) -> "Mismatch":
        return cls(float(s2info.get("lambda", 0.0) or 0.0), int(s2info.get("panel_size", 0) or 0))

    @property
    def needs_u(self) -> bool:
        return self.lam > 0.0

    def __bool__(self) -> bool:
        return self.lam > 0.0 or self.panel_size > 0


def flank_reliability(G_flank, panel_size: int):
    """rho_j = max(0, 1 - r sigma_j^2 / ((n - 1) R2_j)) = R2adj_j / R2_j for each flank row of the factor G_flank
    (f x r: the r kept columns of R^[flank,i] U lam^-1/2, uncorrected; numpy or torch) of a panel of n =
    `panel_size` people, with R2_j = |G_flank[j]|^2 and sigma_j^2 = (1 - R2_j) (n - 1) / (n - 1 - r): the
    regression calibration of the flank rows (module docstring). A row with R2 = 0 gets 0; so does every row when
    r >= n - 1 (a regression with as many coefficients as degrees of freedom leaves no residual to estimate)."""
    dof = int(panel_size) - 1
    r = G_flank.shape[1]
    R2 = (G_flank * G_flank).sum(1)
    if dof <= r:
        return R2 * 0.0
    if torch.is_tensor(R2):
        return ((dof * R2 - r) / ((dof - r) * R2.clamp_min(1e-300))).clamp(0.0, 1.0)
    return np.clip((dof * R2 - r) / ((dof - r) * np.maximum(R2, 1e-300)), 0.0, 1.0)


def correct_panel(G, y, lam, core, panel_size: int):
    """(G', y', lam') of the finite-panel correction (module docstring; numpy or torch): with `panel_correction`'s
    kept directions and ratios d, y' = y[keep] d^-1/2, lam' = lam[keep] d = t, G' = rho G[:, keep] d^-1/2 on the
    rows of the extended set's flanks (the regression-calibrated rows, rho of `flank_reliability`), and
    G[core, keep] d^1/2 = U sqrt(t) on the rows of the core (the shrunk core block U diag(t) U^T in the signal
    term). `core`: (n,) indices of the core variants into (i)+ (the factors' 'core'). `exact.nll` on them is the
    likelihood of the kept statistic under the corrected covariance."""
    lam_np = lam.detach().cpu().numpy() if torch.is_tensor(lam) else np.asarray(lam)
    core_np = core.detach().cpu().numpy() if torch.is_tensor(core) else np.asarray(core)
    keep, d = panel_correction(lam_np, len(core_np), panel_size)
    is_core = np.zeros(G.shape[0], dtype=bool)
    is_core[core_np] = True
    if torch.is_tensor(G):
        k = torch.as_tensor(np.flatnonzero(keep), device=G.device)
        dt = torch.as_tensor(d, dtype=G.dtype, device=G.device)
        fl = torch.as_tensor(np.flatnonzero(~is_core), dtype=torch.long, device=G.device)
        Gk = G[:, k]
        rho = flank_reliability(Gk[fl], panel_size)
        Gc = Gk / torch.sqrt(dt)
        c = torch.as_tensor(core_np, dtype=torch.long, device=G.device)
        Gc[c] = Gc[c] * dt
        Gc[fl] = Gc[fl] * rho.unsqueeze(1)
        return Gc, y[k] / torch.sqrt(dt), lam[k] * dt
    Gk = G[:, keep]
    rho = flank_reliability(Gk[~is_core], panel_size)
    Gc = Gk / np.sqrt(d)
    Gc[core_np] *= d
    Gc[~is_core] *= rho[:, None]
    return Gc, y[keep] / np.sqrt(d), lam[keep] * d


def regularise(G, y, lam, U, core, mm):
    """(G', y', lam') of R~ = (1 - l) R + l I at a fixed l (numpy or torch arrays, float64), such that
    `exact.nll(phi, s2, G', y', lam') == nll(phi, s2, l, G, y, lam, U, core)`; l = 0 returns the inputs.
    `mm` may be a `Mismatch`: then l (when > 0) and then the finite-panel correction (when on) are applied."""
    if isinstance(mm, Mismatch):
        if mm.lam > 0.0:
            G, y, lam = regularise(G, y, lam, U, core, mm.lam)
        if mm.panel_size > 0:
            G, y, lam = correct_panel(G, y, lam, core, mm.panel_size)
        return G, y, lam
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
