"""Per-variant 'pred' features and their normalisation (paper App. A.1: the d_pred inputs of the prior).

pred = [annotations..., frequency, MAF, LD score (, tracks_missing)] per variant of a window's extended set
(i)+: the frequency of the effect allele as harmonised, MAF = min(f, 1 - f), the whole-window LD score
l_m = sum_k r_mk^2 stored in the factor file, and with track features a last column that is 1 for variants
without them. `FeatureScaler` standardises the columns with the exact mean and sd over the training variants.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FeatureScaler:
    """Exact mean/sd of the per-variant features over the training variants (App. A.1 normalisation)."""

    names: list[str]
    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def fit(cls, names, blocks: list[np.ndarray]) -> "FeatureScaler":
        X = np.concatenate(blocks, 0) if blocks else np.zeros((0, len(names)))
        if X.shape[0] == 0:
            raise ValueError("cannot fit feature normalisation: no training variants")
        sd = X.std(0)
        return cls(list(names), X.mean(0), np.where(sd > 0, sd, 1.0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.sd

    def state(self) -> dict:
        return {"names": self.names, "mean": self.mean.tolist(), "sd": self.sd.tolist()}

    @classmethod
    def from_state(cls, s: dict) -> "FeatureScaler":
        return cls(list(s["names"]), np.asarray(s["mean"]), np.asarray(s["sd"]))


def pred_features(factors: dict, annotations: np.ndarray | None, tracks_missing: np.ndarray | None = None) -> np.ndarray:
    """Per-variant 'pred' features: [annotations..., frequency, MAF, LD score (, tracks_missing)] (App. A.1);
    the last column, with track features, is 1 for variants without them."""
    freq = factors["freq"]
    cols = [freq, np.minimum(freq, 1 - freq), factors["ldscore"]]
    if tracks_missing is not None:
        cols.append(np.asarray(tracks_missing, dtype=np.float64))
    base = np.stack(cols, 1)
    return base if annotations is None else np.concatenate([annotations, base], 1)


def annotation_block(annotations, keys) -> tuple[np.ndarray | None, int]:
    """(annotation values of the variants `keys`, 0 where a variant is absent; how many are absent)."""
    if annotations is None:
        return None, 0
    a = annotations.reindex(keys)
    return a.fillna(0.0).to_numpy(dtype=np.float64), int(a.isna().any(axis=1).sum())


def pred_feature_names(annotation_names: list[str], tracks: bool = False) -> list[str]:
    """Names of the 'pred' columns; with track features the last one is the missing-tracks indicator."""
    return list(annotation_names) + ["frequency", "maf", "ldscore"] + (["tracks_missing"] if tracks else [])
