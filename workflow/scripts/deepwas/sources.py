"""Window sources: how training and evaluation windows reach the trainer (paper Sec. 4.1, App. A.3).

A window source has `__len__`, `mean_n_core`, `order(seed, epoch)`, `order_key` (what the order depends on
beyond the training configuration: None for `window_order`'s; the checkpoint fingerprint includes it, so a
resume never continues an epoch in another order) and `iter_epoch(seed, epoch, start)` yielding the epoch's
`WindowData` from position `start` of a deterministic order.

- `InMemoryWindows`: a list of `WindowData` (demo scale), in the seeded order `window_order`;
- `StreamingWindows`: windows read from disk during training when they do not fit in memory (UKBB: 2,763
  windows x 13,000 variants x 165 tracks x 256 bp). It yields the same `WindowData` as `load_windows` +
  `make_window` (bit for bit: the same arrays go through the same code), read by `features.loader`'s
  `WindowDataset` in worker processes with prefetch, with the feature rows of overlapping neighbouring
  windows reused. The feature normalisation is fitted in one streaming pass over the factor files
  (`fit_scaler_streaming`; no tracks read).

`iter_windows` / `load_windows` read (name, factors, statistics, raw pred features) per window;
`use_streaming` decides between the two sources (`train.stream`).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import get_worker_info

from .features.loader import WindowDataset, make_loader, run_order
from .features.pred import FeatureScaler, annotation_block, pred_feature_names, pred_features
from .features.tracks import gather_windows
from .features.variants import gather_kept
from .formats.factors import factor_path, load_factors, ok_rows, ok_windows
from .formats.whitened import WhitenedStats
from .whitening import trait_factors
from .window import make_window


def window_order(n_windows: int, seed: int, epoch: int) -> np.ndarray:
    """The seeded order of an epoch's windows (a permutation drawn from (seed, epoch))."""
    return np.random.default_rng([seed, epoch]).permutation(n_windows)


class InMemoryWindows:
    """Window source over a list of `WindowData`; `order(seed, epoch)` (default `window_order`) gives the
    indices of an epoch (a custom order must be deterministic and set `order_key`)."""

    def __init__(self, windows, order: Callable | None = None, order_key: str | None = None):
        self.windows = list(windows)
        self.names = [w.name for w in self.windows]
        self._order = order
        self.order_key = order_key

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def mean_n_core(self) -> float:
        return float(np.mean([w.n_core for w in self.windows]))

    def order(self, seed: int, epoch: int):
        return self._order(seed, epoch) if self._order is not None else window_order(len(self.windows), seed, epoch)

    def iter_epoch(self, seed: int, epoch: int, start: int = 0):
        for i in list(self.order(seed, epoch))[start:]:
            yield self.windows[i]


def as_window_source(windows):
    """A window source as is, or a list of `WindowData` wrapped in `InMemoryWindows`."""
    return windows if hasattr(windows, "iter_epoch") else InMemoryWindows(windows)


def load_windows(chrom_inputs, annotations=None, tracks=None) -> list[tuple[str, dict, dict, np.ndarray]]:
    """All of `iter_windows` as a list (training in memory, s2 estimation)."""
    return list(iter_windows(chrom_inputs, annotations, tracks))


def iter_windows(chrom_inputs, annotations=None, tracks=None):
    """(name, factors, stats, raw pred features) for the windows of the given chromosomes, one at a time.

    chrom_inputs: iterable of (factor_dir, manifest_tsv, stats_npz). Variants absent from the
    annotation table get 0 annotations (counted in the returned stats under 'n_missing_annotation').
    tracks: a `features.variants.VariantTracks`; then factors['tracks'] holds the normalised [m, d_func, w]
    windows, the pred features end with the missing-tracks indicator, and stats['n_missing_tracks'] counts
    the variants without features. Held in memory by `load_windows` (demo scale; UKBB-scale training
    streams them with `StreamingWindows`).
    """
    for factor_dir, manifest, stats_npz in chrom_inputs:
        with WhitenedStats(stats_npz) as stats:
            have = set(stats.names())
            for name in ok_rows(manifest)["window"]:
                if name in have:            # else the trait has no statistics in the window's core
                    yield _read_window(factor_dir, name, stats, annotations, tracks)


def trait_window_factors(factor_file, stats: WhitenedStats, name: str, members=None) -> dict:
    """A window's factor arrays as the trait sees them (`whitening.trait_factors`: its variants, its
    frequencies, and its own factors where it lacks core variants)."""
    fac = load_factors(factor_file, members)
    view = stats.view(name, with_factors=members is None or "G" in members)
    return fac if view is None else trait_factors(fac, view)


def _read_window(factor_dir, name, stats: WhitenedStats, annotations, tracks):
    """One window of `iter_windows`."""
    fac = trait_window_factors(factor_path(factor_dir, name), stats, name)
    ann, n_missing = annotation_block(annotations, fac["keys"])
    wstats = stats.window(name)
    wstats["n_missing_annotation"] = n_missing
    missing = None
    if tracks is not None:
        fac["tracks"], missing = tracks(fac["keys"])
        wstats["n_missing_tracks"] = int(missing.sum())
    return name, fac, wstats, pred_features(fac, ann, missing)


def trait_sample_size(loaded) -> float:
    """The trait's N: the median per-variant sample size over the core variants loaded."""
    ns = np.concatenate([s["n"] for _, _, s, _ in loaded])
    return float(np.median(ns))


def fit_scaler_streaming(chrom_inputs, annotations=None, tracks=None) -> tuple[FeatureScaler, dict]:
    """FeatureScaler of the pred features over all training variants, one window at a time.

    Reads only freq, ldscore and keys of each factor file (npz members are read lazily); the tracks_missing
    column comes from the variants' GRCh38 positions (`gather_windows` with w = 1, whose missing mask does
    not depend on w). Mean and variance are merged per window with Chan et al.'s pairwise update, so the
    result equals `FeatureScaler.fit` on the concatenated features up to float64 rounding (not bit for bit).
    Returns (scaler, counts) with counts n_variants, n_missing_tracks, n_missing_annotation.
    """
    names = None
    n, mean, m2 = 0, None, None
    counts = {"n_variants": 0, "n_missing_tracks": 0, "n_missing_annotation": 0}
    for name, path, stats_path, _, _ in ok_windows(chrom_inputs):
        with WhitenedStats(stats_path) as st:
            fac = trait_window_factors(path, st, name, ("freq", "ldscore", "keys"))
        ann, n_missing = annotation_block(annotations, fac["keys"])
        counts["n_missing_annotation"] += n_missing
        missing = None
        if tracks is not None:
            chrom, pos = tracks.positions(fac["keys"])
            _, missing = gather_windows(tracks.store, chrom, pos, w=1)
            counts["n_missing_tracks"] += int(missing.sum())
        X = pred_features(fac, ann, missing)
        if X.shape[0] == 0:
            continue
        bn, bmean = X.shape[0], X.mean(0)
        bm2 = ((X - bmean) ** 2).sum(0)
        if n == 0:
            n, mean, m2 = bn, bmean, bm2
        else:
            delta = bmean - mean
            tot = n + bn
            mean = mean + delta * (bn / tot)
            m2 = m2 + bm2 + delta ** 2 * (n * bn / tot)
            n = tot
        counts["n_variants"] += bn
    names = pred_feature_names(list(annotations.columns) if annotations is not None else [], tracks is not None)
    if n == 0:
        raise ValueError("cannot fit feature normalisation: no training variants")
    sd = np.sqrt(m2 / n)
    return FeatureScaler(names, mean, np.where(sd > 0, sd, 1.0)), counts


class WindowReader:
    """Picklable `load_window(name)` for `features.loader.WindowDataset`: the arrays `make_window` needs.

    Returns G, lam, core, freq, y (whitened statistics 'y/{name}' of the chromosome's stats npz), raw pred
    features, and with tracks the window's chromosome and GRCh38 positions (for the loader's gather).
    The stats files are opened lazily in each process (open handles are not pickled).
    """

    def __init__(self, windows: dict, annotations=None, tracks=None, with_u: bool = False):
        self.windows = dict(windows)                 # name -> (factor npz, stats npz)
        self.annotations = annotations
        self.tracks = tracks
        self.with_u = with_u                         # U too (the mismatch lambda of R~ needs it)
        self._stats = {}

    def __getstate__(self):
        return dict(self.__dict__, _stats={})

    def _st(self, stats_path: Path) -> WhitenedStats:
        st = self._stats.get(stats_path)
        if st is None:
            st = self._stats[stats_path] = WhitenedStats(stats_path)
        return st

    def __call__(self, name: str) -> dict:
        factor_path, stats_path = self.windows[name]
        st = self._st(stats_path)
        fac = trait_window_factors(factor_path, st, name)
        item = {"G": fac["G"], "lam": fac["lam"], "core": fac["core"], "freq": fac["freq"], "keys": fac["keys"],
                "y": st.window(name, ("y",))["y"],
                "pred": pred_features(fac, annotation_block(self.annotations, fac["keys"])[0])}
        if self.with_u:
            item["U"] = fac["U"]
        if self.tracks is not None:
            item["chrom"], item["pos_grch38"] = self.tracks.positions(fac["keys"])
        return item


class EpochWindows(WindowDataset):
    """`WindowDataset` that starts at a position of the epoch's order and yields `WindowData`.

    The order is `WindowDataset.order(num_workers)`; to start at position `start` with W workers, each
    worker skips its items among the first `start`, and DataLoader worker i plays the part of worker
    (k0 + i) % W, where k0 is the worker of item `start`: the DataLoader's round-robin then continues
    exactly where the full epoch would have been (runs of neighbours stay with one worker).
    """

    def __init__(self, *args, scaler: FeatureScaler, start: int = 0, mismatch=0.0, **kw):
        super().__init__(*args, as_torch=False, **kw)
        self.scaler, self.start, self.mismatch = scaler, int(start), mismatch

    def _item(self, name, cache):
        item = super()._item(name, cache)
        pred = item["pred"]
        if "features_missing" in item:
            pred = np.concatenate([pred, item["features_missing"][:, None].astype(np.float64)], 1)
        return make_window(name, item, item["y"], self.scaler.transform(pred), tracks=item.get("features"),
                           mismatch=self.mismatch)

    def __iter__(self):
        info = get_worker_info()
        W, i = (1, 0) if info is None else (info.num_workers, info.id)
        runs = run_order(len(self.windows), self.run_length, self.seed, self.epoch)
        per = [[x for r in runs[k::W] for x in r] for k in range(W)]
        seq = [k for j in range(max(len(p) for p in per)) for k in range(W) if j < len(per[k])]
        if self.start >= len(seq):
            return
        skip = np.bincount(np.asarray(seq[:self.start], dtype=np.int64), minlength=W)
        role = (seq[self.start] + i) % W
        cache = self._feature_cache()
        self.cache = cache
        for x in per[role][skip[role]:]:
            yield self._item(self.windows[x], cache)


class StreamingWindows:
    """Training windows read from disk during training: a window source for `training.Trainer`.

    chrom_inputs as for `load_windows`; `tracks` a `features.variants.VariantTracks` or None; `scaler` the
    pred-feature normalisation (default: `fit_scaler_streaming`). Windows are listed in manifest (genomic)
    order; each epoch they are cut into runs of `run_length` neighbours, shuffled by (seed, epoch)
    (`features.loader.run_order`) and read by `num_workers` processes with `prefetch` windows each in
    flight. The order depends on (seed, epoch, run_length, num_workers); with run_length = 1 it is
    `window_order` for any number of workers, i.e. the order of the in-memory list.
    """

    def __init__(self, chrom_inputs, annotations=None, tracks=None, scaler: FeatureScaler | None = None,
                 run_length: int = 4, num_workers: int = 2, prefetch: int = 2, mismatch=0.0):
        rows = ok_windows(chrom_inputs)
        if not rows:
            raise ValueError("no factorised training windows")
        self.names = [r[0] for r in rows]
        self.n_core = np.array([r[3] for r in rows])
        self.n_extended = np.array([r[4] for r in rows])
        self.tracks = tracks
        self.counts = {}
        if scaler is None:
            scaler, self.counts = fit_scaler_streaming(chrom_inputs, annotations, tracks)
        self.scaler = scaler
        self.mismatch = mismatch                     # likelihood.mismatch.Mismatch (or a lambda) of s2.json
        self.reader = WindowReader({r[0]: (r[1], r[2]) for r in rows}, annotations, tracks,
                                   with_u=bool(getattr(mismatch, "needs_u", mismatch)))
        self.run_length, self.num_workers, self.prefetch = max(1, int(run_length)), int(num_workers), int(prefetch)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def mean_n_core(self) -> float:
        return float(np.mean(self.n_core))

    @property
    def order_key(self) -> str | None:
        """None when the order is `window_order`'s; else what the order depends on (checkpoints)."""
        return None if self.run_length == 1 else f"runs{self.run_length}-workers{max(1, self.num_workers)}"

    def _dataset(self, seed: int, epoch: int, start: int = 0):
        gather = norm = None
        if self.tracks is not None:
            keep = self.tracks.keep
            gather = partial(gather_kept, self.tracks.store, w=self.tracks.w, keep=keep)
            norm = (self.tracks.mean[keep], self.tracks.sd[keep])
        ds = EpochWindows(self.names, self.reader, gather, seed=seed, run_length=self.run_length,
                                    normalisation=norm, scaler=self.scaler, start=start, mismatch=self.mismatch)
        ds.set_epoch(epoch)
        return ds

    def order(self, seed: int, epoch: int) -> list[str]:
        return self._dataset(seed, epoch).order(self.num_workers)

    def iter_epoch(self, seed: int, epoch: int, start: int = 0):
        """The epoch's `WindowData` from position `start` of `order(seed, epoch)`."""
        ds = self._dataset(seed, epoch, start)
        if self.num_workers == 0:         # in this process, the next windows assembled in a background thread
            yield from make_loader(ds, num_workers=0, prefetch_factor=self.prefetch)
            return
        # starting worker processes draws a base seed from the global torch RNG: restore it, so dropout in
        # training draws the same numbers as with in-memory windows (and as after a resume)
        rng = torch.get_rng_state()
        it = iter(make_loader(ds, num_workers=self.num_workers, prefetch_factor=self.prefetch))
        torch.set_rng_state(rng)
        yield from it


def track_bytes(chrom_inputs, tracks) -> int:
    """Bytes of float32 track windows of all extended variants of the windows (0 without tracks)."""
    if tracks is None:
        return 0
    return int(sum(r[4] for r in ok_windows(chrom_inputs))) * tracks.d_func * tracks.w * 4


STREAM_AUTO_BYTES = 4 * 2**30


def use_streaming(setting, chrom_inputs, tracks, limit_bytes: int = STREAM_AUTO_BYTES) -> bool:
    """`train.stream`: true/false, or auto = stream when the track windows of the training set exceed
    `limit_bytes` (4 GiB; in-memory training holds them all)."""
    if setting in (True, "true"):
        return True
    if setting in (False, "false", None):
        return False
    if setting != "auto":
        raise ValueError(f"train.stream must be auto, true or false, not {setting!r}")
    return track_bytes(chrom_inputs, tracks) > limit_bytes
