"""Derived per-variant features (DESIGN 4: part of d_pred): frequency, MAF, LD score.

- frequency: the frequency of the effect allele A1 as given (orientation follows the harmonised table),
- MAF: min(f, 1 - f),
- LD score: l_m = sum_k r_mk^2 over **all** variants of the LD window (i)+, diagonal included (Bulik-Sullivan
  et al. 2015). With ``bias_correct=True`` and the LD sample size ``n_ld`` (337,545 for the UKBB LD), each
  off-diagonal r^2 is replaced by the ldsc estimator r2_adj = r^2 - (1 - r^2) / (n_ld - 2), which removes the
  sampling bias E[r_hat^2] - r^2 ~ (1 - r^2)/n; the diagonal stays 1 (it is exact).
"""
from __future__ import annotations

import numpy as np

D_PRED_DERIVED = ["frequency", "maf", "ldscore"]


def maf(freq) -> np.ndarray:
    f = np.asarray(freq, dtype=np.float64)
    if np.any((f < 0) | (f > 1)):
        raise ValueError(f"allele frequencies outside [0, 1]: min {np.nanmin(f)}, max {np.nanmax(f)}")
    return np.minimum(f, 1.0 - f)


def ld_score(R, bias_correct: bool = False, n_ld: int | None = None, block: int = 2048) -> np.ndarray:
    """l_m = sum_k r_mk^2 of a window's full correlation matrix R (dense array or scipy.sparse), [m] float64.

    Dense R is processed in row blocks so no m x m temporary is made.
    """
    if bias_correct and (n_ld is None or n_ld <= 2):
        raise ValueError("bias_correct=True needs the LD reference sample size n_ld > 2")
    c = 1.0 / (n_ld - 2) if bias_correct else 0.0
    try:
        import scipy.sparse as sp
        is_sparse = sp.issparse(R)
    except ImportError:  # pragma: no cover
        is_sparse = False
    if is_sparse:
        R = R.tocsr()
        r2 = R.multiply(R)
        s = np.asarray(r2.sum(axis=1)).ravel()
        diag = np.asarray(R.diagonal()) ** 2
        m = R.shape[0]
        if bias_correct:
            # implicit zeros have r2 = 0 and adjust to -c as well: sum over all m-1 off-diagonal entries
            off = s - diag
            off_adj = off - c * ((m - 1) - off)
            return diag + off_adj
        return s
    R = np.asarray(R)
    m = R.shape[0]
    out = np.empty(m)
    for s in range(0, m, block):
        r2 = np.square(R[s:s + block], dtype=np.float64)
        tot = r2.sum(axis=1)
        if bias_correct:
            d = r2[np.arange(r2.shape[0]), np.arange(s, s + r2.shape[0])]
            off = tot - d
            tot = d + off - c * ((m - 1) - off)
        out[s:s + block] = tot
    return out


def derived_features(freq, R, bias_correct: bool = False, n_ld: int | None = None) -> np.ndarray:
    """[m, 3] float32 columns ``D_PRED_DERIVED`` for the window's variants in R's order."""
    f = np.asarray(freq, dtype=np.float64)
    return np.stack([f, maf(f), ld_score(R, bias_correct, n_ld)], axis=1).astype(np.float32)
