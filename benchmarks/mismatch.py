"""LD mismatch benchmark: fitted s2, mismatch lambda, constant-prior h2 vs truth and held-out gain with LD from
(a) the GWAS cohort, (b) a 500-person panel of the same population, (c) a 500-person panel of a population
that split 4,000 generations ago; without a correction (none), with the default (auto: the finite-panel
correction for panel LD, nothing for in-sample LD) and with the fitted lambda of R~ = (1 - lambda) R + lambda I
(lambda), all of `deepwas.likelihood.mismatch` (`deepwas.simulation.ld_mismatch.run`).

    PYTHONPATH=workflow/scripts nice -n 10 python benchmarks/mismatch.py [--blocks 200] [--seeds 1 2] [--ld a b c] [--modes none auto] \
        [--redraws 4] [--N 25000] [--cache DIR]

GWAS N = 100,000 (or --N), h2 = 0.5 over a genome of 1,000,000 variants (per-variant h2 / M_genome), statistics
simulated from the cohort's LD in independent msprime blocks of 500 kb, each window inside one block with the
whole block as its extended set. Training = the windows of the first half of the blocks, held out = the rest.
With several seeds or redraws a verdict table over them follows the per-draw rows (`summarise`).
"""
from __future__ import annotations

import argparse
import logging
import os
import pickle
import time

import numpy as np
import torch

from deepwas.simulation.ld_mismatch import LABELS, redraw, run, simulate_region


def load_or_simulate(sim: dict, cache: str | None):
    """`simulate_region(**sim)` (the other settings at their defaults: N 100,000, h2 0.5), read from the folder
    `cache` when an earlier command of the same `sim` left it there, else simulated and left there (written to a
    temporary name, then renamed: a killed command leaves no partial file). Also read by mismatch_signal.py."""
    if not cache:
        return simulate_region(**sim)
    path = os.path.join(cache, "_".join(f"{k}{v}" for k, v in sim.items()) + ".pkl")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return pickle.load(f)
    region = simulate_region(**sim)
    os.makedirs(cache, exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        pickle.dump(region, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(path + ".tmp", path)
    return region


def summarise(rows: list[dict], band: float = 0.2):
    """The verdict table over seeds and draws: per (LD, mode) the mean and SD of the constant prior's h2, how many
    draws and how many seeds' means (the estimator's expectation on a seed's blocks) lie within `band` of the truth,
    the ratio to the in-sample fit (a) on the same statistics when (a) ran, the s2 range and the smallest held-out
    gain."""
    insample = {(r["seed"], r["draw"]): r["h2"] for r in rows if r["ld"].startswith("a") and r["mismatch"] == "auto"}
    print(f"\n| LD | mismatch | draws | h2: mean (SD) | draws within {band:.0%} | seeds whose mean is within "
          f"{band:.0%} (seed means) | h2 / (a) h2, mean (range) | s2 range | smallest held-out gain |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for key in dict.fromkeys((r["ld"], r["mismatch"]) for r in rows):
        sel = [r for r in rows if (r["ld"], r["mismatch"]) == key]
        h2 = np.array([r["h2"] for r in sel])
        truth = sel[0]["h2_true"]
        inside = np.abs(h2 / truth - 1) <= band
        seeds = dict.fromkeys(r["seed"] for r in sel)
        means = [float(np.mean([r["h2"] for r in sel if r["seed"] == s])) for s in seeds]
        seeds_in = sum(abs(m / truth - 1) <= band for m in means)
        ratio = [r["h2"] / insample[r["seed"], r["draw"]] for r in sel if (r["seed"], r["draw"]) in insample]
        ratio_txt = f"{np.mean(ratio):.3f} ({min(ratio):.3f}-{max(ratio):.3f})" if ratio else "-"
        s2 = [r["s2"] for r in sel]
        print(f"| {key[0]} | {key[1]} | {len(sel)} | {h2.mean():.3f} ({h2.std(ddof=1) if len(h2) > 1 else 0:.3f}) | "
              f"{inside.sum()} / {len(sel)} | {seeds_in} / {len(means)} ({', '.join(f'{m:.3f}' for m in means)}) | "
              f"{ratio_txt} | {min(s2):.3f}-{max(s2):.3f} | {min(r['heldout_gain'] for r in sel):.1f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", type=int, default=4000)
    ap.add_argument("--panel", type=int, default=500)
    ap.add_argument("--blocks", type=int, default=200)
    ap.add_argument("--block-length", type=float, default=5e5)
    ap.add_argument("--ld", nargs="+", default=["a", "b", "c"], help="LD sources: a (cohort), b, c (panels)")
    ap.add_argument("--modes", nargs="+", default=["none", "auto", "lambda"], help="likelihood.mismatch modes")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--redraws", type=int, default=0, help="also fit this many redraws of (beta, noise) on the "
                    "same blocks (`ld_mismatch.redraw`; rows 'draw' 1..K, 0: the simulated draw)")
    ap.add_argument("--N", type=float, default=100_000, help="GWAS size of the statistics: other than 100,000, every "
                    "draw (0 included) is a redraw on the same blocks with this N")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=None, help="folder for the simulated blocks of each seed (reused by a "
                    "later command with the same settings; the msprime simulation is most of the time)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.WARNING)
    rows = []
    print("| seed | N | draw | LD | mismatch | M | train / held-out windows | kept directions | s2 | lambda | LR stat | "
          "h2 (truth 0.5) | held-out gain (delta NLL) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for seed in a.seeds:
        t0 = time.time()
        sim = dict(n_cohort=a.cohort, n_panel=a.panel, n_blocks=a.blocks, block_length=a.block_length, seed=seed)
        region = load_or_simulate(sim, a.cache)
        for draw in range(a.redraws + 1):
            reg = region if draw == 0 and a.N == 100_000 else redraw(region, draw, N=a.N)
            for r in run(**sim, N=a.N, labels=[lab for lab in LABELS if lab[0] in a.ld], modes=a.modes, region=reg):
                rows.append({**r, "seed": seed, "draw": draw})
                kept = f"{r['kept']:.0%}" if r["panel_size"] else "all"
                print(f"| {seed} | {a.N:g} | {draw} | {r['ld']} | {r['mismatch']} | {r['M']} | {r['n_train']} / {r['n_heldout']} | {kept} | "
                      f"{r['s2']:.3f} | {r['lambda']:.4g} | {r['lr_statistic']:.1f} | {r['h2']:.3f} | "
                      f"{r['heldout_gain']:.2f} |", flush=True)
        print(f"<!-- seed {seed}: {time.time() - t0:.0f} s -->", flush=True)
    if a.redraws or len(a.seeds) > 1:
        summarise(rows)


if __name__ == "__main__":
    main()
