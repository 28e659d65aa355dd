"""The paper's figures and Table 1, each drawn from a result table (never from a model being trained).

Every function takes DataFrames and returns the matplotlib Figure; with `out` it also saves it (PNG,
atomically) and closes it. The figures:

- Fig. 2 (Sec. 4.2): seconds per loss + gradient by method, window size and device (`fig2_timings`);
- Fig. 3 (Sec. 6.3): predicted enrichment sqrt(f / E f) along a region, input tracks below (`fig3_region`);
- Figs. 4 and 7 (Sec. 6.1, App. A.5): semi-synthetic RMSE of log f (`simulation_rmse_bars`);
- Fig. 5 (Sec. 6.2): held-out likelihood gain per trait, model and objective (`heldout_bars`);
- Fig. 6 and Table 1 (Sec. 6.2, App. A.3): ablations against the full model (`ablation_table`, `ablation_bars`).
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .io import atomic_path  # noqa: E402

OBJECTIVE_COLOURS = {"deepwas": "#1f77b4", "ldsr": "#ff7f0e", "truth": "#7f7f7f"}
MODEL_ORDER = ("constant", "glm", "transformer")


def _finish(fig, out):
    """Save `fig` to `out` (when given) and close it; return the figure either way."""
    if out is not None:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)
    return fig


def _require(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: the table lacks column(s) {missing} (has {list(df.columns)})")
    if len(df) == 0:
        raise ValueError(f"{what}: the table has no rows")


def _ordered(values, order=MODEL_ORDER) -> list:
    present = list(dict.fromkeys(values))
    return [v for v in order if v in present] + [v for v in present if v not in order]


# ------------------------------------------------------------------------------------------------ Fig. 2
def fig2_timings(table: pd.DataFrame, out=None):
    """Fig. 2: one panel per (device, dtype), one line per method: seconds per loss + gradient against the
    number of core variants n (log-log). Rows without a finite time (a solver that did not converge) are
    left out of the lines. Columns: device dtype method n seconds (benchmarks/fig2.py writes them)."""
    _require(table, ["device", "dtype", "method", "n", "seconds"], "Fig. 2")
    df = table.assign(seconds=pd.to_numeric(table["seconds"], errors="coerce"), n=pd.to_numeric(table["n"]))
    df = df[np.isfinite(df["seconds"])]
    panels = sorted(df.groupby(["device", "dtype"]).groups)
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5 * max(1, len(panels)), 4), squeeze=False)
    for ax, (device, dtype) in zip(axes[0], panels):
        sub = df[(df["device"] == device) & (df["dtype"] == dtype)]
        for method, g in sub.groupby("method", sort=False):
            g = g.sort_values("n")
            ax.plot(g["n"], g["seconds"], marker="o", label=method)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("core variants n (m = 3n)")
        ax.set_ylabel("seconds per loss + gradient")
        ax.set_title(f"{device}, {dtype}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, out)


# ------------------------------------------------------------------------------------------------ Fig. 3
def fig3_region(region: pd.DataFrame, tracks: list[str] | None = None, out=None, title: str = ""):
    """Fig. 3: sqrt(f / E f) of every variant in a region (top panel; E f is the mean over the chromosome's
    variants, column `enrichment` = f / E f), one panel per selected input track below (its normalised value
    at the variant, a column of `region`). Columns: position enrichment [track ...]."""
    _require(region, ["position", "enrichment"], "Fig. 3")
    tracks = list(tracks or [])
    absent = [t for t in tracks if t not in region.columns]
    if absent:
        raise ValueError(f"Fig. 3: track(s) {absent} are not in the region table (tracks: "
                         f"{[c for c in region.columns if c not in ('chromosome', 'position', 'key', 'f', 'enrichment')]})")
    r = region.sort_values("position")
    heights = [3] + [1] * len(tracks)
    fig, axes = plt.subplots(1 + len(tracks), 1, figsize=(8, 2.2 + 1.0 * len(tracks)), sharex=True,
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    top = axes[0][0]
    top.plot(r["position"], np.sqrt(r["enrichment"]), lw=0.8, color="#1f77b4", marker=".", ms=2)
    top.axhline(1.0, color="black", lw=0.6, ls="--")
    top.set_ylabel("sqrt(f / E f)")
    if title:
        top.set_title(title, fontsize=10)
    for ax, name in zip([a[0] for a in axes[1:]], tracks):
        ax.fill_between(r["position"], r[name], step="mid", color="#555555", lw=0)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax.set_yticks([])
    axes[-1][0].set_xlabel("position (GRCh37, bp)")
    fig.tight_layout()
    return _finish(fig, out)


# ------------------------------------------------------------------------------------------- Figs. 4, 7
def simulation_rmse_bars(table: pd.DataFrame, out=None):
    """Figs. 4 and 7: RMSE of log f on held-out variants, one panel per truth, one bar per model, the two
    objectives side by side. `table` has the columns of semisynthetic.RMSE_COLUMNS."""
    _require(table, ["truth", "model", "objective", "rmse_log_f"], "Figs. 4 and 7")
    truths = list(dict.fromkeys(table["truth"]))
    models = _ordered(table["model"])
    objectives = _ordered(table["objective"], ("deepwas", "ldsr"))
    width = 0.8 / max(1, len(objectives))
    fig, axes = plt.subplots(1, len(truths), figsize=(3.8 * len(truths), 3.4), squeeze=False)
    for ax, truth in zip(axes[0], truths):
        g = table[table["truth"] == truth].set_index(["model", "objective"])["rmse_log_f"]
        for j, obj in enumerate(objectives):
            vals = [g.get((m, obj), np.nan) for m in models]
            ax.bar(np.arange(len(models)) + (j - (len(objectives) - 1) / 2) * width, vals, width,
                   label=obj, color=OBJECTIVE_COLOURS.get(obj))
        ax.set_xticks(np.arange(len(models)), models)
        ax.set_ylabel("RMSE of log f (held-out variants)")
        ax.set_title(f"truth: {truth}")
    axes[0][0].legend(fontsize=8, loc="lower left", framealpha=0.9)
    fig.suptitle("Semi-synthetic recovery of the true prior (lower is better)", fontsize=10)
    fig.tight_layout()
    return _finish(fig, out)


# ------------------------------------------------------------------------------------------------ Fig. 5
def heldout_bars(summary: pd.DataFrame, out=None):
    """Fig. 5: one panel per trait, one horizontal bar per model (objective): the held-out percentage
    likelihood increase per person (App. C.2), sorted ascending. Columns: trait model objective pct_per_person."""
    _require(summary, ["trait", "model", "objective", "pct_per_person"], "Fig. 5")
    traits = sorted(summary["trait"].unique())
    fig, axes = plt.subplots(1, len(traits), figsize=(4.2 * len(traits), 3.6), squeeze=False)
    for ax, trait in zip(axes[0], traits):
        g = summary[summary["trait"] == trait].sort_values("pct_per_person")
        labels = [f"{m}\n({o})" for m, o in zip(g["model"], g["objective"])]
        colours = [OBJECTIVE_COLOURS["truth"] if m == "oracle" else OBJECTIVE_COLOURS.get(o, "#2ca02c")
                   for m, o in zip(g["model"], g["objective"])]
        ax.barh(np.arange(len(g)), g["pct_per_person"], color=colours)
        ax.set_yticks(np.arange(len(g)), labels, fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(trait)
        ax.set_xlabel("held-out likelihood increase per person (%)")
    fig.suptitle("DeepWAS: held-out chromosomes vs the null model (f = 0)", fontsize=10)
    fig.tight_layout()
    return _finish(fig, out)


# ---------------------------------------------------------------------------------------- Fig. 6, Table 1
TABLE1_COLUMNS = ["trait", "model", "objective", "ablation", "pct_per_person", "full_pct_per_person",
                  "difference", "relative"]


def ablation_table(full: pd.DataFrame, ablations: pd.DataFrame) -> pd.DataFrame:
    """Table 1: the held-out gain (pct_per_person, App. C.2) of each ablation beside the full model's for the
    same trait, model and objective; difference = ablation - full, relative = ablation / full.

    `full`: the summary table (trait model objective pct_per_person); `ablations`: the same columns plus
    `ablation`. An ablation whose full model is not in `full` is an error (it has nothing to compare with)."""
    _require(full, ["trait", "model", "objective", "pct_per_person"], "Table 1 (full model)")
    _require(ablations, ["ablation", "trait", "model", "objective", "pct_per_person"], "Table 1 (ablations)")
    key = ["trait", "model", "objective"]
    ref = full[key + ["pct_per_person"]].rename(columns={"pct_per_person": "full_pct_per_person"})
    t = ablations[["ablation"] + key + ["pct_per_person"]].merge(ref, on=key, how="left")
    lost = t[t["full_pct_per_person"].isna()]
    if len(lost):
        raise ValueError("Table 1: no full-model result for " + ", ".join(
            f"{r.trait}/{r.model}/{r.objective} (ablation {r.ablation})" for r in lost.itertuples())
            + "; the full model must be trained with the same models and objectives")
    t["difference"] = t["pct_per_person"] - t["full_pct_per_person"]
    t["relative"] = t["pct_per_person"] / t["full_pct_per_person"]
    return t[TABLE1_COLUMNS].sort_values(["trait", "model", "objective", "ablation"]).reset_index(drop=True)


def markdown_table(df: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """A GitHub-flavoured Markdown table of `df` (numbers with `float_format`)."""
    def cell(v):
        return float_format.format(v) if isinstance(v, (float, np.floating)) else str(v)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |",
             "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def ablation_bars(table: pd.DataFrame, out=None):
    """Fig. 6: one panel per trait, one bar per configuration ('full' first, then each ablation) of the
    held-out percentage likelihood increase per person, one group per model (objective). `table`: Table 1."""
    _require(table, TABLE1_COLUMNS, "Fig. 6")
    traits = sorted(table["trait"].unique())
    n_bars = max(int((table["trait"] == t).sum()) + table[table["trait"] == t].groupby(["model", "objective"]).ngroups
                 for t in traits)
    fig, axes = plt.subplots(1, len(traits), figsize=(max(6.0, 1.2 * n_bars) * len(traits), 4.0), squeeze=False)
    for ax, trait in zip(axes[0], traits):
        g = table[table["trait"] == trait]
        labels, heights, colours = [], [], []
        for (model, objective), h in g.groupby(["model", "objective"], sort=True):
            labels.append(f"full\n{model} ({objective})")
            heights.append(float(h["full_pct_per_person"].iloc[0]))
            colours.append("#1f77b4")
            for r in h.sort_values("ablation").itertuples():
                labels.append(f"{r.ablation}\n{model} ({objective})")
                heights.append(float(r.pct_per_person))
                colours.append("#9467bd")
        ax.bar(np.arange(len(heights)), heights, color=colours)
        ax.set_xticks(np.arange(len(heights)), labels, fontsize=7, rotation=30, ha="right")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_ylabel("held-out likelihood increase per person (%)")
        ax.set_title(trait)
    fig.suptitle("Ablations against the full model (held-out chromosomes)", fontsize=10)
    fig.tight_layout()
    return _finish(fig, out)
