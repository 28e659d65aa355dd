"""Traits are independent (paper Sec. 4.2, Eqn 5, App. C.1): the LD factors depend on the LD source alone and each
trait's whitening restricts them to its own variants. The restricted window's likelihood against a dense
float64 reference on R[o,o] (values and gradients), the shared factors reused unchanged for a trait with every
variant, and a trait's statistics unchanged by another trait (the ld_factors and whiten rule scripts on an
msprime chromosome)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepwas.formats.factors import load_factors
from deepwas.formats.ukbb_ld import write_ld_window
from deepwas.formats.whitened import WhitenedStats
from deepwas.harmonise import variant_key
from deepwas.ld_factors import PSDLimits, factorise
from deepwas.likelihood.dense import nll_dense
from deepwas.likelihood.exact import nll
from deepwas.simulation.cohort import ld_matrix
from deepwas.whitening import restricted_factors, trait_factors, trait_window
from deepwas.windows import core_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
import ld_factors as ld_factors_script  # noqa: E402
import whiten as whiten_script  # noqa: E402


def _well_conditioned(X: np.ndarray, max_r: float = 0.9) -> np.ndarray:
    """Variants of X (variants x people, standardised) kept greedily while |r| < max_r with every kept one."""
    R = X @ X.T / X.shape[1]
    kept = []
    for j in range(len(R)):
        if not kept or np.abs(R[j, kept]).max() < max_r:
            kept.append(j)
    return np.array(kept)


@pytest.fixture(scope="module")
def window(msprime_genotypes):
    X = msprime_genotypes(600, 200_000, 13)
    X = X[_well_conditioned(X)][:160]
    # msprime genotypes of nested branches are exactly linearly dependent: shrink towards I (still a
    # correlation matrix) so that the factors hold all of R and the comparison is exact to rounding
    R = 0.9 * ld_matrix(X) + 0.1 * np.eye(len(X))
    m = len(R)
    core = np.arange(40, 120)
    rng = np.random.default_rng(2)
    phi = rng.exponential(0.3, m)
    z = R @ (rng.normal(size=m) * np.sqrt(phi)) + np.linalg.cholesky(R + 1e-12 * np.eye(m)) @ rng.normal(size=m)
    return R, core, z, phi


def _dense(R, core_in_sub, z_o, phi, s2):
    phi_t = torch.tensor(phi, requires_grad=True)
    s2_t = torch.tensor(s2, dtype=torch.float64, requires_grad=True)
    L = nll_dense(phi_t, s2_t, torch.tensor(R), torch.tensor(core_in_sub), torch.tensor(z_o), rtol=1e-12)
    L.backward()
    return L.item(), phi_t.grad.numpy(), s2_t.grad.item()


def _factored(G, y, lam, phi, s2):
    phi_t = torch.tensor(phi, requires_grad=True)
    s2_t = torch.tensor(s2, dtype=torch.float64, requires_grad=True)
    L = nll(phi_t, s2_t, torch.tensor(G), torch.tensor(y), torch.tensor(lam))
    L.backward()
    return L.item(), phi_t.grad.numpy(), s2_t.grad.item()


def test_restricted_window_likelihood_equals_dense_reference_on_R_oo(window):
    R, core, z, phi = window
    m = len(R)
    assert np.linalg.eigvalsh(R).min() > 1e-3                     # full rank: the factors hold all of R
    fac = factorise(R, core, rtol=1e-12)
    rng = np.random.default_rng(5)
    has = rng.random(m) > 0.15                                      # the trait lacks 15% of the variants
    has[core[:3]] = False                                           # ... among them core variants
    zt = np.where(has, z, np.nan)
    view = trait_window({"G": fac.G, "lam": fac.lam, "U": fac.U, "core": fac.core}, has, zt, rtol=1e-12)
    assert view.restricted and view.G.shape == (int(has.sum()), int(has[core].sum()))
    E = np.flatnonzero(has)
    o = core[has[core]]
    np.testing.assert_array_equal(E[view.core], o)
    for s2 in (0.7, 1.3):
        ref = _dense(R[np.ix_(E, E)], view.core, z[o], phi[E], s2)
        got = _factored(view.G, view.y, view.lam, phi[E], s2)
        # the factored NLL drops nothing but the constant sum(log mu) it also carries: compare like with like
        assert got[0] == pytest.approx(ref[0], rel=1e-10)
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-8, atol=1e-12)
        assert got[2] == pytest.approx(ref[2], rel=1e-9)
    # the shared (unrestricted) factors would be wrong here: the trait's z_o does not fill the core
    with pytest.raises(ValueError, match="non-finite"):
        from deepwas.ld_factors import whiten
        whiten(fac.U, fac.lam, zt[core])


def test_a_trait_with_the_whole_core_reuses_the_shared_factors(window):
    R, core, z, phi = window
    fac = factorise(R, core, rtol=1e-12)
    shared = {"G": fac.G, "lam": fac.lam, "U": fac.U, "core": fac.core, "ldscore": fac.ldscore,
              "keys": np.arange(len(R)).astype(str), "freq": np.full(len(R), np.nan)}
    has = np.ones(len(R), dtype=bool)
    has[[0, 5, 150]] = False                                        # extended variants only: a row selection
    view = trait_window(shared, has, np.where(has, z, np.nan), rtol=1e-12)
    assert not view.restricted
    np.testing.assert_array_equal(view.y, fac.whiten(z[core]))   # today's whitening, bit for bit
    t = trait_factors(shared, {"ext": view.ext, "core": view.core, "freq": np.full(view.ext.size, 0.3)})
    np.testing.assert_array_equal(t["G"], fac.G[has])
    assert t["lam"] is fac.lam and t["U"] is fac.U
    np.testing.assert_array_equal(t["ldscore"], fac.ldscore[has])
    np.testing.assert_array_equal(np.asarray(t["keys"])[t["core"]], shared["keys"][core])
    # restricting to every core variant gives back the same model: G_o G_o^T = G G^T, same spectrum
    Go, mu, _ = restricted_factors(fac.G, fac.lam, fac.U, np.flatnonzero(has), np.arange(core.size), 1e-12)
    np.testing.assert_allclose(Go @ Go.T, fac.G[has] @ fac.G[has].T, atol=1e-9)
    np.testing.assert_allclose(np.sort(mu), np.sort(fac.lam), rtol=1e-9)


def test_restricted_factors_use_bounded_memory(msprime_genotypes):
    """No m x n or m x m intermediate: one block of G's rows at a time besides G_o."""
    import tracemalloc

    X = msprime_genotypes(300, 600_000, 5)
    R = ld_matrix(X)
    m = len(R)
    core = np.arange(m // 3, m // 3 + 400)
    fac = factorise(R, core, rtol=1e-8)
    obs = np.arange(0, core.size, 2)
    ext = np.arange(m)
    tracemalloc.start()
    Go, mu, V = restricted_factors(fac.G, fac.lam, fac.U, ext, obs, 1e-8, block=64)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # G_o + V + the n_o x n_o block and its eigenvectors + T + one block of rows, never R[E, o] (m x n_o) twice
    budget = Go.nbytes + 3 * obs.size ** 2 * 8 + fac.lam.size * mu.size * 8 + 64 * fac.lam.size * 8
    assert peak < 1.5 * budget, (peak / 1e6, budget / 1e6)


# --- the rule scripts: factors without traits, and a trait's statistics unchanged by another trait ------------------

@pytest.fixture(scope="module")
def chromosome(tmp_path_factory, msprime_chromosome, msprime_genotypes):
    tmp = tmp_path_factory.mktemp("indep")
    chrom = msprime_chromosome(300, 400_000, 9)
    X = msprime_genotypes(300, 400_000, 9)
    variants = pd.DataFrame({"rsid": [f"rs{k}" for k in range(len(chrom.positions))], "chromosome": "1",
                             "position": chrom.positions, "allele1": chrom.allele1, "allele2": chrom.allele2})
    names, prefixes = ["chr1_1_300001", "chr1_100001_400001"], []
    for name in names:
        s, e = map(int, name.split("_")[1:])
        idx = np.flatnonzero((chrom.positions >= s) & (chrom.positions < e))
        write_ld_window(tmp / name, ld_matrix(X[idx]), variants.iloc[idx].reset_index(drop=True), dtype=np.float32)
        prefixes.append(str(tmp / name))
    man = pd.DataFrame({"name": names, "chromosome": "1", "start": [1, 100_001], "end": [300_001, 400_001],
                        "kind": "npz"})
    core_table(man, 300_000, 100_000).to_csv(tmp / "cores.tsv", sep="\t", index=False)
    ld_factors_script.main(prefixes, tmp / "cores.tsv", tmp / "f", tmp / "f.manifest.tsv", 1e-6, 1e-4, PSDLimits(),
                           panel_size=300)
    rng = np.random.default_rng(4)
    z = rng.normal(size=len(variants))
    full = variants.assign(z=z, n=10_000.0, eaf=chrom.freq)
    full.to_csv(tmp / "a.tsv", sep="\t", index=False)
    # trait b: another build for a tenth of its variants (lost at harmonisation), so it lacks core variants
    lost = rng.random(len(variants)) < 0.1
    full[~lost].assign(z=z[~lost] + 0.5).to_csv(tmp / "b.tsv", sep="\t", index=False)
    return dict(tmp=tmp, variants=variants, z=z, lost=lost, names=names)


def _whiten(run, trait, out):
    t = run["tmp"]
    whiten_script.main(str(t / f"{trait}.tsv"), str(t / "f"), str(t / "f.manifest.tsv"), str(out / f"{trait}.npz"),
                       str(out / f"{trait}.manifest.tsv"), str(out / f"{trait}.json"), rtol=1e-6)


def test_factors_hold_every_ld_variant_and_a_trait_is_unchanged_by_another(chromosome):
    run = chromosome
    t = run["tmp"]
    keys = variant_key(run["variants"]).to_numpy()
    for name in run["names"]:                      # (i)+ is the whole window file, whatever the traits
        fac = load_factors(t / "f" / f"{name}.npz")
        s, e = map(int, name.split("_")[1:])
        pos = run["variants"]["position"].to_numpy()
        np.testing.assert_array_equal(fac["keys"], keys[(pos >= s) & (pos < e)])
        assert float(fac["panel_size"]) == 300 and np.isnan(fac["freq"]).all()   # no panel frequency recorded
    alone, both = t / "alone", t / "both"
    alone.mkdir(), both.mkdir()
    _whiten(run, "a", alone)
    _whiten(run, "b", both)
    _whiten(run, "a", both)
    for name in run["names"]:
        with WhitenedStats(alone / "a.npz") as x, WhitenedStats(both / "a.npz") as y:
            for k in ("y", "z2", "ldscore", "n"):
                np.testing.assert_array_equal(x.window(name)[k], y.window(name)[k])
            assert not x.restricted(name)
    # trait a has every variant: its y is the shared factors' whitening of z_(i); its freq is its own EAF
    fac = load_factors(t / "f" / f"{run['names'][0]}.npz")
    with WhitenedStats(alone / "a.npz") as x:
        w = x.window(run["names"][0])
        v = x.view(run["names"][0])
    zk = pd.Series(run["z"], index=keys)
    np.testing.assert_allclose(w["y"], fac["U"].T.astype(np.float64) @ zk[fac["keys"][fac["core"]]].to_numpy()
                               / np.sqrt(fac["lam"]), rtol=1e-12)
    assert np.isfinite(v["freq"]).all() and v["ext"].size == len(fac["keys"])


def test_a_trait_lacking_variants_is_restricted_and_counted(chromosome):
    run = chromosome
    t = run["tmp"]
    out = t / "b_only"
    out.mkdir()
    _whiten(run, "b", out)
    import json
    rep = json.loads((out / "b.json").read_text())
    man = pd.read_csv(out / "b.manifest.tsv", sep="\t").set_index("window")
    keys = variant_key(run["variants"]).to_numpy()
    lost = set(keys[run["lost"]])
    n_core_lost = 0
    for name in run["names"]:
        fac = load_factors(t / "f" / f"{name}.npz", ("keys", "core"))
        core_keys = fac["keys"][fac["core"]]
        missing = sum(k in lost for k in core_keys)
        n_core_lost += missing
        assert man.at[name, "n_core_without_stats"] == missing > 0
        assert man.at[name, "n_core"] == len(core_keys) - missing and bool(man.at[name, "restricted"])
        assert man.at[name, "n_extended"] == sum(k not in lost for k in fac["keys"])
    assert rep["windows_restricted"] == 2 and rep["core_variants_without_statistics"] == n_core_lost
    assert rep["extended_variants_without_statistics"] == int(sum(man["n_extended_without_stats"]))
    with WhitenedStats(out / "b.npz") as st:
        v = st.view(run["names"][0])
        assert st.restricted(run["names"][0]) and v["G"].shape == (v["ext"].size, st.window(run["names"][0])["y"].size)


# --- the workflow: adding a trait reruns neither the LD factors nor another trait's training ----------------------

E2E = ROOT / "tests" / "e2e"


def _snakemake(work: Path, *args):
    import subprocess
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow" / "scripts")}
    return subprocess.run([sys.executable, "-m", "snakemake", *args, "-s", str(ROOT / "Snakefile"), "--cores", "1",
                           "--configfile", "cfg.yaml"], cwd=work, capture_output=True, text=True, timeout=300, env=env)


def _planned(out: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run prints."""
    import re

    jobs = []
    for block in re.split(r"\n(?=\[.*\]\n(?:local)?rule )", "\n" + out):
        m = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if not m:
            continue
        w = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        wc = dict(kv.split("=", 1) for kv in w.group(1).split(", ")) if w else {}
        jobs.append((m.group(1), wc))
    return jobs


def test_adding_a_trait_plans_no_ld_factors_and_no_training_of_the_other_traits(tmp_path):
    """A finished run (every output made up to date with --touch, so Snakemake records its inputs and params),
    then a second trait in the sheet: the dry run plans that trait's jobs only."""
    import shutil

    import yaml

    cfg = yaml.safe_load((E2E / "config.yaml").read_text())
    cfg.update(chromosomes=["1", "2", "3"], heldout_chromosomes=["3"], models=["constant"], objectives=["deepwas"])
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    shutil.copy(E2E / "traits.tsv", tmp_path / "traits.tsv")
    summary = _snakemake(tmp_path, "--summary")
    assert summary.returncode == 0, summary.stderr[-3000:]
    for line in summary.stdout.splitlines()[1:]:
        path, _, rule = line.split("\t")[:3]
        p = tmp_path / path
        if rule == "ld_factors" and not path.endswith(".tsv"):
            p.mkdir(parents=True, exist_ok=True)                  # directory() output
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
    touch = _snakemake(tmp_path, "--touch")
    assert touch.returncode == 0, touch.stderr[-3000:]
    first = _snakemake(tmp_path, "-n")
    assert first.returncode == 0 and _planned(first.stdout) == [], first.stdout[-3000:]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "other.sumstats.gz").write_bytes(b"")
    with open(tmp_path / "traits.tsv", "a") as fh:
        fh.write("other\tdata/other.sumstats.gz\tukbb_409k\t\t0.9\n")
    dry = _snakemake(tmp_path, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = _planned(dry.stdout)
    rules = {r for r, _ in jobs}
    assert {"harmonise", "whiten", "estimate_s2", "train"} <= rules
    assert not rules & {"ld_factors", "window_table", "demo_cohort"}
    for rule, wc in jobs:
        if "trait" in wc:
            assert wc["trait"] == "other", (rule, wc)            # nothing of trait 'enriched' reruns
    assert sum(r == "whiten" for r, _ in jobs) == 3 and sum(r == "train" for r, _ in jobs) == 1


def test_factor_frequencies_come_from_the_ld_source(chromosome, tmp_path):
    """The factors' freq is the LD panel's (harmonise.reference_frequencies here; a window file's own `freq`
    column otherwise), never a trait's: a table given for allele2 counts as 1 - freq of allele1."""
    run = chromosome
    t = run["tmp"]
    v = run["variants"]
    ref_freq = np.random.default_rng(8).uniform(0.05, 0.95, len(v))
    swap = np.arange(len(v)) % 3 == 0                      # some rows written for the other allele
    table = pd.DataFrame({"chromosome": "chr1", "position": v["position"],
                          "allele1": np.where(swap, v["allele2"], v["allele1"]),
                          "allele2": np.where(swap, v["allele1"], v["allele2"]),
                          "freq": np.where(swap, 1 - ref_freq, ref_freq)})
    table.to_csv(tmp_path / "ref.tsv", sep="\t", index=False)
    ld_factors_script.main([str(t / n) for n in run["names"]], t / "cores.tsv", tmp_path / "f", tmp_path / "m.tsv",
                           1e-6, 1e-4, PSDLimits(), panel_size=300, reference_frequencies=tmp_path / "ref.tsv")
    by_key = pd.Series(ref_freq, index=variant_key(v).to_numpy())
    for name in run["names"]:
        fac = load_factors(tmp_path / "f" / f"{name}.npz", ("keys", "freq"))
        np.testing.assert_allclose(fac["freq"], by_key[fac["keys"]].to_numpy(), rtol=1e-12)
    assert (pd.read_csv(tmp_path / "m.tsv", sep="\t")["n_without_frequency"] == 0).all()
