"""Rule plot_heldout: Fig. 5, the held-out percentage likelihood increase per person (`deepwas.plots.heldout_bars`)."""
import pandas as pd

from deepwas.io import setup_logging
from deepwas.plots import heldout_bars


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    setup_logging(sm.log[0])
    heldout_bars(pd.read_csv(sm.input[0], sep="\t"), sm.output[0])
