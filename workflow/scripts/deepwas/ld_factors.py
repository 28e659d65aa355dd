"""LD-only precomputation per window (paper Sec. 4, App. C.1): PSD repair, core eigendecomposition, factor G.

For a window with extended variants (i)+ (m) and core variants (i) (n):

    R[i,i] = U diag(lam) U^T          (keep the r eigenpairs with lam > rtol * max(lam))
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
    if not np.all(np.isfinite(R)):
        raise LDMatrixError(f"{source}: LD matrix has {int((~np.isfinite(R)).sum())} non-finite entries")
    bad = np.abs(d - 1.0) > atol
    if bad.any():
        k = int(np.argmax(np.abs(d - 1.0)))
        raise LDMatrixError(
            f"{source}: diagonal of R is not 1 after symmetrising ({int(bad.sum())} of {d.size} entries off; "
            f"entry {k} is {d[k]:.6g}). A UKBB-layout .npz must hold ONE triangle with 0.5 on the diagonal; "
            "was the matrix already full, or not a correlation matrix?"
        )


@dataclass
class PSDReport:
    n_negative: int
    min_eigenvalue: float
    clipped_mass: float          # sum of |negative eigenvalues| that were set to 0
    max_abs_change: float        # largest entry-wise change of R

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def make_psd(R: np.ndarray, source: str = "window", max_clip: float = 1e-2 ) -> tuple[np.ndarray, PSDReport]:
    """Clip negative eigenvalues of R to 0; refuse a matrix that is far from PSD.

    `max_clip` bounds the most negative eigenvalue relative to the largest one: a matrix more negative
    than that is not a numerically perturbed correlation matrix and is rejected with an error.
    """
    lam, V = np.linalg.eigh(R)
    neg = lam < 0
    report = PSDReport(int(neg.sum()), float(lam.min()), float(-lam[neg].sum()), 0.0)
    if lam.min() < -max_clip * lam.max():
        raise LDMatrixError(
            f"{source}: LD matrix is not positive semi-definite: smallest eigenvalue {lam.min():.4g} "
            f"vs largest {lam.max():.4g} (more than {max_clip:g} relative). Refusing to clip this much; "
            "check that the matrix and the variant list belong together."
        )
    if not neg.any():
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


def factorise(R: np.ndarray, core: np.ndarray, rtol: float = 1e-8, name: str = "window",
              ldscore: np.ndarray | None = None) -> WindowFactors:
    """Eigendecompose R[i,i] and form G = R[+,i] U lam^-1/2 (paper App. C.1).

    `ldscore` defaults to sum_k R_mk^2 over R; pass the LD score over the whole window file when R is a
    subset of it.
    """
    core = np.asarray(core, dtype=np.int64)
    if core.size == 0:
        raise LDMatrixError(f"{name}: empty core (i); nothing to factorise")
    R_ec = R[:, core]
    lam, U = np.linalg.eigh(R_ec[core])
    keep = lam > rtol * lam.max()
    lam, U = lam[keep], U[:, keep]
    G = (R_ec @ U) / np.sqrt(lam)
    if ldscore is None:
        ldscore = (R * R).sum(1)
    return WindowFactors(name=name, G=G, lam=lam, U=U, core=core, ldscore=ldscore)


def whiten(U: np.ndarray, lam: np.ndarray, z_core: np.ndarray) -> np.ndarray:
    """y = lam^-1/2 U^T z_(i); z_(i) must be complete and finite."""
    z_core = np.asarray(z_core, dtype=np.float64)
    if not np.all(np.isfinite(z_core)):
        raise ValueError(f"whiten: {int((~np.isfinite(z_core)).sum())} non-finite z-scores in the core")
    return (U.T @ z_core) / np.sqrt(lam)


def core_rows(U: np.ndarray, lam: np.ndarray, G: np.ndarray) -> np.ndarray:
    """R[i,+] rebuilt from the stored factors: U lam^1/2 G^T (exact on the support of R[i,i])."""
    return (U * np.sqrt(lam)) @ G.T
