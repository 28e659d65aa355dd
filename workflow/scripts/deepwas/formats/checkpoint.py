"""Training checkpoints (`results/checkpoints/.../last.pt`): one torch pickle of the trainer's state.

What a checkpoint holds and why a resume is exact is documented in `training`; this module only writes
and reads the file.
"""
from __future__ import annotations

import torch

from ..io import atomic_path


def save_checkpoint(path, state: dict) -> None:
    """Write `state` atomically (a killed job never leaves half a checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, map_location=None) -> dict:
    """The state written by `save_checkpoint` (it holds RNG states and optimiser state: not weights-only)."""
    return torch.load(path, map_location=map_location, weights_only=False)
