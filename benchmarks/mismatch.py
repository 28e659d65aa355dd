"""LD mismatch benchmark: fitted s2, mismatch lambda, constant-prior h2 vs truth and held-out gain with LD from
(a) the GWAS cohort, (b) a 500-person panel of the same population, (c) a 500-person panel of a population
that split 4,000 generations ago; without a correction (none), with the default (auto: the finite-panel
correction for panel LD, nothing for in-sample LD) and with the fitted lambda of R~ = (1 - lambda) R + lambda I
(lambda), all of `deepwas.likelihood.mismatch` (`deepwas.simulation.ld_mismatch.run`).

    PYTHONPATH=workflow/scripts nice -n 10 python benchmarks/mismatch.py [--blocks 200] [--seeds 1 2] [--ld a b c]

GWAS N = 100,000, h2 = 0.5 over a genome of 1,000,000 variants (per-variant h2 / M_genome), statistics
simulated from the cohort's LD in independent msprime blocks of 500 kb, each window inside one block with the
whole block as its extended set. Training = the windows of the first half of the blocks, held out = the rest.
"""
from __future__ import annotations

import argparse
import logging
import time

import torch

from deepwas.simulation.ld_mismatch import LABELS, run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", type=int, default=4000)
    ap.add_argument("--panel", type=int, default=500)
    ap.add_argument("--blocks", type=int, default=200)
    ap.add_argument("--block-length", type=float, default=5e5)
    ap.add_argument("--ld", nargs="+", default=["a", "b", "c"], help="LD sources: a (cohort), b, c (panels)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.WARNING)
    print("| seed | LD | mismatch | M | train / held-out windows | kept directions | s2 | lambda | LR stat | "
          "h2 (truth 0.5) | held-out gain (delta NLL) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for seed in a.seeds:
        t0 = time.time()
        for r in run(n_cohort=a.cohort, n_panel=a.panel, n_blocks=a.blocks, block_length=a.block_length,
                     seed=seed, labels=[lab for lab in LABELS if lab[0] in a.ld]):
            kept = f"{r['kept']:.0%}" if r["panel_size"] else "all"
            print(f"| {seed} | {r['ld']} | {r['mismatch']} | {r['M']} | {r['n_train']} / {r['n_heldout']} | {kept} | "
                  f"{r['s2']:.3f} | {r['lambda']:.4g} | {r['lr_statistic']:.1f} | {r['h2']:.3f} | "
                  f"{r['heldout_gain']:.2f} |", flush=True)
        print(f"<!-- seed {seed}: {time.time() - t0:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
