"""One prior forward per variant per optimiser step (paper Sec. 4.1 and App. A.3: windows as mini-batches,
gradient accumulation over `accumulate` windows, paper 12).

Consecutive UKBB windows (3 Mb, 1 Mb stride) share two thirds of their extended variants, so a group of
neighbouring windows evaluated one by one computes each variant's f_theta about three times. For a group
of windows w with extended-variant rows idx_w into the union U of their rows, the accumulated loss is

    L(theta) = sum_w s NLL_w(N F[idx_w]),   F = f_theta(C_U),

so  dL/dtheta = (dF/dtheta)^T g  with  g = sum_w s scatter(idx_w, dNLL_w/df_w)  (the chain rule through the
row selection). `group_backward` evaluates it that way:

1. F on the union, once;
2. each window's likelihood on its slice F[idx_w] (a float64 leaf), back-propagated to g only: one
   window's G is on the device at a time;
3. one network backward with g. With `chunk` > 0 the union is evaluated without autograd in chunks of
   `chunk` rows and, for the backward, again chunk by chunk with autograd (as gradient checkpointing does:
   the network's activations exist for one chunk at a time; the torch RNG is rewound so that dropout draws
   the same masks in both passes). With chunk = 0 the union is one batch with autograd.

Rows are shared when they are the same variant (`WindowData.variants`, the factor file's variant keys)
with the same frequency and per-variant features `pred`; the track windows are a function of the
variant's position and are taken from the row's first occurrence. Windows without variant keys share
nothing (their rows are concatenated: still one forward and one backward per group). Per-variant features
that depend on the window (e.g. an LD score summed over the window's own LD matrix) make rows of the same
variant differ, and such rows are evaluated once per distinct value: the result is always the per-window
computation's, only the amount of sharing depends on the features.

Equal to the per-window gradient up to float rounding when NN_theta of a row does not depend on the other
rows of its batch and draws no dropout (eval mode, or dropout 0, with `norm="layer"`: BatchNorm in training
mode normalises over the batch). With dropout, each row draws one mask per optimiser step instead of one
per window it appears in.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

log = logging.getLogger("deepwas.shared_forward")


@dataclass
class Union:
    """Rows of a group's union: `source[u] = (window, row)` of row u's first occurrence, `index[j]` the rows
    of window j in the union (LongTensor, on the CPU)."""

    window: np.ndarray
    row: np.ndarray
    index: list
    concat: bool = False             # no rows shared: the union is the windows' rows one after the other

    @property
    def size(self) -> int:
        return int(self.window.size)


def _row_bytes(w, L: int) -> np.ndarray:
    """[m, bytes] identity of each row of window w: variant key (padded to L bytes), freq, pred."""
    keys = np.asarray(w.variants).astype(f"S{L}").view(np.uint8).reshape(w.m, L)
    parts = [keys]
    for k in ("freq", "pred"):
        if k in w.inputs:
            a = w.inputs[k].detach().cpu().contiguous().numpy()
            parts.append(a.reshape(w.m, -1).view(np.uint8).reshape(w.m, -1))
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def union_rows(windows) -> Union:
    """The distinct rows of a group of windows (see the module docstring for when rows are the same)."""
    sizes = [int(w.inputs["freq"].shape[0]) for w in windows]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    win = np.repeat(np.arange(len(windows)), sizes)
    row = np.concatenate([np.arange(s) for s in sizes]) if sizes else np.zeros(0, dtype=np.int64)
    if len(windows) == 1 or any(getattr(w, "variants", None) is None for w in windows):
        index = [torch.arange(offsets[j], offsets[j + 1]) for j in range(len(windows))]
        return Union(win, row, index, concat=True)
    L = max(1, max(int(np.asarray(w.variants).astype("S").dtype.itemsize) for w in windows))
    ids = np.concatenate([_row_bytes(w, L) for w in windows])
    _, first, inverse = np.unique(ids.view(np.dtype((np.void, ids.shape[1]))).ravel(), return_index=True,
                                  return_inverse=True)
    # the union lists rows in order of first occurrence (so a group of one window is its own order)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    first = first[order]
    inverse = rank[inverse.ravel()]
    index = [torch.as_tensor(inverse[offsets[j]:offsets[j + 1]], dtype=torch.long) for j in range(len(windows))]
    return Union(win[first], row[first], index)


def union_inputs(windows, u: Union, device) -> dict:
    """The model inputs of the union's rows, gathered window by window (never all windows' rows at once)."""
    if u.concat:
        return {k: (windows[0].inputs[k] if len(windows) == 1 else torch.cat([w.inputs[k] for w in windows]))
                .to(device, non_blocking=True) for k in windows[0].inputs}
    out = {}
    for k, ref in windows[0].inputs.items():
        dst = torch.empty((u.size,) + tuple(ref.shape[1:]), dtype=ref.dtype, device=ref.device)
        for j, w in enumerate(windows):
            sel = np.flatnonzero(u.window == j)
            if sel.size:
                src = torch.as_tensor(u.row[sel], device=ref.device)
                dst[torch.as_tensor(sel, device=ref.device)] = w.inputs[k].index_select(0, src)
        out[k] = dst.to(device, non_blocking=True)
    return out


class _Given:
    """Stands in for the prior inside a loss function: returns the precomputed f of the window's rows."""

    def __init__(self, f: torch.Tensor):
        self.f = f

    def __call__(self, _inputs) -> torch.Tensor:
        return self.f


def run_window_order(n_windows: int, run: int, seed: int, epoch: int) -> np.ndarray:
    """Windows in runs of `run` neighbours (list order), the full runs shuffled by (seed, epoch), the short
    last run (if any) at the end: with accumulation groups of `run` windows every run is one group."""
    full = n_windows // run
    perm = np.random.default_rng([seed, epoch]).permutation(full)
    head = (perm[:, None] * run + np.arange(run)[None, :]).ravel()
    return np.concatenate([head, np.arange(full * run, n_windows)]).astype(np.int64)


class NeighbourRuns:
    """Window source (as `training.Trainer` reads them) over a list of `WindowData` in genomic order, each
    epoch in `run_window_order(len, run, seed, epoch)`: accumulation groups of `run` neighbouring windows."""

    def __init__(self, windows, run: int):
        self.windows, self.run = list(windows), int(run)
        self.names = [w.name for w in self.windows]
        self.order_key = f"runs{self.run}"

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def mean_n_core(self) -> float:
        return float(np.mean([w.n_core for w in self.windows]))

    def order(self, seed: int, epoch: int) -> np.ndarray:
        return run_window_order(len(self.windows), self.run, seed, epoch)

    def iter_epoch(self, seed: int, epoch: int, start: int = 0):
        for i in self.order(seed, epoch)[start:]:
            yield self.windows[i]


def _rng_state(device):
    return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _set_rng_state(state, device):
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _chunks(n: int, chunk: int):
    step = n if chunk <= 0 else chunk
    return [(a, min(n, a + step)) for a in range(0, max(n, 1), step)]


@contextmanager
def cudnn_autotuner():
    """cuDNN's autotuner (torch.backends.cudnn.benchmark) on inside the block, the previous value after it.
    A run-time flag: convolutions read it when they run (forward and backward), not when they are traced."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


class StaticChunks(torch.nn.Module):
    """The prior for `group_backward` with chunks under torch.compile: batches of exactly `rows` rows (every
    chunk but a union's last) go through `compiled` (the prior compiled for that one static shape: one graph
    per grad mode, no recompilation as union sizes vary), other batches through the prior itself. Both share
    the parameters, so the numbers are the prior's up to the compiler's float rounding, for BatchNorm too
    (no padding rows enter a batch's statistics).

    `group_backward` runs its forward and backward passes under `runtime_flags()` (cuDNN's autotuner, for
    the one static shape) and says once when a union fits in one chunk and so runs uncompiled."""

    def __init__(self, prior: torch.nn.Module, compiled: Callable, rows: int):
        super().__init__()
        self.prior, self.rows = prior, int(rows)
        self._compiled = [compiled]          # a list: not registered twice as a submodule
        self._said_uncompiled = False

    def forward(self, inputs: dict) -> torch.Tensor:
        if int(inputs["freq"].shape[0]) == self.rows:
            return self._compiled[0](inputs)
        return self.prior(inputs)

    def runtime_flags(self):
        return cudnn_autotuner()

    def note_single_chunk(self, union: int) -> None:
        """Log once that a union of `union` rows (< rows) was one batch, i.e. ran uncompiled."""
        if union < self.rows and not self._said_uncompiled:
            self._said_uncompiled = True
            log.warning("train.compile: an accumulation group's union has %d distinct rows, fewer than "
                        "train.variant_chunk = %d, so it is one batch and runs uncompiled (the compiled graph "
                        "takes batches of exactly variant_chunk rows; said once, other groups may do the same): "
                        "set train.variant_chunk below the union sizes (e.g. %d) to compile them",
                        union, self.rows, max(1, union // 2))


def compile_prior(prior: torch.nn.Module, chunk: int = 0) -> Callable:
    """torch.compile of the prior for training (App. A.3). With chunk > 0 (the shared forward's
    `variant_chunk`): static shapes, `StaticChunks`, and cuDNN's autotuner on CUDA while `group_backward`
    runs it; the compiled dropout draws torch's own random numbers (inductor `fallback_random`), so the
    chunked recompute replays the masks of the no-grad pass. With chunk = 0 the batch sizes vary with every
    window: dynamic shapes.
    Process-wide settings are left as they were: `fallback_random` is an option of this compilation only
    (applied whenever the compiled module traces, which is at its first calls, not here), the autotuner is
    on only inside `group_backward` (`StaticChunks.runtime_flags`).
    Measured at paper size on one H200 (benchmarks/RESULTS.md): static chunks 1.8x faster than uncompiled,
    dynamic shapes slower than uncompiled (recompilation)."""
    options = {"fallback_random": True}
    if chunk <= 0:
        return torch.compile(prior, dynamic=True, options=options)
    return StaticChunks(prior, torch.compile(prior, dynamic=False, options=options), chunk)


def group_backward(prior: Callable, windows, loss_fn: Callable, N: float, s2: float, autocast, weight: float,
                   device, chunk: int = 0, check: Callable | None = None) -> tuple[list[torch.Tensor], dict]:
    """Accumulate d(sum_w weight * loss_w)/dtheta of a group of windows into the parameters' .grad.

    prior: the prior module (or its compiled form); windows: WindowData, on any device (moved here);
    loss_fn(prior, w, N, s2, autocast) -> loss_w, as `training.deepwas_loss` (it receives a stand-in that
    returns F[idx_w]); weight: the factor on each window's loss (loss scale / accumulate); chunk: rows per
    network batch (0: the whole union with autograd); check(loss, w): called on each window's loss before
    its backward (e.g. a finiteness check). Returns (the windows' losses, detached; {"rows": total rows,
    "union": distinct rows}). A `StaticChunks` prior runs under its `runtime_flags()`.
    """
    flags = prior.runtime_flags() if isinstance(prior, StaticChunks) else nullcontext()
    with flags:
        return _group_backward(prior, windows, loss_fn, N, s2, autocast, weight, device, chunk, check)


def _group_backward(prior, windows, loss_fn, N, s2, autocast, weight, device, chunk, check):
    device = torch.device(device)
    u = union_rows(windows)
    inputs = union_inputs(windows, u, device)
    n = u.size
    pieces = _chunks(n, chunk)
    recompute = len(pieces) > 1
    if not recompute and isinstance(prior, StaticChunks):
        prior.note_single_chunk(n)
    rng0 = _rng_state(device) if recompute else None
    if recompute:
        with torch.no_grad():
            parts = []
            for a, b in pieces:
                with autocast:
                    parts.append(prior({k: v[a:b] for k, v in inputs.items()}).double())
            F = torch.cat(parts)
    else:
        with autocast:
            F = prior(inputs).double()
    F_leaf = F.detach().requires_grad_(True)
    losses = []
    for j, w in enumerate(windows):
        small = replace(w, inputs={k: v for k, v in w.inputs.items() if k != "tracks"}).to(device)
        idx = u.index[j].to(device)
        loss = loss_fn(_Given(F_leaf[idx]), small, N, s2, autocast)
        if check is not None:
            check(loss, w)
        (loss * weight).backward()
        losses.append(loss.detach())
        del small, loss
    g = F_leaf.grad if F_leaf.grad is not None else torch.zeros_like(F_leaf)
    if not recompute:
        F.backward(g)
    else:
        rng1 = _rng_state(device)
        _set_rng_state(rng0, device)
        for a, b in pieces:
            with autocast:
                Fc = prior({k: v[a:b] for k, v in inputs.items()}).double()
            Fc.backward(g[a:b])
        _set_rng_state(rng1, device)
    return losses, {"rows": int(sum(w.m for w in windows)), "union": n}
