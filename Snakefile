# DeepWAS: deep functionally informed priors trained on GWAS summary statistics with the full LD likelihood.
# Table of contents only; the logic lives in workflow/rules/*.smk and the `deepwas` package.
import os
import sys
import time
from pathlib import Path

from snakemake.utils import min_version

min_version("8.0")

RUN_STARTED = time.time()  # the end-of-run message prints the summary only if this run wrote it


report: "workflow/report/workflow.rst"


# The `deepwas` package is workflow/scripts/deepwas: parsing needs no `pip install`, and this checkout's copy
# comes first. Job scripts find it through Snakemake's script preamble, which appends the script's directory
# to sys.path (so the conda environments in envs/ hold only the dependencies, never the package).
sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

# `--sdm apptainer`: every job runs in the image named by $DEEPWAS_CONTAINER (built from envs/Dockerfile).
if os.environ.get("DEEPWAS_CONTAINER"):

    container: os.environ.get("DEEPWAS_CONTAINER")


# The demo (config/config.yaml) is the default config only when no --configfile is given. A given config file
# is complete on its own: the schema's defaults, which are the paper's settings, fill what it leaves out
# (common.smk), so `--configfile config/ukbb.yaml` runs the paper, not the demo with the paper's keys merged
# on top (Snakemake merges --configfile over the Snakefile's configfile). --config key=value still overrides.
if not workflow.overwrite_configfiles:

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
include: "workflow/rules/priors.smk"
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
