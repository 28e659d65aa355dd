"""Fig. 2 analogue: seconds per loss + gradient versus window size, one line per method (paper Sec. 4, Fig. 2).

Snakemake `script:` (input: the fig2 TSV, output: the PNG, log: a log file) or
`python workflow/scripts/plot_fig2.py TSV OUT.png`.
"""
from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def read_fig2(path):
    df = pd.read_csv(path, sep="\t", comment="#")
    return df[pd.to_numeric(df["seconds"], errors="coerce").notna()].astype({"seconds": float, "n": int})


def plot_fig2(tsv, out_png):
    df = read_fig2(tsv)
    panels = sorted(df.groupby(["device", "dtype"]).groups)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (device, dtype) in zip(axes[0], panels):
        sub = df[(df.device == device) & (df.dtype == dtype)]
        for method, g in sub.groupby("method", sort=False):
            g = g.sort_values("n")
            ax.plot(g.n, g.seconds, marker="o", label=method)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("core variants n (m = 3n)")
        ax.set_ylabel("seconds per loss + gradient")
        ax.set_title(f"{device}, {dtype}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=150)
    plt.close(fig)


if __name__ == "__main__":
    if "snakemake" in globals():
        sm = globals()["snakemake"]
        with open(sm.log[0], "w") as log:
            sys.stderr = log
            plot_fig2(sm.input[0], sm.output[0])
    else:
        if len(sys.argv) != 3:
            sys.exit("usage: python workflow/scripts/plot_fig2.py FIG2.tsv OUT.png")
        plot_fig2(sys.argv[1], sys.argv[2])
