"""Rule download_ukbb_ld_lock: the per-window lock records -> one TSV in manifest order + the excluded windows."""
from deepwas import downloads as dl
from deepwas.io import setup_logging

if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    log = setup_logging(sm.log[0])
    n, n_excluded = dl.write_ld_lock(sm.input.locks, list(sm.params.order), sm.params.manifest, sm.params.chromosomes,
                                     sm.output.lock, sm.output.excluded)
    log.info("%d files locked; %d windows excluded", n, n_excluded)
