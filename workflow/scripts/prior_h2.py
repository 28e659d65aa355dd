"""Rule prior_h2: h2 (total, per chromosome) and S-LDSC-style enrichment of a trained prior, with
block-jackknife standard errors (constant and GLM priors)."""
import json

from deepwas.formats.annotations import read_annotations
from deepwas.formats.model_file import ModelFile
from deepwas.export import iter_core_features, prior_from_checkpoint
from deepwas.features.variants import VariantTracks
from deepwas.h2 import eval_set, objective_loss, prior_h2
from deepwas.io import setup_logging, write_table
from deepwas.ldsr import ldsr_inputs
from deepwas.sources import iter_windows
from deepwas.window import make_window


def main(model_path, s2_json, train_inputs, all_factor_inputs, annotations_path, priors_summary, out, n_blocks,
         method, log_path=None, tracks=None):
    log = setup_logging(log_path)
    s2info = json.load(open(s2_json))
    ck = ModelFile.load(model_path)
    have = tracks.track_names if tracks is not None else []
    prior, scaler = prior_from_checkpoint(ck, have, str(model_path))
    annotations = read_annotations(annotations_path)
    ev = eval_set(prior, scaler, iter_core_features(all_factor_inputs, annotations, tracks), have)
    windows = loss = None
    if ck.model in ("constant", "glm"):
        loaded = [(name, fac, st, p) for name, fac, st, p in iter_windows(train_inputs, annotations, tracks)]
        windows = [make_window(name, fac, st["y"], scaler.transform(p)) for name, fac, st, p in loaded]
        extras = {name: ldsr_inputs(fac, st["z2"], st["ldscore"]) for name, fac, st, _ in loaded} \
            if ck.objective == "ldsr" else None
        del loaded
        loss = objective_loss(ck.objective, s2info["N"], s2info["s2"], extras,
                              min(max(s2info.get("h2_ldsr", 0.1), 0.01), 0.9), s2info["M"])
    summary = json.load(open(priors_summary)) if priors_summary else {}
    h2_snpvar = {f"chr{c}": v["h2"] for c, v in summary.get("per_chromosome", {}).items()}
    if summary:
        h2_snpvar["total"] = summary["h2"]
    table = prior_h2(prior, ck.model, ev, windows, loss, n_blocks, method, s2info.get("h2_ldsr"), h2_snpvar,
                     objective=ck.objective)
    write_table(out, table)
    tot = table.iloc[0]
    log.info("h2 = %.4g (SE %.3g; LDSR %.4g; sum SNPVAR of the prior files %.4g) over %d variants, %d blocks",
             tot["h2"], tot["h2_std_error"], tot["h2_ldsr"], tot["h2_snpvar"], tot["M"], tot["n_blocks"])


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    tracks = VariantTracks(sm.input.store, p.tracks["liftover"], sm.input.normalisation, p.tracks["window"]) \
        if p.tracks else None
    main(sm.input.model, sm.input.s2, list(zip(sm.input.factors, sm.input.manifests, sm.input.stats)),
         list(zip(sm.input.all_factors, sm.input.all_manifests)), p.annotations, sm.input.get("priors"),
         sm.output[0], p.blocks, p.method, sm.log[0], tracks=tracks)
