"""Exact per-track normalisation statistics over the training chromosomes, and the check training runs.

Statistics are over every stored base of the chosen chromosomes (gaps stored as 0 included), of the values
as stored (float16-rounded where the store is float16), so they describe exactly what the model reads.
Each block of positions is reduced in float64 to (count, mean, M2) and blocks are merged with Chan et al.'s
pairwise update, which is exact up to float64 rounding and does not suffer the cancellation of
sum-of-squares formulas on tracks with a large mean. ``sd`` is the population standard deviation (ddof=0).

JSON layout::

    {"track_names": [...],            # the store's order; training compares it to its own
     "chromosomes": [...],            # the chromosomes the statistics were computed over
     "tracks": {name: {"mean": m, "sd": s, "n": count}},
     "store_dtype": "float16", "ddof": 0}
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..io import write_json
from .tracks import TrackStore, open_track_store


class NormalisationError(ValueError):
    """Normalisation statistics are missing or do not match the features; the message says how."""


def _merge(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    n = n_a + n_b
    if n == 0:
        return n, mean_a, m2_a
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta * delta * (n_a * n_b / n)
    return n, mean, m2


def track_statistics(store: TrackStore, chromosomes: Iterable[str], block: int = 1 << 18) -> dict:
    """Exact streaming mean / sd per track of ``store`` over ``chromosomes`` (see module docstring)."""
    chromosomes = [store.resolve(c) or str(c) for c in chromosomes]     # "1" and "chr1" are the same
    absent = [c for c in chromosomes if c not in store.chrom_sizes]
    if absent:
        raise NormalisationError(f"{store.path}: chromosomes {absent} are not in the track store "
                                 f"(it has {list(store.chrom_sizes)})")
    if not chromosomes:
        raise NormalisationError("no training chromosomes given for the normalisation statistics")
    d = store.n_tracks
    n = 0
    mean = np.zeros(d)
    m2 = np.zeros(d)
    for c in chromosomes:
        arr = store.array(c)
        for s in range(0, arr.shape[0], block):
            x = np.asarray(arr[s:s + block], dtype=np.float64)
            nb = x.shape[0]
            mb = x.mean(axis=0)
            m2b = ((x - mb) ** 2).sum(axis=0)
            n, mean, m2 = _merge(n, mean, m2, nb, mb, m2b)
    sd = np.sqrt(m2 / n)
    names = store.track_names
    return {
        "track_names": names,
        "chromosomes": chromosomes,
        "tracks": {nm: {"mean": float(mean[j]), "sd": float(sd[j]), "n": int(n)} for j, nm in enumerate(names)},
        "store_dtype": store.meta["dtype"],
        "ddof": 0,
    }


def write_normalisation(store_dir, chromosomes: Iterable[str], out_json) -> dict:
    stats = track_statistics(open_track_store(store_dir), chromosomes)
    write_json(out_json, stats)
    return stats


def check_normalisation(stats_json, store_or_track_names) -> dict:
    """Load the statistics and check they belong to these features; raise NormalisationError otherwise.

    ``store_or_track_names``: a TrackStore, a store directory, or the list of track names in the order the
    model will read them. Returns the loaded statistics.
    """
    path = Path(stats_json) if not isinstance(stats_json, dict) else None
    if path is not None:
        if not path.exists():
            raise NormalisationError(
                f"{path}: normalisation statistics not found; training refuses to start without them. "
                "Build them with the features rule (feature_norm.py / write_normalisation).")
        stats = json.loads(path.read_text())
    else:
        stats = stats_json
    src = str(path) if path else "normalisation statistics"
    if isinstance(store_or_track_names, TrackStore):
        names = store_or_track_names.track_names
    elif isinstance(store_or_track_names, (str, Path)):
        names = open_track_store(store_or_track_names).track_names
    else:
        names = list(store_or_track_names)
    have = list(stats.get("track_names", []))
    missing = [t for t in names if t not in have]
    extra = [t for t in have if t not in names]
    if missing or extra:
        raise NormalisationError(
            f"{src}: track sets differ: tracks without statistics {missing}; statistics for tracks the "
            f"features do not have {extra}. Recompute the statistics for this store.")
    if have != names:
        k = next(i for i, (a, b) in enumerate(zip(have, names)) if a != b)
        raise NormalisationError(
            f"{src}: track order differs at index {k}: statistics have {have[k]!r}, features have "
            f"{names[k]!r}. The track order is fixed by the manifest; rebuild the store or the statistics.")
    for t in names:
        sd = stats["tracks"][t]["sd"]
        if not np.isfinite(sd) or not np.isfinite(stats["tracks"][t]["mean"]):
            raise NormalisationError(f"{src}: track {t!r} has non-finite statistics")
    return stats


def mean_sd_arrays(stats: dict, names: Sequence[str] | None = None, min_sd: float = 1e-6):
    """(mean [d], sd [d]) float32 arrays in ``names`` order; sd floored at ``min_sd`` (constant tracks)."""
    names = list(names) if names is not None else stats["track_names"]
    mean = np.array([stats["tracks"][t]["mean"] for t in names], dtype=np.float32)
    sd = np.array([stats["tracks"][t]["sd"] for t in names], dtype=np.float32)
    return mean, np.maximum(sd, min_sd)
