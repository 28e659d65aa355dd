"""Rule plot_heldout: bar chart of the held-out percentage likelihood increase per person (paper Fig. 5)."""
import pandas as pd

from deepwas.plots import heldout_bars


def main(summary_tsv, out_png):
    heldout_bars(pd.read_csv(summary_tsv, sep="\t"), out_png)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.input[0], sm.output[0])
