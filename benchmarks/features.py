"""Benchmark (paper App. D.3): assemble the [d_func, w] track windows of one paper-size LD window.

Builds a synthetic track store at paper width (165 tracks, float16, position-major) for one 3 Mb
chromosome in a temporary directory (~1 GB on local disk), then times `gather_windows` for 13,000 variants
spread over the region (one UKBB LD window carries about that many), cold (page cache of the store dropped
with posix_fadvise(DONTNEED) after fsync) and warm (second and later reads). Writes a TSV to stdout:

    case variants tracks w seconds gb_per_s

``gb_per_s`` is the bytes of the gathered float32 output [n, d_func, w] per second (2.2 GB per paper-size
window). The projection to one epoch multiplies the warm time by the number of windows (2,763).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepwas.features.tracks import STORE_FORMAT, drop_page_cache, gather_windows, open_track_store


def make_store(root: Path, n_tracks: int, length: int, seed: int, chunk: int = 65_536) -> Path:
    rng = np.random.default_rng(seed)
    store = root / "store"
    store.mkdir(parents=True, exist_ok=True)
    arr = np.lib.format.open_memmap(store / "chrB.npy", mode="w+", dtype=np.float16, shape=(length, n_tracks))
    for s in range(0, length, chunk):
        e = min(length, s + chunk)
        arr[s:e] = rng.standard_normal((e - s, n_tracks), dtype=np.float32).astype(np.float16)
    arr.flush()
    del arr
    names = [f"track_{k:03d}" for k in range(n_tracks)]
    meta = {"format": STORE_FORMAT, "layout": "position_major", "dtype": "float16", "track_names": names,
            "chrom_sizes": {"chrB": length}, "sources": {}, "build_report": {}}
    (store / "tracks.json").write_text(json.dumps(meta))
    return store


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=165)
    ap.add_argument("--w", type=int, default=256)
    ap.add_argument("--variants", type=int, default=13_000)
    ap.add_argument("--region-bp", type=int, default=3_000_000)
    ap.add_argument("--repeats", type=int, default=3, help="warm repetitions (the best is reported)")
    ap.add_argument("--epoch-windows", type=int, default=2_763)
    ap.add_argument("--tmpdir", default=None, help="where to build the store (local disk)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.tmpdir, prefix="deepwas_features_bench_") as tmp:
        t0 = time.perf_counter()
        store_dir = make_store(Path(tmp), args.tracks, args.region_bp, args.seed)
        build_s = time.perf_counter() - t0
        store = open_track_store(store_dir)
        rng = np.random.default_rng(args.seed + 1)
        pos = np.sort(rng.choice(np.arange(1, args.region_bp + 1), size=args.variants, replace=False))
        out_bytes = args.variants * args.tracks * args.w * 4
        rows = []

        cold_ok = drop_page_cache(store.files())
        t = time.perf_counter()
        win, _ = gather_windows(store, "chrB", pos, w=args.w)
        cold = time.perf_counter() - t
        rows.append(("cold" if cold_ok else "cold_unavailable", cold))
        del win
        warm = []
        out = np.empty((args.variants, args.tracks, args.w), dtype=np.float32)
        for _ in range(args.repeats):
            t = time.perf_counter()
            gather_windows(store, "chrB", pos, w=args.w, out=out)
            warm.append(time.perf_counter() - t)
        rows.append(("warm", min(warm)))
        shuffled = rng.permutation(pos)
        t = time.perf_counter()
        gather_windows(store, "chrB", shuffled, w=args.w, out=out)
        rows.append(("warm_unsorted", time.perf_counter() - t))
        out16 = np.empty((args.variants, args.tracks, args.w), dtype=np.float16)
        t = time.perf_counter()
        gather_windows(store, "chrB", pos, w=args.w, out=out16)
        rows.append(("warm_float16_out", time.perf_counter() - t))

        print("case\tvariants\ttracks\tw\tseconds\tgb_per_s")
        for case, sec in rows:
            b = out_bytes if "float16" not in case else out_bytes // 2
            print(f"{case}\t{args.variants}\t{args.tracks}\t{args.w}\t{sec:.3f}\t{b / sec / 1e9:.2f}")
        best = min(warm)
        print(f"# store build (synthetic, {args.region_bp} bp x {args.tracks} float16): {build_s:.1f} s; "
              f"projection, one epoch of {args.epoch_windows} windows at the warm time: "
              f"{best * args.epoch_windows / 60:.1f} min single-process", file=sys.stdout)


if __name__ == "__main__":
    main()
