#!/usr/bin/env python
"""One loss + gradient step of the exact low-rank solver vs the authors' per-step path (paper Sec. 4).

Both methods evaluate the NLL of one LD window's core z-scores (App. C.1) and back-propagate to phi,
in float64 on the CPU, on the same window:

  exact      deepwas.likelihood.exact.nll(phi, s2, G, y, lam) + backward. G, lam (and y) come from
             deepwas.ld_factors.factorise / whiten, a one-off LD-only precomputation done ONCE per window
             (and stored by the pipeline's ld_factors rule), so it is NOT part of the timed step; its time is
             printed on stderr for information.
  reference  deepwas.likelihood.dense.nll_reference_style(phi, s2, R, core, z) + backward: every step redoes
             eigh of R[i,i], R^+, L, W = L R[i,+] (m x m) and the Cholesky of B = I + Phi^1/2 W Phi^1/2 / s2,
             as the authors' released code does.

Windows: msprime genotypes (--samples diploids; independent segments concatenated until there are enough
variants after the MAF filter), m consecutive variants, the middle n as the core, z = X_(i) y / sqrt(N) for a
simulated phenotype y. Sizes: n = 1000 / m = 3000 and n = 2000 / m = 6000 (n core, m extended).

Output: TSV on stdout, header `method n m seconds speedup_vs_reference rel_value_diff rel_grad_err`, one row
per method and size; seconds = median over --repeats timed steps after one warm-up step; rel_value_diff =
|NLL - NLL_reference| / |NLL_reference|; rel_grad_err = |grad - grad_reference|_2 / |grad_reference|_2.
torch.set_num_threads(--threads), default 2 (the benchmark VM has 2 cores).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np
import torch

from deepwas.ld_factors import factorise, whiten
from deepwas.likelihood.dense import nll_reference_style
from deepwas.likelihood.exact import nll
from deepwas.simulation.cohort import simulate_chromosome

SIZES = [(1000, 3000), (2000, 6000)]


def genotypes(m: int, samples: int, seed: int, segment: int) -> np.ndarray:
    """At least m standardised variants (rows) from independent msprime segments, concatenated."""
    blocks, total, k = [], 0, 0
    while total < m:
        c = simulate_chromosome("1", segment, samples, seed + k)
        blocks.append(c.standardised())
        total += blocks[-1].shape[0]
        k += 1
    return np.concatenate(blocks)[:m]


def window(X: np.ndarray, n: int, m: int, seed: int, s2: float = 0.5, h2: float = 0.5):
    Xw = X[:m]
    N = Xw.shape[1]
    R = Xw @ Xw.T / N
    c0 = (m - n) // 2
    core = np.arange(c0, c0 + n)
    rng = np.random.default_rng(seed)
    beta = rng.normal(size=m) * math.sqrt(h2 / m)
    ypheno = Xw.T @ beta + rng.normal(size=N) * math.sqrt(s2)
    z = Xw[core] @ ypheno / math.sqrt(N)
    phi = N * h2 / m * rng.lognormal(0, 1, m) / math.exp(0.5)
    return R, core, z, phi, s2


def step_time(fn, phi0: torch.Tensor, repeats: int):
    times, out = [], None
    for rep in range(repeats + 1):                     # first step warms up, not counted
        phi = phi0.clone().requires_grad_(True)
        t0 = time.perf_counter()
        v = fn(phi)
        v.backward()
        dt = time.perf_counter() - t0
        if rep:
            times.append(dt)
        out = (float(v.detach()), phi.grad.detach().clone())
    return statistics.median(times), out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="timed steps per method and size (median reported)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--samples", type=int, default=3000, help="diploid msprime samples for the LD")
    ap.add_argument("--segment", type=int, default=2_000_000, help="bp per msprime segment")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rtol", type=float, default=1e-8, help="eigenvalue cut-off of R[i,i], relative to the largest")
    ap.add_argument("--sizes", default=",".join(f"{n}x{m}" for n, m in SIZES), help="n x m pairs, comma-separated")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]

    t0 = time.perf_counter()
    X = genotypes(max(m for _, m in sizes), args.samples, args.seed, args.segment)
    print(f"# genotypes {X.shape} in {time.perf_counter() - t0:.1f} s; torch threads {torch.get_num_threads()}",
          file=sys.stderr)
    print("method\tn\tm\tseconds\tspeedup_vs_reference\trel_value_diff\trel_grad_err")
    for n, m in sizes:
        R, core, z, phi, s2 = window(X, n, m, args.seed)
        t0 = time.perf_counter()
        fac = factorise(R, core, rtol=args.rtol)       # one-off per window: excluded from the step time
        y = whiten(fac.U, fac.lam, z)
        t_fac = time.perf_counter() - t0
        print(f"# n={n} m={m}: rank r={fac.rank} of R[i,i]; one-off factorise+whiten {t_fac:.2f} s (not timed "
              "in the step)", file=sys.stderr)
        T = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
        Rt, coret, zt, phi0 = T(R), torch.as_tensor(core), T(z), T(phi)
        G, yt, lam = T(fac.G), T(y), T(fac.lam)
        t_ref, (v_ref, g_ref) = step_time(
            lambda p: nll_reference_style(p, s2, Rt, coret, zt, rtol=args.rtol), phi0, args.repeats)
        t_ex, (v_ex, g_ex) = step_time(lambda p: nll(p, s2, G, yt, lam), phi0, args.repeats)
        gnorm = float(g_ref.norm())
        for name, t, v, g in (("reference", t_ref, v_ref, g_ref), ("exact", t_ex, v_ex, g_ex)):
            print(f"{name}\t{n}\t{m}\t{t:.4f}\t{t_ref / t:.2f}\t{abs(v - v_ref) / abs(v_ref):.2e}\t"
                  f"{float((g - g_ref).norm()) / gnorm:.2e}", flush=True)


if __name__ == "__main__":
    main()
