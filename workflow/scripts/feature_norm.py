"""Rule feature_norm: exact per-track mean / sd over the training chromosomes of the track store."""
from deepwas.features.normalise import write_normalisation
from deepwas.io import setup_logging


def main(store, chromosomes, out_json, log_path=None):
    log = setup_logging(log_path)
    stats = write_normalisation(store, chromosomes, out_json)
    log.info("normalisation over %s: %s", stats["chromosomes"],
             {t: (round(v["mean"], 4), round(v["sd"], 4)) for t, v in stats["tracks"].items()})


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.input.store, sm.params.chromosomes, sm.output.stats, sm.log[0])
