"""Per-window training data: LD factors + whitened statistics + per-variant features, as tensors.

A `WindowData` is what one likelihood step needs: G, lam, y (for one trait) and the model inputs of the
window's extended variants (`freq`, normalised `pred` features, optional `tracks`). The factor files are
written by the `ld_factors` rule (one `.npz` per window); the statistics by the `whiten` rule.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .io import atomic_path
from .ld_factors import WindowFactors

FACTOR_ARRAYS = ("G", "lam", "U", "core", "ldscore", "positions", "freq")


def save_factors(path, factors: WindowFactors, positions: np.ndarray, keys: np.ndarray, freq: np.ndarray,
                 dtype=np.float64) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, G=factors.G.astype(dtype), lam=factors.lam, U=factors.U.astype(dtype), core=factors.core,
                 ldscore=factors.ldscore, positions=positions, keys=keys.astype(str), freq=freq)


def load_factors(path, members=None) -> dict[str, np.ndarray]:
    """The arrays of a factor file (`members`: only these, read lazily from the npz), with clear errors."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            names = z.files if members is None else [k for k in members if k in z.files]
            out = {k: z[k] for k in names}
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: cannot read LD factor file ({err}); delete it and rerun the ld_factors rule") from err
    missing = [k for k in (FACTOR_ARRAYS if members is None else members) if k not in out]
    if missing:
        raise ValueError(f"{path}: LD factor file lacks {missing}; it was written by another version, rerun ld_factors")
    return out


@dataclass
class FeatureScaler:
    """Exact mean/sd of the per-variant features over the training variants (App. A.1 normalisation)."""

    names: list[str]
    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def fit(cls, names, blocks: list[np.ndarray]) -> "FeatureScaler":
        X = np.concatenate(blocks, 0) if blocks else np.zeros((0, len(names)))
        if X.shape[0] == 0:
            raise ValueError("cannot fit feature normalisation: no training variants")
        sd = X.std(0)
        return cls(list(names), X.mean(0), np.where(sd > 0, sd, 1.0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.sd

    def state(self) -> dict:
        return {"names": self.names, "mean": self.mean.tolist(), "sd": self.sd.tolist()}

    @classmethod
    def from_state(cls, s: dict) -> "FeatureScaler":
        return cls(list(s["names"]), np.asarray(s["mean"]), np.asarray(s["sd"]))


def pred_features(factors: dict, annotations: np.ndarray | None, tracks_missing: np.ndarray | None = None) -> np.ndarray:
    """Per-variant 'pred' features: [annotations..., frequency, MAF, LD score (, tracks_missing)] (DESIGN
    section 4); the last column, with track features, is 1 for variants without them."""
    freq = factors["freq"]
    cols = [freq, np.minimum(freq, 1 - freq), factors["ldscore"]]
    if tracks_missing is not None:
        cols.append(np.asarray(tracks_missing, dtype=np.float64))
    base = np.stack(cols, 1)
    return base if annotations is None else np.concatenate([annotations, base], 1)


def annotation_block(annotations, keys) -> tuple[np.ndarray | None, int]:
    """(annotation values of the variants `keys`, 0 where a variant is absent; how many are absent)."""
    if annotations is None:
        return None, 0
    a = annotations.reindex(keys)
    return a.fillna(0.0).to_numpy(dtype=np.float64), int(a.isna().any(axis=1).sum())


def pred_feature_names(annotation_names: list[str], tracks: bool = False) -> list[str]:
    """Names of the 'pred' columns; with track features the last one is the missing-tracks indicator."""
    return list(annotation_names) + ["frequency", "maf", "ldscore"] + (["tracks_missing"] if tracks else [])


@dataclass
class WindowData:
    name: str
    G: torch.Tensor
    lam: torch.Tensor
    y: torch.Tensor
    inputs: dict = field(default_factory=dict)      # freq, pred, (tracks)
    n_core: int = 0
    variants: np.ndarray | None = None              # variant keys of the rows (shared_forward's row identity)

    @property
    def m(self) -> int:
        return self.G.shape[0]

    @property
    def rank(self) -> int:
        return self.lam.shape[0]

    def to(self, device) -> "WindowData":
        return WindowData(self.name, self.G.to(device), self.lam.to(device), self.y.to(device),
                          {k: v.to(device) for k, v in self.inputs.items()}, self.n_core, self.variants)


def make_window(name: str, factors: dict, y: np.ndarray, pred: np.ndarray, tracks: np.ndarray | None = None) -> WindowData:
    tracks = factors.get("tracks") if tracks is None else tracks
    inputs = {"freq": torch.as_tensor(factors["freq"], dtype=torch.float64),
              "pred": torch.as_tensor(pred, dtype=torch.float32)}
    if tracks is not None:
        inputs["tracks"] = torch.as_tensor(tracks, dtype=torch.float32)
    return WindowData(name, torch.as_tensor(factors["G"], dtype=torch.float64),
                      torch.as_tensor(factors["lam"], dtype=torch.float64),
                      torch.as_tensor(y, dtype=torch.float64), inputs, int(factors["core"].shape[0]),
                      factors.get("keys"))


def read_annotations(path) -> "pd.DataFrame | None":
    """Optional per-variant annotation table (chromosome position allele1 allele2 + numeric columns)."""
    import pandas as pd

    from .harmonise import variant_key

    if not path:
        return None
    t = pd.read_csv(path, sep="\t", dtype={"chromosome": str})
    missing = [c for c in ("chromosome", "position", "allele1", "allele2") if c not in t.columns]
    if missing:
        raise ValueError(f"{path}: annotation table lacks column(s) {missing}")
    vals = t.drop(columns=["chromosome", "position", "allele1", "allele2"])
    bad = [c for c in vals.columns if not np.issubdtype(vals[c].dtype, np.number)]
    if bad:
        raise ValueError(f"{path}: annotation column(s) {bad} are not numeric")
    return vals.set_index(variant_key(t))


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
    import pandas as pd

    for factor_dir, manifest, stats_npz in chrom_inputs:
        man = pd.read_csv(manifest, sep="\t")
        with np.load(stats_npz) as st:
            stats = {k: st[k] for k in st.files}
        for name in man.loc[man["status"] == "ok", "window"]:
            fac = load_factors(Path(factor_dir) / f"{name}.npz")
            ann, n_missing = annotation_block(annotations, fac["keys"])
            wstats = {k.split("/")[0]: v for k, v in stats.items() if k.endswith("/" + name)}
            wstats["n_missing_annotation"] = n_missing
            missing = None
            if tracks is not None:
                fac["tracks"], missing = tracks(fac["keys"])
                wstats["n_missing_tracks"] = int(missing.sum())
            yield name, fac, wstats, pred_features(fac, ann, missing)


def trait_sample_size(loaded) -> float:
    """The trait's N: the median per-variant sample size over the core variants loaded."""
    ns = np.concatenate([s["n"] for _, _, s, _ in loaded])
    return float(np.median(ns))


# -- streaming training windows (issue 5 item 6) ----------------------------------------------------------
#
# `StreamingWindows` is the window source `training.Trainer` reads when the training windows do not fit in
# memory (UKBB: 2,763 windows x 13,000 variants x 165 tracks x 256 bp). It yields the same `WindowData` as
# `load_windows` + `make_window` (bit for bit: the same arrays go through the same code), read from disk by
# `features.loader.WindowDataset` in worker processes with prefetch, with the feature rows of overlapping
# neighbouring windows reused. The feature normalisation is fitted in one streaming pass over the factor
# files (`fit_scaler_streaming`; no tracks read).

from torch.utils.data import get_worker_info  # noqa: E402

from .features.loader import FeatureCache, WindowDataset, run_order  # noqa: E402


def ok_windows(chrom_inputs) -> list[tuple[str, Path, Path, int, int]]:
    """[(name, factor npz, stats npz, n_core, n_extended)] of the factorised windows, in manifest order."""
    import pandas as pd

    out = []
    for factor_dir, manifest, stats_npz in chrom_inputs:
        man = pd.read_csv(manifest, sep="\t")
        for _, r in man.loc[man["status"] == "ok"].iterrows():
            out.append((str(r["window"]), Path(factor_dir) / f"{r['window']}.npz", Path(stats_npz),
                        int(r["n_core"]), int(r["n_extended"])))
    return out


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
    for name, path, _, _, _ in ok_windows(chrom_inputs):
        fac = load_factors(path, ("freq", "ldscore", "keys"))
        ann, n_missing = annotation_block(annotations, fac["keys"])
        counts["n_missing_annotation"] += n_missing
        missing = None
        if tracks is not None:
            from .features.tracks import gather_windows

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

    def __init__(self, windows: dict, annotations=None, tracks=None):
        self.windows = dict(windows)                 # name -> (factor npz, stats npz)
        self.annotations = annotations
        self.tracks = tracks
        self._stats = {}

    def __getstate__(self):
        return dict(self.__dict__, _stats={})

    def _y(self, stats_path: Path, name: str) -> np.ndarray:
        st = self._stats.get(stats_path)
        if st is None:
            st = self._stats[stats_path] = np.load(stats_path, allow_pickle=False)
        return st[f"y/{name}"]

    def __call__(self, name: str) -> dict:
        factor_path, stats_path = self.windows[name]
        fac = load_factors(factor_path)
        item = {"G": fac["G"], "lam": fac["lam"], "core": fac["core"], "freq": fac["freq"], "keys": fac["keys"],
                "y": self._y(stats_path, name), "pred": pred_features(fac, annotation_block(self.annotations, fac["keys"])[0])}
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

    def __init__(self, *args, scaler: FeatureScaler, start: int = 0, **kw):
        super().__init__(*args, as_torch=False, **kw)
        self.scaler, self.start = scaler, int(start)

    def _item(self, name, cache):
        item = super()._item(name, cache)
        pred = item["pred"]
        if "features_missing" in item:
            pred = np.concatenate([pred, item["features_missing"][:, None].astype(np.float64)], 1)
        return make_window(name, item, item["y"], self.scaler.transform(pred), tracks=item.get("features"))

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
        cache = FeatureCache(self.gather) if self.gather is not None else None
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
    `training.window_order` for any number of workers, i.e. the order of the in-memory list.
    """

    def __init__(self, chrom_inputs, annotations=None, tracks=None, scaler: FeatureScaler | None = None,
                 run_length: int = 4, num_workers: int = 2, prefetch: int = 2):
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
        self.reader = WindowReader({r[0]: (r[1], r[2]) for r in rows}, annotations, tracks)
        self.run_length, self.num_workers, self.prefetch = max(1, int(run_length)), int(num_workers), int(prefetch)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def mean_n_core(self) -> float:
        return float(np.mean(self.n_core))

    @property
    def order_key(self) -> str | None:
        """None when the order is `training.window_order`'s; else what the order depends on (checkpoints)."""
        return None if self.run_length == 1 else f"runs{self.run_length}-workers{max(1, self.num_workers)}"

    def _dataset(self, seed: int, epoch: int, start: int = 0):
        import functools

        from .features.tracks import gather_windows

        gather = norm = None
        if self.tracks is not None:
            gather = functools.partial(gather_windows, self.tracks.store, w=self.tracks.w)
            norm = (self.tracks.mean, self.tracks.sd)
        ds = EpochWindows(self.names, self.reader, gather, seed=seed, run_length=self.run_length,
                                    normalisation=norm, scaler=self.scaler, start=start)
        ds.set_epoch(epoch)
        return ds

    def order(self, seed: int, epoch: int) -> list[str]:
        return self._dataset(seed, epoch).order(self.num_workers)

    def iter_epoch(self, seed: int, epoch: int, start: int = 0):
        """The epoch's `WindowData` from position `start` of `order(seed, epoch)`."""
        from .features.loader import make_loader

        ds = self._dataset(seed, epoch, start)
        if self.num_workers == 0:
            yield from ds
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


class LdsrExtras:
    """Lazy `{name: training.ldsr_inputs(...)}` for `training.ldsr_objective` over streamed windows
    (each look-up rereads the window's factor file and statistics; nothing is kept)."""

    def __init__(self, chrom_inputs):
        self.paths = {r[0]: (r[1], r[2]) for r in ok_windows(chrom_inputs)}

    def __getitem__(self, name):
        from .training import ldsr_inputs

        factor_path, stats_path = self.paths[name]
        with np.load(stats_path, allow_pickle=False) as st:
            z2, ldscore = st[f"z2/{name}"], st[f"ldscore/{name}"]
        return ldsr_inputs(load_factors(factor_path), z2, ldscore)
