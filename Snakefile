# DeepWAS: deep functionally informed priors trained on GWAS summary statistics with the full LD likelihood.
# Table of contents only; the logic lives in workflow/rules/*.smk and the `deepwas` package.
from snakemake.utils import min_version

min_version("8.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/plink.smk"
include: "workflow/rules/liftover.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/harmonise.smk"
include: "workflow/rules/ld.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/simulation.smk"
include: "workflow/rules/benchmarks.smk"


rule all:
    default_target: True
    input:
        get_final_output(),


onsuccess:
    print_summary()
