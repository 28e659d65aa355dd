#!/usr/bin/env python
"""Time and peak memory of every per-window stage on ONE synthetic UKBB window of real size.

The window: an msprime cohort (--individuals diploids, 3 Mb, Ne = 10,000, recombination 1e-8, mutation
--mutation-rate, MAF >= 1%), so that the window holds about 14,000 extended variants (m) and 4,800 core
variants (n, the middle 1 Mb). Hard calls of msprime carry many exactly repeated haplotype patterns: with
6,000 people R[i,i] had rank 1,340 of n = 4,814 at eig_rtol 1e-6. The UKBB matrices are correlations of
imputed dosages, so the genotypes get dosage noise (--dosage-noise, sd 0.15 per genotype): with 8,000
people (rank <= N - 1 > n) the rank then grows with n as in real windows.
It is written in the real UKBB layout (`chr1_1_3000001.npz`: one float32 triangle with 0.5 on the
diagonal, scipy.sparse, compressed; `chr1_1_3000001.gz`: rsid chromosome position allele1 allele2) with a
simulated z-score per variant, and cached under --workdir (default /tmp/deepwas_scale): delete it to
simulate again.

Stages (each in a fresh subprocess, so that `peak_rss_gb` is that stage's own peak resident memory,
including the ~0.3 GB of Python + numpy + torch):

  read_npz           deepwas.formats.ukbb_ld.read_ld_window, R held as float32 (compute_dtype auto)
  read_npz_f64       the same, R held as float64
  ld_factors_f64     read (float64 R) + factorise_window + LD scores + save_factors(float64)
  ld_factors_f32     read (float32 R) + factorise_window + LD scores + save_factors(float32)
  whiten             load the factors, y = lam^-1/2 U^T z_(i)
  s2                 deepwas fit_constant_and_s2 on this window: --s2-iterations L-BFGS iterations
  train_constant     one AdamW step of the constant prior: exact NLL + gradient (float64)
  train_glm          one AdamW step of the GLM prior (d_pred = 9 random features)
  evaluate           exact NLL under the GLM prior and under the null (evaluation.evaluate_windows)
  s2_stream          the estimate_s2 rule's per-window work: load the factor file (float32) and reduce it to the
                     constant prior's sufficient statistics (deepwas.s2.constant_prior_statistics: G^T W G and
                     its eigendecomposition), then the fit of (c, s2) on them; load_s is the loading alone

`seconds` is the stage's CPU time (time.process_time; everything runs on ONE thread: OMP/MKL/OPENBLAS and
torch), so that a loaded machine does not inflate it; the wall time is in the comment lines (wall_s). It
excludes the imports and, for the stages after ld_factors, the loading of the factor file (the ld_factors
stages include their read). Output: the TSV `stage m n seconds peak_rss_gb` on stdout and in
benchmarks/results/scale.tsv, then comment lines with the rank and the factor file sizes.

    nice -n 10 python benchmarks/scale.py
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

NAME = "chr1_1_3000001"
LENGTH = 3_000_000
CORE = (1_000_001, 2_000_001)
STAGES = ["read_npz", "read_npz_f64", "ld_factors_f64", "ld_factors_f32", "whiten", "s2", "train_constant",
          "train_glm", "evaluate", "s2_stream"]
RTOL = 1e-6


def simulate(workdir: Path, individuals: int, mutation_rate: float, seed: int, dosage_noise: float) -> None:
    import pandas as pd

    from deepwas.formats.ukbb_ld import write_ld_window
    from deepwas.simulation.cohort import simulate_chromosome

    prefix = workdir / NAME
    stamp = json.dumps([individuals, mutation_rate, seed, dosage_noise])
    if (workdir / "z.npy").exists() and Path(f"{prefix}.npz").exists() and (workdir / "params.json").exists() \
            and (workdir / "params.json").read_text() == stamp:
        return
    t0 = time.perf_counter()
    chrom = simulate_chromosome("1", LENGTH, individuals, seed, mutation_rate=mutation_rate)
    n_core = int(((chrom.positions >= CORE[0]) & (chrom.positions < CORE[1])).sum())
    if workdir.name == "deepwas_scale" and (len(chrom.positions) < 13_000 or n_core < 4_000):
        raise SystemExit(f"only {len(chrom.positions)} variants ({n_core} in the core): raise --mutation-rate or change --seed")
    X = chrom.genotypes.astype(np.float32)
    rng = np.random.default_rng(seed)
    X += rng.normal(0, dosage_noise, X.shape).astype(np.float32)        # imputed dosages, not hard calls
    X -= X.mean(1, keepdims=True)
    X /= X.std(1, keepdims=True)
    R = (X @ X.T) / np.float32(X.shape[1])
    beta = rng.normal(0, 1, len(X)) * (rng.random(len(X)) < 0.05)
    pheno = X.T @ beta.astype(np.float32)
    pheno = (pheno - pheno.mean()) / pheno.std() * np.sqrt(0.3) + rng.normal(0, np.sqrt(0.7), X.shape[1])
    z = (X @ pheno.astype(np.float32)) / np.sqrt(X.shape[1])          # a GWAS of the cohort itself: N = individuals
    variants = pd.DataFrame({"rsid": [f"rs{k}" for k in range(len(X))], "chromosome": "1",
                             "position": chrom.positions, "allele1": chrom.allele1, "allele2": chrom.allele2})
    np.fill_diagonal(R, 1.0)
    write_ld_window(prefix, R, variants, dtype=np.float32)
    np.save(workdir / "freq.npy", chrom.freq)
    np.save(workdir / "z.npy", z.astype(np.float64))
    (workdir / "N").write_text(str(X.shape[1]))
    (workdir / "params.json").write_text(stamp)
    n_core = int(((chrom.positions >= CORE[0]) & (chrom.positions < CORE[1])).sum())
    print(f"# simulated {len(X)} variants ({n_core} in the core) x {X.shape[1]} individuals in "
          f"{time.perf_counter() - t0:.0f} s (.npz {Path(f'{prefix}.npz').stat().st_size / 1e9:.2f} GB)", file=sys.stderr)


def _window_data(workdir: Path, dtype: str):
    from deepwas.formats.factors import load_factors
    from deepwas.window import make_window

    fac = load_factors(workdir / f"factors_{dtype}.npz")
    y = np.load(workdir / f"y_{dtype}.npy") if (workdir / f"y_{dtype}.npy").exists() else None
    pred = np.random.default_rng(0).normal(size=(fac["G"].shape[0], 9)).astype(np.float32)
    return fac, (make_window(NAME, fac, y, pred) if y is not None else None)


def _s2_fit():
    try:
        from deepwas.s2 import fit_constant_and_s2          # after the s2 module split
    except ImportError:
        from deepwas.training import fit_constant_and_s2
    return fit_constant_and_s2


def run_stage(stage: str, workdir: Path, s2_iterations: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from deepwas.formats.factors import save_factors
    from deepwas.formats.ukbb_ld import read_ld_window
    from deepwas.harmonise import variant_key
    from deepwas.ld_factors import factorise_window, whiten
    from deepwas.priors import build_prior, init_log_scale

    prefix = workdir / NAME
    info: dict = {}
    if stage.startswith("read_npz"):
        t0, c0_cpu = time.perf_counter(), time.process_time()
        R, variants = read_ld_window(prefix, dtype=np.float64 if stage.endswith("f64") else "auto")
        sec, cpu = time.perf_counter() - t0, time.process_time() - c0_cpu
        pos = variants["position"].to_numpy()
        info["m"], info["n"] = len(pos), int(((pos >= CORE[0]) & (pos < CORE[1])).sum())
        info["dtype"] = str(R.dtype)
    elif stage.startswith("ld_factors"):
        dtype = stage.rsplit("_", 1)[1]
        t0, c0_cpu = time.perf_counter(), time.process_time()
        R, variants = read_ld_window(prefix, dtype=np.float64 if dtype == "f64" else "auto")
        pos = variants["position"].to_numpy()
        core = np.flatnonzero((pos >= CORE[0]) & (pos < CORE[1]))
        fac, psd = factorise_window(R, np.arange(len(pos)), core, rtol=RTOL, name=NAME)
        del R
        keys = variant_key(variants).to_numpy()
        save_factors(workdir / f"factors_{dtype}.npz", fac, pos, keys, np.load(workdir / "freq.npy"),
                     dtype=np.float64 if dtype == "f64" else np.float32)
        y = whiten(fac.U, fac.lam, np.load(workdir / "z.npy")[core])
        np.save(workdir / f"y_{dtype}.npy", y)
        sec, cpu = time.perf_counter() - t0, time.process_time() - c0_cpu
        info.update(m=fac.m, n=fac.n, rank=fac.rank, psd_n_negative=psd.n_negative,
                    factor_gb=(workdir / f"factors_{dtype}.npz").stat().st_size / 1e9)
    elif stage == "s2_stream":
        from deepwas.formats.factors import load_factors
        from deepwas.s2 import constant_prior_statistics, fit_constant_streamed
        t0, c0_cpu = time.perf_counter(), time.process_time()
        fac = load_factors(workdir / "factors_f32.npz")
        load_s = time.perf_counter() - t0
        st = constant_prior_statistics(fac["G"], np.load(workdir / "y_f32.npy"), fac["lam"], fac["freq"], 0.7)
        N = float((workdir / "N").read_text())
        s2, c, _ = fit_constant_streamed([st], N, init_log_scale(fac["freq"], 0.3, 20 * fac["G"].shape[0], 0.7))
        sec, cpu = time.perf_counter() - t0, time.process_time() - c0_cpu
        info.update(m=int(fac["G"].shape[0]), n=int(fac["core"].size), rank=st.rank, load_s=load_s, s2=s2)
    else:
        fac, w = _window_data(workdir, "f32")
        info.update(m=int(fac["G"].shape[0]), n=int(fac["core"].size), rank=int(fac["lam"].size))
        N = float((workdir / "N").read_text())
        c0 = init_log_scale(fac["freq"], 0.3, 20 * info["m"], 0.7)        # h2 0.3 spread over ~20 windows' worth
        if stage == "whiten":
            z = np.load(workdir / "z.npy")[fac["core"]]
            t0, c0_cpu = time.perf_counter(), time.process_time()
            whiten(fac["U"], fac["lam"], z)
            sec, cpu = time.perf_counter() - t0, time.process_time() - c0_cpu
        elif stage == "s2":
            t0, c0_cpu = time.perf_counter(), time.process_time()
            s2, c = _s2_fit()([w], N, 0.7, c0, max_iter=s2_iterations)
            sec, cpu = time.perf_counter() - t0, time.process_time() - c0_cpu
            info.update(s2=s2, iterations=s2_iterations)
        elif stage.startswith("train_"):
            from deepwas.likelihood.exact import nll
            model = stage.split("_", 1)[1]
            prior = build_prior(model, 9, 0, c0)
            opt = torch.optim.AdamW(prior.parameters(), lr=1e-3)
            t0, c0_cpu = time.perf_counter(), time.process_time()
            opt.zero_grad()
            loss = nll(N * prior(w.inputs).double(), 1.0, w.G, w.y, w.lam)
            loss.backward()
            opt.step()
            sec, cpu = time.perf_counter() - t0, time.process_time() - c0_cpu
        elif stage == "evaluate":
            from deepwas.evaluation import evaluate_windows, prior_phi
            prior = build_prior("glm", 9, 0, c0)
            t0, c0_cpu = time.perf_counter(), time.process_time()
            evaluate_windows(prior_phi(prior, N), [w], 1.0)
            sec, cpu = time.perf_counter() - t0, time.process_time() - c0_cpu
        else:
            raise ValueError(f"unknown stage {stage!r}; choose from {STAGES}")
    info.update(stage=stage, seconds=cpu, wall_s=sec, peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/deepwas_scale"))
    ap.add_argument("--individuals", type=int, default=8000)
    ap.add_argument("--dosage-noise", type=float, default=0.15)
    ap.add_argument("--mutation-rate", type=float, default=2.6e-8)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--s2-iterations", type=int, default=2)
    ap.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES)
    ap.add_argument("--stage", help=argparse.SUPPRESS)          # internal: run one stage, print JSON
    ap.add_argument("--simulate-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "scale.tsv")
    a = ap.parse_args(argv)
    if a.stage:
        print(json.dumps(run_stage(a.stage, a.workdir, a.s2_iterations)))
        return
    a.workdir.mkdir(parents=True, exist_ok=True)
    if a.simulate_only:
        simulate(a.workdir, a.individuals, a.mutation_rate, a.seed, a.dosage_noise)
        return
    # the simulation runs in a subprocess too: Linux keeps a process's peak RSS across fork + exec, so this
    # parent stays small and each stage's ru_maxrss is its own
    subprocess.run([sys.executable, __file__, "--simulate-only", "--workdir", str(a.workdir), "--individuals",
                    str(a.individuals), "--mutation-rate", str(a.mutation_rate), "--seed", str(a.seed),
                    "--dosage-noise", str(a.dosage_noise)], check=True)
    rows, extra = [], []
    for stage in a.stages:
        cmd = [sys.executable, __file__, "--stage", stage, "--workdir", str(a.workdir),
               "--s2-iterations", str(a.s2_iterations)]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        rows.append(f"{stage}\t{res['m']}\t{res['n']}\t{res['seconds']:.2f}\t{res['peak_rss_gb']:.2f}")
        print(rows[-1] if len(rows) > 1 else "stage\tm\tn\tseconds\tpeak_rss_gb\n" + rows[-1], flush=True)
        extra.append("# " + stage + ": " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                     for k, v in res.items() if k not in ("stage", "m", "n", "seconds", "peak_rss_gb")))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("stage\tm\tn\tseconds\tpeak_rss_gb\n" + "\n".join(rows) + "\n" + "\n".join(extra) + "\n")
    print("\n".join(extra))
    print(f"# written to {a.out}")


if __name__ == "__main__":
    main()
