"""Other models of a reference panel's error, measured on the LD-mismatch simulation and not adopted: the panel
split in two halves (one defines the eigenbasis, the other estimates the covariance of the statistic in it), and
the extrapolation of the constant prior's h2 to an infinite panel from subsamples of the panel (SIMEX).

    PYTHONPATH=workflow/scripts nice -n 10 python benchmarks/mismatch_models.py --cache DIR --seeds 1 2 3 4 \
        [--split A/T/T A/B/T A/B/B A/B/Bdiag] [--simex 500 333 250] [--N 100000] [--draw 0]

The blocks, statistics and windows are those of `benchmarks/mismatch.py` (`deepwas.simulation.ld_mismatch`: 200
msprime blocks of 500 kb, GWAS N = 100,000, h2 = 0.5, cores of about 150 variants whose extended set is their
block, the first 100 blocks train); the LD is that of the 500-person panel of the same population, (b).

Split panel (`--split U/G/S`, each a source of LD: A = the panel's first 250 people, B = its other 250, T = the
cohort's own LD, the oracle). The eigenvectors U of the core block of source U that the finite-panel correction
keeps for 250 people (`likelihood.mismatch.panel_correction`) define the statistic x = U^T z_(i). With U
independent of the people of B, the plug-in covariance of x under Sec. 4.1's model,

    x ~ N(0, G0^T diag(phi) G0 + s2 S),     G0 = R_G[+,i] U,   S = U^T R_S[i,i] U   (Sdiag: diag(S) only),

estimates U^T R[i,+] Phi R[+,i] U and U^T R[i,i] U with all their couplings, free of the same-sample bias that
the full panel's eigenbasis carries (module docstring of `likelihood.mismatch`). It is brought to the factor
form of App. C.1 by whitening with S = V D V^T: y = D^-1/2 V^T x, G = G0 V D^-1/2, lam = D, and (s2, c) of the
constant prior are fitted by `s2.fit_constant_and_s2`. (The Wishart excess of G0^T Phi G0 from B's sampling,
sum(phi) S / 250 in expectation, is proportional to S: with a constant prior it only moves s2.)

SIMEX (`--simex n1 n2 ...`): the default correction (`auto`) on the LD of the panel's first n people for each n,
and the least-squares line of h2 against 1 / n extrapolated to 1 / n = 0 (Cook and Stefanski 1994).

`--N`/`--draw`: statistics redrawn on the same blocks (`ld_mismatch.redraw`) with GWAS size N (draw 0 with the
default N: the simulated statistics).
"""
from __future__ import annotations

import argparse
import logging
import math
import time

import numpy as np
import torch

from deepwas.likelihood import mismatch as mm_lik
from deepwas.s2 import fit_constant_and_s2
from deepwas.simulation.ld_mismatch import _ld, core_bounds, make_windows, redraw
from deepwas.window import WindowData
from mismatch import load_or_simulate  # benchmarks/mismatch.py: the same --cache of simulated blocks

M_GENOME = 1_000_000


def _t(a):
    return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)


def split_windows(R_u, R_g, R_s, z, freq, n_u: int, diag: bool, name: str, core_size: int = 150):
    """Windows of one block under the split-panel model (module docstring)."""
    out = []
    for s, e in core_bounds(len(z), core_size):
        lam, U = np.linalg.eigh(R_u[s:e, s:e])
        nonnull = lam > 1e-8 * lam.max()                           # the rank cut of `ld_factors.factorise`
        keep, _ = mm_lik.panel_correction(lam[nonnull], e - s, n_u)
        U = U[:, nonnull][:, keep]
        S = U.T @ R_s[s:e, s:e] @ U
        D, V = np.linalg.eigh(np.diag(np.diag(S)) if diag else S)
        kept = D > 1e-8 * D.max()                                  # the oracle's variants in perfect LD: rank < r
        D, V = D[kept], V[:, kept]
        y = (V.T @ (U.T @ z[s:e])) / np.sqrt(D)
        G = (R_g[:, s:e] @ U @ V) / np.sqrt(D)
        out.append(WindowData(f"{name}_{s}", _t(G), _t(D), _t(y), {"freq": _t(freq)}, e - s))
    return out


def panel_windows(P, z, freq, name: str, core_size: int = 150):
    """Windows of one block with the LD of the panel genotypes P (variants x people), `auto`'s correction."""
    n = P.shape[1]
    out = []
    w, aux = make_windows(_ld(P), z, freq, core_size, None, name=name)
    for wi, (U, core) in zip(w, aux):
        G, y, lam = mm_lik.regularise(wi.G, wi.y, wi.lam, U, core, mm_lik.Mismatch(0.0, n))
        out.append(WindowData(wi.name, G, lam, y, wi.inputs, wi.n_core))
    return out


def fit_h2(windows, N) -> tuple[float, float]:
    s2, c = fit_constant_and_s2(windows, N, 0.0, math.log(0.5 / M_GENOME))
    return s2, M_GENOME * math.exp(c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--blocks", type=int, default=200)
    ap.add_argument("--split", nargs="*", default=["A/T/T", "A/B/T", "A/T/B", "A/B/B", "A/B/Bdiag"])
    ap.add_argument("--simex", type=int, nargs="*", default=[500, 333, 250])
    ap.add_argument("--N", type=float, default=100_000)
    ap.add_argument("--draw", type=int, default=0)
    ap.add_argument("--cache", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    print("| seed | N | model | mean kept directions | s2 | h2 (truth 0.5) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for seed in a.seeds:
        t0 = time.time()
        sim = dict(n_cohort=4000, n_panel=500, n_blocks=a.blocks, block_length=5e5, seed=seed)
        reg = load_or_simulate(sim, a.cache)
        if reg.blocks[0].panel is None:
            raise SystemExit(f"{a.cache}: blocks simulated before the panel genotypes were kept; use another --cache")
        if a.draw or a.N != 100_000:
            reg = redraw(reg, a.draw, N=a.N)
        train = reg.blocks[:reg.n_train]
        for model in a.split:
            u, g, s = model.split("/")
            ws = []
            for k, b in enumerate(train):
                P = b.panel.astype(np.float64)
                src = {"A": _ld(P[:, :250]), "B": _ld(P[:, 250:]), "T": b.lds["a: cohort (in-sample)"]}
                ws += split_windows(src[u], src[g], src[s[0]], b.z, b.freq, 250, s.endswith("diag"), f"b{k}")
            s2, h2 = fit_h2(ws, a.N)
            r = np.mean([w.y.shape[0] for w in ws])
            print(f"| {seed} | {a.N:g} | split {model} | {r:.1f} | {s2:.3f} | {h2:.3f} |", flush=True)
        points = []
        for n in a.simex:
            ws = []
            for k, b in enumerate(train):
                ws += panel_windows(b.panel[:, :n].astype(np.float64), b.z, b.freq, f"b{k}")
            s2, h2 = fit_h2(ws, a.N)
            points.append((n, h2))
            r = np.mean([w.y.shape[0] for w in ws])
            print(f"| {seed} | {a.N:g} | auto, panel of {n} | {r:.1f} | {s2:.3f} | {h2:.3f} |", flush=True)
        if len(points) >= 2:
            x = np.array([1.0 / n for n, _ in points])
            A = np.vstack([np.ones_like(x), x]).T
            h2_inf = float(np.linalg.lstsq(A, np.array([h for _, h in points]), rcond=None)[0][0])
            print(f"| {seed} | {a.N:g} | SIMEX: h2 at 1 / n = 0 | | | {h2_inf:.3f} |", flush=True)
        print(f"<!-- seed {seed}: {time.time() - t0:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
