"""Rule demo_cohort: simulate the offline demo and write it in the public UKBB formats
(`deepwas.simulation.cohort.write_demo_cohort`; the chromosomes' simulations on the rule's threads)."""
from deepwas.io import setup_logging
from deepwas.simulation.cohort import write_demo_cohort


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    setup_logging(sm.log[0])
    write_demo_cohort(sm.params.demo, sm.params.ld, sm.params.chromosomes, sm.params.outdir,
                      store=sm.input.get("store"), chain=sm.input.get("chain"), track_cfg=sm.params.track_truth,
                      threads=sm.threads)
