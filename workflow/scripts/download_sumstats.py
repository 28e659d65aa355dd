"""Rule download_ukbb_sumstats: one UKBB_409K trait from the requester-pays GCS bucket."""
from deepwas import downloads as dl
from deepwas.io import setup_logging

if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    log = setup_logging(sm.log[0])
    rec = dl.fetch_ukbb_sumstats(sm.wildcards.trait, sm.output.sumstats, billing=sm.params.billing,
                                 bucket=sm.params.bucket, prefix=sm.params.prefix,
                                 retries=int(sm.params.retries), backoff=float(sm.params.backoff))
    dl.write_lock_record(sm.output.lock, rec)
    log.info("fetched %s", rec)
