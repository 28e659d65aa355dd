"""Rule estimate_s2: the trait's per-window residual variance s2, sample size N and prior scale
(`deepwas.s2.estimate_trait_s2`)."""
from deepwas.io import setup_logging
from deepwas.s2 import estimate_trait_s2


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    chrom_inputs = list(zip(sm.input.factors, sm.input.manifests_train, sm.input.stats))
    setup_logging(sm.log[0])
    check = sm.params.s2_check
    estimate_trait_s2(chrom_inputs, sm.input.manifests, sm.params.s2, sm.params.alpha, sm.output[0],
                      s2_range=(check["min"], check["max"]), accept_outside=check["accept_outside"],
                      trait=sm.wildcards.trait, mismatch=sm.params.mismatch,
                      mismatch_windows=check["mismatch_windows"], mismatch_seed=check["mismatch_seed"],
                      panel_size=sm.params.panel_size)
