"""Rule plot_region: Fig. 3, sqrt(f / E f) along the region with the selected tracks below
(`deepwas.plots.fig3_region`)."""
import pandas as pd

from deepwas.io import setup_logging
from deepwas.plots import fig3_region
from deepwas.region import REGION_COLUMNS


def selected_tracks(table, tracks):
    """figures.tracks, or the first three track columns of the table (none for a model without tracks)."""
    have = [c for c in table.columns if c not in REGION_COLUMNS]
    return list(tracks) if tracks is not None else have[:3]


def main(region_tsv, choice, out_png, log_path=None):
    """choice: (trait, model, objective, chromosome, start, end, tracks) of `fig3_choice()`."""
    setup_logging(log_path)
    trait, model, objective, chrom, _, _, tracks = choice
    table = pd.read_csv(region_tsv, sep="\t", dtype={"chromosome": str})
    fig3_region(table, selected_tracks(table, tracks), out_png,
                title=f"{trait}: {model} ({objective}), chromosome {chrom}")


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.input[0], sm.params.choice, sm.output[0], sm.log[0])
