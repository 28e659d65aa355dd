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

With --panel-size P (default 500) and any panel_* stage, the msprime sample holds --individuals + P people of
the same population (one simulation: the same variants); the first --individuals make the UKBB-layout window
and the GWAS as above, the last P are written as a PLINK 1 panel (`panel.bed/.bim/.fam`, hard calls, with
formats.plink.write_plink, i.e. bed-reader's to_bed) under the default workdir /tmp/deepwas_scale_panel. The
UKBB stages above run on that simulation's window too, so their rows are the baseline of the same run. The
path of a user with a reference panel (ld.source plink, or local with ld.panel_size; likelihood.mismatch auto):

  panel_ld           the plink_ld_windows rule: deepwas.panel.build_ld_windows (read the window's .bed columns
                     with bed-reader, mean-impute, standardise, R = X^T X / n, write the UKBB layout), on a
                     grid of window length = stride = 3 Mb so that it builds exactly this one window
  panel_factors      the ld_factors stage on the panel's window (float32 R and factors, as ld_factors_f32),
                     with the rule's panel-size bias-corrected LD scores and panel_size in the factor file
  panel_s2_stream    the estimate_s2 rule's per-window work in panel mode: load, constant_prior_statistics (the
                     uncorrected fit, recorded beside), s2.panel_statistics (likelihood.mismatch.correct_panel,
                     then the reduction), and the fits (fit_constant_streamed, s2.fit_panel)
  panel_train        make_window(..., mismatch=Mismatch(panel_size=P)) (the correction; timed apart as
                     correct_s, not in `seconds`), then one AdamW step of the GLM prior (as train_glm)
  panel_evaluate     the same corrected window, evaluation.evaluate_windows as in evaluate

`rank` of the panel stages is the rank of the panel's core block (at most P - 1), `kept` the directions the
finite-panel correction keeps; panel_s2_stream reports s2 and the constant prior's log scale c with and without
the correction (s2_stream its in-sample counterpart). The window's causal variants explain --window-h2 (0.3:
N h2 = 2,400 for the window, about 65 times a UK Biobank window's 337,545 x 0.3 / 2,763; 0.005 is that of a
UKBB window at N = 8,000); --gwas-calls puts the phenotype and the GWAS on the hard calls (the panel's kind of
LD) instead of the dosages. Both only change z (their own workdir: the cache stamp records them).

`seconds` is the stage's CPU time (time.process_time; everything runs on ONE thread: OMP/MKL/OPENBLAS and
torch), so that a loaded machine does not inflate it; the wall time is in the comment lines (wall_s). It
excludes the imports and, for the stages after ld_factors, the loading of the factor file (the ld_factors
stages include their read). Output: the TSV `stage m n seconds peak_rss_gb` on stdout and in
benchmarks/results/scale.tsv, then comment lines with the rank and the factor file sizes.

    nice -n 10 python benchmarks/scale.py
    nice -n 10 python benchmarks/scale.py --stages ld_factors_f32 s2_stream train_glm evaluate panel_ld \
        panel_factors panel_s2_stream panel_train panel_evaluate --out benchmarks/results/scale_panel.tsv
    nice -n 10 python benchmarks/scale.py --workdir /tmp/deepwas_scale_panel_h2_0.005 --window-h2 0.005 \
        --stages ld_factors_f32 s2_stream panel_ld panel_factors panel_s2_stream
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
PANEL_STAGES = ["panel_ld", "panel_factors", "panel_s2_stream", "panel_train", "panel_evaluate"]
PANEL = "panel"
RTOL = 1e-6


def simulate(workdir: Path, individuals: int, mutation_rate: float, seed: int, dosage_noise: float,
             panel: int = 0, window_h2: float = 0.3, gwas_calls: bool = False) -> None:
    """The window (and with `panel` > 0 a PLINK panel of that many further people of the same simulation).
    `window_h2`: the heritability the window's causal variants explain; `gwas_calls`: the phenotype and the GWAS
    on the hard calls (the LD of a PLINK panel) instead of the dosages (the LD of the UKBB-layout window)."""
    import pandas as pd

    from deepwas.formats.plink import write_plink
    from deepwas.formats.ukbb_ld import write_ld_window
    from deepwas.simulation.cohort import simulate_chromosome

    prefix = workdir / NAME
    stamp = json.dumps([individuals, mutation_rate, seed, dosage_noise] + ([panel] if panel else [])
                       + ([window_h2, gwas_calls] if (window_h2, gwas_calls) != (0.3, False) else []))
    if (workdir / "z.npy").exists() and Path(f"{prefix}.npz").exists() and (workdir / "params.json").exists() \
            and (workdir / "params.json").read_text() == stamp:
        return
    t0 = time.perf_counter()
    chrom = simulate_chromosome("1", LENGTH, individuals + panel, seed, mutation_rate=mutation_rate)
    n_core = int(((chrom.positions >= CORE[0]) & (chrom.positions < CORE[1])).sum())
    if workdir.name.startswith("deepwas_scale") and (len(chrom.positions) < 13_000 or n_core < 4_000):
        raise SystemExit(f"only {len(chrom.positions)} variants ({n_core} in the core): raise --mutation-rate or change --seed")
    rsid = np.array([f"rs{k}" for k in range(len(chrom.positions))])
    if panel:
        write_plink(workdir / PANEL, chrom.genotypes[:, individuals:].T, "1", chrom.positions, chrom.allele1,
                    chrom.allele2, rsid=rsid)
    X = chrom.genotypes[:, :individuals].astype(np.float32)
    freq = chrom.genotypes[:, :individuals].mean(1) / 2.0
    rng = np.random.default_rng(seed)
    X += rng.normal(0, dosage_noise, X.shape).astype(np.float32)        # imputed dosages, not hard calls
    X -= X.mean(1, keepdims=True)
    X /= X.std(1, keepdims=True)
    R = (X @ X.T) / np.float32(X.shape[1])
    beta = rng.normal(0, 1, len(X)) * (rng.random(len(X)) < 0.05)
    Xg = X
    if gwas_calls:
        Xg = chrom.genotypes[:, :individuals].astype(np.float32)
        Xg -= Xg.mean(1, keepdims=True)
        Xg /= Xg.std(1, keepdims=True)
    pheno = Xg.T @ beta.astype(np.float32)
    pheno = (pheno - pheno.mean()) / pheno.std() * np.sqrt(window_h2) \
        + rng.normal(0, np.sqrt(1 - window_h2), X.shape[1])
    z = (Xg @ pheno.astype(np.float32)) / np.sqrt(X.shape[1])         # a GWAS of the cohort itself: N = individuals
    del Xg
    variants = pd.DataFrame({"rsid": rsid, "chromosome": "1",
                             "position": chrom.positions, "allele1": chrom.allele1, "allele2": chrom.allele2})
    np.fill_diagonal(R, 1.0)
    write_ld_window(prefix, R, variants, dtype=np.float32)
    np.save(workdir / "freq.npy", freq)
    np.save(workdir / "z.npy", z.astype(np.float64))
    (workdir / "N").write_text(str(X.shape[1]))
    (workdir / "params.json").write_text(stamp)
    n_core = int(((chrom.positions >= CORE[0]) & (chrom.positions < CORE[1])).sum())
    print(f"# simulated {len(X)} variants ({n_core} in the core) x {X.shape[1]} individuals (+ a panel of {panel}) in "
          f"{time.perf_counter() - t0:.0f} s (.npz {Path(f'{prefix}.npz').stat().st_size / 1e9:.2f} GB)", file=sys.stderr)


def _window_data(workdir: Path, dtype: str, tag: str = "", mismatch=0.0):
    """The factors of the window (`tag` "panel_": of the panel's) and its WindowData (None before ld_factors);
    `mismatch` as make_window's (a Mismatch: the finite-panel correction). Also the CPU seconds of make_window."""
    from deepwas.formats.factors import load_factors
    from deepwas.window import make_window

    fac = load_factors(workdir / f"{tag}factors_{dtype}.npz")
    y_path = workdir / f"{tag}y_{dtype}.npy"
    if not y_path.exists():
        return fac, None, 0.0
    pred = np.random.default_rng(0).normal(size=(fac["G"].shape[0], 9)).astype(np.float32)
    c0_cpu = time.process_time()
    w = make_window(NAME, fac, np.load(y_path), pred, mismatch=mismatch)
    return fac, w, time.process_time() - c0_cpu


def _s2_fit():
    try:
        from deepwas.s2 import fit_constant_and_s2          # after the s2 module split
    except ImportError:
        from deepwas.training import fit_constant_and_s2
    return fit_constant_and_s2


def _core(pos: np.ndarray) -> np.ndarray:
    return np.flatnonzero((pos >= CORE[0]) & (pos < CORE[1]))


def _factors(workdir: Path, prefix: Path, dtype: str, tag: str = "", panel_size: int | None = None) -> dict:
    """read + factorise_window + LD scores + save_factors + whiten z: the ld_factors stages. With `panel_size`
    (LD from a panel): the window's own `freq` column and the rule's bias-corrected LD scores
    (ldscore.unbiased_ldscore), panel_size stored in the factor file; z of the window's variants by rsid."""
    from deepwas.formats.factors import save_factors
    from deepwas.formats.ukbb_ld import read_ld_window
    from deepwas.harmonise import panel_frequency, variant_key
    from deepwas.ld_factors import factorise_window, ld_scores, whiten
    from deepwas.ldscore import unbiased_ldscore

    R, variants = read_ld_window(prefix, dtype=np.float64 if dtype == "f64" else "auto")
    pos = variants["position"].to_numpy()
    core = _core(pos)
    ldscore = None if panel_size is None else unbiased_ldscore(ld_scores(R), len(pos), panel_size)
    fac, psd = factorise_window(R, np.arange(len(pos)), core, rtol=RTOL, name=NAME, ldscore=ldscore)
    del R
    keys = variant_key(variants).to_numpy()
    z = np.load(workdir / "z.npy")
    if panel_size is None:
        freq = np.load(workdir / "freq.npy")
    else:
        freq = panel_frequency(variants)
        z = z[variants["rsid"].str[2:].astype(np.int64).to_numpy()]     # the GWAS on the panel's variants
    path = workdir / f"{tag}factors_{dtype}.npz"
    save_factors(path, fac, pos, keys, freq, dtype=np.float64 if dtype == "f64" else np.float32, panel_size=panel_size)
    np.save(workdir / f"{tag}y_{dtype}.npy", whiten(fac.U, fac.lam, z[core]))
    return dict(m=fac.m, n=fac.n, rank=fac.rank, psd_n_negative=psd.n_negative, lam_max=float(fac.lam.max()),
                factor_gb=path.stat().st_size / 1e9)


def _train_step(w, model: str, N: float, c0: float) -> None:
    """One AdamW step of the `model` prior on window `w`: exact NLL + gradient (float64)."""
    import torch

    from deepwas.likelihood.exact import nll
    from deepwas.priors import build_prior

    prior = build_prior(model, 9, 0, c0)
    opt = torch.optim.AdamW(prior.parameters(), lr=1e-3)
    opt.zero_grad()
    loss = nll(N * prior(w.inputs).double(), 1.0, w.G, w.y, w.lam)
    loss.backward()
    opt.step()


def _evaluate(w, N: float, c0: float) -> None:
    from deepwas.evaluation import evaluate_windows, prior_phi
    from deepwas.priors import build_prior

    evaluate_windows(prior_phi(build_prior("glm", 9, 0, c0), N), [w], 1.0)


def _timed(fn, *args, **kw):
    """(result, CPU seconds, wall seconds) of fn(*args, **kw)."""
    t0, c0_cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.process_time() - c0_cpu, time.perf_counter() - t0


def run_panel_stage(stage: str, workdir: Path, panel_size: int) -> tuple[dict, float, float]:
    """The panel_* stages (module docstring): (info, CPU seconds, wall seconds)."""
    from deepwas.likelihood.mismatch import Mismatch
    from deepwas.priors import init_log_scale

    N = float((workdir / "N").read_text())
    tag = PANEL + "_"
    if stage == "panel_ld":
        from deepwas.panel import build_ld_windows, memory_mb
        rep, cpu, sec = _timed(build_ld_windows, str(workdir / PANEL), "1", workdir / "panel_ld", LENGTH, LENGTH,
                               report_path=workdir / "panel_ld.json")
        if [w["window"] for w in rep["windows"]] != [NAME]:
            raise RuntimeError(f"panel_ld built {[w['window'] for w in rep['windows']]}, expected only {NAME}")
        from deepwas.formats.ukbb_ld import read_ld_variants
        pos = read_ld_variants(workdir / "panel_ld" / f"{NAME}.gz")["position"].to_numpy()
        info = dict(m=len(pos), n=int(_core(pos).size), panel_size=rep["panel_size"],
                    dropped_monomorphic=rep["dropped_monomorphic"],
                    npz_gb=(workdir / "panel_ld" / f"{NAME}.npz").stat().st_size / 1e9,
                    memory_mb_estimate=memory_mb(rep["panel_size"], len(pos)))
        return info, cpu, sec
    if stage == "panel_factors":
        info, cpu, sec = _timed(_factors, workdir, workdir / "panel_ld" / NAME, "f32", tag, panel_size)
        return info, cpu, sec
    if stage == "panel_s2_stream":
        from deepwas.formats.factors import load_factors
        from deepwas.s2 import constant_prior_statistics, fit_constant_streamed, fit_panel, panel_statistics
        fac, cpu_load, sec_load = _timed(load_factors, workdir / f"{tag}factors_f32.npz")
        y = np.load(workdir / f"{tag}y_f32.npy")
        c0 = init_log_scale(fac["freq"], 0.3, 20 * fac["G"].shape[0], 0.7)
        st, cpu_st, sec_st = _timed(constant_prior_statistics, fac["G"], y, fac["lam"], fac["freq"], 0.7)
        pst, cpu_p, sec_p = _timed(panel_statistics, fac["G"], y, fac["lam"], fac["core"], fac["freq"], 0.7, panel_size)
        (s2_0, c_0, _), cpu_f0, sec_f0 = _timed(fit_constant_streamed, [st], N, c0)
        fit, cpu_f, sec_f = _timed(fit_panel, [pst], N, c0, panel_size, st.rank, s2_0)
        info = dict(m=int(fac["G"].shape[0]), n=int(fac["core"].size), rank=st.rank, kept=pst.rank,
                    load_s=cpu_load, uncorrected_stats_s=cpu_st, panel_stats_s=cpu_p, fits_s=cpu_f0 + cpu_f,
                    s2_uncorrected=s2_0, s2=fit["s2"], c_uncorrected=c_0, c=fit["init_log_scale"])
        return info, cpu_load + cpu_st + cpu_p + cpu_f0 + cpu_f, sec_load + sec_st + sec_p + sec_f0 + sec_f
    fac, w, correct_s = _window_data(workdir, "f32", tag, Mismatch(0.0, panel_size))
    info = dict(m=int(fac["G"].shape[0]), n=int(fac["core"].size), rank=int(fac["lam"].size), kept=w.rank,
                correct_s=correct_s)
    c0 = init_log_scale(fac["freq"], 0.3, 20 * info["m"], 0.7)
    if stage == "panel_train":
        _, cpu, sec = _timed(_train_step, w, "glm", N, c0)
    elif stage == "panel_evaluate":
        _, cpu, sec = _timed(_evaluate, w, N, c0)
    else:
        raise ValueError(f"unknown stage {stage!r}; choose from {STAGES + PANEL_STAGES}")
    return info, cpu, sec


def run_stage(stage: str, workdir: Path, s2_iterations: int, panel_size: int = 0) -> dict:
    import torch

    torch.set_num_threads(1)
    from deepwas.formats.ukbb_ld import read_ld_window
    from deepwas.ld_factors import whiten
    from deepwas.priors import init_log_scale

    prefix = workdir / NAME
    info: dict = {}
    if stage in PANEL_STAGES:
        info, cpu, sec = run_panel_stage(stage, workdir, panel_size)
    elif stage.startswith("read_npz"):
        (R, variants), cpu, sec = _timed(read_ld_window, prefix, dtype=np.float64 if stage.endswith("f64") else "auto")
        pos = variants["position"].to_numpy()
        info["m"], info["n"] = len(pos), int(_core(pos).size)
        info["dtype"] = str(R.dtype)
    elif stage.startswith("ld_factors"):
        info, cpu, sec = _timed(_factors, workdir, prefix, stage.rsplit("_", 1)[1])
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
        info.update(m=int(fac["G"].shape[0]), n=int(fac["core"].size), rank=st.rank, load_s=load_s, s2=s2, c=c)
    else:
        fac, w, _ = _window_data(workdir, "f32")
        info.update(m=int(fac["G"].shape[0]), n=int(fac["core"].size), rank=int(fac["lam"].size))
        N = float((workdir / "N").read_text())
        c0 = init_log_scale(fac["freq"], 0.3, 20 * info["m"], 0.7)        # h2 0.3 spread over ~20 windows' worth
        if stage == "whiten":
            z = np.load(workdir / "z.npy")[fac["core"]]
            _, cpu, sec = _timed(whiten, fac["U"], fac["lam"], z)
        elif stage == "s2":
            (s2, c), cpu, sec = _timed(_s2_fit(), [w], N, 0.7, c0, max_iter=s2_iterations)
            info.update(s2=s2, iterations=s2_iterations)
        elif stage.startswith("train_"):
            _, cpu, sec = _timed(_train_step, w, stage.split("_", 1)[1], N, c0)
        elif stage == "evaluate":
            _, cpu, sec = _timed(_evaluate, w, N, c0)
        else:
            raise ValueError(f"unknown stage {stage!r}; choose from {STAGES + PANEL_STAGES}")
    info.update(stage=stage, seconds=cpu, wall_s=sec, peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--workdir", type=Path, help="default /tmp/deepwas_scale, /tmp/deepwas_scale_panel with a panel stage")
    ap.add_argument("--individuals", type=int, default=8000)
    ap.add_argument("--dosage-noise", type=float, default=0.15)
    ap.add_argument("--mutation-rate", type=float, default=2.6e-8)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--s2-iterations", type=int, default=2)
    ap.add_argument("--window-h2", type=float, default=0.3, help="heritability explained by the window's causal variants")
    ap.add_argument("--gwas-calls", action="store_true", help="phenotype and GWAS on the hard calls, not the dosages")
    ap.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES + PANEL_STAGES)
    ap.add_argument("--panel-size", type=int, help="people of the PLINK panel (default 500 when a panel_* stage is "
                    "asked for, else no panel; give it to run the other stages on a panel simulation)")
    ap.add_argument("--stage", help=argparse.SUPPRESS)          # internal: run one stage, print JSON
    ap.add_argument("--simulate-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "scale.tsv")
    a = ap.parse_args(argv)
    wants_panel = a.stage in PANEL_STAGES or bool(set(a.stages) & set(PANEL_STAGES))
    panel = a.panel_size if a.panel_size is not None else 500 if wants_panel else 0
    if wants_panel and panel < 3:
        raise SystemExit(f"--panel-size {panel}: the panel stages need a panel of at least 3 people")
    a.workdir = a.workdir or Path("/tmp/deepwas_scale_panel" if panel else "/tmp/deepwas_scale")
    if a.stage:
        print(json.dumps(run_stage(a.stage, a.workdir, a.s2_iterations, panel)))
        return
    a.workdir.mkdir(parents=True, exist_ok=True)
    if a.simulate_only:
        simulate(a.workdir, a.individuals, a.mutation_rate, a.seed, a.dosage_noise, panel, a.window_h2, a.gwas_calls)
        return
    # the simulation runs in a subprocess too: Linux keeps a process's peak RSS across fork + exec, so this
    # parent stays small and each stage's ru_maxrss is its own
    subprocess.run([sys.executable, __file__, "--simulate-only", "--workdir", str(a.workdir), "--individuals",
                    str(a.individuals), "--mutation-rate", str(a.mutation_rate), "--seed", str(a.seed),
                    "--dosage-noise", str(a.dosage_noise), "--panel-size", str(panel), "--window-h2", str(a.window_h2)]
                   + (["--gwas-calls"] if a.gwas_calls else []), check=True)
    rows, extra = [], []
    for stage in a.stages:
        cmd = [sys.executable, __file__, "--stage", stage, "--workdir", str(a.workdir),
               "--s2-iterations", str(a.s2_iterations), "--panel-size", str(panel)]
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
