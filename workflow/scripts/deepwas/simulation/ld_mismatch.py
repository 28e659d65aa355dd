"""LD that is not the statistics' own: a summary-statistics simulation with in-sample, panel and diverged-panel LD
(paper Sec. 4.1 and App. A.5; the mismatch model of `likelihood.mismatch`).

One msprime population A (the GWAS cohort and a panel) and a population B that split from A `split_gens`
generations ago (a panel of another ancestry). The genome of the simulation is a row of `n_blocks` independent
msprime blocks of `block_length` bp (free recombination between them, like strong recombination hotspots: the
design of the demo's `demo.ld_block_length`), and every window lies inside one block with flanks that reach the
block's edges, so the extended set (i)+ of a core holds all of its LD: the regime of the per-window likelihood
(Sec. 4.1: LD does not reach past the extended window; UK Biobank windows have 1 Mb flanks). Summary statistics
of a GWAS of N people are simulated from the cohort's own LD R within each block (App. A.5): with standardised
effects beta_m ~ N(0, h2 / M_genome) (h2 spread over a genome of M_genome variants, of which the blocks hold M),

    z_b = sqrt(N) R_b beta_b + e_b,   e = X xi / sqrt(n) ~ N(0, R)     (X: the cohort's standardised genotypes)

so that the per-window s2 is 1 (every other variant of the genome is noise of the phenotype and of z). The
signal term uses no LD between blocks: it is zero in the population, and a GWAS of N people sees it to 1 / N per
pair, whereas the cohort of n people that stands in for the GWAS's LD has chance correlations of 1 / n, which
would add the other blocks' signal (M / n x N h2 / M_genome per whitened direction: 0.1 for 8,000 variants and
n = 4,000) to every window as extra variance. The likelihood is then fitted with LD from (a) the cohort itself,
(b) a panel of the same population, (c) a panel of population B, without a correction (none), with the
workflow's default (auto: the finite-panel correction for (b) and (c), nothing for (a)) and with the fitted
lambda of R~ (lambda), and scored on held-out windows (the first half of the blocks trains, the second half
is held out).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..ld_factors import factorise, whiten
from ..likelihood import exact
from ..likelihood import mismatch as mm_lik
from ..s2 import fit_mismatch
from ..window import WindowData

log = logging.getLogger("deepwas.simulation.ld_mismatch")


@dataclass
class Genotypes:
    cohort: np.ndarray       # variants x people, 0/1/2
    panel_a: np.ndarray
    panel_b: np.ndarray


def simulate_genotypes(n_cohort: int, n_panel: int, length: float, seed: int, split_gens: float = 4000.0,
                       ne: float = 10_000, recombination_rate: float = 1e-8) -> Genotypes:
    """Diploid genotypes of one block: the cohort and panel (population A) and a panel of population B.

    At the human rate 1e-8 the LD of one long simulation keeps growing with distance (E r^2 ~ 1 / (1 + 4 Ne c)):
    along a 3 Mb region, windows with 300 flanking variants (about 350 kb) missed 0.13-0.16 of variance per
    whitened direction in-sample (0.18-0.25 with a 500-person panel) that the per-window likelihood counted as
    s2 and h2. `simulate_region` therefore uses blocks that the windows' flanks cover."""
    import msprime

    dem = msprime.Demography()
    dem.add_population(name="A", initial_size=ne)
    dem.add_population(name="B", initial_size=ne)
    dem.add_population(name="anc", initial_size=ne)
    dem.add_population_split(time=split_gens, derived=["A", "B"], ancestral="anc")
    ts = msprime.sim_ancestry(samples={"A": n_cohort + n_panel, "B": n_panel}, demography=dem,
                              sequence_length=length, recombination_rate=recombination_rate, random_seed=seed)
    ts = msprime.sim_mutations(ts, rate=1e-8, random_seed=seed, model=msprime.BinaryMutationModel())
    hap = ts.genotype_matrix()
    G = (hap[:, 0::2] + hap[:, 1::2]).astype(np.float64)
    return Genotypes(G[:, :n_cohort], G[:, n_cohort:n_cohort + n_panel], G[:, n_cohort + n_panel:])


def _standardise(X: np.ndarray) -> np.ndarray:
    sd = X.std(1, keepdims=True)
    return (X - X.mean(1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def _ld(X: np.ndarray) -> np.ndarray:
    Xs = _standardise(X)
    R = Xs @ Xs.T / X.shape[1]
    R[np.diag_indices_from(R)] = 1.0        # monomorphic in the panel: a unit diagonal, no correlation
    return R


def core_bounds(M: int, core_size: int) -> list[tuple[int, int]]:
    """A block of M variants cut into max(1, round(M / core_size)) consecutive cores of near-equal size."""
    k = max(1, round(M / core_size))
    edges = np.linspace(0, M, k + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:]))


def make_windows(R: np.ndarray, z: np.ndarray, freq: np.ndarray, core_size: int, flank: int | None = None,
                 rtol: float = 1e-8, name: str = "w"):
    """Cut one block into cores (`core_bounds`) with `flank` extended variants on each side, clipped at the
    block's edges (None: the whole block is every core's extended set); factorise each."""
    M = len(z)
    flank = M if flank is None else flank
    windows, aux = [], []
    for s, e in core_bounds(M, core_size):
        lo, hi = max(0, s - flank), min(M, e + flank)
        core = np.arange(s - lo, e - lo)
        fac = factorise(R[lo:hi, lo:hi], core, rtol=rtol, name=f"{name}_{s}")
        y = whiten(fac.U, fac.lam, z[s:e])
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
        windows.append(WindowData(fac.name, t(fac.G), t(fac.lam), t(y), {"freq": t(freq[lo:hi])}, len(core)))
        aux.append((t(fac.U), torch.as_tensor(fac.core, dtype=torch.long)))
    return windows, aux


def heldout_gain(windows, aux, N, alpha, c, s2, mm, panel_size: int = 0) -> float:
    """Sum over windows of NLL_null - NLL_model of the constant prior (App. C.2), under R~ with mismatch mm,
    on the finite-panel-corrected windows when `panel_size` > 0 (model and null on the same statistic)."""
    total = 0.0
    with torch.no_grad():
        for w, (U, core) in zip(windows, aux):
            p = w.inputs["freq"]
            phi = N * torch.exp(alpha * torch.log((p * (1 - p)).clamp_min(1e-12)) + c)
            if panel_size:
                G, y, lam = mm_lik.regularise(w.G, w.y, w.lam, U, core, mm_lik.Mismatch(mm, panel_size))
                total += float(exact.nll_null(s2, y, lam) - exact.nll(phi, s2, G, y, lam))
            elif mm == 0.0:
                total += float(exact.nll_null(s2, w.y, w.lam) - exact.nll(phi, s2, w.G, w.y, w.lam))
            else:
                total += float(mm_lik.nll_null(s2, mm, w.y, w.lam) - mm_lik.nll(phi, s2, mm, w.G, w.y, w.lam, U, core))
    return total


LABELS = ("a: cohort (in-sample)", "b: panel, same population", "c: panel, diverged population")


@dataclass
class Block:
    """One independent msprime block: allele frequencies of the kept variants in the cohort, the LD matrices by
    label (`LABELS`), the standardised effects beta (z units: sqrt(N) beta), the noise ~ N(0, R) and the
    statistics z = sqrt(N) R beta + noise (R: the cohort's LD of the block); `panel`: the genotypes (0/1/2, int8,
    variants x people) of the same-population panel whose LD is the label (b)."""
    freq: np.ndarray
    lds: dict
    beta: np.ndarray
    noise: np.ndarray
    z: np.ndarray
    panel: np.ndarray | None = None

    @property
    def M(self) -> int:
        return int(self.z.shape[0])


@dataclass
class Region:
    """The simulated genome: independent blocks; the first `n_train` train, the others are held out."""
    blocks: list
    n_train: int

    @property
    def M(self) -> int:
        return sum(b.M for b in self.blocks)


def simulate_region(n_cohort=4000, n_panel=500, n_blocks=200, block_length=5e5, N=100_000, h2=0.5,
                    M_genome=1_000_000, seed=1, maf=0.01, split_gens=4000.0, recombination_rate=1e-8) -> Region:
    """The blocks of `run` (module docstring). Variants are those common in the cohort (MAF > maf) and
    polymorphic in every panel (the same set for every LD source). One phenotype: the noise of every block
    comes from the same cohort residual xi."""
    rng = np.random.default_rng(seed + 17)
    xi = rng.normal(size=n_cohort)
    seeds = np.random.default_rng(seed).integers(1, 2**31, size=n_blocks)
    blocks = []
    for bs in seeds:
        g = simulate_genotypes(n_cohort, n_panel, block_length, int(bs), split_gens,
                               recombination_rate=recombination_rate)
        freq = g.cohort.mean(1) / 2
        ok = np.minimum(freq, 1 - freq) > maf
        for P in (g.panel_a, g.panel_b):
            f = P.mean(1) / 2
            ok &= (f > 0) & (f < 1)
        X = g.cohort[ok]
        R_true = _ld(X)
        beta = rng.normal(size=X.shape[0]) * math.sqrt(h2 / M_genome)
        e = _standardise(X) @ xi / math.sqrt(n_cohort)
        z = math.sqrt(N) * R_true @ beta + e
        lds = dict(zip(LABELS, (R_true, _ld(g.panel_a[ok]), _ld(g.panel_b[ok]))))
        blocks.append(Block(freq[ok], lds, beta, e, z, g.panel_a[ok].astype(np.int8)))
    return Region(blocks, n_blocks // 2)


def redraw(region: Region, draw: int, N=100_000, h2=0.5, M_genome=1_000_000) -> Region:
    """The same blocks (genealogies, variants, LD sources) with new effects and noise: beta ~ N(0, h2 / M_genome)
    and noise ~ N(0, R) drawn again in every block (R: the cohort's LD), z = sqrt(N) R beta + noise. The noise of
    `simulate_region` is X xi / sqrt(n) with xi ~ N(0, I_n), whose law is N(0, R): here it is drawn as
    V lam^1/2 g from the eigendecomposition of R. Separates the sampling spread of an estimator over (beta,
    noise) from its bias on one set of genealogies. `draw` seeds the generator (0 is not the original draw)."""
    rng = np.random.default_rng([int(draw), 7919])
    blocks = []
    for b in region.blocks:
        R = b.lds[LABELS[0]]
        lam, V = np.linalg.eigh(R)
        noise = V @ (np.sqrt(np.clip(lam, 0.0, None)) * rng.normal(size=lam.size))
        beta = rng.normal(size=b.M) * math.sqrt(h2 / M_genome)
        blocks.append(Block(b.freq, b.lds, beta, noise, math.sqrt(N) * R @ beta + noise, b.panel))
    return Region(blocks, region.n_train)


def run(n_cohort=4000, n_panel=500, n_blocks=200, block_length=5e5, N=100_000, h2=0.5, M_genome=1_000_000,
        core_size=150, flank=None, seed=1, maf=0.01, split_gens=4000.0, alpha=0.0, recombination_rate=1e-8,
        modes=("none", "auto", "lambda"), labels=LABELS, region: Region | None = None) -> list[dict]:
    """Rows (ld source, mismatch mode) with fitted s2, lambda, h2 of the constant prior vs truth and held-out gain.

    The windows of the first half of the blocks are the training set, those of the second half the held-out set.
    Cores of about `core_size` variants; `flank` extended variants on each side, clipped at the block's edges
    (None: the whole block, so that (i)+ holds all the LD of its core). The blocks: `simulate_region`; `labels`:
    the LD sources to fit (a subset of `LABELS`); `region`: the blocks of an earlier `simulate_region` with the
    same arguments (simulated here when None).
    """
    reg = region if region is not None else simulate_region(n_cohort, n_panel, n_blocks, block_length, N, h2,
                                                            M_genome, seed, maf, split_gens, recombination_rate)
    M = reg.M
    h2_region_true = h2 * M / M_genome
    rows = []
    for label in labels:
        tr, ho = ([], []), ([], [])
        for k, b in enumerate(reg.blocks):
            w, a = make_windows(b.lds[label], b.z, b.freq, core_size, flank, name=f"b{k}")
            dest = tr if k < reg.n_train else ho
            dest[0].extend(w)
            dest[1].extend(a)
        c0 = math.log(h2 / M_genome)
        panel = 0 if label.startswith("a") else n_panel       # what the workflow passes: plink / local panels
        for mode in modes:
            fit = fit_mismatch(tr[0], tr[1], N, alpha, c0, mode=mode, panel_size=panel, trait=label[0])
            M_train = sum(w.n_core for w in tr[0])
            f_train = np.concatenate([w.inputs["freq"].numpy()[aux_i[1].numpy()] for w, aux_i in zip(*tr)])
            h2_hat = float(M_genome * np.mean(np.clip(f_train * (1 - f_train), 1e-12, None) ** alpha)
                           * math.exp(fit["init_log_scale"]))
            gain = heldout_gain(ho[0], ho[1], N, alpha, fit["init_log_scale"], fit["s2"], fit["lambda"],
                                fit["panel_size"])
            rows.append({"ld": label, "mismatch": mode, "s2": fit["s2"], "lambda": fit["lambda"],
                         "panel_size": fit["panel_size"],
                         "kept": fit.get("kept_directions", 0) / max(fit.get("directions", 1), 1),
                         "lambda_ml": fit.get("lambda_ml", 0.0), "lr_statistic": fit.get("lr_statistic", 0.0),
                         "h2": h2_hat, "h2_true": h2, "heldout_gain": gain, "M": M, "M_train": M_train,
                         "n_train": len(tr[0]), "n_heldout": len(ho[0]), "h2_region_true": h2_region_true})
    return rows
