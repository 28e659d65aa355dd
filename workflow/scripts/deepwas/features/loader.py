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
feature rows of its previous window keyed by GRCh38 position and only gathers (and normalises) positions it
has not seen; the item is assembled in one pass from the previous item's rows and the new ones
(`FeatureCache`), in page-locked memory when CUDA is available. `make_loader` runs the dataset in worker
processes, or (``num_workers=0``) in a background thread that keeps the next windows ready (`Prefetch`):
numpy and memmap work releases the GIL, and the thread avoids passing each window's features between
processes. `benchmarks/loader.py` measures the configurations.

Features in an item: ``features`` [m, d_func, w] (normalised with the training statistics when
``normalisation=(mean, sd)`` is given; the rows of unmapped variants are 0 after normalisation, i.e. the
training mean) and ``features_missing`` [m] float32 (1 = no GRCh38 position / no features).
"""
from __future__ import annotations

import sys
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
    """Feature rows of the previous window, so overlapping windows gather only their new positions.

    Each call returns ``(features [n, d, w], missing [n])`` for the positions of one window, built in one
    pass: rows of positions the previous window also had are copied from the previous window's output
    (no second gather, no re-normalisation), the rest are gathered and passed through ``transform`` (e.g.
    the training normalisation; applied to newly gathered rows only). The previous output is read, not
    copied, so callers must not modify returned features in place (the loader's items do not). With
    ``pin=True`` the output is allocated in page-locked memory (a numpy view of a pinned torch tensor), so
    the host-to-GPU copy can be asynchronous; ``reuse=False`` gathers every window afresh (the plain loader).
    Unpinned outputs are views of up to ``max_spare`` buffers that are reused once nothing refers to an
    earlier item's features any more (reference count), which saves faulting in fresh pages per window; the
    buffers stay allocated while the cache lives.
    """

    def __init__(self, gather: Callable, transform: Callable | None = None, pin: bool = False, reuse: bool = True,
                 max_spare: int = 6):
        self.gather = gather
        self._pool: list = []                        # output buffers, reused once no item refers to them
        self.max_spare = int(max_spare)
        self.transform = transform
        self.pin = bool(pin)
        self.reuse = bool(reuse)
        self.chrom = None
        self.pos = np.empty(0, dtype=np.int64)       # sorted unique mapped positions of the previous window
        self.src = np.empty(0, dtype=np.int64)       # their rows in the previous output
        self.rows = None                             # previous output [n_prev, d, w]
        self.miss = np.zeros(0, dtype=bool)          # missing flag per unique position
        self.n_reused = 0
        self.n_gathered = 0

    def _alloc(self, shape, dtype):
        if self.pin:              # torch's pinned host allocator caches and recycles freed blocks itself
            return torch.empty(shape, dtype=torch.from_numpy(np.empty(0, dtype=dtype)).dtype, pin_memory=True).numpy()
        size = int(np.prod(shape))
        pool = self._pool
        for i in range(len(pool)):
            # a buffer nobody else references (no item, view or tensor of it left: the list's reference and
            # getrefcount's argument only) is reused: no fresh pages to fault in (2.2 GB per paper-size window)
            if pool[i].dtype == dtype and pool[i].size >= size and sys.getrefcount(pool[i]) == 2:
                return pool[i][:size].reshape(shape)
        buf = np.empty(int(size * 1.1) + 1, dtype=dtype)     # room for the next windows' size variation
        if len(pool) >= self.max_spare:
            free = [i for i in range(len(pool)) if sys.getrefcount(pool[i]) == 2]
            if not free:
                return buf[:size].reshape(shape)
            del pool[free[0]]
        pool.append(buf)
        return buf[:size].reshape(shape)

    def __call__(self, chrom: str, pos: np.ndarray):
        pos = np.asarray(pos, dtype=np.int64)
        mapped = pos > 0
        uniq, first = np.unique(pos[mapped], return_index=True)
        rows_of_mapped = np.flatnonzero(mapped)
        if self.reuse and self.chrom == chrom and self.rows is not None and self.pos.size:
            k = np.clip(np.searchsorted(self.pos, uniq), 0, self.pos.size - 1)
            hit = self.pos[k] == uniq
        else:
            k = np.zeros(uniq.size, dtype=np.int64)
            hit = np.zeros(uniq.size, dtype=bool)
        new = uniq[~hit]
        if new.size or self.rows is None:            # (an empty gather still gives the row shape)
            g, gmiss = self.gather(chrom, new)
            if self.transform is not None and new.size:
                g = self.transform(g, gmiss)
        else:
            g, gmiss = None, np.zeros(0, dtype=bool)
        if g is not None:
            shape, dtype = g.shape[1:], g.dtype
        else:
            shape, dtype = self.rows.shape[1:], self.rows.dtype
        out = self._alloc((pos.size,) + tuple(shape), dtype)
        missing = np.ones(pos.size, dtype=bool)
        umiss = np.zeros(uniq.size, dtype=bool)
        # unique position j -> its rows in `out` (duplicated positions: every occurrence)
        inv = np.searchsorted(uniq, pos[mapped])
        dst_first = rows_of_mapped[first]            # first row of each unique position
        if hit.any():
            out[dst_first[hit]] = self.rows[self.src[k[hit]]]
            umiss[hit] = self.miss[k[hit]]
        if new.size:
            out[dst_first[~hit]] = g
            umiss[~hit] = gmiss
        dup = rows_of_mapped[rows_of_mapped != dst_first[inv]]
        if dup.size:
            out[dup] = out[dst_first[inv[rows_of_mapped != dst_first[inv]]]]
        unmapped = np.flatnonzero(~mapped)
        if unmapped.size:
            out[unmapped] = 0
        missing[mapped] = umiss[inv]
        self.n_reused += int(hit.sum())
        self.n_gathered += int(new.size)
        self.chrom, self.pos, self.src, self.rows, self.miss = chrom, uniq, dst_first, out, umiss
        return out, missing


def normalise_rows(mean: np.ndarray, sd: np.ndarray):
    """``transform`` for `FeatureCache`: (x - mean) / sd per track, rows of missing variants 0 (the mean)."""
    def transform(g, gmiss):
        if mean.shape[0] != g.shape[1]:
            raise ValueError(f"normalisation has {mean.shape[0]} tracks, features have {g.shape[1]}")
        g = np.asarray(g, dtype=np.float32)
        g -= mean[None, :, None]
        g /= sd[None, :, None]
        g[gmiss] = 0.0
        return g
    return transform


def _put(q, stop, item) -> bool:
    import queue

    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _produce(iterable, q, stop, end):
    """The prefetch thread's body; it holds no reference to its `Prefetch`, so an abandoned one is collected
    and its `__del__` stops the thread."""
    try:
        for item in iterable:
            if not _put(q, stop, (True, item)):
                return
    except BaseException as err:  # noqa: BLE001 - handed to the consumer
        _put(q, stop, (False, err))
        return
    _put(q, stop, (True, end))


class Prefetch:
    """Iterate ``iterable`` in a background thread, keeping up to ``depth`` items ready.

    The loader's work (memmap reads, numpy indexing and copies) releases the GIL, so the next window is
    assembled while the training step runs. Items come out in the same order; an exception in the thread
    is raised in the consumer at the item where it happened. Closing (or dropping) the iterator stops the
    thread (it finishes at most the item it is assembling)."""

    _END = object()

    def __init__(self, iterable, depth: int = 1):
        import queue
        import threading

        self.depth = max(1, int(depth))
        self._q = queue.Queue(maxsize=self.depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_produce, args=(iterable, self._q, self._stop, self._END),
                                        daemon=True, name="deepwas-prefetch")
        self._thread.start()

    def __iter__(self):
        return self

    def __next__(self):
        if self._stop.is_set() and self._q.empty():
            raise StopIteration
        ok, item = self._q.get()
        if not ok:
            self.close()
            raise item
        if item is self._END:
            self.close()
            raise StopIteration
        return item

    def close(self):
        self._stop.set()

    def __del__(self):
        self._stop.set()


class WindowDataset(IterableDataset):
    """One item per training window: ``load_window(name)`` plus ``features`` / ``features_missing``."""

    def __init__(self, windows: Sequence[str], load_window: Callable[[str], dict], gather: Callable | None,
                 seed: int = 0, run_length: int = 4, normalisation: tuple | None = None,
                 chrom_key: str = "chrom", pos_key: str = "pos_grch38", as_torch: bool = True,
                 pin_memory: bool | None = None, reuse: bool = True):
        self.windows = list(windows)
        self.load_window = load_window
        self.gather = gather
        self.seed = seed
        self.run_length = max(1, int(run_length))
        self.norm = None if normalisation is None else tuple(np.asarray(a, np.float32) for a in normalisation)
        self.chrom_key, self.pos_key = chrom_key, pos_key
        self.as_torch = as_torch
        self.pin_memory = pin_memory             # None: pinned when CUDA is available and not in a worker
        self.reuse = bool(reuse)
        self.epoch = 0

    def _feature_cache(self) -> FeatureCache | None:
        if self.gather is None:
            return None
        pin = self.pin_memory
        if pin is None:
            pin = torch.cuda.is_available() and get_worker_info() is None   # workers: the DataLoader pins
        transform = None if self.norm is None else normalise_rows(*self.norm)
        return FeatureCache(self.gather, transform=transform, pin=bool(pin), reuse=self.reuse)

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
            if feats.dtype != np.float32:
                feats = feats.astype(np.float32)
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
        cache = self._feature_cache()
        self.cache = cache
        for run in runs:
            for i in run:
                yield self._item(self.windows[i], cache)


class ThreadLoader:
    """In-process loader: iterating it runs the dataset in a background thread (`Prefetch`), ``depth``
    windows ahead; the items and their order are the dataset's own."""

    def __init__(self, dataset, depth: int = 2):
        self.dataset, self.depth = dataset, int(depth)

    def __iter__(self):
        return Prefetch(self.dataset, self.depth)


def make_loader(dataset: WindowDataset, num_workers: int = 2, prefetch_factor: int = 2,
                pin_memory: bool | None = None):
    """Windows one per step (no collation): with ``num_workers`` > 0 a DataLoader of worker processes, each
    ``prefetch_factor`` windows ahead (pinned by the DataLoader when CUDA is available); with 0 a
    `ThreadLoader` (the dataset runs in a background thread of this process, ``prefetch_factor`` windows
    ahead; no inter-process copy of the 2.2 GB feature block of a paper-size window)."""
    if num_workers == 0:
        return ThreadLoader(dataset, prefetch_factor)
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    kw = dict(batch_size=None, num_workers=num_workers, pin_memory=bool(pin_memory))
    kw.update(prefetch_factor=prefetch_factor, persistent_workers=False)
    return DataLoader(dataset, **kw)
