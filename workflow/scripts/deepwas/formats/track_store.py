"""The track store: bigWig tracks as per-chromosome memory-mapped arrays (built by
`features.tracks.build_track_store`, read by `features.tracks.gather_windows`).

Store layout (one directory)
----------------------------
- ``{chrom}.npy``: a plain ``.npy`` file of shape ``[chrom_len, n_tracks]`` (position-major, C order),
  dtype float16 by default (float32 on request). Row ``i`` holds the values of every track at the 0-based
  GRCh38 position ``i`` (1-based position ``i + 1``). Open with ``np.load(path, mmap_mode="r")``.
- ``tracks.json``: track names in the fixed manifest order, source md5s, dtype, layout, chromosome sizes,
  the window convention and the build report (per-track coverage counts, NaN/gap counts, float16 clipping).
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import atomic_path, write_json

STORE_FORMAT = "deepwas-track-store/1"


class TrackStoreError(ValueError):
    """A track store cannot be built or used; the message names the file and the problem."""


@contextlib.contextmanager
def chromosome_array_writer(out_dir, chrom: str, shape: tuple[int, int], dtype):
    """A writable `[chrom_len, n_tracks]` memmap for `{chrom}.npy`, moved into place when the block exits."""
    with atomic_path(Path(out_dir) / f"{chrom}.npy") as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        yield arr
        arr.flush()
        del arr


def write_store_meta(out_dir, meta: dict) -> None:
    """Write `tracks.json` (written last: a store without it is incomplete)."""
    write_json(Path(out_dir) / "tracks.json", meta)


@dataclass
class TrackStore:
    """An opened store: memory-mapped per-chromosome arrays plus the metadata."""

    path: Path
    meta: dict
    _arrays: dict = field(default_factory=dict, repr=False)

    @property
    def track_names(self) -> list[str]:
        return list(self.meta["track_names"])

    @property
    def n_tracks(self) -> int:
        return len(self.meta["track_names"])

    @property
    def chrom_sizes(self) -> dict[str, int]:
        return dict(self.meta["chrom_sizes"])

    def resolve(self, chrom) -> str | None:
        """The store's name for a chromosome: ``"1"`` and ``"chr1"`` are the same chromosome."""
        chrom = str(chrom)
        sizes = self.meta["chrom_sizes"]
        for c in (chrom, chrom.removeprefix("chr"), "chr" + chrom.removeprefix("chr")):
            if c in sizes:
                return c
        return None

    def array(self, chrom: str) -> np.ndarray | None:
        """The ``[chrom_len, n_tracks]`` memmap of a chromosome, or None if the store lacks it."""
        chrom = self.resolve(chrom)
        if chrom is None:
            return None
        a = self._arrays.get(chrom)
        if a is None:
            a = np.load(self.path / f"{chrom}.npy", mmap_mode="r")
            if a.shape != (self.meta["chrom_sizes"][chrom], self.n_tracks):
                raise TrackStoreError(f"{self.path / (chrom + '.npy')}: shape {a.shape} does not match tracks.json")
            self._arrays[chrom] = a
        return a

    def files(self) -> list[Path]:
        return [self.path / f"{c}.npy" for c in self.meta["chrom_sizes"]]

    def __getstate__(self):  # memmaps are reopened in each worker process
        return {"path": self.path, "meta": self.meta, "_arrays": {}}


def open_track_store(path) -> TrackStore:
    """Open a store written by `features.tracks.build_track_store` (arrays are memory-mapped on first use)."""
    path = Path(path)
    meta_path = path / "tracks.json"
    if not meta_path.exists():
        raise TrackStoreError(f"{meta_path}: no tracks.json; is {path} a track store (build_track_store)?")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != STORE_FORMAT:
        raise TrackStoreError(f"{meta_path}: format {meta.get('format')!r}, expected {STORE_FORMAT!r}")
    return TrackStore(path, meta)
