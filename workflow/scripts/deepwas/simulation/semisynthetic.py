"""Semi-synthetic recovery experiment (paper Sec. 6.1, App. A.5 and B.1): orchestration.

The truths and their normalisation are in `truths`; this module holds the rest of the experiment: the
statistics simulated through LD (`simulate_z`, `simulate_z_windows`, `simulate_whitened`), the RMSE of log f,
and one replicate on real LD factors and real features:

1. `variant_table`: every variant of the factor windows once, with its per-variant features (frequency, MAF,
   LD score and missing-tracks flag, taken from the window whose core holds it) and its normalised track
   window. The models and the truth read exactly these features, so a variant's features do not depend on
   the window it is seen in.
2. `make_truth`: log f = alpha log(p(1-p)) + g(C), with g a randomly initialised network (App. A.5; its
   spread of log f pinned by `network_log_sd`) or the threshold-enrichment function of App. B.1; then
   `normalise_f` so that E f = h2 / M (App. A.5 with s2 = 1 - h2). The frequency term keeps the truth in the
   model family of Eqn 6 (every prior has the same fixed alpha), so the constant prior is the "no features"
   baseline rather than also being wrong about frequency.
3. `simulate_whitened`: ONE global beta ~ N(0, f) per variant, and per window the whitened statistics
   y = lam^-1/2 U^T z_(i) of z_(i) = sqrt(N) R[i,+] beta_(i)+ + e, e ~ N(0, s2 R[i,i]). With the stored
   factors (R[i,+] = U lam^1/2 G^T, R[i,i] = U lam U^T on the kept support) this is exactly

       y = sqrt(N) G^T beta_(i)+ + sqrt(s2) xi,     xi ~ N(0, I_r),     z_(i) = U lam^1/2 y,

   the law of `simulate_z_windows` (tested against it) without forming any m x m matrix, so
   it works for UKBB-size windows too. The window likelihood is then exactly specified.
4. `run_simulation`: trains each model (constant, glm, transformer) with each objective (deepwas, ldsr)
   on the windows of the training chromosomes with `training.Trainer` (known s2 and h2; every prior starts
   at the App. A.5 level), predicts f on the core variants of the held-out chromosomes with the prior in
   eval() mode and returns the table `truth model objective rmse_log_f` (RMSE_COLUMNS).

Everything is held in memory (demo scale; a UKBB-scale replicate would stream windows like the main
training does).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from ..config import block_defaults
from ..features.pred import FeatureScaler, pred_feature_names, pred_features
from ..formats.factors import factor_path, load_factors, ok_rows
from ..ldsr import ldsr_inputs, ldsr_objective
from ..networks import EnformerNN
from ..priors import build_prior, init_log_scale
from ..training import TrainConfig, Trainer
from ..window import WindowData
from .truths import (PAPER_B1, PAPER_B1_ACTIVE_FRACTIONS, normalise_f, threshold_enrichment_truth,
                     truth_from_network)

log = logging.getLogger("deepwas.simulation")

TRUTHS = ("network", "threshold")

def simulation_config(user: Optional[Mapping] = None) -> dict:
    """The `simulation:` block with the schema's defaults filled in (config/schema/config.schema.yaml, the only
    source of defaults; nested `threshold` and `lr` filled key by key); an unknown key or a bad value raises
    deepwas.config.ConfigError (a ValueError) naming it."""
    return block_defaults("simulation", user)


RMSE_COLUMNS = ["truth", "model", "objective", "rmse_log_f"]


# ------------------------------------------------------------------------------------ LD simulation
def _half_factor(R: np.ndarray) -> np.ndarray:
    """F with F F^T = R after clipping negative eigenvalues (R from a reference panel may be indefinite)."""
    lam, V = np.linalg.eigh(np.asarray(R, dtype=np.float64))
    return V * np.sqrt(np.clip(lam, 0.0, None))


def simulate_z(R, f, N: float, s2: float, rng: np.random.Generator, n_draws: Optional[int] = None,
               return_beta: bool = False):
    """z = sqrt(N) R beta + e, beta ~ N(0, diag f), e ~ N(0, s2 R) on a chromosome-wide or block R.

    R: one (M x M) matrix, or a sequence of diagonal blocks whose sizes add up to len(f) (variants in
    order). One beta per variant. n_draws: number of independent replicates (rows); default one vector.
    Returns z [M] (or [n_draws, M]); with return_beta also beta (same shape).
    """
    f = np.asarray(f, dtype=np.float64)
    blocks = [np.asarray(R)] if not isinstance(R, (list, tuple)) else [np.asarray(b) for b in R]
    if sum(b.shape[0] for b in blocks) != f.shape[0]:
        raise ValueError(f"simulate_z: LD blocks cover {sum(b.shape[0] for b in blocks)} variants, f has {f.shape[0]}")
    reps = 1 if n_draws is None else n_draws
    beta = rng.normal(size=(reps, f.shape[0])) * np.sqrt(f)
    z = np.empty_like(beta)
    start = 0
    for B in blocks:
        k = B.shape[0]
        sl = slice(start, start + k)
        noise = rng.normal(size=(reps, k)) @ _half_factor(B).T * np.sqrt(s2)
        z[:, sl] = np.sqrt(N) * beta[:, sl] @ B.T + noise
        start += k
    if n_draws is None:
        z, beta = z[0], beta[0]
    return (z, beta) if return_beta else z


def simulate_z_windows(windows: Iterable, f, N: float, s2: float, rng: np.random.Generator,
                       return_beta: bool = False):
    """z for the core variants of overlapping LD windows (e.g. UKBB 3 Mb windows), one global beta.

    windows: iterable of (R_ext [m x m], ext [m] global variant indices of (i)+, core [n] positions of (i)
    within (i)+). Each variant must be in exactly one core. For the core of window i

        z_(i) = sqrt(N) R[i,+] beta_(i)+ + e_(i),    e_(i) ~ N(0, s2 R[i,i]) ,

    with the same beta for a variant in every window, so each window's z_(i) has exactly the marginal
    law N(0, R[i,+] Phi R[+,i] + s2 R[i,i]) that the likelihood uses; only the noise correlation between
    neighbouring cores is dropped (the windowed likelihood ignores it too). Variants in no core get NaN.
    """
    f = np.asarray(f, dtype=np.float64)
    beta = rng.normal(size=f.shape[0]) * np.sqrt(f)
    z = np.full(f.shape[0], np.nan)
    for R_ext, ext, core in windows:
        R_ext = np.asarray(R_ext, dtype=np.float64)
        ext = np.asarray(ext, dtype=np.int64)
        core = np.asarray(core, dtype=np.int64)
        target = ext[core]
        if np.any(np.isfinite(z[target])):
            raise ValueError("simulate_z_windows: a variant is in more than one core")
        noise = _half_factor(R_ext[np.ix_(core, core)]) @ rng.normal(size=core.shape[0]) * np.sqrt(s2)
        z[target] = np.sqrt(N) * R_ext[core] @ beta[ext] + noise
    return (z, beta) if return_beta else z


def rmse_log_f(f_hat, f_true) -> float:
    """sqrt(mean((log f_hat - log f_true)^2)) over the variants given (Fig. 4 and 7: held-out variants)."""
    f_hat = np.asarray(f_hat, dtype=np.float64)
    f_true = np.asarray(f_true, dtype=np.float64)
    if f_hat.shape != f_true.shape:
        raise ValueError(f"rmse_log_f: shapes differ {f_hat.shape} vs {f_true.shape}")
    if np.any(f_hat <= 0) or np.any(f_true <= 0):
        raise ValueError("rmse_log_f: f must be positive")
    return float(np.sqrt(np.mean((np.log(f_hat) - np.log(f_true)) ** 2)))


def rmse_row(truth: str, model: str, objective: str, f_hat, f_true) -> dict:
    """One row of results/simulation/{truth}/rmse.tsv (columns RMSE_COLUMNS)."""
    return dict(truth=truth, model=model, objective=objective, rmse_log_f=rmse_log_f(f_hat, f_true))


# ------------------------------------------------------------------------------------------ windows
@dataclass
class FactorWindow:
    """One LD window's stored factors (`formats.factors.load_factors`: G, lam, U, core, ldscore, keys, freq)."""

    name: str
    chrom: str
    factors: dict


def load_factor_windows(chrom_inputs: Mapping[str, tuple]) -> list[FactorWindow]:
    """{chrom: (factor_dir, manifest_tsv)} -> the windows with status 'ok', in manifest order."""
    out = []
    for chrom, (factor_dir, manifest) in chrom_inputs.items():
        for name in ok_rows(manifest)["window"]:
            out.append(FactorWindow(name, str(chrom), load_factors(factor_path(factor_dir, name))))
    return out


@dataclass
class VariantTable:
    """Every variant of the windows once. pred holds the raw (unnormalised) per-variant features."""

    keys: np.ndarray                 # [M] 'chrom:pos:a1:a2'
    chrom: np.ndarray                # [M] str
    in_core: np.ndarray              # [M] bool: in the core of some window (the variants that are scored)
    freq: np.ndarray                 # [M]
    pred: np.ndarray                 # [M, d_pred] raw
    pred_names: list[str]
    tracks: Optional[np.ndarray]     # [M, d_func, w] float32 normalised, or None
    ext_index: list[np.ndarray] = field(default_factory=list)   # per window: global index of (i)+

    @property
    def M(self) -> int:
        return int(self.keys.shape[0])

    @property
    def d_func(self) -> int:
        return 0 if self.tracks is None else int(self.tracks.shape[1])


def variant_table(windows: Sequence[FactorWindow], tracks: Optional[Callable] = None) -> VariantTable:
    """Global variant index of the windows; per-variant features from the window whose core holds the variant.

    tracks: callable keys -> (windows [k, d_func, w] normalised, missing [k] bool) for keys of one
    chromosome (a `features.variants.VariantTracks`); then the pred features end with `tracks_missing`.
    A variant in no window's core (a neighbouring window failed) keeps the features of the first window
    that holds it and is not scored.
    """
    index: dict[str, int] = {}
    keys, chroms, freq, first, track_rows = [], [], [], [], []
    ext_index = []
    for wi, w in enumerate(windows):
        k = np.asarray(w.factors["keys"]).astype(str)
        new = [j for j, key in enumerate(k) if key not in index]
        for j in new:
            index[k[j]] = len(keys)
            keys.append(k[j])
            chroms.append(w.chrom)
            freq.append(float(w.factors["freq"][j]))
            first.append((wi, j))
        if tracks is not None and new:
            tw, miss = tracks(k[new])
            track_rows.append((np.asarray(tw, dtype=np.float32), np.asarray(miss, dtype=bool)))
        ext_index.append(np.array([index[key] for key in k], dtype=np.int64))
    M = len(keys)
    if not np.all(np.isfinite(freq)):
        raise ValueError(f"{int((~np.isfinite(freq)).sum())} of {M} variants of the LD factors have no LD-panel allele "
                         "frequency (the truth's frequency term needs it): use an LD source that records one (demo, "
                         "plink) or give harmonise.reference_frequencies, then rerun ld_factors")
    preds = [pred_features(w.factors, None) for w in windows]
    pred = np.empty((M, preds[0].shape[1] if preds else 3))
    for g, (wi, j) in enumerate(first):
        pred[g] = preds[wi][j]
    in_core = np.zeros(M, dtype=bool)
    for w, idx, pw in zip(windows, ext_index, preds):       # the core window's frequency, MAF and LD score win
        core = np.asarray(w.factors["core"], dtype=np.int64)
        if in_core[idx[core]].any():
            raise ValueError(f"{w.name}: a core variant is already in the core of another window")
        in_core[idx[core]] = True
        pred[idx[core]] = pw[core]
    tr = None
    if tracks is not None:
        tr = np.concatenate([t for t, _ in track_rows], 0) if track_rows else np.zeros((0, 0, 0), np.float32)
        missing = np.concatenate([m for _, m in track_rows]) if track_rows else np.zeros(0, bool)
        pred = np.concatenate([pred, missing[:, None].astype(np.float64)], 1)
    return VariantTable(np.array(keys), np.array(chroms), in_core, np.array(freq), pred,
                        pred_feature_names([], tracks is not None), tr, ext_index)


# ------------------------------------------------------------------------------------------ truth
def make_truth(kind: str, tracks: Optional[np.ndarray], pred: np.ndarray, freq: np.ndarray, cfg: Mapping,
               alpha: float, network: Optional[Mapping] = None) -> np.ndarray:
    """Unnormalised f_tilde = (p(1-p))^alpha * g(C) of every variant (normalise with `normalise_f`).

    tracks, pred: the models' inputs (normalised). network: size and EnformerNN overrides of the truth
    network (the config's `network` block: the same architecture as the transformer prior).
    """
    if tracks is None:
        raise ValueError("the semi-synthetic truths read functional tracks: set features.tracks (the demo's "
                         "synthetic tracks or a track manifest)")
    if kind == "network":
        net_cfg = dict(network or {})
        size = net_cfg.pop("size", "tiny")
        torch.manual_seed(int(cfg["seed"]) + 1)
        net = EnformerNN.from_size(size, d_func=tracks.shape[1], d_pred=pred.shape[1], w=tracks.shape[2],
                                   **{**net_cfg, "head_init_std": 1.0})
        g = truth_from_network(net, torch.as_tensor(tracks, dtype=torch.float32),
                               torch.as_tensor(pred, dtype=torch.float32), log_sd=float(cfg["network_log_sd"]))
    elif kind == "threshold":
        th = cfg["threshold"]
        g = threshold_enrichment_truth(tracks, pred, dims=th["dims"], values=th["values"], thresholds=None,
                                       active_fractions=th["active_fractions"])
    else:
        raise ValueError(f"unknown truth {kind!r}; choose from {list(TRUTHS)}")
    p = np.clip(freq, 1e-6, 1 - 1e-6)
    return (p * (1 - p)) ** alpha * g


# ------------------------------------------------------------------------------------------ statistics
def simulate_whitened(windows: Sequence[FactorWindow], ext_index: Sequence[np.ndarray], f: np.ndarray, N: float,
                      s2: float, rng: np.random.Generator, return_beta: bool = False):
    """Per window (y, z_core) from one global beta ~ N(0, diag f) (module docstring, step 3)."""
    f = np.asarray(f, dtype=np.float64)
    beta = rng.normal(size=f.shape[0]) * np.sqrt(f)
    out = []
    for w, idx in zip(windows, ext_index):
        G, lam, U = (np.asarray(w.factors[k], dtype=np.float64) for k in ("G", "lam", "U"))
        y = np.sqrt(N) * (G.T @ beta[idx]) + np.sqrt(s2) * rng.normal(size=lam.shape[0])
        out.append((y, (U * np.sqrt(lam)) @ y))
    return (out, beta) if return_beta else out


# ------------------------------------------------------------------------------------------ one replicate
def _window_data(w: FactorWindow, idx: np.ndarray, y: np.ndarray, variants: VariantTable, pred_n: np.ndarray) -> WindowData:
    inputs = {"freq": torch.as_tensor(variants.freq[idx], dtype=torch.float64),
              "pred": torch.as_tensor(pred_n[idx], dtype=torch.float32)}
    if variants.tracks is not None:
        inputs["tracks"] = torch.as_tensor(variants.tracks[idx])
    fac = w.factors
    return WindowData(w.name, torch.as_tensor(fac["G"], dtype=torch.float64),
                      torch.as_tensor(fac["lam"], dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64),
                      inputs, int(np.asarray(fac["core"]).shape[0]))


@torch.no_grad()
def predict_f(prior: torch.nn.Module, variants: VariantTable, pred_n: np.ndarray, idx: np.ndarray,
              batch_size: int = 2048) -> np.ndarray:
    """f of the variants idx with the prior in eval() mode (no dropout; running normalisation statistics)."""
    was = prior.training
    prior.eval()
    device = next(iter(prior.parameters())).device
    try:
        out = []
        for s in range(0, idx.shape[0], batch_size):
            b = idx[s:s + batch_size]
            batch = {"freq": torch.as_tensor(variants.freq[b], dtype=torch.float64, device=device),
                     "pred": torch.as_tensor(pred_n[b], dtype=torch.float32, device=device)}
            if variants.tracks is not None:
                batch["tracks"] = torch.as_tensor(variants.tracks[b], device=device)
            out.append(prior(batch).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)
    finally:
        prior.train(was)


def data_fingerprint(truth: str, cfg: Mapping, windows: Sequence[FactorWindow], extra: Mapping | None = None) -> str:
    """Hash of what a replicate's training data depends on: checkpoints of another replicate are never resumed."""
    d = {"truth": truth, "cfg": cfg, "windows": [w.name for w in windows], "extra": extra or {}}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_simulation(truth: str, windows: Sequence[FactorWindow], variants: VariantTable, heldout: Sequence[str],
                   cfg: Mapping, workdir, *, alpha: float = 0.7, network: Optional[Mapping] = None,
                   train: Optional[Mapping] = None, device: str | torch.device = "cpu",
                   progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """One semi-synthetic replicate; returns (RMSE table, details).

    cfg: `simulation_config(...)`. workdir: checkpoints go to workdir/checkpoints/{model}/{objective} and
    training metrics to workdir/metrics/{model}.{objective}.tsv. train: the config's `train` block
    (weight_decay, once or per model, clip_grad_norm, checkpoint_every, autocast; epochs, lr, warmup and
    accumulation come from cfg). details: N, s2, M, counts, the truth's spread, each prior's fitted constant level and time.
    """
    cfg = simulation_config(cfg)
    train = block_defaults("train", train)
    heldout = [str(c) for c in heldout]
    workdir = Path(workdir)
    N, h2 = float(cfg["n_gwas"]), float(cfg["h2"])
    s2 = 1.0 - h2
    M = variants.M
    is_train_win = np.array([w.chrom not in heldout for w in windows])
    train_var = ~np.isin(variants.chrom, heldout)
    test_idx = np.nonzero(np.isin(variants.chrom, heldout) & variants.in_core)[0]
    if not is_train_win.any() or test_idx.size == 0:
        raise ValueError(f"simulation: need windows on training chromosomes and core variants on the held-out "
                         f"chromosomes {heldout}")
    scaler = FeatureScaler.fit(variants.pred_names, [variants.pred[train_var]])
    pred_n = scaler.transform(variants.pred)

    f_tilde = make_truth(truth, variants.tracks, pred_n, variants.freq, cfg, alpha, network)
    f = normalise_f(f_tilde, N, M, s2)
    rng = np.random.default_rng([int(cfg["seed"]), TRUTHS.index(truth)])
    sim = simulate_whitened(windows, variants.ext_index, f, N, s2, rng)

    train_windows = [(w, idx, y, zc) for w, idx, (y, zc), keep in zip(windows, variants.ext_index, sim, is_train_win)
                     if keep]
    data = [_window_data(w, idx, y, variants, pred_n) for w, idx, y, _ in train_windows]
    extras = {w.name: ldsr_inputs(w.factors, zc ** 2) for w, _, _, zc in train_windows}
    c0 = init_log_scale(variants.freq[train_var], h2, M, alpha)

    p = np.clip(variants.freq[test_idx], 1e-6, 1 - 1e-6)
    resid = np.log(f[test_idx]) - alpha * np.log(p * (1 - p))          # the feature part of the true log f
    details = dict(truth=truth, N=N, h2=h2, s2=s2, M=M, n_train_windows=len(data),
                   n_heldout_windows=int((~is_train_win).sum()), n_heldout_variants=int(test_idx.size),
                   n_missing_tracks=int(variants.pred[:, -1].sum()) if variants.tracks is not None else None,
                   init_log_scale=c0, truth_level_mean=float(resid.mean()), truth_level_sd=float(resid.std()),
                   truth_level_logmean=float(np.log(np.mean(np.exp(resid)))), models={})
    log.info("simulation %s: M=%d, N=%.0f, h2=%.2f, %d training windows, %d held-out variants; sd of the true "
             "log f beyond frequency %.3f", truth, M, N, h2, len(data), test_idx.size, resid.std())

    rows = []
    for model in cfg["models"]:
        for objective in cfg["objectives"]:
            t0 = time.time()
            torch.manual_seed(int(cfg["seed"]))
            prior = build_prior(model, d_pred=len(scaler.names), d_func=variants.d_func, init_log_scale=c0,
                                alpha=alpha, network=dict(network or {}, w=variants.tracks.shape[2])
                                if variants.tracks is not None else network)
            # the train block gives weight decay, clipping, checkpoints and autocast; the simulation block the
            # schedule; exact likelihood, window by window
            tcfg = TrainConfig.from_config(model, objective, train=train, likelihood={"solver": "exact"},
                                           prior={"alpha": alpha}, network=network, epochs=int(cfg["epochs"]),
                                           lr=float(cfg["lr"][model]), warmup_steps=int(cfg["warmup_steps"]),
                                           accumulate=int(cfg["accumulate"]), seed=int(cfg["seed"]),
                                           shared_forward=False, variant_chunk=0, compile=False, progress=progress)
            loss_fn = ldsr_objective(extras, N, h2, M) if objective == "ldsr" else None
            trainer = Trainer(prior, data, N, s2, tcfg, workdir / "checkpoints" / model / objective,
                              workdir / "metrics" / f"{model}.{objective}.tsv", device=device, loss_fn=loss_fn)
            trainer.fit()
            f_hat = predict_f(prior, variants, pred_n, test_idx)
            row = rmse_row(truth, model, objective, f_hat, f[test_idx])
            rows.append(row)
            level = np.log(f_hat) - alpha * np.log(p * (1 - p))
            details["models"][f"{model}/{objective}"] = dict(
                rmse_log_f=row["rmse_log_f"], level_mean=float(level.mean()), level_sd=float(level.std()),
                corr_log_f=float(np.corrcoef(level, resid)[0, 1]) if level.std() > 0 else None,
                seconds=round(time.time() - t0, 2))
            log.info("%s/%s/%s: RMSE(log f) = %.4f (%.1f s)", truth, model, objective, row["rmse_log_f"],
                     time.time() - t0)
    return pd.DataFrame(rows, columns=RMSE_COLUMNS), details
