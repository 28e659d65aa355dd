# DeepWAS: deep functionally informed priors trained on GWAS summary statistics with the full LD likelihood.
# Table of contents only; the logic lives in workflow/rules/*.smk and the `deepwas` package.
import time

from snakemake.utils import min_version

min_version("8.0")

RUN_STARTED = time.time()   # the end-of-run message prints the summary only if this run wrote it


report: "workflow/report/workflow.rst"


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/liftover.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/harmonise.smk"
include: "workflow/rules/ld.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/simulation.smk"
include: "workflow/rules/benchmarks.smk"
include: "workflow/rules/ablations.smk"


rule all:
    default_target: True
    input:
        get_final_output(),


onsuccess:
    print_summary(RUN_STARTED)
