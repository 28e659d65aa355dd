"""Rules export_priors / apply_prior: per-variant priors (PolyFun layout) of trained models, one file per chromosome
(`deepwas.export.write_prior_files`)."""
from deepwas.export import variant_tracks, write_prior_files
from deepwas.inference import inference_config
from deepwas.io import setup_logging

if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    log = setup_logging(sm.log[0])
    chroms = list(p.plan)
    tracks = variant_tracks(sm.input.get("store"), p.tracks, sm.input.get("normalisation"))
    counts = write_prior_files(dict(p.plan), dict(p.models),
                               {c: (f, m) for c, f, m in zip(chroms, sm.input.factors, sm.input.manifests)},
                               sm.input.harmonised, p.annotations, tracks, dict(zip(chroms, sm.output.parquet)),
                               dict(zip(chroms, sm.output.text)), sm.output.summary,
                               liftover=p.tracks["liftover"] if p.tracks else None, **inference_config(sm.config))
    log.info("%d variants, h2 = sum SNPVAR = %.4f (%d without rsid dropped)", counts["n_variants"], counts["h2"],
             counts["no_rsid"])
