"""Rule demo_cohort: simulate the offline demo and write it in the public UKBB formats."""
from pathlib import Path

import numpy as np
import pandas as pd

from deepwas import simulate
from deepwas.formats.ukbb_ld import write_ld_window
from deepwas.io import atomic_path, setup_logging, write_table
from deepwas.windows import tile


def track_term(chroms, store_dir, chain, track_cfg: dict, log) -> np.ndarray:
    """App. B.1 log-f term of every demo variant from the raw synthetic tracks around its lifted position."""
    from deepwas.features.tracks import gather_windows, open_track_store
    from deepwas.liftover import lift_positions, load_chain

    store, lo = open_track_store(store_dir), load_chain(chain)
    windows = []
    for c in chroms:
        lifted = lift_positions([c.chrom] * len(c.positions), c.positions, lo)
        win, missing = gather_windows(store, c.chrom, lifted["POS38"].fillna(-1).to_numpy(np.int64),
                                      w=track_cfg["window"])
        log.info("chr%s: %d variants without GRCh38 position (no track features)", c.chrom, int(missing.sum()))
        windows.append(win)
    windows = np.concatenate(windows)
    t = simulate.track_enrichment(windows, track_cfg["dims"], track_cfg["active_fractions"], track_cfg["values"])
    log.info("track enrichment (App. B.1) on tracks %s; fraction of variants with any signal in their window: %s",
             [store.track_names[d] for d in track_cfg["dims"]],
             [round(float(x), 3) for x in (windows[:, track_cfg["dims"]].sum(-1) != 0).mean(0)])
    return t


def main(cfg: dict, ld_cfg: dict, chromosomes: list[str], outdir: str, log_path=None, store=None, chain=None,
         track_cfg=None) -> None:
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

    # effects from the known prior, then summary statistics per trait: an actual GWAS of the cohort, or the
    # summary-level model at GWAS size n_gwas (see deepwas.simulate)
    Xs = [c.standardised() for c in chroms]
    freq = np.concatenate([c.freq for c in chroms])
    A = pd.concat(annots, ignore_index=True)
    t_track = track_term(chroms, store, chain, track_cfg, log) if track_cfg else None
    n_gwas = cfg["n_gwas"]
    splits = np.cumsum([len(c.positions) for c in chroms])[:-1]
    phenos = {}
    for trait, tc in cfg["traits"].items():
        scale = tc["track_scale"]
        f = simulate.truth_f(freq, A, tc["weights"], cfg["alpha"], tc["h2"],
                             None if t_track is None else scale * t_track)
        beta = rng.normal(0.0, np.sqrt(f))
        truth = pd.concat([v[["chromosome", "position", "allele1", "allele2"]] for v in variants], ignore_index=True)
        truth["f"] = f
        write_table(out / "truth" / f"{trait}.tsv.gz", truth)
        if n_gwas:
            res = [simulate.sumstats_from_z(simulate.summary_gwas(x, b, n_gwas, 1 - tc["h2"], rng), c.freq, n_gwas)
                   for x, b, c in zip(Xs, np.split(beta, splits), chroms)]
            log.info("%s: h2 target %.3f, summary-level GWAS of N = %d on the panel's LD", trait, tc["h2"], n_gwas)
        else:
            g = sum(x.T @ b for x, b in zip(Xs, np.split(beta, splits)))
            y = g + rng.normal(0.0, np.sqrt(1 - tc["h2"]), N)
            phenos[trait] = y
            res = [simulate.gwas(c.genotypes, y) for c in chroms]
            log.info("%s: h2 target %.3f, realised genetic variance %.3f", trait, tc["h2"], g.var())
        ss = pd.concat([simulate.sumstats_table(c, r, st, n_gwas or N, rng) for c, r, st in zip(chroms, rsids, res)],
                       ignore_index=True)
        write_table(out / "sumstats" / f"{trait}.sumstats.gz", ss, float_format="%.6g")
    if not n_gwas:
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
    main(sm.params.demo, sm.params.ld, sm.params.chromosomes, sm.params.outdir, sm.log[0],
         store=sm.input.get("store"), chain=sm.input.get("chain"), track_cfg=sm.params.track_truth)
