#!/usr/bin/env python
"""Fig. 2 analogue (issue 3): seconds per loss + gradient of one window, per method, size, dtype, device.

Windows come from one msprime simulation (diploid samples, thinned sites so R[i,i] is close to full
rank); the window of size n takes m = 3n consecutive sites with the core in the middle. phi is
N f with N = 3e5, h2 = 0.5, M = 1e7 (mean about 0.015, log-normal spread) and s2 = 0.5; z is drawn from
the model at a nearby phi_true so the gradient is the realistic small difference of its two terms.

For each method: median seconds over `--reps` loss+gradient steps after one warm-up step, relative
gradient error ||g - g_exact|| / ||g_exact|| against the exact solver (float64), CG iterations. Rows go to
stdout and to benchmarks/results/fig2.tsv; the fitted exponent of seconds ~ n^k per method follows on
stderr (and as '#' lines at the end of the TSV). A method too slow for a size is skipped (see
SKIP below) and written as a row with seconds 'nan' and a note in the iters column.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "workflow" / "scripts"))

from deepwas.likelihood.baselines import WindowProblem, make_methods  # noqa: E402
from deepwas.likelihood.iterative import NotConverged  # noqa: E402

HEADER = "device dtype method n m seconds speedup_vs_reference rel_grad_err iters".split()
# (method, dtype) -> largest n measured on CPU; the rest are written as skipped rows
SKIP_CPU = {"reference": 2000, "chol_A": 2000, "cg_A": 1000, "cg_A_nystrom": 1000, "cg_B": 2000}
# CG on A is ill-conditioned (A carries the spread of R[i,i]'s spectrum): cap its iterations
A_MAX_ITERS = 500


def simulate_genotypes(n_sites, n_samples=2000, seed=1, maf=0.01, thin=3):
    import msprime
    length = int(n_sites * thin / 3800 * 1e6 * 1.3)
    ts = msprime.sim_ancestry(samples=n_samples, sequence_length=length, recombination_rate=1e-8,
                              population_size=10_000, random_seed=seed)
    ts = msprime.sim_mutations(ts, rate=2e-8, random_seed=seed)
    H = ts.genotype_matrix().T
    X = (H[0::2] + H[1::2]).astype(np.float32)
    f = X.mean(0) / 2
    X = X[:, (f > maf) & (f < 1 - maf)]
    idx = np.linspace(0, X.shape[1] - 1, min(n_sites, X.shape[1])).astype(int)
    X = X[:, idx].astype(np.float64)
    return (X - X.mean(0)) / X.std(0)


def build_problem(X, n, seed=0, N=3e5, h2=0.5, M=1e7, s2=0.5):
    m = min(3 * n, X.shape[1])
    Xw = X[:, :m]
    R = Xw.T @ Xw / Xw.shape[0]
    start = (m - n) // 2
    core = np.arange(start, start + n)
    rng = np.random.default_rng(seed)
    phi_true = N * h2 / M * rng.lognormal(0, 1, m) / math.exp(0.5)
    beta = rng.normal(size=m) * np.sqrt(phi_true)
    noise = Xw[:, core].T @ rng.normal(size=Xw.shape[0]) / math.sqrt(Xw.shape[0])   # ~ N(0, R[i,i])
    z = R[core] @ beta + math.sqrt(s2) * noise
    phi = phi_true * rng.lognormal(0, 0.5, m)
    pb = WindowProblem.build(R, core, z)
    return pb, phi, s2


def to(pb: WindowProblem, dtype, device):
    from dataclasses import replace
    conv = {k: getattr(pb, k).to(device=device, dtype=dtype) for k in ("R", "z_core", "U", "lam", "G", "y")}
    return replace(pb, core=pb.core.to(device), **conv)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def step(method, phi, s2, pb):
    phi = phi.clone().requires_grad_(True)
    v = method(phi, s2, pb)
    v.backward()
    return v.detach(), phi.grad


def run(args, out):
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.cpu_only else [])
    sizes = args.sizes
    t0 = time.time()
    X = simulate_genotypes(3 * max(sizes), n_samples=args.samples)
    print(f"# genotypes {X.shape} in {time.time() - t0:.1f}s", file=sys.stderr)
    rows = []
    w = out.write
    w("\t".join(HEADER) + "\n")
    for n in sizes:
        t0 = time.time()
        pb64, phi_np, s2 = build_problem(X, n)
        print(f"# n={n} m={pb64.m} r={pb64.r} window built in {time.time() - t0:.1f}s", file=sys.stderr)
        phi64 = torch.tensor(phi_np, dtype=torch.float64)
        _, g_exact = step(make_methods()["exact"], phi64, s2, pb64)
        for device in devices:
            for dtype in args.dtypes:
                if dtype == "float32" and n > args.float32_max_n and device == "cpu":
                    continue
                tdt = getattr(torch, dtype)
                pb = to(pb64, tdt, device)
                phi = phi64.to(device=device, dtype=tdt)
                methods = make_methods(probes=args.probes, rtol=args.rtol if dtype == "float64" else max(args.rtol, 1e-4),
                                       a_max_iters=A_MAX_ITERS)
                results = {}
                for name in args.methods:
                    meth = methods[name]
                    limit = SKIP_CPU.get(name)
                    if device == "cpu" and limit is not None and n > limit and not args.no_skip:
                        results[name] = (float("nan"), float("nan"), "skipped_too_slow")
                        continue
                    reps = args.reps if n <= 1000 else max(1, args.reps // 2) if n <= 2000 else 1
                    times, errs, iters = [], [], "-"
                    try:
                        for i in range(reps + 1):
                            sync(device)
                            t = time.perf_counter()
                            _, g = step(meth, phi, s2, pb)
                            sync(device)
                            dt = time.perf_counter() - t
                            if i > 0 or reps == 0:
                                times.append(dt)
                            errs.append(float((g.double().cpu() - g_exact).norm() / g_exact.norm()))
                        st = getattr(meth, "stats", None)
                        if st is not None:
                            iters = str(st.get("iterations_last", "-"))
                            if st.get("fallbacks"):
                                iters += f"(fallbacks={st['fallbacks']})"
                    except (NotConverged, torch.linalg.LinAlgError, FloatingPointError) as err:
                        note = "not_converged" if isinstance(err, NotConverged) else "failed:" + type(err).__name__
                        results[name] = (float("nan"), float("nan"), note)
                        print(f"# {name} n={n} {dtype}: {err}", file=sys.stderr)
                        continue
                    results[name] = (statistics.median(times), statistics.mean(errs), iters)
                    print(f"# {device} {dtype} n={n} {name}: {results[name][0]:.3f}s err {results[name][1]:.4f}",
                          file=sys.stderr)
                ref = results.get("reference", (float("nan"),))[0]
                for name, (sec, err, iters) in results.items():
                    row = [device, dtype, name, str(n), str(pb.m), f"{sec:.4g}", f"{ref / sec:.3g}",
                           f"{err:.3g}", iters]
                    rows.append(row)
                    w("\t".join(row) + "\n")
                    out.flush()
    return rows


def fit_exponents(rows):
    """Least-squares slope of log seconds on log n, per (device, dtype, method), over measured sizes."""
    groups = {}
    for dev, dt, meth, n, m, sec, *_ in rows:
        if sec != "nan":
            groups.setdefault((dev, dt, meth), []).append((float(n), float(sec)))
    out = {}
    for key, pts in groups.items():
        if len(pts) >= 2:
            x = np.log([p[0] for p in pts])
            y = np.log([p[1] for p in pts])
            out[key] = (float(np.polyfit(x, y, 1)[0]), len(pts))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[500, 1000, 2000, 4000],
                    help="core sizes n (m = 3n), comma-separated (default 500,1000,2000,4000)")
    ap.add_argument("--quick", action="store_true", help="sizes 300,600 and one repeat (smoke run)")
    ap.add_argument("--methods", type=lambda s: s.split(","),
                    default=["reference", "chol_A", "cg_A", "cg_A_nystrom", "cg_B", "exact", "iterative"])
    ap.add_argument("--dtypes", type=lambda s: s.split(","), default=["float64", "float32"])
    ap.add_argument("--float32-max-n", type=int, default=1000, help="largest n of the CPU float32 sweep")
    ap.add_argument("--reps", type=int, default=3, help="timed steps after warm-up (halved at n>1000, 1 at n>2000)")
    ap.add_argument("--probes", type=int, default=100)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--samples", type=int, default=2000, help="diploid msprime samples for the LD")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: robust on a shared machine)")
    ap.add_argument("--no-skip", action="store_true", help="measure slow baselines at every size")
    ap.add_argument("--cpu-only", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "fig2.tsv"))
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.reps, args.dtypes = [300, 600], 1, ["float64"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)

    class Tee:
        def __init__(self, *fs):
            self.fs = fs

        def write(self, s):
            for f in self.fs:
                f.write(s)

        def flush(self):
            for f in self.fs:
                f.flush()

    with open(args.out, "w") as fh:
        tee = Tee(sys.stdout, fh)
        rows = run(args, tee)
        exps = fit_exponents(rows)
        for (dev, dt, meth), (k, npts) in sorted(exps.items()):
            line = f"# exponent {dev} {dt} {meth}: seconds ~ n^{k:.2f} ({npts} sizes)\n"
            tee.write(line)
            print(line, end="", file=sys.stderr)


if __name__ == "__main__":
    main()
