"""Shared msprime fixtures: small, seeded coalescent cohorts (cached per session)."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from deepwas.simulation.cohort import Chromosome, simulate_chromosome


@functools.lru_cache(maxsize=None)
def _chromosome(n_individuals: int, length: int, seed: int) -> Chromosome:
    chrom = simulate_chromosome("1", length, n_individuals, seed)
    for a in (chrom.positions, chrom.genotypes, chrom.allele1, chrom.allele2):
        a.setflags(write=False)
    return chrom


@functools.lru_cache(maxsize=None)
def _standardised(n_individuals: int, length: int, seed: int) -> np.ndarray:
    X = _chromosome(n_individuals, length, seed).standardised()
    X.setflags(write=False)
    return X


@pytest.fixture(scope="session")
def msprime_chromosome():
    """msprime_chromosome(n_individuals, length, seed) -> deepwas.simulation.cohort.Chromosome (read-only arrays)."""
    return _chromosome


@pytest.fixture(scope="session")
def msprime_genotypes():
    """msprime_genotypes(n_individuals, length, seed) -> standardised genotypes (M variants x N people, read-only)."""
    return _standardised


@functools.lru_cache(maxsize=None)
def _common_variant_ld(n_people: int = 200, length: int = 300_000, seed: int = 7, maf: float = 0.05) -> np.ndarray:
    import msprime

    ts = msprime.sim_ancestry(samples=n_people, population_size=10_000, sequence_length=length,
                              recombination_rate=1e-8, random_seed=seed)
    ts = msprime.sim_mutations(ts, rate=1e-8, random_seed=seed)
    hap = ts.genotype_matrix()
    X = (hap[:, 0::2] + hap[:, 1::2]).astype(np.float64)
    p = X.mean(1) / 2
    X = X[(p > maf) & (p < 1 - maf)]
    X = (X - X.mean(1, keepdims=True)) / X.std(1, keepdims=True)
    R = X @ X.T / X.shape[1]
    R.setflags(write=False)
    return R


@pytest.fixture(scope="session")
def msprime_ld():
    """msprime_ld(n_people, length, seed, maf) -> LD matrix R (float64, read-only) of common variants."""
    return _common_variant_ld


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run a module's small torch linear algebra on one thread (restored afterwards).

    On a busy 2-core machine torch's default thread pool makes 200 x 200 eigh ~100x slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _snakemake(workdir, configfiles, targets=(), extra=()):
    """The real Snakefile on tests/e2e/{configfiles} in `workdir`, building `targets` (default: rule `all`);
    the finished process (asserted successful)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    configfiles = (configfiles,) if isinstance(configfiles, str) else tuple(configfiles)
    # the targets first: --quiet takes several values ("--quiet rules all" is two of them)
    cmd = [sys.executable, "-m", "snakemake", *targets, "-s", str(repo / "Snakefile"), "--directory", str(workdir),
           "--configfile", *(str(repo / "tests/e2e" / c) for c in configfiles), "--cores", "2", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


def _run_workflow(workdir, configfile, files: tuple[str, ...] = (), targets: tuple[str, ...] = ()):
    """Run the real Snakefile on tests/e2e/{configfile} (one name or several, merged in order) in `workdir`
    (copying `files` from tests/e2e there), building `targets` (default: the default target, rule `all`)."""
    import shutil
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    for f in files:
        shutil.copy(repo / "tests/e2e" / f, Path(workdir) / f)
    _snakemake(workdir, configfile, targets, ("--quiet", "rules", "all"))
    return workdir


@pytest.fixture(scope="session")
def run_workflow():
    """run_workflow(workdir, configfile, files) -> workdir: the end-to-end DAG on a tests/e2e scenario."""
    return _run_workflow


# The two end-to-end scenarios, each run once per session and shared by the test modules that read them
# (a workflow run is most of the suite's time). They are read-only: a test that deletes, reruns or redraws
# anything works on a copy (shutil.copytree(..., symlinks=True): modification times kept, so Snakemake sees the
# copy as finished).
E2E_CONFIGS = ("config.yaml", "priors.yaml", "ablations.yaml")


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory):
    """tests/e2e/config.yaml with priors.yaml and ablations.yaml merged on top: `snakemake all figures
    ablations` (the msprime scenario without tracks: constant / GLM, prior files, h2 tables, an applied prior,
    the figures, one ablation). Used by test_e2e_demo, test_e2e_priors and test_report. Returns .dir (the
    workdir), .output (the run's stdout + stderr) and .configfiles (the --configfile paths, for reruns)."""
    import shutil
    from pathlib import Path
    from types import SimpleNamespace

    e2e = Path(__file__).resolve().parent / "e2e"
    d = tmp_path_factory.mktemp("e2e")
    shutil.copy(e2e / "traits.tsv", d / "traits.tsv")
    res = _snakemake(d, E2E_CONFIGS, ("all", "figures", "ablations"))
    return SimpleNamespace(dir=d, output=res.stdout + res.stderr, configfiles=[str(e2e / c) for c in E2E_CONFIGS])


@pytest.fixture(scope="session")
def tracks_run(tmp_path_factory):
    """tests/e2e/tracks.yaml, rule `all` (tracks, liftover, constant / GLM / transformer with both objectives,
    prior files and h2 tables). Returns the workdir. Used by test_e2e_tracks, test_e2e_priors and test_slurm (the
    local run its SLURM run is compared with)."""
    return _run_workflow(tmp_path_factory.mktemp("e2e_tracks"), "tracks.yaml", ("traits_tracks.tsv",))

