"""LD that is not the statistics' own: a summary-statistics simulation with in-sample, panel and diverged-panel LD
(paper Sec. 4.1 and App. A.5; the mismatch model of `likelihood.mismatch`).

One msprime population A (the GWAS cohort and a panel) and a population B that split from A `split_gens`
generations ago (a panel of another ancestry). Summary statistics of a GWAS of N people are simulated from
the cohort's own LD R (App. A.5): with standardised effects beta_m ~ N(0, h2 / M_genome) (h2 spread over a
genome of M_genome variants, of which this region holds M),

    z = sqrt(N) R beta + e,   e = X xi / sqrt(n) ~ N(0, R)     (X: the cohort's standardised genotypes)

so that the per-window s2 is 1 (every other variant of the genome is noise of the phenotype and of z).
The likelihood is then fitted with LD from (a) the cohort itself, (b) a panel of the same population,
(c) a panel of population B, without a correction (none), with the workflow's default (auto: the finite-panel
correction for (b) and (c), nothing for (a)) and with the fitted lambda of R~ (lambda), and scored on
held-out windows.
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
    """Diploid genotypes of the cohort and panel (population A) and a panel of population B.

    At the human rate 1e-8 the LD score of a variant keeps growing with distance (E r^2 ~ 1 / (1 + 4 Ne c)):
    over a 10 Mb region a third of it lies beyond 450 kb, outside (i)+ with 300 flanking variants, and the
    per-window likelihood counts that signal as s2 and h2 (measured: in-sample s2 1.35, h2 0.74 of 0.5).
    Over 3 Mb the missing part is small."""
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


def make_windows(R: np.ndarray, z: np.ndarray, freq: np.ndarray, core_size: int, flank: int, rtol: float = 1e-8):
    """Cut the region into consecutive cores with `flank` extended variants on each side; factorise each."""
    M = len(z)
    windows, aux = [], []
    for s in range(0, M, core_size):
        e = min(s + core_size, M)
        lo, hi = max(0, s - flank), min(M, e + flank)
        core = np.arange(s - lo, e - lo)
        fac = factorise(R[lo:hi, lo:hi], core, rtol=rtol, name=f"w{s}")
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


@dataclass
class Region:
    """One simulated region: allele frequencies of the kept variants in the cohort, the LD matrices by label
    ('a: cohort (in-sample)', 'b: panel, same population', 'c: panel, diverged population'), the standardised
    effects beta (z units: sqrt(N) beta) and the statistics z = sqrt(N) R beta + noise, noise ~ N(0, R)."""
    freq: np.ndarray
    lds: dict
    beta: np.ndarray
    noise: np.ndarray
    z: np.ndarray

    @property
    def M(self) -> int:
        return int(self.z.shape[0])


def simulate_region(n_cohort=4000, n_panel=500, length=3e6, N=100_000, h2=0.5, M_genome=1_000_000, seed=1,
                    maf=0.01, split_gens=4000.0, recombination_rate=1e-8) -> Region:
    """The region of `run` (module docstring). Variants are those common in the cohort (MAF > maf) and
    polymorphic in every panel (the same set for every LD source)."""
    g = simulate_genotypes(n_cohort, n_panel, length, seed, split_gens, recombination_rate=recombination_rate)
    freq = g.cohort.mean(1) / 2
    maf_c = np.minimum(freq, 1 - freq)
    ok = maf_c > maf
    for P in (g.panel_a, g.panel_b):
        f = P.mean(1) / 2
        ok &= (f > 0) & (f < 1)
    X = g.cohort[ok]
    M = int(ok.sum())
    rng = np.random.default_rng(seed + 17)
    R_true = _ld(X)
    beta = rng.normal(size=M) * math.sqrt(h2 / M_genome)
    e = _standardise(X) @ rng.normal(size=X.shape[1]) / math.sqrt(X.shape[1])
    z = math.sqrt(N) * R_true @ beta + e
    lds = {"a: cohort (in-sample)": R_true, "b: panel, same population": _ld(g.panel_a[ok]),
           "c: panel, diverged population": _ld(g.panel_b[ok])}
    return Region(freq[ok], lds, beta, e, z)


def run(n_cohort=4000, n_panel=500, length=3e6, N=100_000, h2=0.5, M_genome=1_000_000, core_size=150, flank=300,
        seed=1, maf=0.01, split_gens=4000.0, alpha=0.0, recombination_rate=1e-8,
        modes=("none", "auto", "lambda")) -> list[dict]:
    """Rows (ld source, mismatch mode) with fitted s2, lambda, h2 of the constant prior vs truth and held-out gain.

    The first half of the region's windows is the training set, the second half the held-out set. `flank`
    extended variants on each side of a core (300, about 350 kb here): with 100 the effects of variants in LD
    beyond (i)+ inflate the in-sample h2 by about 30 %. The region: `simulate_region`.
    """
    reg = simulate_region(n_cohort, n_panel, length, N, h2, M_genome, seed, maf, split_gens, recombination_rate)
    freq, z, M = reg.freq, reg.z, reg.M
    h2_region_true = h2 * M / M_genome
    rows = []
    for label, R in reg.lds.items():
        windows, aux = make_windows(R, z, freq, core_size, flank)
        half = len(windows) // 2
        tr, ho = (windows[:half], aux[:half]), (windows[half:], aux[half:])
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
