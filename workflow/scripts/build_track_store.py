"""Rule build_track_store: bigWigs of the manifest (fixed order) -> per-chromosome GRCh38 track store."""
import numpy as np
import pandas as pd

from deepwas.features.tracks import build_track_store
from deepwas.io import setup_logging


def main(manifest, sizes, out_dir, dtype="float16", eclip_prefix="eclip_", log_path=None):
    log = setup_logging(log_path)
    man = pd.read_csv(manifest, sep="\t", dtype=str)
    bigwigs = list(zip(man["name"], man["path"]))
    chrom_sizes = {str(c): int(L) for c, L in pd.read_csv(sizes, sep="\t", dtype={"chrom": str}).itertuples(index=False)}
    eclip = [n for n, _ in bigwigs if eclip_prefix and n.startswith(eclip_prefix)]
    meta = build_track_store(bigwigs, chrom_sizes, out_dir, dtype=np.dtype(dtype), eclip_group=eclip or None)
    for name, rep in meta["build_report"].items():
        log.info("%s: covered %d, NaN/gap -> 0: %d, float16 clipped %d, chromosomes missing %s", name,
                 rep["covered_bases"], rep["n_nan_or_gap"], rep["n_clipped_float16"], rep["chroms_missing"])
    log.info("track store %s: %d tracks %s", out_dir, len(meta["track_names"]), meta["track_names"])


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.input.manifest, sm.input.sizes, sm.output.store, sm.params.dtype, sm.params.eclip_prefix, sm.log[0])
