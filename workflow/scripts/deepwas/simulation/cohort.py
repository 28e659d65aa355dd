"""The embedded demo cohort: a coalescent simulation that yields the same public files as UK Biobank.

Genotypes come from msprime (recombination and mutation, human-like rates), so LD has realistic block
structure. Effects follow the model of paper Eqn 1 with a known prior that depends on variant features:

    log f_m = alpha log(p_m (1 - p_m)) + sum_d w_d a_md + t_m + c,  beta_m ~ N(0, f_m),  sum_m f_m = h2
    y = X_s^T beta + eps,  eps ~ N(0, 1 - h2)                  (X_s: standardised genotypes)

where a_m are per-variant annotations and t_m the App. B.1 threshold enrichment of the functional tracks
in a window around the variant's GRCh38 position (`track_enrichment`), so a model that reads tracks can
beat one that cannot. Summary statistics come either from an actual GWAS of the simulated cohort
(per-variant ordinary least squares of y on allele counts, `gwas`) or, to reach biobank-like power with a
small reference panel, from the summary-level model at a larger GWAS size N (`summary_gwas`):

    z = sqrt(N) R beta + e,   e ~ N(0, (1 - h2) R),   R = X_s X_s^T / n   (the panel's in-sample LD)

drawn exactly through the genotypes (see `summary_gwas`, also for what N > n does to the per-window s2).
Everything is a pure function of a seed; `write_demo_cohort` writes the files (the demo_cohort rule).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..features.tracks import gather_windows, open_track_store
from ..formats.genotypes import write_genotypes
from ..formats.truth import write_truth
from ..formats.ukbb_ld import write_ld_window
from ..io import write_table
from ..liftover import lift_positions, load_chain
from ..windows import tile
from .truths import threshold_enrichment

log = logging.getLogger("deepwas.simulation.cohort")

BASES = np.array(list("ACGT"))


@dataclass
class Chromosome:
    chrom: str
    positions: np.ndarray        # (M,) int64, 1-based GRCh37-like
    genotypes: np.ndarray        # (M, N) uint8 counts of allele1
    allele1: np.ndarray          # (M,) str, the counted allele
    allele2: np.ndarray

    @property
    def freq(self) -> np.ndarray:
        return self.genotypes.mean(1) / 2.0

    def standardised(self) -> np.ndarray:
        g = self.genotypes.astype(np.float64)
        g -= g.mean(1, keepdims=True)
        g /= g.std(1, keepdims=True)
        return g


def simulate_chromosome(chrom: str, length: int, n_individuals: int, seed: int, population_size: float = 1e4,
                        recombination_rate: float = 1e-8, mutation_rate: float = 1.5e-8,
                        maf_min: float = 0.01) -> Chromosome:
    import msprime

    rng = np.random.default_rng(seed)
    ts = msprime.sim_ancestry(samples=n_individuals, ploidy=2, population_size=population_size,
                              sequence_length=length, recombination_rate=recombination_rate,
                              random_seed=int(rng.integers(1, 2**31)))
    ts = msprime.sim_mutations(ts, rate=mutation_rate, random_seed=int(rng.integers(1, 2**31)))
    biallelic = np.array([len(s.mutations) == 1 for s in ts.sites()], dtype=bool)
    H = ts.genotype_matrix()[biallelic]                       # (sites, 2N) 0/1
    pos = ts.tables.sites.position[biallelic].astype(np.int64) + 1
    G = (H[:, 0::2] + H[:, 1::2]).astype(np.uint8)
    p = G.mean(1) / 2
    keep = (np.minimum(p, 1 - p) >= maf_min) & (np.diff(np.r_[-1, pos]) > 0)
    G, pos = G[keep], pos[keep]
    pairs = np.array([rng.choice(4, 2, replace=False) for _ in range(len(pos))]).reshape(-1, 2)
    return Chromosome(str(chrom), pos, G, BASES[pairs[:, 0]], BASES[pairs[:, 1]])


def simulate_annotations(positions: np.ndarray, length: int, rng: np.random.Generator) -> pd.DataFrame:
    """Three per-variant annotations with spatial structure: coding (gene bodies), enhancer, conservation."""
    def intervals(n, mean_len):
        starts = rng.integers(1, length, n)
        return starts, starts + rng.exponential(mean_len, n).astype(np.int64) + 1

    def inside(starts, ends):
        hit = np.zeros(len(positions), bool)
        for s, e in zip(starts, ends):
            hit |= (positions >= s) & (positions < e)
        return hit

    coding = inside(*intervals(max(1, length // 150_000), 2_000))
    enhancer = inside(*intervals(max(1, length // 20_000), 3_000))
    # smooth 'conservation' signal: white noise on a 1 kb grid smoothed over ~10 kb
    grid = rng.normal(size=length // 1000 + 2)
    kernel = np.exp(-0.5 * (np.arange(-30, 31) / 10.0) ** 2)
    smooth = np.convolve(grid, kernel / kernel.sum(), mode="same")
    cons = smooth[positions // 1000]
    cons = (cons - cons.mean()) / cons.std()
    return pd.DataFrame({"coding": coding.astype(float), "enhancer": enhancer.astype(float), "conservation": cons})


def truth_f(freq: np.ndarray, annotations: pd.DataFrame, weights: dict[str, float], alpha: float, h2: float,
            extra_logf: np.ndarray | None = None) -> np.ndarray:
    """The demo's ground-truth prior f (Eqn 6 form), normalised so that sum_m f_m = h2.

    extra_logf: an additional per-variant log-scale term (the track enrichment), or None."""
    logf = alpha * np.log(freq * (1 - freq))
    if extra_logf is not None:
        logf = logf + extra_logf
    for name, w in weights.items():
        logf = logf + w * annotations[name].to_numpy()
    f = np.exp(logf - logf.max())
    return h2 * f / f.sum()


def gwas(genotypes: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Per-variant OLS of y on allele counts: Beta, se, P (t-test), EAF of the counted allele."""
    N = y.shape[0]
    g = genotypes.astype(np.float64)
    gc = g - g.mean(1, keepdims=True)
    yc = y - y.mean()
    sxx = (gc * gc).sum(1)
    beta = gc @ yc / sxx
    rss = yc @ yc - beta**2 * sxx
    se = np.sqrt(rss / (N - 2) / sxx)
    p = 2 * sps.t.sf(np.abs(beta / se), N - 2)
    return pd.DataFrame({"Beta": beta, "se": se, "P": p, "EAF": g.mean(1) / 2})


def track_enrichment(track_windows: np.ndarray, dims, active_fractions, values) -> np.ndarray:
    """App. B.1 log-scale term sum_d v_d 1(sum_{centre} C[d] > e_d) on raw track windows [M, d_func, w], with
    thresholds e_d calibrated so that track dims[k] is active for about active_fractions[k] of the variants
    (fewer where many windows tie at 0: sparse tracks)."""
    if not len(dims) == len(active_fractions) == len(values):
        raise ValueError("demo.track_truth: dims, active_fractions and values must have the same length")
    if max(dims) >= track_windows.shape[1]:
        raise ValueError(f"demo.track_truth: track index {max(dims)} >= {track_windows.shape[1]} demo tracks")
    return threshold_enrichment(track_windows, dims, values, active_fractions=active_fractions)


def summary_gwas(Xs: np.ndarray, beta: np.ndarray, N: float, s2: float, rng: np.random.Generator) -> np.ndarray:
    """z ~ N(sqrt(N) R beta, s2 R) with R = Xs Xs^T / n, drawn through the standardised genotypes Xs [M, n]:
    z = sqrt(N) Xs (Xs^T beta) / n + Xs u / sqrt(n), u ~ N(0, s2 I_n).

    With N above the panel's n, the panel's chance correlations between distant variants (about 1 / sqrt(n)
    each) carry the effects of the rest of the chromosome into every z: a term whose covariance is about
    (N / n) h2_rest R, i.e. of the same form as the noise. The per-window s2 then is about
    1 - h2_window + (N / n) h2_rest, which the workflow estimates by maximum likelihood (trait sheet s2 empty)."""
    n = Xs.shape[1]
    return np.sqrt(N) * (Xs @ (Xs.T @ beta)) / n + Xs @ rng.normal(0.0, np.sqrt(s2), n) / np.sqrt(n)


def sumstats_from_z(z: np.ndarray, freq: np.ndarray, N: float) -> pd.DataFrame:
    """Beta, se, P, EAF of a per-allele regression whose correlation-scale statistic is z: the t statistic is
    t = r sqrt(N - 2) / sqrt(1 - r^2) with r = z / sqrt(N), so the harmoniser's correlation scale gives z back."""
    r = z / np.sqrt(N)
    if np.any(np.abs(r) >= 1):
        raise ValueError("summary_gwas produced |z| >= sqrt(N); lower h2 or raise n_gwas")
    t = r * np.sqrt(N - 2) / np.sqrt(1 - r * r)
    se = 1.0 / np.sqrt(2 * freq * (1 - freq) * N)
    return pd.DataFrame({"Beta": t * se, "se": se, "P": 2 * sps.t.sf(np.abs(t), N - 2), "EAF": freq})


def ld_matrix(Xs: np.ndarray) -> np.ndarray:
    """R = X_s X_s^T / N for standardised genotypes (rows = variants)."""
    return Xs @ Xs.T / Xs.shape[1]


def sumstats_table(chrom: Chromosome, rsid: np.ndarray, res: pd.DataFrame, N: int, rng: np.random.Generator,
                   swap_fraction: float = 0.1, flip_fraction: float = 0.02, missing_fraction: float = 0.01) -> pd.DataFrame:
    """A UKBB_409K-layout table, with the realistic untidiness harmonisation must handle:
    a fraction of rows reported for the other allele, a fraction of non-palindromic rows on the other
    strand, a few missing."""
    M = len(chrom.positions)
    a1, a2 = chrom.allele1.astype(object).copy(), chrom.allele2.astype(object).copy()
    beta, eaf = res["Beta"].to_numpy().copy(), res["EAF"].to_numpy().copy()
    swap = rng.random(M) < swap_fraction
    a1[swap], a2[swap] = chrom.allele2[swap], chrom.allele1[swap]
    beta[swap], eaf[swap] = -beta[swap], 1 - eaf[swap]
    comp = str.maketrans("ACGT", "TGCA")
    # a strand flip of an A/T or C/G variant is indistinguishable from an allele swap; real files from one
    # reference panel never flip those, and the harmoniser takes them at face value, so neither does the demo
    palindromic = np.array([a.translate(comp) == b for a, b in zip(chrom.allele1, chrom.allele2)])
    flip = (rng.random(M) < flip_fraction) & ~palindromic
    a1[flip] = [a.translate(comp) for a in a1[flip]]
    a2[flip] = [a.translate(comp) for a in a2[flip]]
    df = pd.DataFrame({"SNP": rsid, "CHR": chrom.chrom, "POS": chrom.positions, "A1": a1, "A2": a2,
                       "EAF": eaf, "Beta": beta, "se": res["se"].to_numpy(), "P": res["P"].to_numpy(),
                       "N": N, "INFO": 1.0})
    return df.loc[rng.random(M) >= missing_fraction]


def track_term(chroms, store_dir, chain, track_cfg: dict) -> np.ndarray:
    """App. B.1 log-f term of every demo variant from the raw synthetic tracks around its lifted position."""
    store, lo = open_track_store(store_dir), load_chain(chain)
    windows = []
    for c in chroms:
        lifted = lift_positions([c.chrom] * len(c.positions), c.positions, lo)
        win, missing = gather_windows(store, c.chrom, lifted["POS38"].fillna(-1).to_numpy(np.int64),
                                      w=track_cfg["window"])
        log.info("chr%s: %d variants without GRCh38 position (no track features)", c.chrom, int(missing.sum()))
        windows.append(win)
    windows = np.concatenate(windows)
    t = track_enrichment(windows, track_cfg["dims"], track_cfg["active_fractions"], track_cfg["values"])
    log.info("track enrichment (App. B.1) on tracks %s; fraction of variants with any signal in their window: %s",
             [store.track_names[d] for d in track_cfg["dims"]],
             [round(float(x), 3) for x in (windows[:, track_cfg["dims"]].sum(-1) != 0).mean(0)])
    return t


def write_demo_cohort(cfg: dict, ld_cfg: dict, chromosomes: list[str], outdir: str, store=None, chain=None,
                      track_cfg=None) -> None:
    """The demo_cohort rule: simulate the cohort of `cfg` (the config's `demo:` block) and write it in the public
    UKBB formats under `outdir`: LD windows, summary statistics, true f, genotypes, annotations (and the
    phenotypes of an actual GWAS). `store`, `chain`, `track_cfg`: the synthetic tracks the true f reads."""
    out = Path(outdir)
    rng = np.random.default_rng(cfg["seed"])
    chroms, annots = [], []
    for k, c in enumerate(chromosomes):
        ch = simulate_chromosome(c, cfg["chrom_length"], cfg["n_individuals"], seed=cfg["seed"] * 1000 + k,
                                          population_size=cfg["population_size"],
                                          recombination_rate=cfg["recombination_rate"],
                                          mutation_rate=cfg["mutation_rate"], maf_min=cfg["maf_min"])
        log.info("chr%s: %d variants after the MAF >= %g filter", c, len(ch.positions), cfg["maf_min"])
        chroms.append(ch)
        annots.append(simulate_annotations(ch.positions, cfg["chrom_length"], rng))
    N = cfg["n_individuals"]
    rsids = [np.array([f"rs{c.chrom}{i:06d}" for i in range(len(c.positions))]) for c in chroms]
    variants = [pd.DataFrame({"rsid": r, "chromosome": c.chrom, "position": c.positions,
                              "allele1": c.allele1, "allele2": c.allele2}) for r, c in zip(rsids, chroms)]

    # genotypes (kept for tests and evaluation) and annotations
    for c in chroms:
        write_genotypes(out / "genotypes" / f"chr{c.chrom}.npz", c.genotypes, c.positions, c.allele1, c.allele2)
    ann = pd.concat([pd.concat([v[["chromosome", "position", "allele1", "allele2"]], a], axis=1)
                     for v, a in zip(variants, annots)], ignore_index=True)
    write_table(out / "annotations.tsv.gz", ann)

    # effects from the known prior, then summary statistics per trait: an actual GWAS of the cohort, or the
    # summary-level model at GWAS size n_gwas (`summary_gwas`)
    Xs = [c.standardised() for c in chroms]
    freq = np.concatenate([c.freq for c in chroms])
    A = pd.concat(annots, ignore_index=True)
    t_track = track_term(chroms, store, chain, track_cfg) if track_cfg else None
    n_gwas = cfg["n_gwas"]
    splits = np.cumsum([len(c.positions) for c in chroms])[:-1]
    phenos = {}
    for trait, tc in cfg["traits"].items():
        scale = tc["track_scale"]
        f = truth_f(freq, A, tc["weights"], cfg["alpha"], tc["h2"],
                             None if t_track is None else scale * t_track)
        beta = rng.normal(0.0, np.sqrt(f))
        write_truth(out / "truth" / f"{trait}.tsv.gz", pd.concat(variants, ignore_index=True), f)
        if n_gwas:
            res = [sumstats_from_z(summary_gwas(x, b, n_gwas, 1 - tc["h2"], rng), c.freq, n_gwas)
                   for x, b, c in zip(Xs, np.split(beta, splits), chroms)]
            log.info("%s: h2 target %.3f, summary-level GWAS of N = %d on the panel's LD", trait, tc["h2"], n_gwas)
        else:
            g = sum(x.T @ b for x, b in zip(Xs, np.split(beta, splits)))
            y = g + rng.normal(0.0, np.sqrt(1 - tc["h2"]), N)
            phenos[trait] = y
            res = [gwas(c.genotypes, y) for c in chroms]
            log.info("%s: h2 target %.3f, realised genetic variance %.3f", trait, tc["h2"], g.var())
        ss = pd.concat([sumstats_table(c, r, st, n_gwas or N, rng) for c, r, st in zip(chroms, rsids, res)],
                       ignore_index=True)
        write_table(out / "sumstats" / f"{trait}.sumstats.gz", ss, float_format="%.6g")
    if not n_gwas:
        write_table(out / "phenotypes.tsv", pd.DataFrame(phenos))

    # LD windows in the UKBB layout
    n_windows = 0
    for c, x, v in zip(chroms, Xs, variants):
        for w in tile(c.chrom, cfg["chrom_length"], ld_cfg["window_length"], ld_cfg["window_stride"]):
            sel = (c.positions >= w.start) & (c.positions < w.end)
            R = ld_matrix(x[sel])
            # the panel's allele1 frequency, as an LD source that records it (the LD factors' trait-independent freq)
            table = v.loc[sel].reset_index(drop=True).assign(freq=np.round(c.freq[sel], 6))
            write_ld_window(out / "ld" / w.name, R, table, dtype=np.float32)
            n_windows += 1
    log.info("wrote %d LD windows, %d traits, %d individuals", n_windows, len(cfg["traits"]), N)
