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


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    setup_logging(sm.log[0])
    trait, model, objective, chrom, start, end, tracks = sm.params.choice
    table = pd.read_csv(sm.input[0], sep="\t", dtype={"chromosome": str})
    title = f"{trait}: {model} ({objective}), chromosome {chrom}"
    fig3_region(table, selected_tracks(table, tracks), sm.output[0], title=title)
