"""Rule check_ukbb_ld_manifest: one listing of the LD bucket -> the manifest with corrected window kinds."""
from deepwas import downloads as dl
from deepwas.io import setup_logging

if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    log = setup_logging(sm.log[0])
    changed = dl.check_ld_manifest(sm.params.manifest, sm.output[0], bucket=sm.params.bucket, prefix=sm.params.prefix,
                                   endpoint_url=sm.params.endpoint)
    log.info("%d manifest rows changed kind:\n%s", len(changed), changed.to_string())
