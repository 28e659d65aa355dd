"""Rule train: fit one prior (model x objective) on the training chromosomes of one trait
(`deepwas.training.train_prior`)."""
from deepwas.features.variants import VariantTracks
from deepwas.io import files_fingerprint, setup_logging
from deepwas.training import train_prior


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    chrom_inputs = list(zip(sm.input.factors, sm.input.manifests, sm.input.stats))
    tracks = VariantTracks(sm.input.store, p.tracks["liftover"], sm.input.normalisation, p.tracks["window"],
                           exclude=p.tracks.get("exclude")) \
        if p.tracks else None
    # checkpoints are keyed by the training data too: after the inputs change, a rerun starts afresh
    data = [*sm.input.stats, *sm.input.manifests, sm.input.s2, *([p.annotations] if p.annotations else []),
            *([sm.input.normalisation, *sm.input.liftover] if p.tracks else [])]
    checkpoint_dir = f"{p.checkpoint_dir}/{files_fingerprint(data, extra={'network': p.network, 'tracks': p.tracks})}"
    setup_logging(sm.log[0])
    train_prior(chrom_inputs, sm.input.s2, p.annotations, p.model, p.objective, p.prior, p.train, p.likelihood,
                sm.output.model, sm.output.metrics, checkpoint_dir, tracks=tracks, network=p.network,
                label=f"{sm.wildcards.trait}/{p.model}/{p.objective}")
