"""Regenerate the small PLINK panel and its summary statistics (tests and the README worked example).

An msprime population (deepwas.simulation.cohort.simulate_chromosome) of 1,400 people on two 600 kb
chromosomes: the first 400 are the LD panel (PLINK 1 files `panel.bed/.bim/.fam`, with 0.5% of the calls set
missing and one monomorphic variant per chromosome), the other 1,000 a GWAS of a trait with h2 = 0.5 spread
over every variant (effects ~ N(0, h2 / M) on standardised genotypes). The GWAS statistics are written in
the LDSC `.sumstats` layout (SNP A1 A2 Z N: no positions, no allele frequency), so the workflow places them by
rsid on the panel's variants and takes their frequency from the panel.

    PYTHONPATH=workflow/scripts python tests/data/plink/make_panel.py
"""
from pathlib import Path

import numpy as np
import pandas as pd

from deepwas.formats.plink import write_plink
from deepwas.simulation.cohort import gwas, simulate_chromosome

OUT = Path(__file__).parent
N_PANEL, N_GWAS, LENGTH, H2, SEED = 400, 1000, 600_000, 0.5, 20261127


def main():
    rng = np.random.default_rng(SEED)
    chroms = [simulate_chromosome(c, LENGTH, N_PANEL + N_GWAS, seed=SEED + k, recombination_rate=2e-8,
                                  mutation_rate=1.2e-8, maf_min=0.02) for k, c in enumerate(["1", "2"])]
    M = sum(len(c.positions) for c in chroms)
    y = np.zeros(N_GWAS)
    for c in chroms:
        Xs = c.standardised()[:, N_PANEL:]
        y += Xs.T @ rng.normal(0.0, np.sqrt(H2 / M), len(c.positions))
    y += rng.normal(0.0, np.sqrt(1 - H2), N_GWAS)
    G_all, bim, stats = [], [], []
    for c in chroms:
        rsid = np.array([f"rs{c.chrom}{i:05d}" for i in range(len(c.positions))])
        res = gwas(c.genotypes[:, N_PANEL:], y)
        stats.append(pd.DataFrame({"SNP": rsid, "A1": c.allele1, "A2": c.allele2,
                                   "Z": np.round(res["Beta"] / res["se"], 5), "N": N_GWAS}))
        G = c.genotypes[:, :N_PANEL].T.astype(np.float32)          # people x variants
        G[rng.random(G.shape) < 0.005] = np.nan                    # missing calls
        mono = len(c.positions) // 2                               # one monomorphic variant per chromosome
        pos = np.insert(c.positions, mono, c.positions[mono - 1] + 1)
        G = np.insert(G, mono, 0.0, axis=1)
        G_all.append(G)
        bim.append(pd.DataFrame({"chrom": c.chrom, "rsid": np.insert(rsid, mono, f"rs{c.chrom}mono"),
                                 "position": pos, "a1": np.insert(c.allele1, mono, "A"),
                                 "a2": np.insert(c.allele2, mono, "G")}))
    bim = pd.concat(bim, ignore_index=True)
    write_plink(OUT / "panel", np.concatenate(G_all, axis=1), bim["chrom"].to_numpy(), bim["position"],
                bim["a1"], bim["a2"], rsid=bim["rsid"])
    pd.concat(stats).to_csv(OUT / "gwas.sumstats.gz", sep="\t", index=False)
    print(f"{N_PANEL} panel people, {len(bim)} variants; statistics of {N_GWAS} people")


if __name__ == "__main__":
    main()
