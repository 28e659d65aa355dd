"""Rule prior_h2: h2 (total, per chromosome) and S-LDSC-style enrichment of a trained prior, with
block-jackknife standard errors (constant and GLM priors; `deepwas.h2.write_prior_h2`)."""
from deepwas.export import variant_tracks
from deepwas.h2 import write_prior_h2
from deepwas.inference import inference_config
from deepwas.io import setup_logging

if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    log = setup_logging(sm.log[0])
    table = write_prior_h2(sm.input.model, sm.input.s2, list(zip(sm.input.factors, sm.input.manifests, sm.input.stats)),
                           list(zip(sm.input.all_factors, sm.input.all_manifests)), p.annotations, sm.output[0],
                           p.blocks, p.method, harmonised=sm.input.harmonised, priors_summary=sm.input.get("priors"),
                           tracks=variant_tracks(sm.input.get("store"), p.tracks, sm.input.get("normalisation")),
                           **inference_config(sm.config))
    tot = table.iloc[0]
    log.info("h2 = %.4g (SE %.3g; LDSR %.4g; sum SNPVAR of the prior files %.4g) over %d variants, %d blocks",
             tot["h2"], tot["h2_std_error"], tot["h2_ldsr"], tot["h2_snpvar"], tot["M"], tot["n_blocks"])
