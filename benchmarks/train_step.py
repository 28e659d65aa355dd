#!/usr/bin/env python
"""Seconds per training window at the paper's window size: per-window baseline vs shared forward.

One DeepWAS training window (paper Sec. 4.1, App. A.3) evaluates f_theta on its m extended variants (UKBB
3 Mb windows: about 13,000; input 165 tracks x 256 bp + 9 per-variant features), the exact float64
likelihood of its r kept core eigenpairs (about 5,000) and back-propagates through both; an optimiser step
accumulates 12 windows. Consecutive windows overlap by two thirds (1 Mb stride). This script measures, on
synthetic inputs of exactly that shape (nothing is extrapolated), for each network size:

  baseline        window by window (`shared_forward.group_backward` on a group of one window), float32
                  (on GPU: float32 matmuls without TF32; cuDNN convolutions at torch's default, TF32);
  bf16            window by window, network under bf16 autocast (only where the device supports bf16);
  shared          one forward per distinct variant over a group of --group neighbouring windows, float32;
  shared_bf16     shared + bf16 autocast (ours);
  shared_bf16_static   shared_bf16 with train.compile's torch.compile (`shared_forward.compile_prior` with
                       variant_chunk = --chunk: static chunks, cuDNN autotuner; compilation time not counted,
                       printed). benchmarks/gpu_run.sh part D.
  shared_bf16_compile  shared_bf16 with dynamic-shape torch.compile (`compile_prior(prior, 0)`, what
                       train.compile runs without the shared forward's chunks; --compile). A comparison only:
                       it recompiles as batch sizes vary and was slower than uncompiled (benchmarks/RESULTS.md).
  shared_bf16_cudnn    shared_bf16 with cuDNN's autotuner on (torch.backends.cudnn.benchmark), uncompiled.
Each configuration leaves the process-wide flags as it found them (compile_prior scopes its own).

Every configuration runs the network in chunks of --chunk rows (no-grad pass, then recomputation with
autograd, chunk by chunk), as training must at paper size: the full network's activations for 13,000
variants do not fit on one GPU; when a window or union fits in one chunk it is one autograd pass.
seconds_per_window = wall time of the timed windows (union gathering, network, likelihood, one AdamW step
per group) / windows, after an untimed warm-up on a small window. The likelihood is the exact solver at
m x r; its own time is printed as a comment line.

--likelihood also times one exact and one iterative likelihood step (value + gradient) at m x r on a
synthetic factor with a power-law spectrum and reports the iterative gradient's relative error.

Output: a TSV table on stdout (and --out), columns `model config device m r group chunk windows
seconds_per_window speedup_vs_baseline`; comment lines (#) with parts and projections of measured rows
only. Imports only torch, numpy and deepwas' numeric modules (no msprime, pyBigWig or pandas; the
iterative solver of --likelihood may also need PyYAML and jsonschema for its defaults).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time

import numpy as np
import torch

from deepwas.likelihood.exact import nll as exact_nll
from deepwas.networks import SIZES, count_parameters
from deepwas.priors import build_prior
from deepwas.shared_forward import compile_prior, cudnn_autotuner, group_backward

from deepwas.window import WindowData

UKBB_WINDOWS = 2763
N_GWAS, S2 = 350_000.0, 0.9
CONFIGS = ["baseline", "shared_bf16", "shared", "bf16"]   # most informative first (a time limit may cut the rest)
OOM = getattr(torch, "OutOfMemoryError", getattr(torch.cuda, "OutOfMemoryError", MemoryError))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bf16_ok(device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return True                          # CPU autocast supports bf16 (slow on most CPUs; measured anyway)


def make_windows(n_windows: int, m: int, r: int, d_func: int, w: int, d_pred: int, device, seed: int = 0,
                 overlap: float = 2 / 3):
    """n_windows consecutive windows of m rows with stride m (1 - overlap), inputs as views of one tensor
    over all their variants (keys 'v{i}'), one shared synthetic LD factor G (m x r) and statistics y."""
    stride = max(1, int(round(m * (1 - overlap))))
    total = m + (n_windows - 1) * stride
    g = torch.Generator(device=device).manual_seed(seed)
    tracks = torch.randn(total, d_func, w, generator=g, device=device)
    pred = torch.randn(total, d_pred, generator=g, device=device)
    freq = (torch.rand(total, generator=g, device=device, dtype=torch.float64) * 0.9 + 0.05)
    keys = np.array([f"v{i}" for i in range(total)])
    lam = torch.logspace(2, -3, r, dtype=torch.float64, device=device)          # LD-like decaying spectrum
    G = torch.randn(m, r, generator=g, device=device, dtype=torch.float64) * lam.sqrt() / math.sqrt(m)
    y = torch.randn(r, generator=g, device=device, dtype=torch.float64)
    out = []
    for k in range(n_windows):
        sl = slice(k * stride, k * stride + m)
        out.append(WindowData(f"w{k}", G, lam, y, {"freq": freq[sl], "pred": pred[sl], "tracks": tracks[sl]},
                              n_core=r, variants=keys[sl]))
    return out


def _loss_fn(solver):
    def loss(prior, w, N, s2, autocast):
        with autocast:
            f = prior(w.inputs)
        return solver(N * f.double(), s2, w.G, w.y, w.lam)
    return loss


def _prior(size: str, d_pred: int, d_func: int, w: int, device):
    torch.manual_seed(0)
    prior = build_prior("transformer", d_pred, d_func, init_log_scale=math.log(0.3 / 1e6),
                        network=dict(size=size, w=w, norm="layer"))
    return prior.to(device).train()


def run_config(size, config, windows, warm, device, chunk, group, compile_):
    """(seconds per window, parameter count, compile seconds)."""
    with cudnn_autotuner() if config.endswith("cudnn") else contextlib.nullcontext():
        return _run_config(size, config, windows, warm, device, chunk, group, compile_)


def _run_config(size, config, windows, warm, device, chunk, group, compile_):
    amp = "bf16" in config
    shared = config.startswith("shared")
    static = config.endswith("static")
    compile_ = compile_ or static
    prior = _prior(size, warm[0].inputs["pred"].shape[1], warm[0].inputs["tracks"].shape[1],
                   warm[0].inputs["tracks"].shape[2], device)
    # what train.compile runs: with variant_chunk > 0 static chunks (their cuDNN autotuner is on only inside
    # group_backward), else dynamic shapes
    fwd = compile_prior(prior, chunk if static else 0) if compile_ else prior
    opt = torch.optim.AdamW(prior.parameters(), lr=1e-4)
    loss_fn = _loss_fn(exact_nll)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    t_compile = 0.0
    t0 = time.perf_counter()
    # warm-up (and compilation) on small windows, in several chunks of changing size so that the no-grad
    # and the autograd pass both run (and torch.compile has seen dynamic batch sizes) before timing
    rows = warm[0].m
    if static:            # the static graphs compile on chunks of exactly `chunk` rows: warm up on the group
        group_backward(fwd, windows[:group], loss_fn, N_GWAS, S2, autocast, 1.0, device, chunk=chunk)
        opt.zero_grad(set_to_none=True)
    for c in ([max(1, rows // 2), max(1, rows // 3)] if compile_ and not static else [max(1, rows // 2)]):
        group_backward(fwd, warm if shared else warm[:1], loss_fn, N_GWAS, S2, autocast, 1.0, device,
                       chunk=min(chunk, c))
        opt.zero_grad(set_to_none=True)
    _sync(device)
    t_compile = time.perf_counter() - t0 if compile_ else 0.0
    groups = [windows[:group]] if shared else [[w] for w in windows]
    _sync(device)
    t0 = time.perf_counter()
    for k, grp in enumerate(groups):
        group_backward(fwd, grp, loss_fn, N_GWAS, S2, autocast, 1.0 / group, device, chunk=chunk)
        if shared or k == len(groups) - 1:
            opt.step()
            opt.zero_grad(set_to_none=True)
    _sync(device)
    spw = (time.perf_counter() - t0) / sum(len(g) for g in groups)
    params = count_parameters(prior)
    del prior, fwd, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return spw, params, t_compile


def time_likelihood(windows, device, repeats=2):
    w = windows[0]
    f = torch.full((w.m,), 0.3 / 1e6, dtype=torch.float64, device=device)
    solver = exact_nll
    times = []
    for _ in range(repeats + 1):
        phi = (N_GWAS * f).requires_grad_(True)
        _sync(device)
        t0 = time.perf_counter()
        solver(phi, S2, w.G, w.y, w.lam).backward()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def compare_solvers(m, r, device, options_list, repeats=2):
    """Rows (solver, seconds, rel value diff, rel grad err) of one likelihood step at m x r."""
    [w] = make_windows(1, m, r, 1, 1, 1, device, seed=1)
    g = torch.Generator(device=device).manual_seed(2)
    phi0 = N_GWAS * 0.3 / 1e6 * torch.exp(torch.randn(m, generator=g, device=device, dtype=torch.float64))
    rows, ref = [], None
    for name, opts in options_list:
        if name == "exact":
            solver = exact_nll
        else:          # the iterative solver reads its defaults from the config schema (PyYAML, jsonschema)
            try:
                from deepwas import likelihood
                solver = likelihood.get_solver(name, **opts)
            except Exception as err:  # noqa: BLE001 - report and go on with the other rows
                rows.append((name, float("nan"), float("nan"), float("nan")))
                print(f"# {name} solver unavailable here: {type(err).__name__}: {err}", flush=True)
                continue
        times = []
        for _ in range(repeats + 1):
            phi = phi0.clone().requires_grad_(True)
            _sync(device)
            t0 = time.perf_counter()
            val = solver(phi, S2, w.G, w.y, w.lam)
            val.backward()
            _sync(device)
            times.append(time.perf_counter() - t0)
        if ref is None:
            ref = (float(val.detach()), phi.grad.clone())
        dv = abs(float(val.detach()) - ref[0]) / abs(ref[0])
        dg = float((phi.grad - ref[1]).norm() / ref[1].norm())
        label = name + "".join(f",{k}={v}" for k, v in opts.items())
        rows.append((label, min(times[1:]), dv, dg))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--models", nargs="*", default=["tiny", "reduced", "full"], choices=sorted(SIZES),
                    help="network sizes (none: only --likelihood)")
    ap.add_argument("--configs", nargs="+", default=CONFIGS,
                    choices=CONFIGS + ["shared_bf16_compile", "shared_bf16_cudnn", "shared_bf16_static"])
    ap.add_argument("--compile", action="store_true",
                    help="add the shared_bf16_compile row (dynamic shapes; a comparison, slow)")
    ap.add_argument("--window-variants", "-m", type=int, default=13_000, help="m, extended variants per window")
    ap.add_argument("--rank", "-r", type=int, default=5_000, help="r, kept core eigenpairs per window")
    ap.add_argument("--tracks", type=int, default=165, help="d_func")
    ap.add_argument("--width", type=int, default=256, help="w, bp per track window")
    ap.add_argument("--d-pred", type=int, default=9)
    ap.add_argument("--group", type=int, default=12, help="windows per optimiser step (paper 12)")
    ap.add_argument("--baseline-windows", type=int, default=2, help="windows timed one by one")
    ap.add_argument("--chunk", type=str, default="tiny=16384,reduced=4096,full=512",
                    help="network rows per batch, one number or per model (name=rows,...)")
    ap.add_argument("--quick", action="store_true",
                    help="CPU sizes: m=1300, r=500, group 12, tiny only, chunk 4096")
    ap.add_argument("--likelihood", action="store_true", help="also time exact vs iterative at m x r")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--out", default=None, help="also write the table as TSV here")
    args = ap.parse_args(argv)
    if args.quick:
        args.window_variants, args.rank = 1300, 500
        if args.models == ["tiny", "reduced", "full"]:
            args.models = ["tiny"]
        args.chunk = "4096"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False        # float32 baseline means float32
        name = torch.cuda.get_device_name(device).replace(" ", "_")
    else:
        name = f"cpu-{torch.get_num_threads()}thread"
    chunks = {}
    for part in args.chunk.split(","):
        k, _, v = part.rpartition("=")
        chunks[k or "*"] = int(v)
    configs = list(args.configs) + (["shared_bf16_compile"] if args.compile and "shared_bf16_compile"
                                    not in args.configs else [])
    if not bf16_ok(device):
        configs = [c for c in configs if "bf16" not in c]
    m, r = args.window_variants, args.rank
    header = ["model", "config", "device", "m", "r", "group", "chunk", "windows", "seconds_per_window",
              "speedup_vs_baseline"]
    rows, notes = [], []
    out = open(args.out, "w") if args.out else None

    def emit(fields):
        line = "\t".join(map(str, fields))
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    emit(header)
    paper = m >= 13_000 and r >= 5_000
    if args.models:
        n_win = max(args.group, args.baseline_windows)
        windows = make_windows(n_win, m, r, args.tracks, args.width, args.d_pred, device)
        warm = make_windows(2, min(m, 256), min(r, 128), args.tracks, args.width, args.d_pred, device, seed=3)
        t_lik = time_likelihood(windows, device)
        notes.append(f"# exact likelihood + gradient (float64) at m={m} r={r}: {t_lik:.4f} s per window; "
                     f"tracks {args.tracks} x {args.width}, d_pred {args.d_pred}, stride m/3")
    for size in args.models:
        chunk = chunks.get(size, chunks.get("*", 4096))
        base = None
        for config in configs:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            try:
                spw, params, t_comp = run_config(size, config, windows, warm, device, chunk, args.group,
                                                 compile_=config.endswith("compile"))
            except OOM as err:
                notes.append(f"# {size} {config}: out of memory ({str(err).splitlines()[0]})")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            if config == "baseline":
                base = spw
            n_timed = args.group if config.startswith("shared") else args.baseline_windows
            speed = f"{base / spw:.3g}" if base else "nan"
            row = [size, config, name, m, r, args.group if config.startswith("shared") else 1, chunk, n_timed,
                   f"{spw:.4g}", speed]
            rows.append(row)
            emit(row)
            epoch_h = UKBB_WINDOWS * spw / 3600
            mem = f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" \
                if device.type == "cuda" else ""
            notes.append(f"# {size} ({params:,} params) {config}: {spw:.4g} s/window{mem}"
                         + (f" -> UKBB epoch ({UKBB_WINDOWS} windows) {epoch_h:.3g} h, 10 epochs {10 * epoch_h:.3g} h"
                            if paper else "")
                         + (f" (+ {t_comp:.0f} s compilation)" if t_comp else ""))
    if args.likelihood:
        notes.append("# likelihood step at m x r (synthetic factor, spectrum 1e2..1e-3): solver seconds "
                     "rel_value_diff rel_grad_err (vs exact)")
        opts = [("exact", {}), ("iterative", {}), ("iterative", {"precond_rank": 400})]
        for label, sec, dv, dg in compare_solvers(m, r, device, opts):
            notes.append(f"# likelihood\t{label}\t{name}\t{m}\t{r}\t{sec:.4g}\t{dv:.2e}\t{dg:.2e}")
    for line in notes:
        emit([line])
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
