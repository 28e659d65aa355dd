#!/usr/bin/env python
"""Fig. 2 analogue (paper Sec. 4): seconds per loss + gradient of one window, per method, size, dtype, device.

Windows come from one msprime simulation with many samples (default 10,000 diploids, so the rank r of
R[i,i] keeps growing with n: r is about 0.88 n up to n = 8000 instead of saturating at the sample size).
The simulation keeps `3 max(n)` evenly spaced common variants (MAF > 1%) and is cached as int8 dosages
under --cache-dir (default /tmp/deepwas_fig2_cache); the factored window of each n (G, lam, U, z, y, phi)
is cached there too, so a second run skips the simulation and the factorisations.

The window of size n takes m = 3n consecutive sites with the core in the middle and is factored as
`ld_factors.factorise` does (eigh of R[i,i], eigenvalues > 1e-8 max, G = R[+,i] U lam^-1/2), computed from
R[+,i] only, so the m x m R is formed only for the methods that need it (reference, chol_A, cg_A*).
phi is N f with N = 3e5, h2 = 0.5, M = 1e7 (mean about 0.015, log-normal spread) and s2 = 0.5; z is drawn
from the model at a nearby phi_true so the gradient is the realistic small difference of its two terms.

For each method: median seconds over timed loss+gradient steps after one warm-up step (at least one timed
step, at most --reps, stopping once a method has spent --budget seconds at that size; no warm-up above
--warmup-max-n), mean relative gradient error ||g - g_exact|| / ||g_exact|| against the exact solver
(float64) over those steps, CG iterations. Rows go to stdout and to benchmarks/results/fig2.tsv; the
fitted exponents of seconds ~ n^k per method follow as '#' lines at the end of the table (stdout and TSV),
together with r per n and, for float64, where the iterative and exact lines cross. Methods above their
size limit (--dense-max-n for reference and chol_A, --cg-a-max-n for CG on A, --cg-b-max-n for CG on B)
are written as rows with seconds 'nan' and the reason in the iters column.

`iterative` is the solver with its defaults (G products of the sketch, probes and batched CG in float32;
preconditioner rank and probes chosen per window for a 2% estimated gradient error, `grad_error_target`);
its iters column also gives the rank l and probes p it chose (last timed step). `iterative_fixed` is the
previous default, a fixed rank 200 and 40 probes (`grad_error_target=None`). `iterative_f64` does every G
product in G's dtype, so in float32 rows the two are the same computation.
`--iterative-options k=v,...` and `--tag` time other settings as extra rows; `--append` adds them to an
existing TSV and `--refit` only refits the summary lines.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "workflow" / "scripts"))

from deepwas.likelihood.baselines import WindowProblem, _Iterative, make_methods  # noqa: E402
from deepwas.linalg.cg import NotConverged  # noqa: E402

HEADER = "device dtype method n m seconds speedup_vs_reference rel_grad_err iters".split()
METHODS = ["reference", "chol_A", "cg_A", "cg_A_nystrom", "cg_B", "exact", "iterative", "iterative_fixed",
           "iterative_f64"]
FIXED = dict(precond_rank=200, probes=40, grad_error_target=None)     # the defaults before per-window settings
NEEDS_R = {"reference", "chol_A", "cg_A", "cg_A_nystrom"}
# CG on A is ill-conditioned (A carries the spread of R[i,i]'s spectrum): cap its iterations
A_MAX_ITERS = 500
RANK_RTOL = 1e-8       # as ld_factors.factorise's default
DEFAULT_CACHE = Path(os.environ.get("DEEPWAS_FIG2_CACHE", "/tmp/deepwas_fig2_cache"))


# ---- windows ----------------------------------------------------------------------------------------

def simulate_genotypes(n_sites, n_samples=10_000, seed=1, maf=0.01, cache_dir: Path | None = DEFAULT_CACHE):
    """Dosages (people x sites, int8 0..2) of `n_sites` evenly spaced common variants of one msprime
    chromosome (Hudson coalescent, Ne 1e4, recombination 1e-8, infinite-sites binary mutations at 2e-8)."""
    path = None
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / f"genotypes_N{n_samples}_S{n_sites}_seed{seed}_maf{maf:g}.npy"
        if path.exists():
            return np.load(path)
    import msprime
    length = int(n_sites * 3 / 3000 * 1e6 * 1.1)        # about 3,000 sites with MAF > 1% per Mb
    while True:
        ts = msprime.sim_ancestry(samples=n_samples, sequence_length=length, recombination_rate=1e-8,
                                  population_size=10_000, random_seed=seed)
        ts = msprime.sim_mutations(ts, rate=2e-8, random_seed=seed, model=msprime.BinaryMutationModel(),
                                   discrete_genome=False)
        counts = np.zeros(ts.num_sites, dtype=np.int64)   # derived allele counts, without decoding genotypes
        for tree in ts.trees():
            for site in tree.sites():
                counts[site.id] = tree.num_samples(site.mutations[0].node)
        f = counts / ts.num_samples
        common = np.flatnonzero((f > maf) & (f < 1 - maf))
        if common.size >= n_sites:
            break
        length = int(length * 1.3 * n_sites / max(common.size, 1))
    keep = common[np.linspace(0, common.size - 1, n_sites).astype(int)]
    H = ts.delete_sites(np.setdiff1d(np.arange(ts.num_sites), keep)).genotype_matrix()   # sites x haplotypes
    X = (H[:, 0::2] + H[:, 1::2]).T.astype(np.int8)
    if path is not None:
        np.save(path, X)
    return X


def _standardised(X):
    Xs = X.astype(np.float64)
    Xs -= Xs.mean(0)
    Xs /= Xs.std(0)
    return torch.from_numpy(Xs)


def build_window(X, n, seed=0, N=3e5, h2=0.5, M=1e7, s2=0.5, with_R=False,
                 cache_dir: Path | None = DEFAULT_CACHE) -> tuple[WindowProblem, np.ndarray, float]:
    """(WindowProblem in float64, phi, s2) for the window of n core variants; R is formed only if asked."""
    m = min(3 * n, X.shape[1])
    start = (m - n) // 2
    core = np.arange(start, start + n)
    n_people = X.shape[0]
    path = None if cache_dir is None else cache_dir / f"window_N{n_people}_S{X.shape[1]}_n{n}_seed{seed}.npz"
    Xs = None
    if path is not None and path.exists():
        d = dict(np.load(path))
    else:
        Xs = _standardised(X[:, :m])
        R_ec = (Xs.T @ Xs[:, core]).numpy() / n_people      # R[+,i], m x n
        lam, U = np.linalg.eigh(R_ec[core])
        keep = lam > RANK_RTOL * lam.max()
        lam, U = lam[keep], U[:, keep]
        G = (R_ec @ U) / np.sqrt(lam)
        rng = np.random.default_rng(seed)
        phi_true = N * h2 / M * rng.lognormal(0, 1, m) / math.exp(0.5)
        beta = rng.normal(size=m) * np.sqrt(phi_true)
        noise = (Xs[:, core].T @ torch.from_numpy(rng.normal(size=n_people))).numpy() / math.sqrt(n_people)
        z = R_ec.T @ beta + math.sqrt(s2) * noise          # R[i,+] beta + N(0, s2 R[i,i])
        del R_ec
        phi = phi_true * rng.lognormal(0, 0.5, m)
        d = dict(G=G, lam=lam, U=U, z=z, y=(U.T @ z) / np.sqrt(lam), phi=phi, s2=np.float64(s2))
        if path is not None:
            np.savez(path, **d)
    R = None
    if with_R:
        Xs = _standardised(X[:, :m]) if Xs is None else Xs
        R = Xs.T @ Xs / n_people
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    pb = WindowProblem(R, torch.from_numpy(core), t(d["z"]), t(d["U"]), t(d["lam"]), t(d["G"]), t(d["y"]),
                       RANK_RTOL)
    return pb, d["phi"], float(d["s2"])


def to(pb: WindowProblem, dtype, device):
    from dataclasses import replace
    conv = {k: getattr(pb, k).to(device=device, dtype=dtype) for k in ("z_core", "U", "lam", "G", "y")}
    R = None if pb.R is None else pb.R.to(device=device, dtype=dtype)
    return replace(pb, R=R, core=pb.core.to(device), **conv)


# ---- timing -----------------------------------------------------------------------------------------

def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def step(method, phi, s2, pb):
    phi = phi.clone().requires_grad_(True)
    v = method(phi, s2, pb)
    v.backward()
    return v.detach(), phi.grad


def skip_reason(name, n, args):
    limits = {"reference": ("dense_max_n", "--dense-max-n"), "chol_A": ("dense_max_n", "--dense-max-n"),
              "cg_A": ("cg_a_max_n", "--cg-a-max-n"), "cg_A_nystrom": ("cg_a_max_n", "--cg-a-max-n"),
              "cg_B": ("cg_b_max_n", "--cg-b-max-n")}
    if name in limits:
        attr, flag = limits[name]
        limit = getattr(args, attr)
        if limit is not None and n > limit:
            return f"skipped:n>{limit}({flag})"
    return None


def time_method(meth, phi, s2, pb, g_exact, device, args, n):
    times, errs = [], []
    warm = n <= args.warmup_max_n
    spent = 0.0
    i = 0
    while True:
        sync(device)
        t = time.perf_counter()
        _, g = step(meth, phi, s2, pb)
        sync(device)
        dt = time.perf_counter() - t
        spent += dt
        if not (warm and i == 0):
            times.append(dt)
        errs.append(float((g.double().cpu() - g_exact).norm() / g_exact.norm()))
        i += 1
        if len(times) >= args.reps or (times and spent >= args.budget):
            break
    return times, errs


def run(args, out, extra=None):
    """Time every method; rows go to `out` (and to `extra` without a header, when appending)."""
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.cpu_only else [])
    sizes = args.sizes
    t0 = time.time()
    cache = None if args.no_cache else Path(args.cache_dir)
    X = simulate_genotypes(max(3 * max(sizes), args.sim_sites or 0), n_samples=args.samples, cache_dir=cache)
    print(f"# genotypes {X.shape} (people x sites) in {time.time() - t0:.1f}s", file=sys.stderr)
    rows, ranks = [], {}
    w = out.write
    w("\t".join(HEADER) + "\n")
    for n in sizes:
        t0 = time.time()
        need_R = any(m in NEEDS_R and skip_reason(m, n, args) is None for m in args.methods)
        pb64, phi_np, s2 = build_window(X, n, with_R=need_R, cache_dir=cache)
        ranks[n] = (pb64.m, pb64.r)
        print(f"# n={n} m={pb64.m} r={pb64.r} window ready in {time.time() - t0:.1f}s", file=sys.stderr)
        phi64 = torch.tensor(phi_np, dtype=torch.float64)
        g_path = None if cache is None else cache / f"grad_exact_N{X.shape[0]}_S{X.shape[1]}_n{n}_seed0.npy"
        exact_once = None      # the exact step that made g_exact, timed: above --warmup-max-n it is the exact row
        if g_path is not None and g_path.exists():
            g_exact = torch.from_numpy(np.load(g_path))
        else:
            t_ex = time.perf_counter()
            _, g_exact = step(make_methods()["exact"], phi64, s2, pb64)
            exact_once = time.perf_counter() - t_ex
            if g_path is not None:
                np.save(g_path, g_exact.numpy())
        for device in devices:
            for dtype in args.dtypes:
                if dtype == "float32" and device == "cpu" and n > args.float32_max_n:
                    continue
                tdt = getattr(torch, dtype)
                pb = to(pb64, tdt, device)
                phi = phi64.to(device=device, dtype=tdt)
                rtol = None if dtype == "float64" else max(args.rtol or 1e-6, 1e-4)
                methods = make_methods(probes=args.probes, rtol=rtol if dtype != "float64" else args.rtol,
                                       precond_rank=args.precond_rank, a_max_iters=A_MAX_ITERS,
                                       iterative_options=args.iterative_options)
                fixed_opts = {**FIXED, **({} if rtol is None else {"rtol": rtol})}
                methods["iterative_fixed"] = _Iterative(seed=0, **fixed_opts)
                results = {}
                for name in args.methods:
                    meth = methods[name]
                    reason = skip_reason(name, n, args) if device == "cpu" else None
                    if reason is not None:
                        results[name] = (float("nan"), float("nan"), reason)
                        continue
                    try:
                        if (name == "exact" and exact_once is not None and device == "cpu" and dtype == "float64"
                                and n > args.warmup_max_n):
                            times, errs = [exact_once], [0.0]
                        else:
                            times, errs = time_method(meth, phi, s2, pb, g_exact, device, args, n)
                    except (NotConverged, torch.linalg.LinAlgError, FloatingPointError) as err:
                        note = "not_converged" if isinstance(err, NotConverged) else "failed:" + type(err).__name__
                        results[name] = (float("nan"), float("nan"), note)
                        print(f"# {name} n={n} {dtype}: {err}", file=sys.stderr)
                        continue
                    iters = "-"
                    st = getattr(meth, "stats", None)
                    if st is not None:
                        iters = str(st.get("iterations_last", "-"))
                        if st.get("probes_last"):
                            iters += f"(l={st['precond_rank_last']},p={st['probes_last']})"
                        if st.get("fallbacks"):
                            iters += f"(fallbacks={st['fallbacks']})"
                    results[name] = (statistics.median(times), statistics.mean(errs), iters)
                    print(f"# {device} {dtype} n={n} {name}: {results[name][0]:.3f}s "
                          f"({len(times)} timed) err {results[name][1]:.4f} iters {iters}", file=sys.stderr)
                ref = results.get("reference", (float("nan"),))[0]
                for name, (sec, err, iters) in results.items():
                    row = [device, dtype, name + args.tag, str(n), str(pb.m), f"{sec:.4g}", f"{ref / sec:.3g}",
                           f"{err:.3g}", iters]
                    rows.append(row)
                    w("\t".join(row) + "\n")
                    out.flush()
                    if extra is not None:
                        extra.write("\t".join(row) + "\n")
                        extra.flush()
        del pb64
    return rows, ranks


# ---- exponents and crossover ------------------------------------------------------------------------

def _groups(rows, min_n=0):
    groups = {}
    for dev, dt, meth, n, m, sec, *_ in rows:
        if sec != "nan" and int(n) >= min_n:
            groups.setdefault((dev, dt, meth), []).append((float(n), float(sec)))
    return groups


def fit_exponents(rows, min_n=0):
    """Least-squares fit log seconds = log c + k log n, per (device, dtype, method), over measured sizes
    with n >= min_n: {key: (k, c, number of sizes)}."""
    out = {}
    for key, pts in _groups(rows, min_n).items():
        if len(pts) >= 2:
            x = np.log([p[0] for p in pts])
            y = np.log([p[1] for p in pts])
            k, logc = np.polyfit(x, y, 1)
            out[key] = (float(k), float(math.exp(logc)), len(pts))
    return out


def crossover(rows, a="iterative", b="exact", device="cpu", dtype="float64"):
    """(smallest measured n where a is faster than b, whether a is faster at every measured n from there
    on, n where power laws through the two largest common sizes cross if a is slower at the largest size)."""
    g = _groups(rows)
    pa, pb = dict(g.get((device, dtype, a), [])), dict(g.get((device, dtype, b), []))
    common = sorted(set(pa) & set(pb))
    faster = [n for n in common if pa[n] < pb[n]]
    first = int(faster[0]) if faster else None
    always = bool(faster) and all(pa[n] < pb[n] for n in common if n >= faster[0])
    n_star = None
    if len(common) >= 2 and pa[common[-1]] >= pb[common[-1]]:
        n1, n2 = common[-2], common[-1]
        ka = math.log(pa[n2] / pa[n1]) / math.log(n2 / n1)
        kb = math.log(pb[n2] / pb[n1]) / math.log(n2 / n1)
        if kb > ka:
            # pa[n2] (n/n2)^ka = pb[n2] (n/n2)^kb
            n_star = n2 * math.exp(math.log(pa[n2] / pb[n2]) / (kb - ka))
    return first, always, n_star


def summary_lines(rows, ranks, samples, threads):
    lines = [f"# machine: {threads} torch thread(s), torch {torch.__version__}, "
             f"{samples} msprime diploids"]
    lines += [f"# window n={n}: m={m} r={r}" for n, (m, r) in sorted(ranks.items())]
    for label, min_n in (("all sizes", 0), ("n >= 2000", 2000)):
        for (dev, dt, meth), (k, c, npts) in sorted(fit_exponents(rows, min_n).items()):
            lines.append(f"# exponent ({label}) {dev} {dt} {meth}: seconds ~ {c:.3g} n^{k:.2f} ({npts} sizes)")
    for dev, dt in sorted({(r[0], r[1]) for r in rows}):
        for name in sorted({r[2] for r in rows if r[2].startswith("iterative")}):
            if not any(r[:3] == [dev, dt, name] and r[5] != "nan" for r in rows):
                continue
            first, always, n_star = crossover(rows, a=name, device=dev, dtype=dt)
            if first is None:
                measured = "at no measured size"
            else:
                measured = f"at every measured n >= {first}" if always else f"first at n={first}, not at every larger n"
            fitted = "" if n_star is None else (f"; power laws through the two largest common sizes cross at "
                                                f"n~{n_star:.0f}")
            lines.append(f"# crossover {dev} {dt}: {name} faster than exact {measured}{fitted}")
    return lines


def read_tsv(path):
    rows, ranks = [], {}
    for line in Path(path).read_text().splitlines():
        if line.startswith("# window n="):
            n_, m_, r_ = (int(v.split("=")[1]) for v in line[2:].replace(":", "").split()[1:])
            ranks[n_] = (m_, r_)
        elif line and not line.startswith("#") and line.split("\t") != HEADER:
            rows.append(line.split("\t"))
    return rows, ranks


def _options(text):
    """'a=1,b=x' -> {'a': 1, 'b': 'x'} (ints, floats, true/false/none parsed)."""
    out = {}
    for item in filter(None, text.split(",")):
        key, _, val = item.partition("=")
        low = val.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
        elif low in ("none", "null"):
            out[key] = None
        else:
            try:
                out[key] = int(val)
            except ValueError:
                try:
                    out[key] = float(val)
                except ValueError:
                    out[key] = val
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    ap.add_argument("--sizes", type=ints, default=[500, 1000, 2000, 4000, 6000, 8000],
                    help="core sizes n (m = 3n), comma-separated (default 500,1000,2000,4000,6000,8000)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: sizes 300,600, 1,000 samples, one timed step, float64")
    ap.add_argument("--methods", type=lambda s: s.split(","), default=METHODS)
    ap.add_argument("--dtypes", type=lambda s: s.split(","), default=["float64", "float32"])
    ap.add_argument("--float32-max-n", type=int, default=4000, help="largest n of the CPU float32 sweep")
    ap.add_argument("--dense-max-n", type=int, default=2000,
                    help="largest n for the reference-style step and Cholesky on A (they form m x m / n x n "
                         "matrices; above it they are written as skipped rows)")
    ap.add_argument("--cg-a-max-n", type=int, default=1000,
                    help="largest n for CG on A with and without Nystrom (does not converge in 500 iterations "
                         "at n >= 1000)")
    ap.add_argument("--cg-b-max-n", type=int, default=4000, help="largest n for CG on B (m x m)")
    ap.add_argument("--reps", type=int, default=5, help="most timed steps per method and size (after warm-up)")
    ap.add_argument("--budget", type=float, default=60.0,
                    help="stop timing a method at a size once it has spent this many seconds (>= 1 timed step)")
    ap.add_argument("--warmup-max-n", type=int, default=4000, help="no untimed warm-up step above this n")
    ap.add_argument("--probes", type=int, default=None, help="probes for every stochastic method (default: each "
                                                               "method's own: 100 for the baselines, "
                                                               "iterative.DEFAULTS for iterative)")
    ap.add_argument("--precond-rank", type=int, default=None, help="Nystrom rank for every method (default: each "
                                                                    "method's own)")
    ap.add_argument("--rtol", type=float, default=None, help="CG tolerance (default 1e-6; float32: 1e-4)")
    ap.add_argument("--samples", type=int, default=10_000, help="diploid msprime samples for the LD")
    ap.add_argument("--sim-sites", type=int, default=None,
                    help="sites of the simulation (default 3 x the largest size; 24000 = the windows of the full "
                         "sweep, so a run of some sizes measures the same windows as a run of all)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: robust on a shared machine)")
    ap.add_argument("--cache-dir", default=str(DEFAULT_CACHE),
                    help="where simulated genotypes and factored windows are cached (env DEEPWAS_FIG2_CACHE)")
    ap.add_argument("--no-cache", action="store_true", help="simulate and factor afresh, write nothing")
    ap.add_argument("--cpu-only", action="store_true")
    ap.add_argument("--iterative-options", type=_options, default={},
                    help="options for the iterative solver rows, e.g. precond_rank=400,probes=40")
    ap.add_argument("--tag", default="", help="suffix for the method names of this run's rows (e.g. _l400)")
    ap.add_argument("--append", action="store_true",
                    help="keep the rows already in --out (a previous run) and add this run's; the exponents and "
                         "crossovers are refitted over all rows")
    ap.add_argument("--refit", action="store_true",
                    help="time nothing: rewrite --out with its rows and freshly fitted exponents/crossovers")
    ap.add_argument("--out", default=str(HERE / "results" / "fig2.tsv"))
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.reps, args.dtypes, args.samples = [300, 600], 1, ["float64"], 1000
        args.budget, args.no_cache = 0.0, True
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

    old_rows, old_ranks = [], {}
    if (args.append or args.refit) and Path(args.out).exists():
        old_rows, old_ranks = read_tsv(args.out)
    with open(args.out, "w") as fh:
        tee = Tee(sys.stdout, fh)
        if args.refit:
            tee.write("\t".join(HEADER) + "\n")
            for row in old_rows:
                tee.write("\t".join(row) + "\n")
            rows, ranks = old_rows, old_ranks
        else:
            if old_rows:
                fh.write("\t".join(HEADER) + "\n")
                for row in old_rows:
                    fh.write("\t".join(row) + "\n")
            rows, ranks = run(args, Tee(sys.stdout) if old_rows else tee, fh if old_rows else None)
            rows, ranks = old_rows + rows, {**old_ranks, **ranks}
        for line in summary_lines(rows, ranks, args.samples, args.threads):
            tee.write(line + "\n")


if __name__ == "__main__":
    main()
