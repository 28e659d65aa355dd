"""Rule resolve_encode_experiment: ENCODE REST metadata -> the one bigWig chosen by deepwas.encode's rule."""
from deepwas import encode
from deepwas.io import setup_logging, write_json

if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    log = setup_logging(sm.log[0])
    rec = encode.resolve(sm.params.accession, base_url=sm.params.base_url, allow_warnings=bool(sm.params.allow_warnings),
                         assay=sm.params.assay or None, target=sm.params.target or None)
    write_json(sm.output[0], rec)
    log.info("resolved %s", rec)
