"""Held-out evaluation (paper Sec. 6.2, App. C.2).

For every held-out window, the exact NLL under the model and under the null (f = 0); then

    Delta = sum_i [NLL_i(0) - NLL_i(phi_theta)],    pct_per_person = 100 (exp(Delta / N) - 1),

the percentage likelihood increase per person. Evaluation always uses the exact solver, whatever solver
trained the model, with the prior in eval() mode. The prior runs on the training device in batches of
variants (`inference.Inference`); on a GPU the window's float64 likelihood is computed there too.
"""
from __future__ import annotations

import logging
import math
from typing import Callable, Iterable

import pandas as pd
import torch

from .features.pred import FeatureScaler
from .formats.annotations import read_annotations
from .formats.model_file import ModelFile
from .formats.truth import read_truth
from .inference import Inference
from .io import atomic_path, read_json, write_json, write_table
from .likelihood import exact, nll_null
from .likelihood.mismatch import Mismatch
from .priors import build_prior
from .sources import iter_windows
from .window import WindowData, make_window

WINDOW_COLUMNS = ["window", "n_core", "n_extended", "rank", "nll_model", "nll_null", "delta"]
log = logging.getLogger("deepwas.evaluation")

SUMMARY_COLUMNS = ["trait", "model", "objective", "n_windows", "delta_nll", "pct_per_person"]


@torch.no_grad()
def evaluate_windows(phi_of: Callable[[WindowData], torch.Tensor], windows: Iterable[WindowData], s2: float,
                     device: torch.device | None = None) -> pd.DataFrame:
    """Per-window table; `phi_of(window)` gives phi = N f for the window's extended variants. `device`: where
    the model's float64 likelihood is computed (default: the CPU)."""
    rows = []
    for w in windows:
        phi = phi_of(w).double()
        if not torch.all(torch.isfinite(phi)) or bool((phi < 0).any()):
            raise FloatingPointError(f"window {w.name}: the prior produced negative or non-finite values")
        if device is None or device.type == "cpu":
            model = float(exact.nll(phi, s2, w.G, w.y, w.lam))
        else:   # G, y, lam only: the window's track inputs stay on the CPU
            model = float(exact.nll(phi.to(device), s2, w.G.to(device), w.y.to(device), w.lam.to(device)))
        null = float(nll_null(s2, w.y, w.lam))
        rows.append([w.name, w.n_core, w.m, w.rank, model, null, null - model])
    return pd.DataFrame(rows, columns=WINDOW_COLUMNS)


def prior_phi(prior: torch.nn.Module, N: float,
              inference: Inference | None = None) -> Callable[[WindowData], torch.Tensor]:
    """phi = N f of a window's variants, the prior run by `inference` (default: CPU, batches of 4096)."""
    inference = inference or Inference()
    inference.place(prior)
    return lambda w: N * inference(prior, w.inputs)


def pct_per_person(delta: float, N: float) -> float:
    x = delta / N
    return math.inf if x > 700 else 100.0 * math.expm1(x)


def summarise(table: pd.DataFrame, trait: str, model: str, objective: str, N: float) -> dict:
    """Held-out summary (Sec. 6.2); an evaluation over zero windows is an error, not a 0 % result."""
    if len(table) == 0:
        raise ValueError(f"{trait} / {model} / {objective}: no held-out window to evaluate (no held-out window has "
                         "core variants with statistics); check heldout_chromosomes and that the statistics cover them "
                         f"(results/harmonised/{trait}.report.json, results/ld_factors/chr*.manifest.tsv)")
    delta = float(table["delta"].sum())
    return {"trait": trait, "model": model, "objective": objective, "n_windows": int(len(table)),
            "delta_nll": delta, "pct_per_person": pct_per_person(delta, N)}


def combine(summaries: list[pd.DataFrame]) -> pd.DataFrame:
    df = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame(columns=SUMMARY_COLUMNS)
    return df[SUMMARY_COLUMNS].sort_values(["trait", "pct_per_person"], ascending=[True, False]).reset_index(drop=True)


def _mismatch_note(r: dict) -> str:
    """The summary's note on the LD-mismatch correction of one trait (empty for in-sample LD)."""
    notes = []
    if r.get("mismatch_panel_size"):
        notes.append(f"LD from a panel of {int(r['mismatch_panel_size'])} people: finite-panel correction, "
                     f"s2 = {r.get('s2', float('nan')):.4g}")
    if r.get("mismatch_lambda"):
        notes.append(f"LD mismatch lambda {r['mismatch_lambda']:.4g}: R~ = (1 - lambda) R + lambda I")
    return f"   ({'; '.join(notes)})" if notes else ""


def write_summary(summaries, out_tsv, out_txt) -> pd.DataFrame:
    """The summary rule: one table of the held-out results of every trait and model (`summaries`: the
    evaluate rule's JSON files) and a short text summary."""
    records = [read_json(p) for p in summaries]
    mismatch = {r["trait"]: _mismatch_note(r) for r in records}     # LD mismatch correction (deepwas.s2)
    df = combine([pd.DataFrame([r]) for r in records])
    write_table(out_tsv, df, float_format="%.6g")
    lines = ["DeepWAS held-out results (percentage likelihood increase per person vs the null, f = 0)", ""]
    for trait, g in df.groupby("trait", sort=True):
        lines.append(f"{trait}:" + mismatch[trait])
        for _, r in g.iterrows():
            lines.append(f"  {r['model']:<12} {r['objective']:<8} {r['pct_per_person']:>9.4f} %   "
                         f"delta NLL {r['delta_nll']:>10.3f} over {r['n_windows']} windows")
    text = "\n".join(lines) + "\n"
    with atomic_path(out_txt) as tmp:
        tmp.write_text(text)
    log.info("\n%s", text)
    return df


def evaluate_prior(chrom_inputs, s2_json, annotations_path, model_path, truth_path, trait, out_table, out_summary,
                   tracks=None, train: dict | None = None, inference: dict | None = None) -> dict:
    """The evaluate rule: exact held-out likelihood of a trained prior (model file `model_path`), or of the
    demo's true f (`truth_path`, model 'oracle'); writes the per-window table and the summary (returned).
    train / inference: the config blocks that set the prior's device, autocast and batch size
    (`inference.Inference.from_config`; absent keys take the schema's defaults)."""
    s2info = read_json(s2_json)
    s2, N = s2info["s2"], s2info["N"]
    mm = Mismatch.from_record(s2info)      # LD that is not the statistics' own (deepwas.s2): corrected windows
    annotations = read_annotations(annotations_path)
    if truth_path:
        f = read_truth(truth_path)
        scale = None
        phi_of = lambda w: N * torch.as_tensor(f.reindex(keys[w.name]).to_numpy(), dtype=torch.float64)  # noqa: E731
        model, objective = "oracle", "truth"
        device = None
    else:
        ck = ModelFile.load(model_path)
        have = tracks.track_names if tracks is not None else []
        if ck.track_names != have:
            raise ValueError(f"{model_path} was trained on tracks {ck.track_names}, but the evaluation "
                             f"reads {have}; retrain the model or fix features.tracks")
        scale = FeatureScaler.from_state(ck.scaler).transform
        prior = build_prior(ck.model, d_pred=ck.d_pred, d_func=ck.d_func, init_log_scale=0.0,
                            alpha=ck.alpha, learn_alpha=ck.learn_alpha, network=ck.network)
        prior.load_state_dict(ck.state)
        run = Inference.from_config(ck.model, train, inference)
        log.info("%s: prior on %s, batches of %d variants, autocast %s", ck.model, run.device, run.batch_size,
                 run.autocast)
        phi_of, device = prior_phi(prior, N, run), run.device
        model, objective = ck.model, ck.objective
    keys = {}

    def windows():   # one held-out window in memory at a time (track windows are large at UKBB scale)
        for name, fac, st, p in iter_windows(chrom_inputs, annotations, None if truth_path else tracks):
            keys[name] = fac["keys"]
            yield make_window(name, fac, st["y"], p if scale is None else scale(p), mismatch=mm)

    table = evaluate_windows(phi_of, windows(), s2, device)
    summary = dict(summarise(table, trait, model, objective, N), mismatch_lambda=mm.lam,
                   mismatch_panel_size=mm.panel_size, s2=s2)
    write_table(out_table, table)
    write_json(out_summary, summary)
    log.info("%s", summary)
    return summary
