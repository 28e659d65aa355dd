"""One LD window as the likelihood and the prior see it: the unit of training (paper Sec. 4.1, App. A.3).

A `WindowData` is what one likelihood step needs: G, lam, y (for one trait) and the model inputs of the
window's extended variants (`freq`, normalised `pred` features, optional `tracks`). No file I/O: window
sources (`sources`) read the factor and statistics files and build windows with `make_window`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .likelihood.mismatch import regularise


@dataclass
class WindowData:
    name: str
    G: torch.Tensor
    lam: torch.Tensor
    y: torch.Tensor
    inputs: dict = field(default_factory=dict)      # freq, pred, (tracks)
    n_core: int = 0
    variants: np.ndarray | None = None              # variant keys of the rows (shared_forward's row identity)

    @property
    def m(self) -> int:
        return self.G.shape[0]

    @property
    def rank(self) -> int:
        return self.lam.shape[0]

    def to(self, device) -> "WindowData":
        return WindowData(self.name, self.G.to(device), self.lam.to(device), self.y.to(device),
                          {k: v.to(device) for k, v in self.inputs.items()}, self.n_core, self.variants)


def make_window(name: str, factors: dict, y: np.ndarray, pred: np.ndarray, tracks: np.ndarray | None = None,
                mismatch: float = 0.0) -> WindowData:
    """`mismatch`: the lambda of R~ = (1 - lambda) R + lambda I (s2.json): G, y, lam are those of R~
    (`likelihood.mismatch.regularise`), so every solver scores the mismatch model."""
    G, y, lam = regularise(np.asarray(factors["G"], dtype=np.float64), np.asarray(y, dtype=np.float64),
                           np.asarray(factors["lam"], dtype=np.float64), factors.get("U"), factors["core"], mismatch)
    tracks = factors.get("tracks") if tracks is None else tracks
    inputs = {"freq": torch.as_tensor(factors["freq"], dtype=torch.float64),
              "pred": torch.as_tensor(pred, dtype=torch.float32)}
    if tracks is not None:
        inputs["tracks"] = torch.as_tensor(tracks, dtype=torch.float32)
    return WindowData(name, torch.as_tensor(G, dtype=torch.float64),
                      torch.as_tensor(lam, dtype=torch.float64),
                      torch.as_tensor(y, dtype=torch.float64), inputs, int(factors["core"].shape[0]),
                      factors.get("keys"))
