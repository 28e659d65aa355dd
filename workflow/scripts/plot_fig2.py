"""Fig. 2: seconds per loss + gradient versus window size, one line per method (`deepwas.plots.fig2_timings`).

Snakemake `script:` (input: the fig2 TSV, output: the PNG, log: a log file) or
`python workflow/scripts/plot_fig2.py TSV OUT.png`.
"""
import sys

import pandas as pd

from deepwas.io import setup_logging
from deepwas.plots import fig2_timings


def main(tsv, out_png, log_path=None):
    setup_logging(log_path)
    fig2_timings(pd.read_csv(tsv, sep="\t", comment="#"), out_png)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.input[0], sm.output[0], sm.log[0])
elif __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python workflow/scripts/plot_fig2.py FIG2.tsv OUT.png")
    main(sys.argv[1], sys.argv[2])
