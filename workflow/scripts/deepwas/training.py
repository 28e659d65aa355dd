"""Training loop: windows as mini-batches (paper Sec. 4.1, App. A.3).

AdamW with a linear warm-up, gradient accumulation over windows, optional clipping, seeded window order,
checkpoints at epoch ends and every `checkpoint_every` optimiser steps, and exact resume: a run stopped at
any window and restarted from its checkpoint ends with the same parameters as an uninterrupted run.
Checkpoints live in a directory that is not a declared Snakemake output, so a failed job keeps them.
The linear algebra is float64 whatever precision the network runs in.

What a checkpoint holds, and why that makes the resume exact (tested on CPU in tests/test_training_resume.py):

- it is written only right after an optimiser step (or at an epoch end, after the epoch's last, possibly
  partial, accumulation group), so no accumulated gradient is pending: the windows a killed job had
  accumulated since are simply replayed;
- model, AdamW and LR-scheduler state, the epoch, the position in the epoch's seeded window order and the step;
- the torch RNG state (CPU, and CUDA when used) at that point: dropout of the replayed windows draws the same
  numbers again;
- the call counter of a stochastic solver (the iterative solver's probes are seeded by it). The iterative
  solver's optional CG warm-start cache is not saved: with `warm_start` a resumed run agrees only within the
  CG tolerance;
- the metrics rows written up to that point: a resumed run rewrites the whole metrics file from them, so the
  file holds every window's row once even when it was deleted in between (Snakemake deletes the outputs of
  a failed job) and the replayed windows' rows are not duplicated. (TensorBoard, when installed, gets the
  replayed steps again; its viewer shows the last value per step.)

The checkpoint is keyed (`TrainConfig.fingerprint`, with the window order and the prior's parameter names
and shapes) by every setting that changes the trained parameters: the model, the prior's alpha and
learn_alpha, the network, the optimisation settings, the objective and the solver. A checkpoint written
under another key is not loaded: the run starts afresh (logged). Settings that leave the result alone (the
progress bar, torch.compile, the network's activation checkpointing, the device, the number of processes)
are not in the key.

With `shared_forward`, each accumulation group is evaluated together: the prior once per distinct variant
row of the group, each window's likelihood on its rows, one backward (`deepwas.shared_forward`; in-memory
windows are then ordered in seeded runs of `accumulate` neighbours, `shared_forward.NeighbourRuns`). Under
torch.distributed the group is sharded over the processes and the gradients are summed once per step
(`deepwas.distributed`); rank 0 writes the checkpoint (with every rank's RNG state) and the metrics.

Windows come from a window source (`as_window_source`): an in-memory list of `WindowData` (wrapped in
`InMemoryWindows`, order `window_order(n, seed, epoch)`), or any object with `__len__`, `names`,
`mean_n_core` (the loss scale), `order_key` (None when its order is `window_order`'s, else a string that
the checkpoint fingerprint includes, so a resume never continues an epoch in another order) and
`iter_epoch(seed, epoch, start)` yielding the epoch's `WindowData` from position `start` of a deterministic
order (`sources.InMemoryWindows`); `sources.StreamingWindows` reads them from disk with worker processes and prefetch.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from . import distributed, likelihood
from .config import block_defaults
from .features.pred import FeatureScaler, pred_feature_names
from .formats.annotations import read_annotations
from .formats.checkpoint import load_checkpoint, open_metrics, save_checkpoint
from .formats.model_file import ModelFile
from .io import read_json
from .ldsr import LdsrExtras, ldsr_inputs, ldsr_objective
from .likelihood.mismatch import Mismatch
from .priors import build_prior
from .shared_forward import NeighbourRuns, compile_prior, group_backward
from .sources import StreamingWindows, as_window_source, load_windows, use_streaming
from .window import WindowData, make_window

log = logging.getLogger("deepwas.training")


LOG_EVERY_S = 300.0      # seconds between progress lines in the training log (besides one per epoch)

# TrainConfig fields that do not change the trained parameters (left out of the checkpoint key)
NOT_IN_KEY = ("progress", "compile")
NETWORK_NOT_IN_KEY = ("checkpointing",)    # activation recomputation: same numbers, less memory


@dataclass
class TrainConfig:
    """The settings of one training run (App. A.3). Build it with `TrainConfig.from_config`: every default is
    the schema's (config/schema/config.schema.yaml, blocks `train` and `likelihood`), none is written here.

    `key` holds the settings outside the trainer that change what it trains (the model, the prior's alpha
    and learn_alpha, the network): with the fields below, minus `NOT_IN_KEY`, they make the checkpoint key
    (`fingerprint`), so a checkpoint resumes only a run that would train the same parameters."""

    epochs: int
    lr: float
    warmup_steps: int
    weight_decay: float
    accumulate: int
    clip_grad_norm: float | None
    seed: int
    checkpoint_every: int              # optimiser steps between mid-epoch checkpoints (0: epoch ends only)
    objective: str                     # deepwas | ldsr
    solver: str
    solver_options: dict
    autocast: str | None               # None | bfloat16 | float16 (network only)
    shared_forward: bool               # one prior forward per variant per optimiser step (deepwas.shared_forward)
    variant_chunk: int                 # shared forward: rows per network batch (0: the group's union at once)
    compile: bool                      # torch.compile the prior (same numbers up to float rounding)
    progress: bool                     # progress bar in the log
    key: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, model: str, objective: str = "deepwas", train: dict | None = None,
                    likelihood: dict | None = None, prior: dict | None = None, network: dict | None = None,
                    **fields) -> "TrainConfig":
        """The TrainConfig of `model` x `objective` from the config blocks `train` and `likelihood` (absent
        keys take the schema's defaults; per-model settings are resolved for `model`), `prior` and `network`
        (they go into `key`). `fields` replace resolved fields afterwards (tests, benchmarks, the
        semi-synthetic runs, which take their epochs and learning rates from their own block)."""
        t = block_defaults("train", train)
        lk = block_defaults("likelihood", likelihood)
        solver = lk["solver"]
        options = {k: v for k, v in lk.items() if k not in ("solver", "mismatch")}
        cfg = cls(epochs=t["epochs"], lr=per_model(t["lr"], model), warmup_steps=t["warmup_steps"],
                  weight_decay=per_model(t["weight_decay"], model), accumulate=t["accumulate"],
                  clip_grad_norm=t["clip_grad_norm"], seed=t["seed"], checkpoint_every=t["checkpoint_every"],
                  objective=objective, solver=solver, solver_options=options, autocast=t["autocast"],
                  shared_forward=t["shared_forward"], variant_chunk=t["variant_chunk"], compile=t["compile"],
                  progress=t["progress"])
        cfg = replace(cfg, **fields)
        if "key" not in fields:
            net = {k: v for k, v in (network or {}).items() if k not in NETWORK_NOT_IN_KEY}
            cfg.key = {"model": model, "prior": block_defaults("prior", prior),
                       "network": net if model == "transformer" else {}}
        return cfg

    def fingerprint(self) -> str:
        """The checkpoint key: a hash of every setting that changes the trained parameters."""
        d = asdict(self)
        for k in NOT_IN_KEY:
            d.pop(k)
        if d["solver"] == "exact":        # the iterative solver's options do not change the exact solver
            d.pop("solver_options")
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def per_model(value, model: str, default: float | None = None):
    """A train setting given once or per model, like lr: {constant: .., glm: .., transformer: ..}."""
    if isinstance(value, dict):
        if model not in value and default is None:
            raise KeyError(f"no setting for model {model!r} in {value}")
        return value.get(model, default)
    return value


def decays(param: torch.Tensor) -> bool:
    """Whether AdamW decays `param`: weight matrices (ndim >= 2) do; biases, scalars (the constant prior's
    log scale, a learnt alpha) do not. The one rule for both the optimiser and the h2 jackknife's penalty."""
    return param.ndim >= 2


def _param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if decays(p) else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _autocast(kind: str | None, device: torch.device):
    if not kind:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=getattr(torch, kind))


def deepwas_loss(solver) -> Callable:
    def loss(prior, w: WindowData, N: float, s2: float, autocast) -> torch.Tensor:
        with autocast:
            f = prior(w.inputs)
        return solver(N * f.double(), s2, w.G, w.y, w.lam)
    return loss


class Trainer:
    """Train `prior` on `windows` (a list of WindowData or a window source) of one trait with sample size N
    and residual variance s2."""

    def __init__(self, prior: torch.nn.Module, windows, N: float, s2: float, cfg: TrainConfig,
                 checkpoint_dir, metrics_path, device: str | torch.device = "cpu", loss_fn: Callable | None = None,
                 label: str = "training"):
        self.label = label                 # names the run in the log and on the progress bar (trait/model/objective)
        self.prior, self.windows, self.N, self.s2, self.cfg = prior, windows, float(N), float(s2), cfg
        self.device = torch.device(device)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.metrics_path = Path(metrics_path)
        self.solver = likelihood.get_solver(cfg.solver, **cfg.solver_options)
        self.loss_fn = loss_fn or deepwas_loss(self.solver)
        if cfg.shared_forward and cfg.accumulate > 1 and not hasattr(windows, "iter_epoch"):
            self.source = NeighbourRuns(windows, cfg.accumulate)      # groups of neighbouring windows
        else:
            self.source = as_window_source(windows)
        self.windows = windows
        self.scale = 1.0 / max(1.0, float(self.source.mean_n_core))
        # the checkpoint key: the settings, the window order and the prior's parameters (names, shapes,
        # which are learnt), so that a checkpoint never loads into another model or optimiser
        order = getattr(self.source, "order_key", None)
        shapes = [(n, list(t.shape), bool(t.requires_grad)) for n, t in prior.named_parameters()] + \
                 [(n, list(t.shape)) for n, t in prior.named_buffers()]
        self.fingerprint = hashlib.sha256(json.dumps([cfg.fingerprint(), order, shapes]).encode()).hexdigest()[:16]
        self.rank, self.world = distributed.rank_world()
        if self.world > 1 and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))   # one GPU per process
        if self.world > 1 and not cfg.shared_forward:
            raise ValueError(f"training in {self.world} processes shards each accumulation group over them: "
                             "set train.shared_forward: true")
        torch.manual_seed(cfg.seed + self.rank)    # rank 0 draws what a single process draws
        self.prior.to(self.device)
        distributed.broadcast_parameters(self.prior)
        self.forward_prior = compile_prior(self.prior, cfg.variant_chunk if cfg.shared_forward else 0) \
            if cfg.compile else self.prior
        self.opt = torch.optim.AdamW(_param_groups(prior, cfg.weight_decay), lr=cfg.lr)
        warm = max(1, cfg.warmup_steps)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: min(1.0, (s + 1) / warm))
        self.epoch, self.position, self.step = 0, 0, 0

    # -- checkpoints -------------------------------------------------------------------------------
    def _ckpt_path(self) -> Path:
        return self.checkpoint_dir / "last.pt"

    def save_checkpoint(self) -> None:
        """Write last.pt; call only when no accumulated gradient is pending (after an optimiser step)."""
        state = {"model": self.prior.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                 "epoch": self.epoch, "position": self.position, "step": self.step,
                 "torch_rng": torch.get_rng_state(), "fingerprint": self.fingerprint,
                 "metrics": list(self.metrics_rows), "solver_counter": getattr(self.solver, "_counter", None)}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if self.world > 1:   # every rank's random state, so that each rank's replay draws the same numbers
            state["ranks"] = distributed.gather({k: state.get(k) for k in ("torch_rng", "cuda_rng", "solver_counter")})
            state["world"] = self.world
        if self.rank == 0:
            save_checkpoint(self._ckpt_path(), state)
        distributed.barrier()

    def try_resume(self) -> bool:
        path = self._ckpt_path()
        if not path.exists():
            return False
        state = load_checkpoint(path, map_location=self.device)
        if state.get("fingerprint") != self.fingerprint:
            log.warning("%s was written with another training configuration or window order; starting afresh",
                        path)
            return False
        self.prior.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.epoch, self.position, self.step = state["epoch"], state["position"], state["step"]
        if self.world > 1:
            if state.get("world") == self.world:
                state.update(state["ranks"][self.rank])
            else:
                log.warning("%s was written by %s process(es), this run has %d: the random streams restart",
                            path, state.get("world", 1), self.world)
                state.update(torch_rng=torch.manual_seed(self.cfg.seed + 7919 * (self.step + 1) + self.rank)
                             .get_state(), cuda_rng=None, solver_counter=None)
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        if state.get("solver_counter") is not None and hasattr(self.solver, "_counter"):
            self.solver._counter = state["solver_counter"]
        if state.get("metrics") is None:
            log.warning("%s holds no metrics history: %s restarts at epoch %d/%d, window %d", path,
                        self.metrics_path, self.epoch + 1, self.cfg.epochs, self.position)
        self.metrics_rows = list(state.get("metrics") or [])
        log.info("resumed from %s at epoch %d/%d, window %d, step %d", path, self.epoch + 1, self.cfg.epochs,
                 self.position, self.step)
        return True

    def _open_metrics(self):
        """The metrics file, written whole: its header and the rows of the checkpoint this run resumed (the
        file itself may be gone: Snakemake deletes a failed job's outputs), then this run's rows. Rank 0
        writes the rows of all ranks."""
        return open_metrics(self.metrics_path if self.rank == 0 else None, self.metrics_rows)

    # -- loop --------------------------------------------------------------------------------------
    def fit(self, stop_after_windows: int | None = None) -> dict:
        """Run (or continue) training; `stop_after_windows` simulates a job killed mid-epoch (tests).

        One pass of the loop handles one unit of the epoch's order: a window (then an optimiser step at each
        accumulation boundary and at the epoch's end), or with `shared_forward` a whole accumulation group
        (positions k * accumulate .. (k + 1) * accumulate - 1, the last one possibly shorter; one optimiser
        step after it). Checkpoints are written at accumulation boundaries and epoch ends, so no accumulated
        gradient is ever pending in one."""
        cfg = self.cfg
        self.metrics_rows = []
        self.try_resume()
        fh, writer = self._open_metrics()

        def checkpoint():
            fh.flush()
            self.save_checkpoint()

        tb = _tensorboard(self.metrics_path.parent) if self.rank == 0 else None
        autocast = _autocast(cfg.autocast, self.device)
        seen, t0 = 0, time.time()
        n_windows = len(self.source)
        bar = _progress(cfg.epochs * n_windows, cfg.progress and self.rank == 0,
                        initial=self.epoch * n_windows + self.position, desc=self.label)
        if self.rank == 0:
            log.info("%s: %d windows x %d epochs, accumulation %d, %s%s; %s", self.label, n_windows, cfg.epochs,
                     cfg.accumulate, "shared forward" if cfg.shared_forward else "window by window",
                     f" in {self.world} processes" if self.world > 1 else "",
                     f"resuming at epoch {self.epoch + 1}, window {self.position}" if self.epoch or self.position
                     else "starting")
        last_log = t0
        self.sharing = {"rows": 0, "union": 0}
        self.prior.train()
        try:
            while self.epoch < cfg.epochs:
                stream = self.source.iter_epoch(cfg.seed, self.epoch, start=self.position)
                while self.position < n_windows:
                    size = self._unit_size(n_windows)
                    if stop_after_windows is not None and seen + size > stop_after_windows:
                        stream.close()
                        return {"stopped": True}
                    group = [next(stream) for _ in range(size)]
                    ts = time.time()
                    losses = self._accumulate(group, autocast)
                    end = self.position + size
                    before = (self.step, self.sched.get_last_lr()[0])
                    if cfg.shared_forward or end % cfg.accumulate == 0 or end == n_windows:
                        self._optimiser_step()
                    after = (self.step, self.sched.get_last_lr()[0])
                    dt = (time.time() - ts) / size
                    for j, (w, loss) in enumerate(zip(group, losses)):
                        step, lr = after if j == size - 1 else before
                        value = float(loss)
                        row = [self.epoch, self.position + j + 1, w.name, step, f"{value:.6f}", f"{lr:.3g}",
                               f"{dt:.4f}"]
                        writer.writerow(row)
                        self.metrics_rows.append(row)
                        if tb is not None:
                            tb.add_scalar("nll", value, self.epoch * n_windows + self.position + j + 1)
                    self.position = end
                    seen += size
                    bar.update(size)
                    bar.set_postfix(**self._postfix(seen, t0))
                    if self.rank == 0 and self.position < n_windows and time.time() - last_log >= LOG_EVERY_S:
                        last_log = time.time()
                        self._log_progress(seen, t0, n_windows, done=False)
                    if cfg.checkpoint_every and self.position % cfg.accumulate == 0 \
                            and self.step % cfg.checkpoint_every == 0:
                        checkpoint()
                stream.close()
                if self.rank == 0:
                    self._log_progress(seen, t0, n_windows, done=True)
                self.epoch, self.position = self.epoch + 1, 0
                checkpoint()
        finally:
            bar.close()
            fh.close()
            if tb is not None:
                tb.close()
        stats = getattr(self.solver, "stats", None)
        out = {"stopped": False, "steps": self.step, "solver_stats": dict(stats) if stats else {}}
        if cfg.shared_forward:
            if self.sharing["rows"]:
                log.info("shared forward: %d distinct of %d window rows (%.1f%% of the per-window network work)",
                         self.sharing["union"], self.sharing["rows"],
                         100 * self.sharing["union"] / self.sharing["rows"])
            out.update(rows=self.sharing["rows"], distinct_rows=self.sharing["union"])
        return out

    def _unit_size(self, n_windows: int) -> int:
        """Windows in the next pass of `fit`'s loop: the rest of the accumulation group with the shared
        forward, else one."""
        if not self.cfg.shared_forward:
            return 1
        acc = self.cfg.accumulate
        return min(n_windows, (self.position // acc + 1) * acc) - self.position

    def _check(self, loss: torch.Tensor, w: WindowData) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss on window {w.name} at epoch {self.epoch}")

    def _accumulate(self, group: list, autocast) -> list:
        """Add the gradient of the windows' weighted losses (loss scale / accumulate) to the parameters'
        .grad and return the losses: window by window, or the group together with one prior forward
        (`shared_forward.group_backward`), sharded over the processes under torch.distributed."""
        weight = self.scale / self.cfg.accumulate
        if not self.cfg.shared_forward:
            w = group[0].to(self.device)
            loss = self.loss_fn(self.forward_prior, w, self.N, self.s2, autocast)
            self._check(loss, w)
            (loss * weight).backward()
            return [loss.detach()]
        mine = group[distributed.shard(len(group), self.rank, self.world)]
        losses, rows = [], {"rows": 0, "union": 0}
        if mine:
            losses, rows = group_backward(self.forward_prior, mine, self.loss_fn, self.N, self.s2, autocast,
                                          weight, self.device, chunk=self.cfg.variant_chunk, check=self._check)
        if self.world > 1:
            distributed.all_reduce_gradients(self.prior.parameters())
            parts = distributed.gather(([float(x) for x in losses], rows))
            losses = [x for part, _ in parts for x in part]
            rows = {k: sum(r[k] for _, r in parts) for k in rows}
        for k in rows:
            self.sharing[k] += rows[k]
        return losses

    def _log_progress(self, seen: int, t0: float, n_windows: int, done: bool) -> None:
        """One log line: the epoch's mean NLL per window so far (from the metrics rows, so a resumed epoch
        counts its windows before the checkpoint too), the speed of this run and the time left."""
        nll = [float(r[4]) for r in self.metrics_rows if r[0] == self.epoch]
        elapsed = time.time() - t0
        rate = seen / max(elapsed, 1e-9)
        left = (self.cfg.epochs * n_windows - self.epoch * n_windows - self.position) / max(rate, 1e-9)
        where = "done" if done else f"window {self.position}/{n_windows}"
        log.info("%s: epoch %d/%d %s: mean NLL per window %.4f over %d windows, step %d, lr %.3g; "
                 "%.2f windows/s, elapsed %s, ETA %s", self.label, self.epoch + 1, self.cfg.epochs, where,
                 sum(nll) / max(1, len(nll)), len(nll), self.step, self.sched.get_last_lr()[0], rate,
                 _hms(elapsed), _hms(left))

    def _postfix(self, seen: int, t0: float) -> dict:
        out = {"win_per_s": f"{seen / max(1e-9, time.time() - t0):.1f}"}
        if self.cfg.shared_forward:
            out["rows_shared"] = f"{1 - self.sharing['union'] / max(1, self.sharing['rows']):.2f}"
        return out

    def _optimiser_step(self) -> None:
        if self.cfg.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.prior.parameters(), self.cfg.clip_grad_norm)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.sched.step()
        self.step += 1


def _progress(total: int, enabled: bool, initial: int = 0, desc: str = "training"):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="win", desc=desc, mininterval=2.0)


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _tensorboard(logdir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(logdir / "tensorboard"))


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def train_prior(chrom_inputs, s2_json, annotations_path, model, objective, prior_cfg, train_cfg, solver_cfg,
                out_model, out_metrics, checkpoint_dir, tracks=None, network=None, label: str | None = None) -> dict:
    """The train rule: fit one prior (model x objective) on the training windows of one trait and write the
    model file. `tracks`: a `features.variants.VariantTracks` (models then read track windows), or None.
    prior_cfg, train_cfg, solver_cfg: the config blocks `prior`, `train` and `likelihood` (absent keys take
    the schema's defaults). label: names the run in the log and on the progress bar (default model/objective;
    the rule gives trait/model/objective). Returns what `Trainer.fit` returned."""
    prior_cfg, train_cfg = block_defaults("prior", prior_cfg), block_defaults("train", train_cfg)
    solver_cfg = block_defaults("likelihood", solver_cfg)
    s2info = read_json(s2_json)
    s2, N = s2info["s2"], s2info["N"]
    annotations = read_annotations(annotations_path)
    ann_names = list(annotations.columns) if annotations is not None else []
    mm = Mismatch.from_record(s2info)      # LD that is not the statistics' own (deepwas.s2): corrected windows
    stream = use_streaming(train_cfg["stream"], chrom_inputs, tracks)
    if stream:   # windows read from disk during training (UKBB scale)
        loaded = None
        # with the shared forward, runs as long as an accumulation group: a group's windows are neighbours
        run = train_cfg["accumulate"] if train_cfg["shared_forward"] and train_cfg["accumulate"] > 1 else 4
        windows = StreamingWindows(chrom_inputs, annotations, tracks, num_workers=train_cfg["num_workers"],
                                   prefetch=train_cfg["prefetch"], run_length=run, mismatch=mm)
        scaler = windows.scaler
    else:
        loaded = load_windows(chrom_inputs, annotations, tracks)
        scaler = FeatureScaler.fit(pred_feature_names(ann_names, tracks is not None), [p for *_, p in loaded])
        windows = [make_window(name, fac, st["y"], scaler.transform(p), mismatch=mm) for name, fac, st, p in loaded]
    d_func = tracks.d_func if tracks is not None else 0
    network = dict(network or {}, w=tracks.w) if tracks is not None else None
    if stream:
        log.info("streaming %d windows (%d workers); %d of %d variants without track features", len(windows),
                 windows.num_workers, windows.counts.get("n_missing_tracks", 0), windows.counts.get("n_variants", 0))
    elif tracks is not None:
        log.info("track features: %d tracks x %d bp; %d of %d variants without features", d_func, tracks.w,
                 sum(st["n_missing_tracks"] for _, _, st, _ in loaded), sum(len(f["keys"]) for _, f, _, _ in loaded))
    c0 = s2info["init_log_scale"]   # the maximum-likelihood constant prior: every model starts there
    torch.manual_seed(train_cfg["seed"])
    prior = build_prior(model, d_pred=len(scaler.names), d_func=d_func, init_log_scale=c0, alpha=prior_cfg["alpha"],
                        learn_alpha=prior_cfg["learn_alpha"], network=network)
    cfg = TrainConfig.from_config(model, objective, train=train_cfg, likelihood=solver_cfg, prior=prior_cfg,
                                  network=network)
    device = pick_device(train_cfg["device"])
    log.info("training %s on %d windows (N=%.0f, s2=%.4f, solver=%s, device=%s)", label or f"{model}/{objective}",
             len(windows), N, s2, cfg.solver, device)
    loss_fn = None
    if objective == "ldsr":
        extras = LdsrExtras(chrom_inputs) if stream else \
            {name: ldsr_inputs(fac, st["z2"], st["ldscore"]) for name, fac, st, _ in loaded}
        h2_guess = min(max(s2info.get("h2_ldsr", 0.1), 0.01), 0.9)
        loss_fn = ldsr_objective(extras, N, h2_guess, s2info["M"])
    trainer = Trainer(prior, windows, N, s2, cfg, checkpoint_dir, out_metrics, device=device, loss_fn=loss_fn,
                      label=label or f"{model}/{objective}")
    result = trainer.fit()
    if distributed.rank_world()[0] != 0:      # under torchrun, rank 0 writes the model file
        return result
    log.info("done: %s", result)
    ModelFile(model=model, objective=objective, state=prior.cpu().state_dict(), scaler=scaler.state(),
              d_pred=len(scaler.names), d_func=d_func, network=network,
              track_names=tracks.track_names if tracks is not None else [], alpha=prior_cfg["alpha"],
              learn_alpha=prior_cfg["learn_alpha"], init_log_scale=c0, train=result).save(out_model)
    return result
