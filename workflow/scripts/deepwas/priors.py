"""Functionally informed priors f_theta (paper Eqn 6):

    f_m = (p_m (1 - p_m))^alpha * exp(NN_theta(C_m))

`Prior` applies the frequency term (alpha fixed at 0.7 by default, optionally learnt) around a body
NN_theta. Bodies: `Constant` (NN = c), `Linear` (the generalised linear model of App. A.2: linear in the
window-averaged tracks and the per-variant features, plus c) and, from `deepwas.networks`, the
Enformer-style network. Every body's output bias starts at `init_log_scale`, chosen by the caller so that
E_m f_m is about h2 / M (App. A.5).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .networks import EnformerNN


class Constant(nn.Module):
    def __init__(self, init_log_scale: float = 0.0, **_):
        super().__init__()
        self.c = nn.Parameter(torch.tensor(float(init_log_scale)))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.c.expand(batch["freq"].shape[0])


class Linear(nn.Module):
    """GLM body (App. A.2): sum_d w_d mean_w(C_func[d, w]) + sum_d' w'_d' C_pred[d'] + c."""

    def __init__(self, d_pred: int, d_func: int = 0, init_log_scale: float = 0.0, **_):
        super().__init__()
        self.lin = nn.Linear(d_pred + d_func, 1)
        nn.init.zeros_(self.lin.weight)
        nn.init.constant_(self.lin.bias, float(init_log_scale))
        self.d_func = d_func

    def forward(self, batch: dict) -> torch.Tensor:
        x = batch["pred"]
        if self.d_func:
            x = torch.cat([x, batch["tracks"].mean(-1)], dim=1)
        return self.lin(x).squeeze(-1)


class Network(nn.Module):
    """Deep body: c + EnformerNN(C_func, C_pred) (App. A.1); the network's output starts near 0, so the prior
    starts at the constant prior c. Needs track windows in the batch (`tracks` [m, d_func, w])."""

    def __init__(self, d_pred: int, d_func: int, init_log_scale: float = 0.0, size: str = "tiny",
                 w: int | None = None, **overrides):
        super().__init__()
        if d_func <= 0:
            raise ValueError("the transformer prior reads functional tracks, but no tracks were given: set "
                             "features.tracks (the demo's synthetic tracks or a track manifest) or drop 'transformer' "
                             "from models")
        self.net = EnformerNN.from_size(size, d_func=d_func, d_pred=d_pred, w=w, **overrides)
        self.c = nn.Parameter(torch.tensor(float(init_log_scale)))

    def forward(self, batch: dict) -> torch.Tensor:
        if "tracks" not in batch:
            raise KeyError("the transformer prior needs batch['tracks'] ([variants, d_func, w] track windows)")
        return self.c + self.net(batch["tracks"], batch["pred"])


class Prior(nn.Module):
    def __init__(self, body: nn.Module, alpha: float = 0.7, learn_alpha: bool = False):
        super().__init__()
        self.body = body
        a = torch.tensor(float(alpha))
        if learn_alpha:
            self.alpha = nn.Parameter(a)
        else:
            self.register_buffer("alpha", a)

    def log_f(self, batch: dict) -> torch.Tensor:
        p = batch["freq"].double().clamp(1e-6, 1 - 1e-6)
        return self.alpha.double() * torch.log(p * (1 - p)) + self.body(batch).double()

    def forward(self, batch: dict) -> torch.Tensor:
        return torch.exp(self.log_f(batch))


def init_log_scale(freq: np.ndarray, h2: float, M: int, alpha: float) -> float:
    """Bias c such that mean_m (p(1-p))^alpha e^c = h2 / M (App. A.5 normalisation)."""
    p = np.clip(freq, 1e-6, 1 - 1e-6)
    return math.log(h2 / M) - math.log(np.mean((p * (1 - p)) ** alpha))


def build_prior(model: str, d_pred: int, d_func: int, init_log_scale: float, alpha: float = 0.7,
                learn_alpha: bool = False, network: dict | None = None) -> Prior:
    """The prior named in the config: 'constant', 'glm' or 'transformer' (Enformer-style, paper Sec. 5.2, App. A.1).

    `network`: keyword arguments of the transformer body: `size` (a name in networks.SIZES), `w` (track
    window length) and any EnformerNN override (e.g. `norm`, `checkpointing`)."""
    if model == "constant":
        body = Constant(init_log_scale)
    elif model == "glm":
        body = Linear(d_pred=d_pred, d_func=d_func, init_log_scale=init_log_scale)
    elif model == "transformer":
        body = Network(d_pred=d_pred, d_func=d_func, init_log_scale=init_log_scale, **(network or {}))
    else:
        raise ValueError(f"unknown model {model!r}; choose constant, glm or transformer")
    return Prior(body, alpha=alpha, learn_alpha=learn_alpha)
