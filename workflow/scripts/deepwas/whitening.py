"""Per-trait whitening against the trait-independent LD factors (paper Sec. 4.2, Eqn 5, App. C.1).

The LD factors of a window (`ld_factors.factorise_window`) are computed once from the LD source alone: all
variants of the window file form (i)+, the window's core region forms (i). A trait has statistics for a subset
of them: its extended variants E (the (i)+ variants with a z-score) and its observed core o (the core variants
with a z-score). The statistics z_o of the observed core have covariance

    z_o ~ Normal(0,  R[o,E] diag(phi_E) R[E,o]  +  s2 R[o,o])

(the variants without statistics are left out of the trait's model, as if the window file lacked them), so
the trait's factors are those of the restricted window:

- o equal to the whole core: the shared factors unchanged, G restricted to the rows E (a row selection:
  G = R[+,i] U lam^-1/2 row by row), U and lam as they are; y = lam^-1/2 U^T z_(i).
- o a strict subset: R[o,o] = U[o] diag(lam) U[o]^T is eigendecomposed again (n_o x n_o),
  R[o,o] = V diag(mu) V^T keeping mu > rtol max(mu), and

      G_o = R[E,o] V mu^-1/2 = G[E] T,    T = diag(lam^1/2) U[o]^T V diag(mu^-1/2)    (r x r_o),

  since R[E,i] = G[E] diag(lam^1/2) U^T on the support of R[i,i]; y_o = mu^-1/2 V^T z_o. Memory: T and one
  block of rows of G at a time besides the result (no m x m or m x n matrix). This is the factorisation of the
  same (PSD-repaired, truncated) R[i,i] the shared factors use, so with o = (i) it gives back G, lam.
- o empty: the window holds no statistics of the trait and is left out of its likelihood.

Everything here is arrays; reading and writing is in `formats.factors` and `formats.whitened`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from .ld_factors import BLOCK_ROWS, whiten


@dataclass
class TraitWindow:
    """One window as a trait sees it: indices into the shared factors and, where restricted, its own factors."""

    ext: np.ndarray                   # (m_t,) indices of the trait's variants into the factor file's (i)+
    core: np.ndarray                  # (n_t,) indices of the trait's core variants into `ext`
    y: np.ndarray                     # (r_t,) whitened statistics
    G: np.ndarray | None = None       # (m_t, r_t) restricted factors, None where the shared ones serve
    lam: np.ndarray | None = None
    U: np.ndarray | None = None

    @property
    def restricted(self) -> bool:
        return self.G is not None


def restricted_factors(G: np.ndarray, lam: np.ndarray, U: np.ndarray, ext: np.ndarray, observed: np.ndarray,
                       rtol: float, block: int = BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(G_o, mu, V) of the window restricted to the rows `ext` of (i)+ and the core positions `observed`
    (indices into the core, i.e. rows of U); see the module docstring. float64 throughout."""
    Uo = np.asarray(U, dtype=np.float64)[np.asarray(observed, dtype=np.int64)]
    lam = np.asarray(lam, dtype=np.float64)
    Roo = (Uo * lam) @ Uo.T
    mu, V = np.linalg.eigh(0.5 * (Roo + Roo.T))
    keep = mu > rtol * mu.max()
    mu, V = mu[keep], np.ascontiguousarray(V[:, keep])
    T = (np.sqrt(lam)[:, None] * (Uo.T @ V)) / np.sqrt(mu)
    ext = np.asarray(ext, dtype=np.int64)
    Go = np.empty((ext.size, mu.size), dtype=np.float64)
    for s in range(0, ext.size, block):
        Go[s:s + block] = np.asarray(G[ext[s:s + block]], dtype=np.float64) @ T
    return Go, mu, V


def trait_window(factors: dict, has_stats: np.ndarray, z: np.ndarray, rtol: float) -> TraitWindow | None:
    """The trait's view of one window (None when no core variant has statistics).

    factors: the factor file's arrays (G, lam, U, core); has_stats: (m,) whether each (i)+ variant has a
    z-score; z: (m,) the z-scores (NaN where absent); rtol: ld.eig_rtol for the restricted eigendecomposition.
    """
    has_stats = np.asarray(has_stats, dtype=bool)
    core = np.asarray(factors["core"], dtype=np.int64)
    observed = np.flatnonzero(has_stats[core])
    if observed.size == 0:
        return None
    ext = np.flatnonzero(has_stats)
    core_t = np.searchsorted(ext, core[observed])
    z_o = np.asarray(z, dtype=np.float64)[core[observed]]
    if observed.size == core.size:
        return TraitWindow(ext, core_t, whiten(factors["U"], factors["lam"], z_o))
    Go, mu, V = restricted_factors(factors["G"], factors["lam"], factors["U"], ext, observed, rtol)
    return TraitWindow(ext, core_t, whiten(V, mu, z_o), Go, mu, V)


def trait_factors(factors: dict, view: dict) -> dict:
    """The factor arrays of one window restricted to a trait: `view` holds ext, core and freq (the trait's
    allele frequencies of its variants), and G, lam, U where the window is restricted
    (`formats.whitened.WhitenedStats.view`). Per-variant arrays (ldscore, positions, keys) keep the rows `ext`;
    arrays the view does not concern (e.g. tracks added later) are left as they are."""
    ext = np.asarray(view["ext"], dtype=np.int64)
    m = len(factors["keys"]) if "keys" in factors else len(factors["ldscore"])
    whole = ext.size == m and bool(np.all(ext == np.arange(m)))
    out = dict(factors)
    for k in ("ldscore", "positions", "keys") + (() if "G" in view else ("G",)):
        if k in factors and not whole:
            out[k] = factors[k][ext]
    out["core"] = np.asarray(view["core"], dtype=np.int64)
    out["freq"] = np.asarray(view["freq"], dtype=np.float64)
    if "G" in view:
        out.update(G=view["G"], lam=view["lam"], U=view["U"])
    return out


def whiten_trait(z: pd.Series, n: pd.Series, freq: pd.Series, windows: Iterable[tuple[str, dict]], rtol: float,
                 label: str = "trait") -> tuple[dict, pd.DataFrame, dict]:
    """The whiten rule for one trait and chromosome: every window's `trait_window` and the arrays of
    `formats.whitened.write_whitened`.

    z, n, freq: the trait's z-scores, sample sizes and allele1 frequencies indexed by variant key
    ('chrom:pos:a1:a2', `harmonise.variant_key`); windows: (name, factor arrays) of the factorised windows;
    rtol: ld.eig_rtol. Returns (arrays by window, per-window table for the trait's manifest, counts):
    the table has window, status, n_core, n_extended, rank (the trait's), n_core_without_stats,
    n_extended_without_stats and restricted; the counts sum them over the chromosome.
    """
    arrays, rows = {}, []
    counts = {"windows": 0, "windows_whitened": 0, "windows_restricted": 0, "windows_without_core_statistics": 0,
              "core_variants_without_statistics": 0, "core_variants_in_restricted_windows": 0,
              "extended_variants_without_statistics": 0}
    for name, fac in windows:
        keys = np.asarray(fac["keys"]).astype(str)
        zw = z.reindex(keys).to_numpy(dtype=np.float64)
        has = np.isfinite(zw)
        core = np.asarray(fac["core"], dtype=np.int64)
        n_core_missing = int((~has[core]).sum())
        row = {"window": name, "n_core_without_stats": n_core_missing,
               "n_extended_without_stats": int((~has).sum())}
        counts["windows"] += 1
        counts["core_variants_without_statistics"] += n_core_missing
        counts["extended_variants_without_statistics"] += row["n_extended_without_stats"]
        view = trait_window(fac, has, zw, rtol)
        if view is None:
            counts["windows_without_core_statistics"] += 1
            rows.append(row | {"status": f"excluded: {label} has no statistics in the core", "n_core": 0,
                               "n_extended": int(has.sum()), "rank": 0, "restricted": False})
            continue
        counts["windows_whitened"] += 1
        if view.restricted:
            counts["windows_restricted"] += 1
            counts["core_variants_in_restricted_windows"] += int(core.size)
        ck = keys[view.ext[view.core]]
        arrays[name] = {"y": view.y, "z2": zw[view.ext[view.core]] ** 2,
                        "ldscore": np.asarray(fac["ldscore"], dtype=np.float64)[view.ext[view.core]],
                        "n": n.reindex(ck).to_numpy(dtype=np.float64), "ext": view.ext, "core": view.core,
                        "freq": freq.reindex(keys[view.ext]).to_numpy(dtype=np.float64),
                        "lam": view.lam}
        if view.restricted:      # stored like the shared factors (ld.factor_dtype); computed in float64
            arrays[name].update(G=view.G.astype(np.asarray(fac["G"]).dtype, copy=False),
                                U=view.U.astype(np.asarray(fac["U"]).dtype, copy=False))
        rows.append(row | {"status": "ok", "n_core": int(view.core.size), "n_extended": int(view.ext.size),
                           "rank": int(view.y.size), "restricted": view.restricted})
    table = pd.DataFrame(rows, columns=["window", "status", "n_core", "n_extended", "rank", "n_core_without_stats",
                                        "n_extended_without_stats", "restricted"])
    return arrays, table, counts
