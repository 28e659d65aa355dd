"""Per-window training data: LD factors + whitened statistics + per-variant features, as tensors.

A `WindowData` is what one likelihood step needs: G, lam, y (for one trait) and the model inputs of the
window's extended variants (`freq`, normalised `pred` features, optional `tracks`). The factor files are
written by the `ld_factors` rule (one `.npz` per window); the statistics by the `whiten` rule.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .io import atomic_path
from .ld_factors import WindowFactors

FACTOR_ARRAYS = ("G", "lam", "U", "core", "ldscore", "positions", "freq")


def save_factors(path, factors: WindowFactors, positions: np.ndarray, keys: np.ndarray, freq: np.ndarray,
                 dtype=np.float64) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, G=factors.G.astype(dtype), lam=factors.lam, U=factors.U.astype(dtype), core=factors.core,
                 ldscore=factors.ldscore, positions=positions, keys=keys.astype(str), freq=freq)


def load_factors(path) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: cannot read LD factor file ({err}); delete it and rerun the ld_factors rule") from err
    missing = [k for k in FACTOR_ARRAYS if k not in out]
    if missing:
        raise ValueError(f"{path}: LD factor file lacks {missing}; it was written by another version, rerun ld_factors")
    return out


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


def pred_features(factors: dict, annotations: np.ndarray | None) -> np.ndarray:
    """Per-variant 'pred' features: [annotations..., frequency, MAF, LD score] (DESIGN section 4)."""
    freq = factors["freq"]
    cols = [freq, np.minimum(freq, 1 - freq), factors["ldscore"]]
    base = np.stack(cols, 1)
    return base if annotations is None else np.concatenate([annotations, base], 1)


def pred_feature_names(annotation_names: list[str], tracks: bool = False) -> list[str]:
    """Names of the 'pred' columns; with track features the last one is the missing-tracks indicator."""
    return list(annotation_names) + ["frequency", "maf", "ldscore"] + (["tracks_missing"] if tracks else [])


@dataclass
class WindowData:
    name: str
    G: torch.Tensor
    lam: torch.Tensor
    y: torch.Tensor
    inputs: dict = field(default_factory=dict)      # freq, pred, (tracks)
    n_core: int = 0

    @property
    def m(self) -> int:
        return self.G.shape[0]

    @property
    def rank(self) -> int:
        return self.lam.shape[0]

    def to(self, device) -> "WindowData":
        return WindowData(self.name, self.G.to(device), self.lam.to(device), self.y.to(device),
                          {k: v.to(device) for k, v in self.inputs.items()}, self.n_core)


def make_window(name: str, factors: dict, y: np.ndarray, pred: np.ndarray, tracks: np.ndarray | None = None) -> WindowData:
    tracks = factors.get("tracks") if tracks is None else tracks
    inputs = {"freq": torch.as_tensor(factors["freq"], dtype=torch.float64),
              "pred": torch.as_tensor(pred, dtype=torch.float32)}
    if tracks is not None:
        inputs["tracks"] = torch.as_tensor(tracks, dtype=torch.float32)
    return WindowData(name, torch.as_tensor(factors["G"], dtype=torch.float64),
                      torch.as_tensor(factors["lam"], dtype=torch.float64),
                      torch.as_tensor(y, dtype=torch.float64), inputs, int(factors["core"].shape[0]))


def read_annotations(path) -> "pd.DataFrame | None":
    """Optional per-variant annotation table (chromosome position allele1 allele2 + numeric columns)."""
    import pandas as pd

    from .harmonise import variant_key

    if not path:
        return None
    t = pd.read_csv(path, sep="\t", dtype={"chromosome": str})
    missing = [c for c in ("chromosome", "position", "allele1", "allele2") if c not in t.columns]
    if missing:
        raise ValueError(f"{path}: annotation table lacks column(s) {missing}")
    vals = t.drop(columns=["chromosome", "position", "allele1", "allele2"])
    bad = [c for c in vals.columns if not np.issubdtype(vals[c].dtype, np.number)]
    if bad:
        raise ValueError(f"{path}: annotation column(s) {bad} are not numeric")
    return vals.set_index(variant_key(t))


def load_windows(chrom_inputs, annotations=None, tracks=None) -> list[tuple[str, dict, dict, np.ndarray]]:
    """[(name, factors, stats, raw pred features)] for the windows of the given chromosomes.

    chrom_inputs: iterable of (factor_dir, manifest_tsv, stats_npz). Variants absent from the
    annotation table get 0 annotations (counted in the returned stats under 'n_missing_annotation').
    tracks: a `features.variants.VariantTracks`; then factors['tracks'] holds the normalised [m, d_func, w]
    windows, the pred features end with the missing-tracks indicator, and stats['n_missing_tracks'] counts
    the variants without features. The windows are held in memory (demo scale; UKBB-scale runs stream them
    with `features.loader.WindowDataset`).
    """
    import pandas as pd

    out = []
    for factor_dir, manifest, stats_npz in chrom_inputs:
        man = pd.read_csv(manifest, sep="\t")
        with np.load(stats_npz) as st:
            stats = {k: st[k] for k in st.files}
        for name in man.loc[man["status"] == "ok", "window"]:
            fac = load_factors(Path(factor_dir) / f"{name}.npz")
            ann = None
            n_missing = 0
            if annotations is not None:
                a = annotations.reindex(fac["keys"])
                n_missing = int(a.isna().any(axis=1).sum())
                ann = a.fillna(0.0).to_numpy(dtype=np.float64)
            wstats = {k.split("/")[0]: v for k, v in stats.items() if k.endswith("/" + name)}
            wstats["n_missing_annotation"] = n_missing
            pred = pred_features(fac, ann)
            if tracks is not None:
                fac["tracks"], missing = tracks(fac["keys"])
                wstats["n_missing_tracks"] = int(missing.sum())
                pred = np.concatenate([pred, missing[:, None].astype(np.float64)], 1)
            out.append((name, fac, wstats, pred))
    return out


def trait_sample_size(loaded) -> float:
    """The trait's N: the median per-variant sample size over the core variants loaded."""
    ns = np.concatenate([s["n"] for _, _, s, _ in loaded])
    return float(np.median(ns))
