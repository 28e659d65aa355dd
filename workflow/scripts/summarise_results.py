"""Rule summary: one table of held-out results for every trait and model, and a short text summary
(`deepwas.evaluation.write_summary`)."""
from deepwas.evaluation import write_summary
from deepwas.io import setup_logging


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    setup_logging(sm.log[0])
    write_summary(sm.input, sm.output.tsv, sm.output.txt)
