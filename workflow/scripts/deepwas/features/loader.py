"""Training-window loader (paper App. A.3 at UKBB scale): LD factors, statistics and features of one window per item.

The loader does not know file formats: it takes

- ``load_window(name) -> dict`` of numpy arrays (the LD factors G, lam, U, core, ldscore, whitened
  statistics, variant table...), which must include the window's chromosome (``chrom_key``, a string or a
  per-variant array with one value) and the lifted 1-based GRCh38 positions of its (i)+ variants
  (``pos_key``, -1 for unmapped);
- ``gather(chrom, pos) -> (windows [m, d_func, w] float32, missing [m] bool)``, e.g.
  ``functools.partial(gather_windows, store, w=256)`` (any picklable callable; the store reopens its
  memmaps in each worker).

Order: ``windows`` must be listed in genomic order. Each epoch the list is cut into runs of ``run_length``
neighbouring windows, and the runs (not the windows) are shuffled with ``numpy.random.default_rng([seed,
epoch])``. Worker ``k`` of ``W`` processes runs ``k, k + W, ...`` in order, and the DataLoader interleaves
the workers round-robin, so the sequence is a deterministic function of (seed, epoch, num_workers) and each
worker reads neighbouring windows one after the other.

I/O reuse: consecutive UKBB windows overlap by two thirds (3 Mb long, 1 Mb stride), so each worker keeps the
feature rows of its previous window keyed by GRCh38 position and only gathers positions it has not seen.

Features in an item: ``features`` [m, d_func, w] (normalised with the training statistics when
``normalisation=(mean, sd)`` is given; the rows of unmapped variants are 0 after normalisation, i.e. the
training mean) and ``features_missing`` [m] float32 (1 = no GRCh38 position / no features).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


def run_order(n_windows: int, run_length: int, seed: int, epoch: int) -> list[list[int]]:
    """Runs of ``run_length`` consecutive window indices, in a seeded shuffled order."""
    runs = [list(range(s, min(n_windows, s + run_length))) for s in range(0, n_windows, run_length)]
    perm = np.random.default_rng([seed, epoch]).permutation(len(runs))
    return [runs[i] for i in perm]


class FeatureCache:
    """Feature rows of the previous window, so overlapping windows gather only their new positions."""

    def __init__(self, gather: Callable):
        self.gather = gather
        self.chrom = None
        self.pos = np.empty(0, dtype=np.int64)       # sorted unique mapped positions
        self.rows = None                             # [len(pos), d, w]
        self.n_reused = 0
        self.n_gathered = 0

    def __call__(self, chrom: str, pos: np.ndarray):
        pos = np.asarray(pos, dtype=np.int64)
        mapped = pos > 0
        uniq = np.unique(pos[mapped])
        if self.chrom == chrom and self.rows is not None and self.pos.size:
            k = np.clip(np.searchsorted(self.pos, uniq), 0, self.pos.size - 1)
            hit = self.pos[k] == uniq
        else:
            k = np.zeros(uniq.size, dtype=np.int64)
            hit = np.zeros(uniq.size, dtype=bool)
        new = uniq[~hit]
        if new.size or self.rows is None:            # (an empty gather still gives the row shape)
            g, gmiss = self.gather(chrom, new)
        else:
            g, gmiss = None, np.zeros(0, dtype=bool)
        if self.rows is not None:
            shape = self.rows.shape[1:]
            dtype = self.rows.dtype
        else:
            shape, dtype = g.shape[1:], g.dtype
        rows = np.empty((uniq.size,) + tuple(shape), dtype=dtype)
        umiss = np.zeros(uniq.size, dtype=bool)
        if hit.any():
            rows[hit] = self.rows[k[hit]]
            umiss[hit] = self.miss[k[hit]]
        if new.size:
            rows[~hit] = g
            umiss[~hit] = gmiss
        self.n_reused += int(hit.sum())
        self.n_gathered += int(new.size)
        self.chrom, self.pos, self.rows, self.miss = chrom, uniq, rows, umiss
        out = np.zeros((pos.size,) + tuple(shape), dtype=dtype)
        missing = np.ones(pos.size, dtype=bool)
        idx = np.searchsorted(uniq, pos[mapped])
        out[mapped] = rows[idx]
        missing[mapped] = umiss[idx]
        return out, missing


class WindowDataset(IterableDataset):
    """One item per training window: ``load_window(name)`` plus ``features`` / ``features_missing``."""

    def __init__(self, windows: Sequence[str], load_window: Callable[[str], dict], gather: Callable | None,
                 seed: int = 0, run_length: int = 4, normalisation: tuple | None = None,
                 chrom_key: str = "chrom", pos_key: str = "pos_grch38", as_torch: bool = True):
        self.windows = list(windows)
        self.load_window = load_window
        self.gather = gather
        self.seed = seed
        self.run_length = max(1, int(run_length))
        self.norm = None if normalisation is None else tuple(np.asarray(a, np.float32) for a in normalisation)
        self.chrom_key, self.pos_key = chrom_key, pos_key
        self.as_torch = as_torch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.windows)

    def order(self, num_workers: int = 0) -> list[str]:
        """The window names in the order iteration yields them for ``num_workers`` workers."""
        runs = run_order(len(self.windows), self.run_length, self.seed, self.epoch)
        W = max(1, num_workers)
        per = [[i for r in runs[k::W] for i in r] for k in range(W)]
        out = []
        for j in range(max(len(p) for p in per)):
            out.extend(self.windows[p[j]] for p in per if j < len(p))
        return out

    def _item(self, name: str, cache: FeatureCache | None) -> dict:
        item = dict(self.load_window(name))
        item["window"] = name
        if cache is not None:
            chrom = item[self.chrom_key]
            if not isinstance(chrom, str):
                u = np.unique(np.asarray(chrom).astype(str))
                if u.size != 1:
                    raise ValueError(f"{name}: a window must lie on one chromosome, found {u.tolist()}")
                chrom = str(u[0])
            feats, missing = cache(chrom, np.asarray(item[self.pos_key]))
            feats = np.array(feats, dtype=np.float32, copy=True)
            if self.norm is not None:
                mean, sd = self.norm
                if mean.shape[0] != feats.shape[1]:
                    raise ValueError(f"normalisation has {mean.shape[0]} tracks, features have {feats.shape[1]}")
                feats -= mean[None, :, None]
                feats /= sd[None, :, None]
                feats[missing] = 0.0
            item["features"] = feats
            item["features_missing"] = missing.astype(np.float32)
        if self.as_torch:
            item = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) and v.dtype.kind in "biuf" else v
                    for k, v in item.items()}
        return item

    def __iter__(self):
        info = get_worker_info()
        W, k = (1, 0) if info is None else (info.num_workers, info.id)
        runs = run_order(len(self.windows), self.run_length, self.seed, self.epoch)[k::W]
        cache = FeatureCache(self.gather) if self.gather is not None else None
        self.cache = cache
        for run in runs:
            for i in run:
                yield self._item(self.windows[i], cache)


def make_loader(dataset: WindowDataset, num_workers: int = 2, prefetch_factor: int = 2) -> DataLoader:
    """A DataLoader yielding one window per step (no collation), with worker processes and prefetch."""
    kw = dict(batch_size=None, num_workers=num_workers)
    if num_workers > 0:
        kw.update(prefetch_factor=prefetch_factor, persistent_workers=False)
    return DataLoader(dataset, **kw)
