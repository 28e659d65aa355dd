"""Shared msprime fixtures: small, seeded coalescent cohorts (cached per session)."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from deepwas.simulate import Chromosome, simulate_chromosome


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
    """msprime_chromosome(n_individuals, length, seed) -> deepwas.simulate.Chromosome (read-only arrays)."""
    return _chromosome


@pytest.fixture(scope="session")
def msprime_genotypes():
    """msprime_genotypes(n_individuals, length, seed) -> standardised genotypes (M variants x N people, read-only)."""
    return _standardised


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
