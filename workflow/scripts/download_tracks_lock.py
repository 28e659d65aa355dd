"""Rule download_tracks_lock: the track lock TSV (manifest order), the track manifest and the GRCh38 sizes."""
from deepwas import downloads as dl
from deepwas.io import setup_logging

if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    log = setup_logging(sm.log[0])
    n = dl.write_tracks_lock(sm.input.locks, list(sm.input.bigwigs), list(sm.params.order), sm.output.lock,
                             sm.output.manifest, sm.output.sizes)
    log.info("%d tracks locked", n)
