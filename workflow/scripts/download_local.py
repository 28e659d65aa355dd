"""Rule dbnsfp_archive: copy the user-supplied (licence-gated) dbNSFP archive, recording its md5."""
from deepwas import downloads as dl
from deepwas.io import setup_logging

if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    log = setup_logging(sm.log[0])
    if not sm.params.source:
        raise ValueError("dbNSFP is licence-gated: download it yourself and set download.dbnsfp_archive to the archive path")
    rec = dl.copy_local(sm.params.source, sm.output.archive, name="dbnsfp")
    dl.write_lock_record(sm.output.lock, rec)
    log.info("copied %s", rec)
