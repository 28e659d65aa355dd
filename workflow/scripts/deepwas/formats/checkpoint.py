"""Training files: checkpoints (`results/checkpoints/.../last.pt`, one torch pickle of the trainer's state)
and the metrics table (`results/train/.../metrics.tsv`, one row per window and epoch).

What a checkpoint holds and why a resume is exact is documented in `training`; among it, `state["metrics"]`
is the metrics rows written up to the checkpoint, so that a resumed run rewrites the whole table
(`open_metrics`) even after Snakemake deleted it with the failed job's other outputs.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import torch

from ..io import atomic_path

METRICS_COLUMNS = ["epoch", "position", "window", "step", "nll", "lr", "seconds"]


def save_checkpoint(path, state: dict) -> None:
    """Write `state` atomically (a killed job never leaves half a checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, map_location=None) -> dict:
    """The state written by `save_checkpoint` (it holds RNG states and optimiser state: not weights-only)."""
    return torch.load(path, map_location=map_location, weights_only=False)


def open_metrics(path, rows=()):
    """Start the metrics table at `path` (None: a sink that writes nothing, for ranks other than 0) with its
    header and `rows` (the rows of the checkpoint a run resumes); returns (file handle, csv writer) for the
    rows to come, tab-separated in METRICS_COLUMNS order."""
    if path is None:
        fh = open(os.devnull, "w", newline="")
        return fh, csv.writer(fh, delimiter="\t")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "w", newline="")
    writer = csv.writer(fh, delimiter="\t")
    writer.writerow(METRICS_COLUMNS)
    writer.writerows(rows)
    return fh, writer
