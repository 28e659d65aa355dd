"""LD-only precomputation per window (paper Sec. 4, App. C.1): PSD repair, core eigendecomposition, factor G.

For a window with extended variants (i)+ (m) and core variants (i) (n):

    R[i,i] = U diag(lam) U^T          (negative lam clipped within bounds; keep the r eigenpairs with
                                       lam > rtol * max(lam))
    G      = R[+,i] U diag(lam^-1/2)   (m x r),  so W = R[+,i] R[i,i]^+ R[i,+] = G G^T
    y      = diag(lam^-1/2) U^T z_(i)  (per trait, length r)

Everything here is a pure function of arrays; reading and writing window files is in `formats`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class LDMatrixError(ValueError):
    """A window's LD matrix cannot be used; the message names the window and the problem."""


def check_unit_diagonal(R: np.ndarray, source: str, atol: float = 1e-4) -> None:
    d = np.diagonal(R)
    if not np.all(np.isfinite(d)):
        raise LDMatrixError(f"{source}: LD matrix has {int((~np.isfinite(d)).sum())} non-finite diagonal entries")
    bad = np.abs(d - 1.0) > atol
    if bad.any():
        k = int(np.argmax(np.abs(d - 1.0)))
        raise LDMatrixError(
            f"{source}: diagonal is {d[k]:.6g} after symmetrising (entry {k}; {int(bad.sum())} of {d.size} entries "
            "are not 1); was the matrix already full? A UKBB-layout .npz holds ONE triangle with 0.5 on the "
            "diagonal, so that R = M + M^T is a correlation matrix."
        )


@dataclass
class PSDReport:
    n_negative: int
    min_eigenvalue: float
    clipped_mass: float          # sum of |negative eigenvalues| that were set to 0
    max_abs_change: float        # largest entry-wise change of R

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PSDLimits:
    """How far from PSD a matrix may be before clipping its negative eigenvalues is refused.

    `max_clip`: most negative eigenvalue relative to the largest; `max_clipped_mass`: sum of |negative
    eigenvalues|; `max_abs_change`: largest entry-wise change of the matrix. The relative bound alone
    lets a doubled matrix through on a window with a large leading eigenvalue: the absolute ones do not.
    """
    max_clip: float = 1e-2
    max_clipped_mass: float = 5.0
    max_abs_change: float = 0.05


def psd_report(lam: np.ndarray, V: np.ndarray, source: str, limits: PSDLimits = PSDLimits()) -> PSDReport:
    """Measure the clipping of the negative eigenvalues of V diag(lam) V^T to 0 and enforce `limits`.

    The paper removes the small negative eigenvalues of the UKBB matrices (App. D.1); a matrix that
    needs more than `limits` allows is not a numerically perturbed correlation matrix.
    """
    neg = lam < 0
    mass = float(-lam[neg].sum())
    change = 0.0
    if neg.any():
        Vn = V[:, neg]
        change = float(np.abs((Vn * lam[neg]) @ Vn.T).max())
    report = PSDReport(int(neg.sum()), float(lam.min()), mass, change)
    problems = []
    if lam.min() < -limits.max_clip * lam.max():
        problems.append(f"smallest eigenvalue {lam.min():.4g} vs largest {lam.max():.4g} "
                        f"(more than {limits.max_clip:g} relative, ld.psd_max_clip)")
    if mass > limits.max_clipped_mass:
        problems.append(f"clipping would remove {mass:.4g} of eigenvalue mass from {report.n_negative} negative "
                        f"eigenvalues (more than ld.psd_max_clipped_mass = {limits.max_clipped_mass:g})")
    if change > limits.max_abs_change:
        problems.append(f"clipping would change an entry by {change:.4g} (more than ld.psd_max_abs_change = "
                        f"{limits.max_abs_change:g})")
    if problems:
        raise LDMatrixError(
            f"{source}: LD matrix is not positive semi-definite: " + "; ".join(problems) + ". Refusing to clip "
            "this much; check that the matrix and the variant list belong together and that the .npz holds one "
            "triangle (was the matrix already full?)."
        )
    return report


def make_psd(R: np.ndarray, source: str = "window", max_clip: float = 1e-2,
             limits: PSDLimits | None = None) -> tuple[np.ndarray, PSDReport]:
    """Clip negative eigenvalues of R to 0 (a new matrix); refuse a matrix that is far from PSD.

    `limits` (default: `max_clip` with the default absolute bounds of `PSDLimits`) bound the clipping.
    """
    limits = limits or PSDLimits(max_clip=max_clip)
    lam, V = np.linalg.eigh(R)
    report = psd_report(lam, V, source, limits)
    if not report.n_negative:
        return R, report
    lam = np.clip(lam, 0.0, None)
    R_psd = (V * lam) @ V.T
    R_psd = 0.5 * (R_psd + R_psd.T)
    report.max_abs_change = float(np.abs(R_psd - R).max())
    return R_psd, report


@dataclass
class WindowFactors:
    """What training needs of one window's LD, independent of trait and prior."""

    name: str
    G: np.ndarray                # (m, r)
    lam: np.ndarray              # (r,)
    U: np.ndarray                # (n, r) eigenvectors of R[i,i], to whiten z per trait
    core: np.ndarray             # (n,) indices of (i) into (i)+
    ldscore: np.ndarray          # (m,) sum_k R_mk^2 over the whole window
    meta: dict = field(default_factory=dict)

    @property
    def m(self) -> int:
        return self.G.shape[0]

    @property
    def n(self) -> int:
        return self.core.shape[0]

    @property
    def rank(self) -> int:
        return self.lam.shape[0]

    def whiten(self, z_core: np.ndarray) -> np.ndarray:
        return whiten(self.U, self.lam, z_core)


BLOCK_ROWS = 1024


def ld_scores(R: np.ndarray, rows: np.ndarray | None = None, block: int = BLOCK_ROWS) -> np.ndarray:
    """l_m = sum_k R_mk^2 over all columns of R for the given rows (default all), in float64 row blocks.

    The LD score of LD score regression (paper Sec. 2.2, App. A.4); memory: one block of rows.
    """
    rows = np.arange(R.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    out = np.empty(rows.size, dtype=np.float64)
    for s in range(0, rows.size, block):
        B = np.asarray(R[rows[s:s + block]], dtype=np.float64)
        out[s:s + block] = np.einsum("ij,ij->i", B, B)
    return out


def factorise_window(R: np.ndarray, sel: np.ndarray, core: np.ndarray, rtol: float = 1e-8, name: str = "window",
                     ldscore: np.ndarray | None = None, limits: PSDLimits | None = PSDLimits(),
                     block: int = BLOCK_ROWS) -> tuple[WindowFactors, PSDReport]:
    """Factors of the window restricted to the variants `sel` (indices into R), core `core` (into sel).

    Eqn 5 / App. C.1 need W = R[+,i] R[i,i]^+ R[i,+] only, so only the core block R[i,i] (n x n, copied
    to float64) is eigendecomposed; its negative eigenvalues are the ones removed (App. D.1: the UKBB
    matrices "can have small negative eigenvalues, which we removed"), bounded by `limits`, and the
    eigenpairs with lam <= rtol * max(lam) are dropped. G = R[+,i] U lam^-1/2 is formed in blocks of rows
    with float64 accumulation, so R (float32 or float64, m_file x m_file) is never copied whole: peak
    memory is R + the n x n core block + G. `ldscore` (length len(sel)) defaults to the LD score over
    all columns of R.
    """
    sel = np.asarray(sel, dtype=np.int64)
    core = np.asarray(core, dtype=np.int64)
    if core.size == 0:
        raise LDMatrixError(f"{name}: empty core (i); nothing to factorise")
    ci = sel[core]
    contiguous = bool(np.all(np.diff(ci) == 1))
    cols = slice(int(ci[0]), int(ci[-1]) + 1) if contiguous else ci
    A = np.array(R[np.ix_(ci, ci)] if not contiguous else R[cols, cols], dtype=np.float64)
    lam, U = np.linalg.eigh(A)
    del A
    report = psd_report(lam, U, name, limits) if limits is not None else PSDReport(
        int((lam < 0).sum()), float(lam.min()), float(-lam[lam < 0].sum()), float("nan"))
    keep = lam > rtol * lam.max()
    lam, U = lam[keep], np.ascontiguousarray(U[:, keep])
    S = U / np.sqrt(lam)
    G = np.empty((sel.size, lam.size), dtype=np.float64)
    for s in range(0, sel.size, block):
        rows = sel[s:s + block]
        B = R[rows][:, cols] if contiguous else R[np.ix_(rows, ci)]
        G[s:s + block] = np.asarray(B, dtype=np.float64) @ S
    if ldscore is None:
        ldscore = ld_scores(R, sel, block)
    return WindowFactors(name=name, G=G, lam=lam, U=U, core=core, ldscore=ldscore), report


def factorise(R: np.ndarray, core: np.ndarray, rtol: float = 1e-8, name: str = "window",
              ldscore: np.ndarray | None = None, limits: PSDLimits | None = PSDLimits()) -> WindowFactors:
    """Eigendecompose R[i,i] and form G = R[+,i] U lam^-1/2 (Eqn 5, App. C.1) for all variants of R.

    `ldscore` defaults to sum_k R_mk^2 over R; pass the LD score over the whole window file when R is a
    subset of it.
    """
    return factorise_window(R, np.arange(R.shape[0]), core, rtol, name, ldscore, limits)[0]


def whiten(U: np.ndarray, lam: np.ndarray, z_core: np.ndarray) -> np.ndarray:
    """y = lam^-1/2 U^T z_(i); z_(i) must be complete and finite."""
    z_core = np.asarray(z_core, dtype=np.float64)
    if not np.all(np.isfinite(z_core)):
        raise ValueError(f"whiten: {int((~np.isfinite(z_core)).sum())} non-finite z-scores in the core")
    return (U.T @ z_core) / np.sqrt(lam)


def core_rows(U: np.ndarray, lam: np.ndarray, G: np.ndarray) -> np.ndarray:
    """R[i,+] rebuilt from the stored factors: U lam^1/2 G^T (exact on the support of R[i,i])."""
    return (U * np.sqrt(lam)) @ G.T
