"""Rules download_ukbb_ld_window (one window's .npz + .gz, unsigned S3) and check_ukbb_ld_manifest (one listing)."""
import pandas as pd

from deepwas import downloads as dl
from deepwas.io import setup_logging, write_table


def fetch_window(sm, log):
    recs = dl.fetch_ukbb_ld_window(sm.wildcards.window, sm.output.npz, sm.output.gz, bucket=sm.params.bucket,
                                   prefix=sm.params.prefix, endpoint_url=sm.params.endpoint,
                                   retries=int(sm.params.retries), backoff=float(sm.params.backoff))
    dl.write_lock_record(sm.output.lock, {"window": sm.wildcards.window, "files": recs})
    log.info("fetched %s", recs)


def check_manifest(sm, log):
    man = pd.read_csv(sm.params.manifest, sep="\t", comment="#", dtype={"chromosome": str})
    listing = dl.list_ld_bucket(sm.params.bucket, sm.params.prefix, sm.params.endpoint)
    checked = dl.check_window_manifest(man, listing, sm.params.prefix)
    changed = checked[checked["kind"] != man["kind"]]
    log.info("%d objects listed; %d manifest rows changed kind:\n%s", len(listing), len(changed), changed.to_string())
    write_table(sm.output[0], checked)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    log = setup_logging(sm.log[0])
    (fetch_window if sm.rule == "download_ukbb_ld_window" else check_manifest)(sm, log)
