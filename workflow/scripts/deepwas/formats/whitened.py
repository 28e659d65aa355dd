"""Whitened statistics of one trait and chromosome (`results/stats/{trait}/chr{c}.npz`; paper Sec. 4.2).

One `.npz` with these arrays per window `name` in which the trait has a core variant with statistics
(`whitening.trait_window`; the trait's variants of the window: its m_t extended and n_t core variants):

- `y/{name}`: the whitened statistics (r_t), what the likelihood reads;
- `z2/{name}`: the squared z-scores of the core variants (n_t), for LD score regression (App. A.4);
- `ldscore/{name}`: the whole-window LD scores of the core variants (n_t);
- `n/{name}`: the per-variant GWAS sample sizes of the core variants (n_t);
- `ext/{name}`: indices of the trait's variants into the factor file's (i)+ (m_t);
- `core/{name}`: indices of the trait's core variants into `ext` (n_t);
- `freq/{name}`: the trait's allele frequencies (of allele1) of its variants (m_t);
- `G/{name}`, `lam/{name}`, `U/{name}`: only where the trait lacks core variants of the window: the factors of
  the restricted window (m_t x r_t, r_t, n_t x r_t); elsewhere the factor file's serve.

`write_whitened` is the only writer and `WhitenedStats` the only reader.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ..io import atomic_path

WHITENED_ARRAYS = ("y", "z2", "ldscore", "n")
VIEW_ARRAYS = ("ext", "core", "freq")
RESTRICTED_ARRAYS = ("G", "lam", "U")


def write_whitened(path, windows: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Write {window name: {'y', 'z2', 'ldscore', 'n'[, 'ext', 'core', 'freq'[, 'G', 'lam', 'U']]}} as one npz
    (the whiten rule always writes the view 'ext', 'core', 'freq')."""
    arrays = {}
    for name, arr in windows.items():
        view = [a for a in VIEW_ARRAYS if arr.get(a) is not None]
        missing = [a for a in WHITENED_ARRAYS + (VIEW_ARRAYS if view else ()) if arr.get(a) is None]
        if missing:
            raise ValueError(f"{path}: window {name} lacks {missing}")
        for a in WHITENED_ARRAYS + VIEW_ARRAYS + RESTRICTED_ARRAYS:
            if arr.get(a) is not None:
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

    def view(self, name: str, with_factors: bool = True) -> dict[str, np.ndarray] | None:
        """The trait's view of window `name` (`whitening.trait_factors`): ext, core, freq, and G, lam, U where
        the trait lacks core variants of the window; None for a file without views (statistics whitened
        directly against the factors, e.g. in tests and simulations: the factors serve as they are)."""
        z = self._open()
        if f"ext/{name}" not in z.files:
            return None
        extra = tuple(a for a in RESTRICTED_ARRAYS if with_factors and f"{a}/{name}" in z.files)
        return self.window(name, VIEW_ARRAYS + extra)

    def sizes(self, name: str) -> tuple[int, int] | None:
        """(n_core, n_extended) of the trait's view of window `name`, None without a view."""
        z = self._open()
        if f"ext/{name}" not in z.files:
            return None
        return int(z[f"core/{name}"].size), int(z[f"ext/{name}"].size)

    def restricted(self, name: str) -> bool:
        """Whether the trait has its own (restricted) factors for window `name`."""
        return f"G/{name}" in self._open().files

    def close(self) -> None:
        if self._z is not None:
            self._z.close()
            self._z = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
