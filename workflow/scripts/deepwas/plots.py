"""Figures: held-out likelihood gain per model and trait (paper Fig. 5 analogue)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .io import atomic_path  # noqa: E402


def heldout_bars(summary: pd.DataFrame, out) -> None:
    """One panel per trait, one bar per model/objective, sorted as in the table."""
    traits = sorted(summary["trait"].unique())
    fig, axes = plt.subplots(1, len(traits), figsize=(4.2 * len(traits), 3.6), squeeze=False)
    for ax, trait in zip(axes[0], traits):
        g = summary[summary["trait"] == trait].sort_values("pct_per_person")
        labels = [f"{m}\n({o})" for m, o in zip(g["model"], g["objective"])]
        colours = ["#7f7f7f" if m == "oracle" else "#1f77b4" if o == "deepwas" else "#ff7f0e"
                   for m, o in zip(g["model"], g["objective"])]
        ax.barh(np.arange(len(g)), g["pct_per_person"], color=colours)
        ax.set_yticks(np.arange(len(g)), labels, fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(trait)
        ax.set_xlabel("held-out likelihood increase per person (%)")
    fig.suptitle("DeepWAS: held-out chromosomes vs the null model (f = 0)", fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
