#!/usr/bin/env python
"""Input pipeline benchmark (paper App. A.3 at UKBB scale): training windows per second of the loader.

Builds a synthetic float16 track store at paper width (165 tracks, position-major, as
`benchmarks/features.py`) over `--windows` consecutive LD windows of 3 Mb with a 1 Mb stride (consecutive
windows overlap by two thirds, as the UKBB windows), each with about 13,000 extended variants, and iterates
them as one run of neighbours through `deepwas.features.loader.WindowDataset` (features [m, 165, 256]
float32, 2.2 GB per window, normalised with per-track mean and sd) in these configurations:

- plain:            every window gathered and normalised afresh into a freshly allocated array, in the
                    training process (the baseline);
- reuse:            rows of the previous window's item copied, only new positions gathered and normalised,
                    output buffers of dropped items reused (no fresh pages to fault in);
- reuse_thread:     reuse, assembled in a background thread `--prefetch` windows ahead (`make_loader`
                    with num_workers=0);
- reuse_worker:     reuse in one DataLoader worker process (`make_loader` with num_workers=1; each window's
                    features pass through shared memory to the training process);
- pinned:           reuse_thread with page-locked output (only when CUDA is available).

Each configuration is timed twice: the loader alone (`loader_only`: items consumed and dropped) and with a
simulated training step of `--step-seconds` per window (default 0.90 s, the full network's shared + bf16
step on one H200 in RESULTS.md; a sleep, which releases the GIL as a GPU step does). windows_per_second =
windows / wall time; ratio_vs_baseline = against `plain` of the same mode in the same run. A table goes to
stdout (and `--out`), with the consumption rate 1 / step-seconds for comparison. The loading of the LD
factors (G: 13,000 x 5,000 float64, 0.5 GB per window) is not included: only the track features.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "workflow" / "scripts"))
sys.path.insert(0, str(HERE))

from deepwas.features.loader import WindowDataset, make_loader  # noqa: E402
from deepwas.features.tracks import gather_windows, open_track_store  # noqa: E402
from features import make_store  # noqa: E402

HEADER = ["config", "mode", "windows", "variants_per_window", "seconds", "windows_per_second", "ratio_vs_baseline"]
MB = 1_000_000


class Windows:
    """`load_window(name)`: the chromosome and sorted GRCh38 positions of the window's extended variants."""

    def __init__(self, table):
        self.table = table

    def __call__(self, name):
        return {"chrom": "chrB", "pos_grch38": self.table[name]}


def make_windows(n_windows: int, variants: int, seed: int):
    """name -> positions: windows [k Mb, k Mb + 3 Mb) over one variant set of `variants` per 3 Mb."""
    length = (n_windows + 2) * MB
    rng = np.random.default_rng(seed)
    allpos = np.sort(rng.choice(np.arange(1, length), size=variants * length // (3 * MB), replace=False))
    table = {}
    for k in range(n_windows):
        s = k * MB + 1
        table[f"chrB_{s}_{s + 3 * MB}"] = allpos[(allpos >= s) & (allpos < s + 3 * MB)]
    return table, length


def _no_spare(cache):
    cache.max_spare = 0
    return cache


def iterate(config, names, table, gather, norm, prefetch, step_s):
    reuse = config != "plain"
    pin = config == "pinned"
    ds = WindowDataset(names, Windows(table), gather, seed=0, run_length=len(names), normalisation=norm,
                       pin_memory=pin, reuse=reuse)
    if config == "plain":         # the baseline also allocates a fresh output per window (no buffer reuse)
        make = ds._feature_cache
        ds._feature_cache = lambda: _no_spare(make())
    if config in ("reuse_thread", "pinned"):
        source = make_loader(ds, num_workers=0, prefetch_factor=prefetch)
    elif config == "reuse_worker":
        source = make_loader(ds, num_workers=1, prefetch_factor=prefetch)
    else:
        source = ds
    n = 0
    t0 = time.perf_counter()
    for item in source:
        assert item["features"].shape[1:] == (norm[0].shape[0], gather.keywords["w"])
        del item
        n += 1
        if step_s:
            time.sleep(step_s)
    return n, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=165)
    ap.add_argument("--w", type=int, default=256)
    ap.add_argument("--variants", type=int, default=13_000, help="extended variants per 3 Mb window")
    ap.add_argument("--windows", type=int, default=4, help="consecutive windows (one run of neighbours)")
    ap.add_argument("--prefetch", type=int, default=1, help="windows assembled ahead (thread / worker)")
    ap.add_argument("--step-seconds", type=float, default=0.90, help="simulated training step per window")
    ap.add_argument("--configs", type=lambda s: s.split(","),
                    default=["plain", "reuse", "reuse_thread", "reuse_worker", "pinned"])
    ap.add_argument("--modes", type=lambda s: s.split(","), default=["loader_only", "with_step"])
    ap.add_argument("--tmpdir", default=None, help="where to build the store (local disk)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the table here (TSV)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    configs = [c for c in args.configs if c != "pinned" or torch.cuda.is_available()]
    skipped = [c for c in args.configs if c not in configs]
    table, length = make_windows(args.windows, args.variants, args.seed)
    names = list(table)
    rng = np.random.default_rng(args.seed + 1)
    norm = (rng.normal(size=args.tracks).astype(np.float32), rng.uniform(0.5, 2, args.tracks).astype(np.float32))
    lines = ["\t".join(HEADER)]
    with tempfile.TemporaryDirectory(dir=args.tmpdir, prefix="deepwas_loader_bench_") as tmp:
        t0 = time.perf_counter()
        store_dir = make_store(Path(tmp), args.tracks, length, args.seed)
        build_s = time.perf_counter() - t0
        store = open_track_store(store_dir)
        gather = partial(gather_windows, store, w=args.w)
        # warm the page cache: read every window's store rows once, so every config sees the same warm store
        iterate("reuse", names, table, gather, norm, args.prefetch, 0.0)
        m = int(np.mean([p.size for p in table.values()]))
        for mode in args.modes:
            step = args.step_seconds if mode == "with_step" else 0.0
            base = None
            for config in configs:
                n, sec = iterate(config, names, table, gather, norm, args.prefetch, step)
                wps = n / sec
                base = wps if config == "plain" else base
                ratio = f"{wps / base:.2f}" if base else "nan"
                row = [config, mode, str(n), str(m), f"{sec:.2f}", f"{wps:.3f}", ratio]
                lines.append("\t".join(row))
                print("\t".join(row) if len(lines) > 2 else lines[0] + "\n" + "\t".join(row), flush=True)
                if args.out:                   # written as it goes (a run cut by a time limit keeps its rows)
                    Path(args.out).write_text("\n".join(lines) + "\n")
    notes = [f"# store: synthetic float16, {length} bp x {args.tracks} tracks ({length * args.tracks * 2 / 1e9:.1f} GB), "
             f"built in {build_s:.1f} s, warm page cache; window = {m} variants x {args.tracks} x {args.w} float32 "
             f"({m * args.tracks * args.w * 4 / 1e9:.2f} GB)",
             f"# training consumption at {args.step_seconds:.2f} s per window: {1 / args.step_seconds:.3f} windows/s",
             f"# torch {torch.__version__}, 1 torch thread, CUDA available: {torch.cuda.is_available()}"
             + (f"; not run (no CUDA): {','.join(skipped)}" if skipped else "")]
    for line in notes:
        print(line)
    if args.out:
        Path(args.out).write_text("\n".join(lines + notes) + "\n")


if __name__ == "__main__":
    main()
