"""Rule train: fit one prior (model x objective) on the training chromosomes of one trait."""
import json

import torch

from deepwas.dataset import (FeatureScaler, LdsrExtras, StreamingWindows, load_windows, make_window,
                             pred_feature_names, read_annotations, use_streaming)
from deepwas.features.variants import VariantTracks
from deepwas.io import atomic_path, files_fingerprint, setup_logging
from deepwas.priors import build_prior
from deepwas.training import TrainConfig, Trainer, ldsr_inputs, ldsr_objective, per_model, pick_device


def main(chrom_inputs, s2_json, annotations_path, model, objective, prior_cfg, train_cfg, solver_cfg,
         out_model, out_metrics, checkpoint_dir, log_path=None, tracks=None, network=None):
    """`tracks`: a VariantTracks (models then read track windows), or None."""
    log = setup_logging(log_path)
    s2info = json.load(open(s2_json))
    s2, N = s2info["s2"], s2info["N"]
    annotations = read_annotations(annotations_path)
    ann_names = list(annotations.columns) if annotations is not None else []
    stream = use_streaming(train_cfg.get("stream", "auto"), chrom_inputs, tracks)
    if stream:   # windows read from disk during training (UKBB scale)
        loaded = None
        # with the shared forward, runs as long as an accumulation group: a group's windows are neighbours
        run = train_cfg["accumulate"] if train_cfg.get("shared_forward") and train_cfg["accumulate"] > 1 else 4
        windows = StreamingWindows(chrom_inputs, annotations, tracks, num_workers=train_cfg.get("num_workers", 2),
                                   prefetch=train_cfg.get("prefetch", 2), run_length=run)
        scaler = windows.scaler
    else:
        loaded = load_windows(chrom_inputs, annotations, tracks)
        scaler = FeatureScaler.fit(pred_feature_names(ann_names, tracks is not None), [p for *_, p in loaded])
        windows = [make_window(name, fac, st["y"], scaler.transform(p)) for name, fac, st, p in loaded]
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
                        learn_alpha=prior_cfg.get("learn_alpha", False), network=network)
    solver_opts = {k: v for k, v in solver_cfg.items() if k != "solver"}
    cfg = TrainConfig(epochs=train_cfg["epochs"], lr=per_model(train_cfg["lr"], model), warmup_steps=train_cfg["warmup_steps"],
                      weight_decay=per_model(train_cfg["weight_decay"], model), accumulate=train_cfg["accumulate"],
                      clip_grad_norm=train_cfg.get("clip_grad_norm"), seed=train_cfg["seed"],
                      checkpoint_every=train_cfg.get("checkpoint_every", 0), objective=objective,
                      solver=solver_cfg["solver"], solver_options=solver_opts, autocast=train_cfg.get("autocast"),
                      shared_forward=train_cfg.get("shared_forward", False),
                      variant_chunk=train_cfg.get("variant_chunk", 0), compile=train_cfg.get("compile", False))
    device = pick_device(train_cfg.get("device", "auto"))
    log.info("training %s/%s on %d windows (N=%.0f, s2=%.4f, solver=%s, device=%s)", model, objective,
             len(windows), N, s2, cfg.solver, device)
    loss_fn = None
    if objective == "ldsr":
        extras = LdsrExtras(chrom_inputs) if stream else \
            {name: ldsr_inputs(fac, st["z2"], st["ldscore"]) for name, fac, st, _ in loaded}
        h2_guess = min(max(s2info.get("h2_ldsr", 0.1), 0.01), 0.9)
        loss_fn = ldsr_objective(extras, N, h2_guess, s2info["M"])
    trainer = Trainer(prior, windows, N, s2, cfg, checkpoint_dir, out_metrics, device=device, loss_fn=loss_fn)
    result = trainer.fit()
    log.info("done: %s", result)
    with atomic_path(out_model) as tmp:
        torch.save({"model": model, "objective": objective, "state": prior.cpu().state_dict(),
                    "scaler": scaler.state(), "d_pred": len(scaler.names), "d_func": d_func, "network": network,
                    "track_names": tracks.track_names if tracks is not None else [], "alpha": prior_cfg["alpha"],
                    "learn_alpha": prior_cfg.get("learn_alpha", False), "init_log_scale": c0,
                    "train": result}, tmp)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    chrom_inputs = list(zip(sm.input.factors, sm.input.manifests, sm.input.stats))
    tracks = VariantTracks(sm.input.store, p.tracks["liftover"], sm.input.normalisation, p.tracks["window"]) \
        if p.tracks else None
    # checkpoints are keyed by the training data too: after the inputs change, a rerun starts afresh
    data = [*sm.input.stats, *sm.input.manifests, sm.input.s2, *([p.annotations] if p.annotations else []),
            *([sm.input.normalisation, *sm.input.liftover] if p.tracks else [])]
    checkpoint_dir = f"{p.checkpoint_dir}/{files_fingerprint(data, extra={'network': p.network, 'tracks': p.tracks})}"
    main(chrom_inputs, sm.input.s2, p.annotations, p.model, p.objective, p.prior, p.train, p.likelihood,
         sm.output.model, sm.output.metrics, checkpoint_dir, sm.log[0], tracks=tracks, network=p.network)
