"""The demo cohort's genotypes (`resources/demo/genotypes/chr{c}.npz`): allele counts [variants, people]
with the variants' positions and alleles; kept for tests and individual-level checks."""
from __future__ import annotations

import numpy as np

from ..io import atomic_path


def write_genotypes(path, genotypes, positions, allele1, allele2) -> None:
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, genotypes=genotypes, positions=positions, allele1=allele1, allele2=allele2)


def read_genotypes(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
