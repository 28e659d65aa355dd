"""Rule demo_tracks: synthetic GRCh38 bigWigs, their chromosome sizes and a GRCh37 -> GRCh38 chain."""
import pandas as pd

from deepwas.simulation.tracks import write_synthetic_bigwigs, write_synthetic_chain
from deepwas.io import setup_logging, write_table


def main(chromosomes, chrom_length, seed, n_tracks, n_eclip, outdir, out_manifest, out_sizes, out_chain, log_path=None):
    log = setup_logging(log_path)
    hg19 = {f"chr{c}": int(chrom_length) for c in chromosomes}    # UCSC names, like the real chain
    info = write_synthetic_chain(out_chain, hg19, seed=seed)
    log.info("chain %s: %d blocks, unmapped %s", out_chain, len(info["blocks"]), info["unmapped"])
    manifest = write_synthetic_bigwigs(outdir, info["grch38_sizes"], n_tracks=n_tracks, seed=seed, n_eclip=n_eclip)
    write_table(out_sizes, pd.DataFrame(list(info["grch38_sizes"].items()), columns=["chrom", "length"]))
    write_table(out_manifest, pd.DataFrame(manifest, columns=["name", "path"]))
    log.info("wrote %d bigWigs to %s", len(manifest), outdir)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    main(p.chromosomes, p.chrom_length, p.seed, p.n_tracks, p.n_eclip, p.outdir, sm.output.manifest,
         sm.output.sizes, sm.output.chain, sm.log[0])
