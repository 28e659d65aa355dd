"""Rule evaluate: exact held-out likelihood of a trained prior, or of the demo's true f (model 'oracle')."""
import json

import pandas as pd
import torch

from deepwas.evaluation import evaluate_windows, prior_phi, summarise
from deepwas.features.pred import FeatureScaler
from deepwas.features.variants import VariantTracks
from deepwas.formats.annotations import read_annotations
from deepwas.formats.model_file import ModelFile
from deepwas.harmonise import variant_key
from deepwas.io import setup_logging, write_json, write_table
from deepwas.priors import build_prior
from deepwas.sources import iter_windows
from deepwas.window import make_window


def main(chrom_inputs, s2_json, annotations_path, model_path, truth_path, trait, out_table, out_summary, log_path=None,
         tracks=None):
    log = setup_logging(log_path)
    s2info = json.load(open(s2_json))
    s2, N = s2info["s2"], s2info["N"]
    annotations = read_annotations(annotations_path)
    if truth_path:
        t = pd.read_csv(truth_path, sep="\t", dtype={"chromosome": str})
        f = pd.Series(t["f"].to_numpy(), index=variant_key(t))
        scale = None
        phi_of = lambda w: N * torch.as_tensor(f.reindex(keys[w.name]).to_numpy(), dtype=torch.float64)  # noqa: E731
        model, objective = "oracle", "truth"
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
        phi_of = prior_phi(prior, N)
        model, objective = ck.model, ck.objective
    keys = {}

    def windows():   # one held-out window in memory at a time (track windows are large at UKBB scale)
        for name, fac, st, p in iter_windows(chrom_inputs, annotations, None if truth_path else tracks):
            keys[name] = fac["keys"]
            yield make_window(name, fac, st["y"], p if scale is None else scale(p))

    table = evaluate_windows(phi_of, windows(), s2)
    summary = summarise(table, trait, model, objective, N)
    write_table(out_table, table)
    write_json(out_summary, summary)
    log.info("%s", summary)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    chrom_inputs = list(zip(sm.input.factors, sm.input.manifests, sm.input.stats))
    p = sm.params
    tracks = VariantTracks(sm.input.store, p.tracks["liftover"], sm.input.normalisation, p.tracks["window"]) \
        if p.get("tracks") else None
    main(chrom_inputs, sm.input.s2, p.annotations, sm.input.get("model"), sm.input.get("truth"),
         sm.wildcards.trait, sm.output.table, sm.output.summary, sm.log[0], tracks=tracks)
