"""Rule region_enrichment: per-variant f and f / E f of one trained prior on the Fig. 3 chromosome
(`deepwas.region.region_enrichment`)."""
from deepwas.features.variants import VariantTracks
from deepwas.io import setup_logging, write_table
from deepwas.region import region_enrichment


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    setup_logging(sm.log[0])
    trait, model, objective, chrom, start, end, _ = p.choice
    tracks = VariantTracks(sm.input.store, p.tracks["liftover"], sm.input.normalisation, p.tracks["window"],
                           exclude=p.tracks.get("exclude")) if p.get("tracks") else None
    table = region_enrichment(list(zip(sm.input.factors, sm.input.manifests, sm.input.stats)), p.annotations,
                              sm.input.model, chrom, start, end, tracks=tracks)
    write_table(sm.output[0], table, float_format="%.6g")
