"""Rule region_enrichment: per-variant f and f / E f of one trained prior on the Fig. 3 chromosome
(`deepwas.region.region_enrichment`)."""
from deepwas.features.variants import VariantTracks
from deepwas.io import setup_logging, write_table
from deepwas.region import region_enrichment


def main(chrom_inputs, annotations, model_path, choice, tracks, out_tsv, log_path=None):
    """choice: (trait, model, objective, chromosome, start, end, tracks) of `fig3_choice()`."""
    setup_logging(log_path)
    _, _, _, chrom, start, end, _ = choice
    table = region_enrichment(chrom_inputs, annotations, model_path, chrom, start, end, tracks=tracks)
    write_table(out_tsv, table, float_format="%.6g")


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    tracks = VariantTracks(sm.input.store, p.tracks["liftover"], sm.input.normalisation, p.tracks["window"],
                           exclude=p.tracks.get("exclude")) if p.get("tracks") else None
    main(list(zip(sm.input.factors, sm.input.manifests, sm.input.stats)), p.annotations, sm.input.model, p.choice,
         tracks, sm.output[0], sm.log[0])
