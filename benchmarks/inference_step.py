#!/usr/bin/env python
"""Seconds per window of the transformer prior's inference (held-out evaluation, prior export, prior h2).

After training, the evaluate, export_priors, apply and prior_h2 jobs run f_theta (paper Eqn 6, App. A) on
every extended variant of every window in batches (`deepwas.inference.Inference`: `inference.batch_size`
rows per forward, on `train.device`, the network under `train.autocast` on CUDA). This script times that
forward at the paper's window size (m = 13,000 extended variants of a UKBB 3 Mb window, 165 tracks x 256 bp,
9 per-variant features) on synthetic inputs of exactly that shape, for each network size and configuration:

  baseline   float32, batch 4096 (the schema's default batch size)
  bf16       bf16 autocast, batch 4096 (what the jobs run on a GPU)
  bf16_b1024 bf16 autocast, batch 1024

Rows: `model config device m batch seconds_per_window speedup_vs_baseline`, then a comment line per model
with the projected hours for all 2,763 UKBB windows (measured seconds per window x windows; inputs already in
host memory). Imports only torch and deepwas' numeric modules.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from deepwas.inference import Inference
from deepwas.networks import SIZES, count_parameters
from deepwas.priors import build_prior

UKBB_WINDOWS = 2763
CONFIGS = [("baseline", None, 4096), ("bf16", "bfloat16", 4096), ("bf16_b1024", "bfloat16", 1024)]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def inputs(m, d_pred, d_func, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = {"freq": torch.rand(m, generator=g, dtype=torch.float64) * 0.9 + 0.05,
         "pred": torch.randn(m, d_pred, generator=g),
         "tracks": torch.randn(m, d_func, w, generator=g)}
    return {k: v.pin_memory() for k, v in x.items()} if torch.cuda.is_available() else x


def time_config(prior, x, device, autocast, batch, repeats):
    run = Inference(device, autocast, batch)
    p = run.place(prior)
    run(p, {k: v[: min(batch, 256)] for k, v in x.items()})          # warm-up (kernels, allocator)
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        f = run(p, x)
        _sync(device)
        times.append(time.perf_counter() - t0)
    assert f.shape[0] == x["freq"].shape[0] and bool(torch.isfinite(f).all())
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["tiny", "reduced", "full"], choices=sorted(SIZES))
    ap.add_argument("--window-variants", "-m", type=int, default=13_000)
    ap.add_argument("--tracks", type=int, default=165)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--d-pred", type=int, default=9)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu-{torch.get_num_threads()}thread"
    x = inputs(a.window_variants, a.d_pred, a.tracks, a.width)
    header = "model\tconfig\tdevice\tm\tbatch\tseconds_per_window\tspeedup_vs_baseline"
    lines = [header]
    print(header, flush=True)
    for size in a.models:
        torch.manual_seed(0)
        prior = build_prior("transformer", a.d_pred, a.tracks, init_log_scale=math.log(0.3 / 1e6),
                            network=dict(size=size, w=a.width, norm="layer"))
        base = None
        for name, autocast, batch in CONFIGS:
            if autocast and device.type == "cuda" and not torch.cuda.is_bf16_supported():
                continue
            s = time_config(prior, x, device, autocast if device.type == "cuda" else None, batch, a.repeats)
            base = base or s
            line = f"{size}\t{name}\t{dev_name}\t{a.window_variants}\t{batch}\t{s:.4g}\t{base / s:.3g}"
            lines.append(line)
            print(line, flush=True)
        note = (f"# {size} ({count_parameters(prior):,} params): {UKBB_WINDOWS} UKBB windows at the fastest row: "
                f"{UKBB_WINDOWS * min(float(r.split(chr(9))[5]) for r in lines[1:] if r.startswith(size)) / 3600:.3g} h")
        lines.append(note)
        print(note, flush=True)
        del prior
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if a.out:
        with open(a.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
