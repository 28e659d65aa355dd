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


def simulation_rmse_bars(table: pd.DataFrame, out) -> None:
    """Semi-synthetic recovery (paper Figs. 4 and 7): RMSE of log f on held-out variants, one panel per truth,
    one bar per model, DeepWAS and LDSR side by side. `table` has the columns of semisynthetic.RMSE_COLUMNS."""
    truths = list(dict.fromkeys(table["truth"]))
    models = [m for m in ("constant", "glm", "transformer") if m in set(table["model"])]
    models += sorted(set(table["model"]) - set(models))
    objectives = [o for o in ("deepwas", "ldsr") if o in set(table["objective"])]
    objectives += sorted(set(table["objective"]) - set(objectives))
    colours = {"deepwas": "#1f77b4", "ldsr": "#ff7f0e"}
    width = 0.8 / max(1, len(objectives))
    fig, axes = plt.subplots(1, len(truths), figsize=(3.8 * len(truths), 3.4), squeeze=False)
    for ax, truth in zip(axes[0], truths):
        g = table[table["truth"] == truth].set_index(["model", "objective"])["rmse_log_f"]
        for j, obj in enumerate(objectives):
            vals = [g.get((m, obj), np.nan) for m in models]
            ax.bar(np.arange(len(models)) + (j - (len(objectives) - 1) / 2) * width, vals, width,
                   label=obj, color=colours.get(obj))
        ax.set_xticks(np.arange(len(models)), models)
        ax.set_ylabel("RMSE of log f (held-out variants)")
        ax.set_title(f"truth: {truth}")
    axes[0][0].legend(fontsize=8, loc="lower left", framealpha=0.9)
    fig.suptitle("Semi-synthetic recovery of the true prior (lower is better)", fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
