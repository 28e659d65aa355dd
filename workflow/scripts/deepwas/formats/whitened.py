"""Whitened statistics of one trait and chromosome (`results/stats/{trait}/chr{c}.npz`; paper Sec. 4.2).

One `.npz` with four arrays per factorised window `name`:

- `y/{name}`: the whitened statistics y = lam^-1/2 U^T z_(i) (r), what the likelihood reads;
- `z2/{name}`: the squared z-scores of the core variants (n), for LD score regression (App. A.4);
- `ldscore/{name}`: the whole-window LD scores of the core variants (n);
- `n/{name}`: the per-variant GWAS sample sizes of the core variants (n).

`write_whitened` is the only writer and `WhitenedStats` the only reader.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ..io import atomic_path

WHITENED_ARRAYS = ("y", "z2", "ldscore", "n")


def write_whitened(path, windows: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Write {window name: {'y', 'z2', 'ldscore', 'n'}} as one npz."""
    arrays = {}
    for name, arr in windows.items():
        missing = [a for a in WHITENED_ARRAYS if a not in arr]
        if missing:
            raise ValueError(f"{path}: window {name} lacks {missing}")
        for a in WHITENED_ARRAYS:
            arrays[f"{a}/{name}"] = arr[a]
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


class WhitenedStats:
    """Lazy reader of a whitened-statistics file: `stats.window(name)` -> {'y', 'z2', 'ldscore', 'n'}.

    The npz is opened on first use and members are read on demand; the open handle is not pickled (a copy
    in a worker process reopens the file).
    """

    def __init__(self, path):
        self.path = Path(path)
        self._z = None

    def __getstate__(self):
        return dict(self.__dict__, _z=None)

    def _open(self):
        if self._z is None:
            try:
                self._z = np.load(self.path, allow_pickle=False)
            except (OSError, ValueError, EOFError) as err:
                raise ValueError(f"{self.path}: cannot read whitened statistics ({err}); delete it and rerun "
                                 "the whiten rule") from err
        return self._z

    def names(self) -> list[str]:
        """The windows in the file."""
        return [k.split("/", 1)[1] for k in self._open().files if k.startswith("y/")]

    def window(self, name: str, arrays=WHITENED_ARRAYS) -> dict[str, np.ndarray]:
        """The arrays `arrays` of window `name`."""
        z = self._open()
        missing = [a for a in arrays if f"{a}/{name}" not in z.files]
        if missing:
            raise ValueError(f"{self.path}: no {missing} for window {name}; the statistics were whitened against "
                             "other LD factors: rerun the whiten rule")
        return {a: z[f"{a}/{name}"] for a in arrays}

    def close(self) -> None:
        if self._z is not None:
            self._z.close()
            self._z = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
