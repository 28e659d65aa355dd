"""Rule demo_cohort: simulate the offline demo and write it in the public UKBB formats."""
from pathlib import Path

import numpy as np
import pandas as pd

from deepwas import simulate
from deepwas.formats.ukbb_ld import write_ld_window
from deepwas.io import atomic_path, setup_logging, write_table
from deepwas.windows import tile


def main(cfg: dict, ld_cfg: dict, chromosomes: list[str], outdir: str, log_path=None) -> None:
    log = setup_logging(log_path)
    out = Path(outdir)
    rng = np.random.default_rng(cfg["seed"])
    chroms, annots = [], []
    for k, c in enumerate(chromosomes):
        ch = simulate.simulate_chromosome(c, cfg["chrom_length"], cfg["n_individuals"], seed=cfg["seed"] * 1000 + k,
                                          population_size=cfg["population_size"],
                                          recombination_rate=cfg["recombination_rate"],
                                          mutation_rate=cfg["mutation_rate"], maf_min=cfg["maf_min"])
        log.info("chr%s: %d variants after the MAF >= %g filter", c, len(ch.positions), cfg["maf_min"])
        chroms.append(ch)
        annots.append(simulate.simulate_annotations(ch.positions, cfg["chrom_length"], rng))
    N = cfg["n_individuals"]
    rsids = [np.array([f"rs{c.chrom}{i:06d}" for i in range(len(c.positions))]) for c in chroms]
    variants = [pd.DataFrame({"rsid": r, "chromosome": c.chrom, "position": c.positions,
                              "allele1": c.allele1, "allele2": c.allele2}) for r, c in zip(rsids, chroms)]

    # genotypes (kept for tests and evaluation) and annotations
    for c in chroms:
        with atomic_path(out / "genotypes" / f"chr{c.chrom}.npz") as tmp:
            np.savez_compressed(tmp, genotypes=c.genotypes, positions=c.positions,
                                allele1=c.allele1, allele2=c.allele2)
    ann = pd.concat([pd.concat([v[["chromosome", "position", "allele1", "allele2"]], a], axis=1)
                     for v, a in zip(variants, annots)], ignore_index=True)
    write_table(out / "annotations.tsv.gz", ann)

    # phenotypes from the known prior, then a GWAS per trait
    Xs = [c.standardised() for c in chroms]
    freq = np.concatenate([c.freq for c in chroms])
    A = pd.concat(annots, ignore_index=True)
    phenos = {}
    for trait, tc in cfg["traits"].items():
        f = simulate.truth_f(freq, A, tc["weights"], cfg["alpha"], tc["h2"])
        beta = rng.normal(0.0, np.sqrt(f))
        g = sum(x.T @ b for x, b in zip(Xs, np.split(beta, np.cumsum([len(c.positions) for c in chroms])[:-1])))
        y = g + rng.normal(0.0, np.sqrt(1 - tc["h2"]), N)
        phenos[trait] = y
        log.info("%s: h2 target %.3f, realised genetic variance %.3f", trait, tc["h2"], g.var())
        truth = pd.concat([v[["chromosome", "position", "allele1", "allele2"]] for v in variants], ignore_index=True)
        truth["f"] = f
        write_table(out / "truth" / f"{trait}.tsv.gz", truth)
        ss = pd.concat([simulate.sumstats_table(c, r, simulate.gwas(c.genotypes, y), N, rng)
                        for c, r in zip(chroms, rsids)], ignore_index=True)
        write_table(out / "sumstats" / f"{trait}.sumstats.gz", ss, float_format="%.6g")
    write_table(out / "phenotypes.tsv", pd.DataFrame(phenos))

    # LD windows in the UKBB layout
    n_windows = 0
    for c, x, v in zip(chroms, Xs, variants):
        for w in tile(c.chrom, cfg["chrom_length"], ld_cfg["window_length"], ld_cfg["window_stride"]):
            sel = (c.positions >= w.start) & (c.positions < w.end)
            R = simulate.ld_matrix(x[sel])
            write_ld_window(out / "ld" / w.name, R, v.loc[sel].reset_index(drop=True), dtype=np.float32)
            n_windows += 1
    log.info("wrote %d LD windows, %d traits, %d individuals", n_windows, len(cfg["traits"]), N)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.params.demo, sm.params.ld, sm.params.chromosomes, sm.params.outdir, sm.log[0])
