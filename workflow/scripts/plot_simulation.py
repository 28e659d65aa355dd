"""Rule plot_simulation: RMSE of log f per truth, model and objective (semi-synthetic, paper Figs. 4 and 7)."""
import pandas as pd

from deepwas.io import setup_logging
from deepwas.plots import simulation_rmse_bars


def main(tables, out_png, log_path=None):
    setup_logging(log_path)
    simulation_rmse_bars(pd.concat([pd.read_csv(t, sep="\t") for t in tables], ignore_index=True), out_png)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(list(sm.input), sm.output[0], sm.log[0])
