"""Rules export_priors / apply_prior: per-variant priors (PolyFun layout) of trained models, one file per chromosome."""
import pandas as pd

from deepwas.formats.annotations import read_annotations
from deepwas.export import export_priors, prior_from_checkpoint, split_by_chromosome
from deepwas.features.variants import VariantTracks
from deepwas.formats.model_file import ModelFile
from deepwas.formats.priors import write_priors
from deepwas.harmonise import variant_key
from deepwas.io import setup_logging, write_json


def main(plan, model_paths, factor_inputs, harmonised, liftover, annotations_path, tracks, out_parquet, out_text,
         out_summary, log_path=None):
    """plan {chrom: label}; model_paths {label: model.pt}; factor_inputs {chrom: (dir, manifest)};
    liftover {chrom: table} or None; out_parquet / out_text {chrom: path}."""
    log = setup_logging(log_path)
    have = tracks.track_names if tracks is not None else []
    priors = {label: prior_from_checkpoint(ModelFile.load(p), have, str(p))
              for label, p in model_paths.items()}
    h = pd.read_csv(harmonised, sep="\t", dtype={"chromosome": str, "rsid": str})
    missing = [c for c in ("chromosome", "position", "rsid", "allele1", "allele2") if c not in h.columns]
    if missing:
        raise ValueError(f"{harmonised}: lacks column(s) {missing}; give a table written by the harmonise rule "
                         "(results/harmonised/{trait}.tsv.gz)")
    rsid = pd.Series(h["rsid"].to_numpy(), index=variant_key(h).to_numpy())
    pos38 = None
    if liftover:
        t = pd.concat([pd.read_csv(p, sep="\t", dtype={"chromosome": str}) for p in liftover.values()])
        pos38 = pd.Series(pd.to_numeric(t["POS38"]).to_numpy(), index=variant_key(t).to_numpy())
    table, counts = export_priors(plan, priors, factor_inputs, rsid, pos38, read_annotations(annotations_path), tracks)
    for chrom, part in split_by_chromosome(table, plan).items():
        write_priors(part, out_parquet[chrom], out_text[chrom])
    counts["models"] = {k: str(v) for k, v in model_paths.items()}
    write_json(out_summary, counts)
    log.info("%d variants, h2 = sum SNPVAR = %.4f (%d without rsid dropped)", counts["n_variants"], counts["h2"],
             counts["no_rsid"])


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    chroms = list(p.plan)
    tracks = VariantTracks(sm.input.store, p.tracks["liftover"], sm.input.normalisation, p.tracks["window"]) \
        if p.tracks else None
    main(dict(p.plan), dict(p.models), {c: (f, m) for c, f, m in zip(chroms, sm.input.factors, sm.input.manifests)},
         sm.input.harmonised, p.tracks["liftover"] if p.tracks else None, p.annotations, tracks,
         dict(zip(chroms, sm.output.parquet)), dict(zip(chroms, sm.output.text)), sm.output.summary, sm.log[0])
