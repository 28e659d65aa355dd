"""Rule evaluate: exact held-out likelihood of a trained prior, or of the demo's true f (model 'oracle');
`deepwas.evaluation.evaluate_prior`."""
from deepwas.evaluation import evaluate_prior
from deepwas.features.variants import VariantTracks
from deepwas.inference import inference_config
from deepwas.io import setup_logging


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    chrom_inputs = list(zip(sm.input.factors, sm.input.manifests, sm.input.stats))
    p = sm.params
    tracks = VariantTracks(sm.input.store, p.tracks["liftover"], sm.input.normalisation, p.tracks["window"],
                           exclude=p.tracks.get("exclude")) \
        if p.get("tracks") else None
    setup_logging(sm.log[0])
    evaluate_prior(chrom_inputs, sm.input.s2, p.annotations, sm.input.get("model"), sm.input.get("truth"),
                   sm.wildcards.trait, sm.output.table, sm.output.summary, tracks=tracks,
                   **inference_config(sm.config))
