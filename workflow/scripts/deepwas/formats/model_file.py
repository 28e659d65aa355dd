"""The trained-model file (`results/train/{trait}/{model}/{objective}/model.pt`).

One torch pickle of a plain dict (no package classes, so a file outlives refactors) with the fields of
`ModelFile` and `format`. What is stored is what it takes to rebuild the prior of Eqn 6 (App. A.1) for
scoring: the model kind and its size (d_pred, d_func, network), alpha, the parameters, the pred-feature
normalisation (`features.pred.FeatureScaler.state()`) and the track names the model read.

Format versions: 1 adds the `format` field; files written before (no `format`) hold the same keys and are
read as version 1 (`track_names` and `network` default to none).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

from ..io import atomic_path

MODEL_FORMAT = 1


@dataclass
class ModelFile:
    model: str                       # constant | glm | transformer
    objective: str                   # deepwas | ldsr
    state: dict                      # the prior's state_dict
    scaler: dict                     # FeatureScaler.state()
    d_pred: int
    d_func: int
    alpha: float
    learn_alpha: bool
    init_log_scale: float
    network: dict | None = None      # the network block (transformer), with the track window w
    track_names: list = field(default_factory=list)
    train: dict = field(default_factory=dict)   # what Trainer.fit returned
    format: int = MODEL_FORMAT

    def save(self, path) -> None:
        with atomic_path(path) as tmp:
            torch.save(asdict(self), tmp)

    @classmethod
    def load(cls, path, map_location="cpu") -> "ModelFile":
        try:
            d = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as err:
            raise ValueError(f"{path}: cannot read the model file ({err}); rerun the train rule") from err
        if not isinstance(d, dict):
            raise ValueError(f"{path}: not a DeepWAS model file; rerun the train rule")
        d = dict(d)
        version = d.setdefault("format", MODEL_FORMAT)
        if version != MODEL_FORMAT:
            raise ValueError(f"{path}: model file format {version}, this version reads {MODEL_FORMAT}; "
                             "rerun the train rule")
        d["track_names"] = d.get("track_names") or []
        known = {f.name for f in fields(cls)}
        required = ("model", "objective", "state", "scaler", "d_pred", "d_func", "alpha", "learn_alpha",
                    "init_log_scale")
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"{path}: model file lacks {missing}; rerun the train rule")
        return cls(**{k: v for k, v in d.items() if k in known})
