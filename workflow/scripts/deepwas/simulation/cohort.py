"""The embedded demo cohort: a coalescent simulation that yields the same public files as UK Biobank.

Genotypes come from msprime (recombination and mutation, human-like rates), so LD has realistic block
structure. Effects follow the model of paper Eqn 1 with a known prior that depends on variant features:

    log f_m = alpha log(p_m (1 - p_m)) + sum_d w_d a_md + t_m + c,  beta_m ~ N(0, f_m),  sum_m f_m = h2
    y = X_s^T beta + eps,  eps ~ N(0, 1 - h2)                  (X_s: standardised genotypes)

where a_m are per-variant annotations and t_m the App. B.1 threshold enrichment of the functional tracks
in a window around the variant's GRCh38 position (`track_enrichment`), so a model that reads tracks can
beat one that cannot. By default the summary statistics are an actual GWAS of the simulated cohort
(per-variant ordinary least squares of y on allele counts, `gwas`) and the LD windows are computed from the
same people, as for UK Biobank, whose LD comes from nearly the cohort of its statistics. Then
z = X_s^T y / (sqrt(n) sd(y)) lies in the column space of every window's R, and the effects outside a window
reach its z only through the cohort's chance correlations, as noise of covariance about h2_outside R
(paper Sec. 2: the window likelihood's s2 is then about 1 - h2_window, close to 1). The alternative
summary-level model at a GWAS size N above the panel (`summary_gwas`) is kept for experiments; it is not
in that regime (its s2 exceeds 1 by about (N / n) h2_outside).

Whole chromosomes are held as uint8 allele counts; every float64 computation runs on chunks of variants.
Everything is a pure function of a seed; `write_demo_cohort` writes the files (the demo_cohort rule), with
the chromosomes' coalescent simulations in parallel processes (`simulate_cohort`).
"""
from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
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


CHUNK = 256      # variants per float64 block (256 x 50,000 people: 100 MB)


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

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-variant mean and (population) sd of the allele counts, without a float copy of the chromosome."""
        if not hasattr(self, "_moments"):
            mean = np.empty(len(self.positions))
            sd = np.empty(len(self.positions))
            for s in range(0, len(self.positions), CHUNK):
                g = self.genotypes[s:s + CHUNK].astype(np.float64)
                mean[s:s + CHUNK] = g.mean(1)
                sd[s:s + CHUNK] = g.std(1)
            self._moments = (mean, sd)
        return self._moments

    def standardised(self, rows=slice(None)) -> np.ndarray:
        """X_s of the selected variants (rows: a slice, mask or index array), float64 [m, N]."""
        mean, sd = self.moments()
        g = self.genotypes[rows].astype(np.float64)
        g -= mean[rows][:, None]
        g /= sd[rows][:, None]
        return g

    def genetic_value(self, beta: np.ndarray) -> np.ndarray:
        """X_s^T beta: [N] for beta [M], [N, T] for beta [M, T]; accumulated over chunks of variants."""
        out = np.zeros((self.genotypes.shape[1], *beta.shape[1:]))
        for s in range(0, len(self.positions), CHUNK):
            out += self.standardised(slice(s, s + CHUNK)).T @ beta[s:s + CHUNK]
        return out


def simulate_chromosome(chrom: str, length: int, n_individuals: int, seed: int, population_size: float = 1e4,
                        recombination_rate: float = 1e-8, mutation_rate: float = 1.5e-8,
                        maf_min: float = 0.01, block_length: int | None = None) -> Chromosome:
    """Biallelic sites with minor-allele frequency >= maf_min of an msprime sample of n diploids.

    block_length: the chromosome is a row of independent simulations of this length (free recombination
    between them, like strong recombination hotspots), so LD ends at the block edges instead of decaying as
    1 / (4 N_e r d) along the whole chromosome; None: one simulation. The filter runs on the tree sequence
    (derived-allele counts from the trees) before any genotype is decoded, and genotypes are decoded site
    by site into uint8 diploid counts, so a biobank-size cohort costs its common variants only."""
    import msprime

    rng = np.random.default_rng(seed)
    starts = range(0, length, block_length or length)
    G, pos = [], []
    for start in starts:
        span = min(length - start, block_length or length)
        ts = msprime.sim_ancestry(samples=n_individuals, ploidy=2, population_size=population_size,
                                  sequence_length=span, recombination_rate=recombination_rate,
                                  random_seed=int(rng.integers(1, 2**31)))
        ts = msprime.sim_mutations(ts, rate=mutation_rate, random_seed=int(rng.integers(1, 2**31)))
        g, p = _common_sites(ts, n_individuals, maf_min)
        G.append(g)
        pos.append(p + start)
    G, pos = np.concatenate(G), np.concatenate(pos)
    pairs = np.array([rng.choice(4, 2, replace=False) for _ in range(len(pos))]).reshape(-1, 2)
    return Chromosome(str(chrom), pos, G, BASES[pairs[:, 0]], BASES[pairs[:, 1]])


def _common_sites(ts, n_individuals: int, maf_min: float) -> tuple[np.ndarray, np.ndarray]:
    """uint8 diploid counts [sites, n] and 1-based positions of the single-mutation sites with MAF >= maf_min."""
    n_hap = ts.num_samples
    keep = []
    for tree in ts.trees():
        for site in tree.sites():
            if len(site.mutations) == 1:
                p = tree.num_samples(site.mutations[0].node) / n_hap
                if min(p, 1 - p) >= maf_min:
                    keep.append(site.id)
    keep = np.asarray(keep, dtype=np.int64)
    pos = ts.tables.sites.position[keep].astype(np.int64) + 1
    unique = np.diff(np.r_[-1, pos]) > 0
    keep, pos = keep[unique], pos[unique]
    ts = ts.delete_sites(np.setdiff1d(np.arange(ts.num_sites), keep))
    G = np.empty((len(keep), n_individuals), dtype=np.uint8)
    for v in ts.variants(copy=False):
        h = v.genotypes
        G[v.site.id] = h[0::2] + h[1::2]
    return G, pos


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


def gwas(genotypes: np.ndarray, y: np.ndarray) -> pd.DataFrame | list[pd.DataFrame]:
    """Per-variant OLS of y on allele counts: Beta, se, P (t-test), EAF of the counted allele. y [N], or
    [N, T] for T traits at once (a list of T tables). Runs in chunks of variants, so a biobank-size cohort
    needs no float copy of its genotypes."""
    Y = np.asarray(y, dtype=np.float64)
    N = Y.shape[0]
    Yc = (Y - Y.mean(0)).reshape(N, -1)
    M = genotypes.shape[0]
    beta, sxx, eaf = np.empty((M, Yc.shape[1])), np.empty(M), np.empty(M)
    for s in range(0, M, CHUNK):
        g = genotypes[s:s + CHUNK].astype(np.float64)
        eaf[s:s + CHUNK] = g.mean(1) / 2
        g -= g.mean(1, keepdims=True)
        sxx[s:s + CHUNK] = np.einsum("ij,ij->i", g, g)
        beta[s:s + CHUNK] = g @ Yc / sxx[s:s + CHUNK, None]
    out = []
    for k in range(Yc.shape[1]):
        rss = Yc[:, k] @ Yc[:, k] - beta[:, k] ** 2 * sxx
        se = np.sqrt(rss / (N - 2) / sxx)
        p = 2 * sps.t.sf(np.abs(beta[:, k] / se), N - 2)
        out.append(pd.DataFrame({"Beta": beta[:, k], "se": se, "P": p, "EAF": eaf}))
    return out[0] if Y.ndim == 1 else out


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


def window_ld(chrom: Chromosome, windows):
    """(window, variant mask, R) of every window in order, R = X_s X_s^T / n of the window's variants.

    Overlapping windows share blocks: the chromosome is cut at every window edge into segments, and each
    product X_a X_b^T of two segments is computed once and dropped once no later window needs it (with the
    demo's 3 x stride windows, a third of the per-window cost). The product runs in float32 on float64-
    standardised genotypes: its rounding (about 1e-6) is far below the chance correlations (1 / sqrt(n)) and
    the float32 the window files hold."""
    windows = list(windows)
    pos, n = chrom.positions, chrom.genotypes.shape[1]
    edges = np.unique([e for w in windows for e in (w.start, w.end)])
    seg = np.searchsorted(pos, edges, side="left")          # variant index of each edge
    blocks: dict[tuple[int, int], np.ndarray] = {}
    xs: dict[int, np.ndarray] = {}
    for w in windows:
        a, b = np.searchsorted(edges, [w.start, w.end])      # segments a .. b-1
        for k in [k for k in xs if k < a]:
            del xs[k]
        for key in [key for key in blocks if key[0] < a]:
            del blocks[key]
        for i in range(a, b):
            if i not in xs:
                xs[i] = chrom.standardised(slice(seg[i], seg[i + 1])).astype(np.float32)
        for i in range(a, b):
            for j in range(i, b):
                if (i, j) not in blocks:
                    blocks[(i, j)] = (xs[i] @ xs[j].T).astype(np.float64) / n
        sizes = [seg[i + 1] - seg[i] for i in range(a, b)]
        offs = np.r_[0, np.cumsum(sizes)]
        R = np.empty((offs[-1], offs[-1]))
        for i in range(a, b):
            for j in range(i, b):
                B = blocks[(i, j)]
                R[offs[i - a]:offs[i - a + 1], offs[j - a]:offs[j - a + 1]] = B
                R[offs[j - a]:offs[j - a + 1], offs[i - a]:offs[i - a + 1]] = B.T
        yield w, (pos >= w.start) & (pos < w.end), R


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


def _simulate_demo_chromosome(job: tuple) -> Chromosome:
    """Chromosome k of the demo (its own seed, seed * 1000 + k), with its allele-count moments."""
    k, chrom, cfg = job
    ch = simulate_chromosome(chrom, cfg["chrom_length"], cfg["n_individuals"], seed=cfg["seed"] * 1000 + k,
                             population_size=cfg["population_size"], recombination_rate=cfg["recombination_rate"],
                             mutation_rate=cfg["mutation_rate"], maf_min=cfg["maf_min"],
                             block_length=cfg["ld_block_length"])
    ch.moments()
    return ch


def simulate_cohort(cfg: dict, chromosomes: list[str], threads: int = 1) -> list[Chromosome]:
    """The demo's chromosomes (`cfg`: the config's `demo:` block), in order; `threads` > 1 runs their coalescent
    simulations in that many forked processes (each chromosome draws from its own seed, so the cohort is the
    same, bit for bit). The workers call no BLAS, and the caller waits for them: the products whose rounding
    depends on the BLAS thread count (the LD windows' X_a X_b^T, the GWAS; OpenBLAS splits their sums by thread)
    run afterwards in the calling process, on its BLAS threads, with no worker competing for the cores (a
    multi-threaded OpenBLAS product slows several-fold when a core is taken)."""
    jobs = [(k, str(c), cfg) for k, c in enumerate(chromosomes)]
    workers = min(int(threads), len(jobs))
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [_simulate_demo_chromosome(job) for job in jobs]
    # fork: a spawned worker would re-run the calling script (a Snakemake script job) as its main module
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_simulate_demo_chromosome, jobs))


def write_demo_cohort(cfg: dict, ld_cfg: dict, chromosomes: list[str], outdir: str, store=None, chain=None,
                      track_cfg=None, threads: int = 1) -> None:
    """The demo_cohort rule: simulate the cohort of `cfg` (the config's `demo:` block) and write it in the public
    UKBB formats under `outdir`: LD windows, summary statistics, true f, genotypes, annotations (and the
    phenotypes of an actual GWAS). `store`, `chain`, `track_cfg`: the synthetic tracks the true f reads.
    `threads`: processes for the chromosomes' simulations (`simulate_cohort`); the files do not depend on it
    (they do on the BLAS thread count, which Snakemake sets to the rule's threads)."""
    out = Path(outdir)
    rng = np.random.default_rng(cfg["seed"])
    chroms, annots = simulate_cohort(cfg, chromosomes, threads), []
    for ch in chroms:       # the annotations draw from one generator, in chromosome order
        log.info("chr%s: %d variants after the MAF >= %g filter", ch.chrom, len(ch.positions), cfg["maf_min"])
        annots.append(simulate_annotations(ch.positions, cfg["chrom_length"], rng))
    N = cfg["n_individuals"]
    rsids = [np.array([f"rs{c.chrom}{i:06d}" for i in range(len(c.positions))]) for c in chroms]
    variants = [pd.DataFrame({"rsid": r, "chromosome": c.chrom, "position": c.positions,
                              "allele1": c.allele1, "allele2": c.allele2}) for r, c in zip(rsids, chroms)]

    # genotypes (on request: demo.genotypes) and annotations
    for c in chroms if cfg.get("genotypes") else []:
        write_genotypes(out / "genotypes" / f"chr{c.chrom}.npz", c.genotypes, c.positions, c.allele1, c.allele2)
    ann = pd.concat([pd.concat([v[["chromosome", "position", "allele1", "allele2"]], a], axis=1)
                     for v, a in zip(variants, annots)], ignore_index=True)
    write_table(out / "annotations.tsv.gz", ann)

    # effects from the known prior, then summary statistics per trait: an actual GWAS of the cohort (default),
    # or the summary-level model at GWAS size n_gwas (`summary_gwas`)
    freq = np.concatenate([c.freq for c in chroms])
    A = pd.concat(annots, ignore_index=True)
    t_track = track_term(chroms, store, chain, track_cfg) if track_cfg else None
    n_gwas = cfg["n_gwas"]
    splits = np.cumsum([len(c.positions) for c in chroms])[:-1]
    traits = list(cfg["traits"])
    betas = []
    for trait, tc in cfg["traits"].items():
        f = truth_f(freq, A, tc["weights"], cfg["alpha"], tc["h2"],
                    None if t_track is None else tc["track_scale"] * t_track)
        betas.append(rng.normal(0.0, np.sqrt(f)))
        write_truth(out / "truth" / f"{trait}.tsv.gz", pd.concat(variants, ignore_index=True), f)
    if n_gwas:
        results = {t: [sumstats_from_z(summary_gwas(c.standardised(), b, n_gwas, 1 - tc["h2"], rng), c.freq, n_gwas)
                       for b, c in zip(np.split(beta, splits), chroms)]
                   for (t, tc), beta in zip(cfg["traits"].items(), betas)}
        log.info("summary-level GWAS of N = %d on the panel's LD", n_gwas)
    else:
        # all traits in one pass over the genotypes: y = X_s^T beta + eps, then the GWAS of every trait
        B = np.stack(betas, 1)
        g = sum(c.genetic_value(b) for c, b in zip(chroms, np.split(B, splits)))
        h2 = np.array([cfg["traits"][t]["h2"] for t in traits])
        Y = g + rng.normal(0.0, 1.0, g.shape) * np.sqrt(1 - h2)
        per_chrom = [gwas(c.genotypes, Y) for c in chroms]
        results = {t: [r[k] for r in per_chrom] for k, t in enumerate(traits)}
        for k, t in enumerate(traits):
            log.info("%s: h2 target %.3f, realised genetic variance %.3f; in-sample GWAS of the %d people",
                     t, h2[k], g[:, k].var(), N)
        write_table(out / "phenotypes.tsv", pd.DataFrame(Y, columns=traits))
    for t in traits:
        ss = pd.concat([sumstats_table(c, r, st, n_gwas or N, rng) for c, r, st in zip(chroms, rsids, results[t])],
                       ignore_index=True)
        write_table(out / "sumstats" / f"{t}.sumstats.gz", ss, float_format="%.6g")

    # LD windows in the UKBB layout, from the same people
    n_windows = 0
    for c, v in zip(chroms, variants):
        p = np.round(c.freq, 6)
        for w, sel, R in window_ld(c, tile(c.chrom, cfg["chrom_length"], ld_cfg["window_length"],
                                           ld_cfg["window_stride"])):
            # the panel's allele1 frequency, as an LD source that records it (the LD factors' trait-independent freq)
            table = v.loc[sel].reset_index(drop=True).assign(freq=p[sel])
            write_ld_window(out / "ld" / w.name, R, table, dtype=np.float32)
            n_windows += 1
    log.info("wrote %d LD windows, %d traits, %d individuals", n_windows, len(cfg["traits"]), N)
