"""Predicted enrichment of a trained prior along a genomic region (paper Sec. 6.3, Fig. 3).

For every core variant of one chromosome's LD windows (each variant is in exactly one core), the prior
variance f of Eqn 6 from the trained-model file, and its enrichment f / E f with E f the mean over the
chromosome's core variants; the rows inside [start, end] (GRCh37) are returned with the normalised value
of each input track at the variant itself (index w // 2 of its track window, App. A.1).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from .features.pred import FeatureScaler
from .formats.annotations import read_annotations
from .formats.model_file import ModelFile
from .priors import build_prior
from .sources import iter_windows
from .window import make_window

REGION_COLUMNS = ["chromosome", "position", "key", "f", "enrichment"]
log = logging.getLogger("deepwas.region")


@torch.no_grad()
def region_enrichment(chrom_inputs, annotations_path, model_path, chromosome: str, start: int | None = None,
                      end: int | None = None, tracks=None) -> pd.DataFrame:
    """Per-variant f and f / E f of the trained prior `model_path` on one chromosome, rows in [start, end].

    chrom_inputs: [(factor_dir, manifest_tsv, stats_npz)] of that chromosome (as the evaluate rule gets them);
    tracks: the `features.variants.VariantTracks` the model was trained with (None for a model without
    tracks). Columns: REGION_COLUMNS, then one per track (its normalised value at the variant)."""
    ck = ModelFile.load(model_path)
    have = tracks.track_names if tracks is not None else []
    if ck.track_names != have:
        raise ValueError(f"{model_path} was trained on tracks {ck.track_names}, but the figure reads {have}; "
                         "retrain the model or fix features.tracks")
    scale = FeatureScaler.from_state(ck.scaler).transform
    prior = build_prior(ck.model, d_pred=ck.d_pred, d_func=ck.d_func, init_log_scale=0.0, alpha=ck.alpha,
                        learn_alpha=ck.learn_alpha, network=ck.network)
    prior.load_state_dict(ck.state)
    prior.eval()
    parts = []
    for name, fac, _stats, pred in iter_windows(chrom_inputs, read_annotations(annotations_path), tracks):
        w = make_window(name, fac, np.zeros(0), scale(pred))
        core = np.asarray(fac["core"], dtype=np.int64)
        f = prior(w.inputs).double().numpy()[core]
        part = pd.DataFrame({"chromosome": str(chromosome), "position": np.asarray(fac["positions"])[core],
                             "key": np.asarray(fac["keys"]).astype(str)[core], "f": f})
        if tracks is not None:
            mid = fac["tracks"].shape[2] // 2
            for j, t in enumerate(have):
                part[t] = fac["tracks"][core, j, mid]
        parts.append(part)
    if not parts:
        raise ValueError(f"chromosome {chromosome}: no LD window with status ok in {[c[1] for c in chrom_inputs]}")
    df = pd.concat(parts, ignore_index=True).sort_values("position", kind="stable")
    df["enrichment"] = df["f"] / df["f"].mean()
    lo = -np.inf if start is None else start
    hi = np.inf if end is None else end
    df = df[(df["position"] >= lo) & (df["position"] <= hi)]
    if len(df) == 0:
        raise ValueError(f"figures.region: no variant of chromosome {chromosome} in [{start}, {end}]; "
                         "choose a region inside the LD windows")
    log.info("region %s:%s-%s: %d variants, mean enrichment %.3g", chromosome, start, end, len(df),
             df["enrichment"].mean())
    return df[REGION_COLUMNS + [t for t in have]].reset_index(drop=True)
