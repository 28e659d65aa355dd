"""Where and how a trained prior is run on many variants: held-out evaluation (Sec. 6.2), per-variant prior
export and h2 (the transformer's point estimate).

The prior f_theta(C) of Eqn 6 is a function of each variant's own inputs (its features and, for the
transformer, its own track window; App. A), so it can be run on any batch of variants: the rows are cut into
batches of `batch_size` variants (bounded memory: the [batch, d_func, w] track block and the network's
activations of one batch), run on the training device (`train.device`: CUDA when there is one), and gathered
in float64 on the CPU. On CUDA the transformer's network runs under `train.autocast` as in training; the
constant and GLM priors and every likelihood stay float64. On the CPU nothing is cast and the result
equals one forward over all rows to float32 rounding (bit for bit where the CPU's kernels block the rows the
same way at every batch size, as on the CI machine; tests/test_inference.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import block_defaults
from .training import _autocast, pick_device


@dataclass(frozen=True)
class Inference:
    """Device, autocast and batch size of a prior's forward over many variants."""
    device: torch.device = torch.device("cpu")
    autocast: str | None = None          # None | bfloat16 | float16, used on CUDA only
    batch_size: int = 4096               # variants per forward (0: all rows at once)

    @classmethod
    def from_config(cls, model: str, train: dict | None = None, inference: dict | None = None) -> "Inference":
        """The inference of `model` from the config blocks `train` (device, autocast) and `inference`
        (batch_size); absent keys take the schema's defaults. Autocast only for the transformer on CUDA."""
        t, i = block_defaults("train", train), block_defaults("inference", inference)
        device = pick_device(t["device"])
        autocast = t["autocast"] if device.type == "cuda" and model == "transformer" else None
        return cls(device, autocast, int(i["batch_size"]))

    def place(self, prior: torch.nn.Module) -> torch.nn.Module:
        """`prior` on the device, in eval mode (no dropout)."""
        return prior.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, prior: torch.nn.Module, inputs: dict) -> torch.Tensor:
        """f of every row of `inputs` (freq, pred, tracks: CPU tensors) as a float64 CPU tensor; `prior` must
        be on the device (`place`). Eval mode (no dropout), as the held-out evaluation of Sec. 6.2."""
        prior.eval()
        m = int(inputs["freq"].shape[0])
        size = self.batch_size if self.batch_size > 0 else max(m, 1)
        parts = []
        for i in range(0, m, size):
            batch = {k: v[i:i + size].to(self.device, non_blocking=True) for k, v in inputs.items()}
            with _autocast(self.autocast, self.device):
                parts.append(prior(batch).double().cpu())
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def inference_config(config: dict) -> dict:
    """The keyword arguments train= and inference= of the inference entry points from the workflow's config.
    The rules' scripts read them from the config, not from rule params: the device and batch size do not
    change the result (on the CPU), so changing them must not rerun evaluations or prior exports."""
    return {"train": config.get("train"), "inference": config.get("inference")}
