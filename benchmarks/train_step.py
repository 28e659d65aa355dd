#!/usr/bin/env python
"""Seconds per training window: NN_theta forward + backward over a window's variants plus the exact likelihood.

One DeepWAS training window (paper Sec. 4, App. A.3) evaluates f_theta on all m extended variants (i)+
(UKBB 3 Mb windows: about 13,000), computes the exact NLL of the window (r x r Cholesky with r <= n core
variants) and back-propagates through both. This script times, for each network size:

  network  forward + backward of the Enformer-style NN on a batch of --variants variants with the paper's
           input (d_func = 165 tracks x w = 256 positions + d_pred = 9), then scaled LINEARLY to the window's
           --window-variants (the network is per-variant, so its cost is linear in the number of variants;
           on CPU the full model cannot run 13,000 variants in a reasonable time, so we extrapolate);
  likelihood  exact NLL + gradient (deepwas.likelihood.exact) with a random LD factor G (m x r); timed at
           --ld-variants x --ld-rank and scaled by (m r^2 + r^3 / 3) to the paper's size unless those equal
           the window size (on a GPU run the paper size directly: --ld-variants 13000 --ld-rank 5000).

Output: a TSV on stdout with header `device model params variants seconds_per_window windows_per_hour`
(variants = --window-variants), then comment lines (#) with the measured parts and the projected time of
one UKBB epoch (2,763 windows) and of 10 epochs (the paper: 15-20 hours for 10 epochs of the full model on
one A100). torch.set_num_threads(--threads) (default 1, so that it can run beside other work).
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from deepwas.likelihood.exact import nll
from deepwas.networks import SIZES, EnformerNN, count_parameters

UKBB_WINDOWS = 2763


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_network(size: str, variants: int, repeats: int, device, amp: str, d_func=165, d_pred=9, w=256):
    torch.manual_seed(0)
    net = EnformerNN.from_size(size, d_func, d_pred, w).to(device).train()
    tracks = torch.randn(variants, d_func, w, device=device)
    pred = torch.randn(variants, d_pred, device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    times = []
    for rep in range(repeats + 1):                     # the first run warms up and is not counted
        net.zero_grad(set_to_none=True)
        _sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = net(tracks, pred)
        out.double().sum().backward()
        _sync(device)
        if rep:
            times.append(time.perf_counter() - t0)
    return count_parameters(net), min(times)


def time_likelihood(m: int, r: int, repeats: int, device):
    g = torch.Generator(device="cpu").manual_seed(0)
    G = (torch.randn(m, r, generator=g, dtype=torch.float64) / r**0.5).to(device)
    y = torch.randn(r, generator=g, dtype=torch.float64).to(device)
    lam = torch.rand(r, generator=g, dtype=torch.float64).to(device) + 0.1
    times = []
    for rep in range(repeats + 1):
        phi = torch.full((m,), 1e-3, dtype=torch.float64, device=device, requires_grad=True)
        _sync(device)
        t0 = time.perf_counter()
        nll(phi, 0.5, G, y, lam).backward()
        _sync(device)
        if rep:
            times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--models", nargs="+", default=["tiny", "reduced", "full"], choices=sorted(SIZES))
    ap.add_argument("--variants", type=int, default=None,
                    help="variants per timed network batch (default: 512 on GPU; on CPU 256 tiny, "
                         "64 reduced, 16 full)")
    ap.add_argument("--window-variants", type=int, default=13_000, help="m, extended variants per window")
    ap.add_argument("--window-rank", type=int, default=5_000, help="r, kept core eigenpairs per window")
    ap.add_argument("--ld-variants", type=int, default=None, help="m at which the likelihood is timed")
    ap.add_argument("--ld-rank", type=int, default=None, help="r at which the likelihood is timed")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--amp", choices=["none", "bf16", "fp16"], default=None,
                    help="autocast for the network (default bf16 on GPU, none on CPU)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = device.type == "cuda"
    amp = args.amp or ("bf16" if gpu else "none")
    cpu_batch = {"tiny": 256, "reduced": 64, "full": 16}
    ld_m = args.ld_variants or (args.window_variants if gpu else 2_600)
    ld_r = args.ld_rank or (args.window_rank if gpu else 1_000)
    name = torch.cuda.get_device_name(device) if gpu else f"cpu-{args.threads}thread"
    name = name.replace(" ", "_")

    def lik_cost(m, r):
        return m * r * r + r**3 / 3

    t_lik_meas = time_likelihood(ld_m, ld_r, args.repeats, device)
    t_lik = t_lik_meas * lik_cost(args.window_variants, args.window_rank) / lik_cost(ld_m, ld_r)
    notes = [f"# likelihood (exact, float64): {t_lik_meas:.3f} s measured at m={ld_m} r={ld_r}; "
             f"{t_lik:.2f} s at m={args.window_variants} r={args.window_rank}"
             + ("" if (ld_m, ld_r) == (args.window_variants, args.window_rank) else " (scaled by m r^2 + r^3/3)")]
    print("device\tmodel\tparams\tvariants\tseconds_per_window\twindows_per_hour")
    for size in args.models:
        variants = args.variants or (512 if gpu else cpu_batch.get(size, 16))
        params, t_net = time_network(size, variants, args.repeats, device, amp)
        t_net_window = t_net / variants * args.window_variants
        spw = t_net_window + t_lik
        print(f"{name}\t{size}\t{params}\t{args.window_variants}\t{spw:.4g}\t{3600 / spw:.4g}", flush=True)
        epoch_h = UKBB_WINDOWS * spw / 3600
        notes.append(f"# {size}: network fwd+bwd {t_net:.3f} s for {variants} variants (amp={amp}) -> "
                     f"{t_net_window:.2f} s for {args.window_variants} (linear extrapolation); "
                     f"UKBB epoch ({UKBB_WINDOWS} windows) {epoch_h:.3g} h, 10 epochs {10 * epoch_h:.3g} h")
    for line in notes:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
