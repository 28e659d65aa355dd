"""Enformer-style transformer-CNN hybrid NN_theta for the DeepWAS prior (paper Sec. 5.2, App. A.1).

Input per variant m: functional tracks C_func,m [d_func, w] and per-variant features C_pred,m [d_pred].
C_pred is broadcast along the window and concatenated to the tracks as extra channels (paper: 165 + 9 = 174
channels, w = 256), then

    stem        Conv1d(d_in -> dim/2, k=15) -> Residual(ConvBlock k=1) -> AttentionPool(2)        w   -> w/2
    conv tower  (num_downsamples - 1) x [ConvBlock k=5 (c_in -> c_out) -> Residual(ConvBlock k=1)
                                         -> AttentionPool(2)], channels growing exponentially to dim
    transformer depth x [pre-LN multi-head attention with Enformer relative positions, pre-LN MLP (2x)]
    crop        centre crop to target_length positions (None: keep all)
    pointwise   ConvBlock(dim -> 2 dim, k=1), dropout, GELU
    head        mean over positions -> Linear(2 dim -> 1)   => NN_theta(C_m), a scalar on the log scale

ConvBlock = norm -> GELU -> Conv1d. AttentionPool pools pairs of positions with softmax weights given by a
learnt channel mixing (initialised to the identity, as in Enformer). The relative positional encoding is
Enformer's: for every distance d = j - i in [-(n-1), n-1] a fixed basis (exponential decays, central
masks and gamma densities of |d|, each also multiplied by sign(d)) is projected per head to a relative key;
logits = (q + u) . k_j + (q + v) . relk(j - i), with learnt content bias u and position bias v.

The layout and the default sizes follow lucidrains/enformer-pytorch (the paper's A.1 starting point) with
num_downsamples = 3 so that w = 256 pools to the target length 32. Differences, all deliberate:
- the output layer and each attention output projection start small (not zero): initial NN outputs are
  near 0 (so f starts at the alpha term times exp(0)), yet every parameter receives a non-zero gradient
  from the first step (Enformer's zero-initialised attention output leaves q, k, v and the positional
  parameters with exactly zero gradient at initialisation);
- optional gradient checkpointing uses torch.utils.checkpoint with use_reentrant=False, which keeps the
  gradient of every parameter (the reference code's reentrant checkpointing froze all but the last
  layers). With BatchNorm in training mode the recomputation updates the running statistics a second time;
- `norm="layer"` replaces BatchNorm by a per-position LayerNorm over channels (same parameter count), so
  that NN_theta of a variant does not depend on which other variants share its batch.

The attention runs through torch's scaled_dot_product_attention (fused kernels on GPU) with the
relative-position logits as an additive float mask; `RelativeAttention(fused=False)` is the explicit
softmax it equals. The network returns float32 even under torch.autocast (bf16/fp16), float64 when its
parameters are float64; the likelihood stays float64.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

# Named sizes (DESIGN section 5). `expected_params` is the exact count for d_func = 165, d_pred = 9
# (174 input channels), as asserted by tests/test_networks.py; the count does not depend on w or on norm.
# full and reduced differ only in dim, as in App. A.1; all other settings are enformer-pytorch's defaults
# with num_downsamples = 3 (w = 256 -> 32). full: 51.99M (paper "about 52M"). reduced: 4.06M (paper "about
# 3.9M"); the gap is the conv tower's channel rounding to multiples of 128 (192 -> 256 -> 384): with
# dim_divisible_by=64 it is 3.82M. We keep the paper's rule (change dim only) rather than tune to a rounded
# figure.
SIZES: dict[str, dict] = {
    "full": dict(dim=1536, depth=2, heads=2, target_length=32, num_downsamples=3, attn_dim_key=64,
                 dim_divisible_by=128, dropout=0.4, attn_dropout=0.05, pos_dropout=0.01,
                 expected_params=51_992_577),
    "reduced": dict(dim=384, depth=2, heads=2, target_length=32, num_downsamples=3, attn_dim_key=64,
                    dim_divisible_by=128, dropout=0.4, attn_dropout=0.05, pos_dropout=0.01,
                    expected_params=4_061_441),
    "tiny": dict(dim=48, depth=1, heads=2, target_length=None, num_downsamples=3, attn_dim_key=16,
                 dim_divisible_by=8, dropout=0.1, attn_dropout=0.0, pos_dropout=0.0,
                 expected_params=101_681),
}
PAPER_D_FUNC, PAPER_D_PRED, PAPER_W = 165, 9, 256


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (all of them, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def exponential_channels(start: int, end: int, num: int, divisible_by: int = 1) -> list[int]:
    """`num` channel counts growing geometrically from start to end, rounded to multiples of divisible_by."""
    if num <= 0:
        return []
    if num == 1:
        return [end]
    base = math.exp(math.log(end / start) / (num - 1))
    return [max(divisible_by, int(round(start * base**i / divisible_by) * divisible_by)) for i in range(num)]


# ----------------------------------------------------------------------------------------------- blocks


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels at each position of a [B, C, L] tensor (batch-independent)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    if kind == "layer":
        return ChannelLayerNorm(channels)
    raise ValueError(f"norm must be 'batch' or 'layer', not {kind!r}")


class ConvBlock(nn.Sequential):
    """norm -> GELU -> Conv1d (same padding)."""

    def __init__(self, c_in: int, c_out: Optional[int] = None, kernel_size: int = 1, norm: str = "batch"):
        super().__init__(_norm(norm, c_in), nn.GELU(),
                         nn.Conv1d(c_in, c_out or c_in, kernel_size, padding=kernel_size // 2))


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class AttentionPool(nn.Module):
    """Softmax-weighted pooling of `pool_size` neighbouring positions, per channel.

    Logits are a learnt linear mix of the channels (initialised to the identity, so the pool starts close
    to a soft max-pool). An odd trailing position is padded and masked out.
    """

    def __init__(self, channels: int, pool_size: int = 2):
        super().__init__()
        self.pool_size = pool_size
        self.mix = nn.Parameter(torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        p = self.pool_size
        logits = torch.einsum("bcn,ce->ben", x, self.mix.to(x.dtype))
        pad = (-n) % p
        if pad:
            x = F.pad(x, (0, pad))
            logits = F.pad(logits, (0, pad), value=float("-inf"))
        x = x.reshape(b, c, -1, p)
        logits = logits.reshape(b, c, -1, p)
        w = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1).to(x.dtype)
        return (x * w).sum(-1)


# ------------------------------------------------------------------------------ relative positions


def _features_exponential(dist: torch.Tensor, k: int, n: int, min_half_life: float = 3.0) -> torch.Tensor:
    max_range = math.log2(max(n, 2))
    half_life = 2.0 ** torch.linspace(min(min_half_life, max_range), max_range, k, device=dist.device)
    return torch.exp(-math.log(2.0) * dist.abs()[:, None] / half_life[None, :])


def _features_central_mask(dist: torch.Tensor, k: int, n: int) -> torch.Tensor:
    widths = 2.0 ** torch.arange(1, k + 1, device=dist.device, dtype=torch.float32) - 1.0
    return (widths[None, :] > dist.abs()[:, None]).float()


def _features_gamma(dist: torch.Tensor, k: int, n: int, eps: float = 1e-8) -> torch.Tensor:
    stddev = n / (2.0 * k)
    mean = torch.linspace(n / k, n, k, device=dist.device)[None, :]
    conc = (mean / stddev) ** 2
    rate = mean / stddev**2
    x = dist.abs().float()[:, None]
    logp = torch.xlogy(conc - 1.0, x) - rate * x - (torch.lgamma(conc) - conc * torch.log(rate))
    p = torch.exp(logp) + eps
    return p / p.max()


def relative_position_basis(n: int, num_features: int, device=None) -> torch.Tensor:
    """Enformer's fixed relative-position basis, [2n - 1, num_features] for distances -(n-1) .. n-1.

    num_features / 6 functions of |d| in each of three families (exponential decay with half-lives
    2^3 .. n, central masks |d| < 2^k - 1, gamma densities with means n/k .. n), then the same multiplied
    by sign(d) so that the encoding distinguishes left from right.
    """
    if num_features % 6:
        raise ValueError(f"relative-position features ({num_features}) must be divisible by 6 "
                         "(3 basis families x symmetric/antisymmetric)")
    k = num_features // 6
    dist = torch.arange(-n + 1, n, device=device)
    sym = torch.cat([_features_exponential(dist, k, n), _features_central_mask(dist, k, n),
                     _features_gamma(dist, k, n)], dim=-1)
    return torch.cat([sym, torch.sign(dist).float()[:, None] * sym], dim=-1)


class RelativeAttention(nn.Module):
    """Multi-head self-attention with Enformer's relative positional logits (Transformer-XL style)."""

    def __init__(self, dim: int, heads: int, dim_key: int, dim_value: int, num_rel_features: int,
                 dropout: float = 0.0, pos_dropout: float = 0.0, out_init_std: float = 1e-2, fused: bool = True,
                 n_positions: Optional[int] = None):
        super().__init__()
        self.fused = fused
        self.heads, self.dim_key, self.dim_value = heads, dim_key, dim_value
        self.num_rel_features = num_rel_features
        self.to_q = nn.Linear(dim, heads * dim_key, bias=False)
        self.to_k = nn.Linear(dim, heads * dim_key, bias=False)
        self.to_v = nn.Linear(dim, heads * dim_value, bias=False)
        self.to_rel_k = nn.Linear(num_rel_features, heads * dim_key, bias=False)
        self.content_bias = nn.Parameter(torch.randn(heads, 1, dim_key))
        self.position_bias = nn.Parameter(torch.randn(heads, 1, dim_key))
        self.to_out = nn.Linear(heads * dim_value, dim)
        nn.init.normal_(self.to_out.weight, std=out_init_std / math.sqrt(heads * dim_value))
        nn.init.zeros_(self.to_out.bias)
        self.attn_dropout = nn.Dropout(dropout)
        self.pos_dropout = nn.Dropout(pos_dropout)
        # the fixed basis for the n_positions the network feeds it, computed once (float32, on the CPU) and
        # carried as a buffer (not saved): every forward, eager or torch.compile'd, on any device, reads the
        # same numbers (a float64 network the exact float64 conversion of them). Computed inside a compiled
        # graph, CUDA's float32 exp / lgamma kernels differ from eager ones by ~1e-7 relative, which moved the
        # float64 gradient of the positional parameters by 1e-6 (tests/test_gpu.py).
        basis = None if n_positions is None else relative_position_basis(n_positions, num_rel_features)
        self.register_buffer("rel_basis", basis, persistent=False)

    def _basis(self, n: int, device) -> torch.Tensor:
        if self.rel_basis is not None and self.rel_basis.shape[0] == 2 * n - 1:
            return self.rel_basis
        return relative_position_basis(n, self.num_rel_features, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, n, dim]
        b, n, _ = x.shape
        h = self.heads
        q = self.to_q(x).view(b, n, h, self.dim_key).transpose(1, 2) * self.dim_key**-0.5
        k = self.to_k(x).view(b, n, h, self.dim_key).transpose(1, 2)
        v = self.to_v(x).view(b, n, h, self.dim_value).transpose(1, 2)
        basis = self.pos_dropout(self._basis(n, x.device))
        rel_k = self.to_rel_k(basis.to(self.to_rel_k.weight.dtype)).view(2 * n - 1, h, self.dim_key)
        rel_k = rel_k.transpose(0, 1)                                             # [h, 2n-1, dk]
        rel_all = torch.matmul(q + self.position_bias.to(q.dtype), rel_k.transpose(-1, -2).to(q.dtype))
        # rel_all[..., i, t] is the logit for distance t - (n - 1); pick distance j - i for key j
        idx = (torch.arange(n, device=x.device)[None, :] - torch.arange(n, device=x.device)[:, None]) + n - 1
        rel = torch.gather(rel_all, -1, idx.expand(b, h, n, n))
        qc = q + self.content_bias.to(q.dtype)
        if self.fused:
            # softmax((q + u) k^T + rel) v with the relative-position logits as an additive float mask
            # (q is already scaled, hence scale=1); fused kernels on GPU, the same math on CPU
            out = F.scaled_dot_product_attention(qc, k, v, attn_mask=rel.to(qc.dtype), scale=1.0,
                                                 dropout_p=self.attn_dropout.p if self.training else 0.0)
        else:
            content = torch.matmul(qc, k.transpose(-1, -2))                         # [B, h, n, n]
            logits = content + rel                                                # softmax in >= float32
            attn = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1).to(v.dtype)
            out = torch.matmul(self.attn_dropout(attn), v)                        # [B, h, n, dv]
        return self.to_out(out.transpose(1, 2).reshape(b, n, h * self.dim_value))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_key: int, dropout: float, attn_dropout: float,
                 pos_dropout: float, n_positions: Optional[int] = None):
        super().__init__()
        self.attn = nn.Sequential(
            nn.LayerNorm(dim),
            RelativeAttention(dim, heads, dim_key, dim // heads, dim // heads, attn_dropout, pos_dropout,
                              n_positions=n_positions),
            nn.Dropout(dropout))
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.Dropout(dropout), nn.ReLU(),
                                 nn.Linear(2 * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


# -------------------------------------------------------------------------------------------- network


class EnformerNN(nn.Module):
    """NN_theta(C_func, C_pred) -> scalar (log scale) per variant; see the module docstring.

    Parameters
    ----------
    d_func, d_pred : number of functional tracks and of per-variant features (paper 165, 9).
    w : window length (positions) of the track windows; used only to check the input.
    dim, depth, heads, target_length, num_downsamples, attn_dim_key, dim_divisible_by : sizes (SIZES).
    dropout, attn_dropout, pos_dropout : dropout rates (Enformer defaults 0.4, 0.05, 0.01).
    norm : "batch" (Enformer) or "layer" (batch-independent).
    checkpointing : recompute stage activations in backward (torch.utils.checkpoint, use_reentrant=False).
    head_init_std : the output layer's weights are N(0, (head_init_std)^2 / fan_in), bias 0, so initial
        outputs are O(head_init_std). Use e.g. 1.0 for a random "ground-truth" network (App. A.5).
    """

    def __init__(self, d_func: int, d_pred: int, w: Optional[int] = None, *, dim: int = 1536, depth: int = 2,
                 heads: int = 2, target_length: Optional[int] = 32, num_downsamples: int = 3,
                 attn_dim_key: int = 64, dim_divisible_by: int = 128, dropout: float = 0.4,
                 attn_dropout: float = 0.05, pos_dropout: float = 0.01, norm: str = "batch",
                 checkpointing: bool = False, head_init_std: float = 1e-2, **_ignored):
        super().__init__()
        if dim % 2 or dim % heads:
            raise ValueError(f"dim ({dim}) must be even and divisible by heads ({heads})")
        if num_downsamples < 1:
            raise ValueError("num_downsamples must be >= 1 (the stem pools once)")
        self.d_func, self.d_pred, self.w = d_func, d_pred, w
        self.target_length = target_length
        self.checkpointing = checkpointing
        half = dim // 2
        d_in = d_func + d_pred
        self.stem = nn.Sequential(nn.Conv1d(d_in, half, 15, padding=7), Residual(ConvBlock(half, norm=norm)),
                                  AttentionPool(half))
        channels = [half, *exponential_channels(half, dim, num_downsamples - 1, dim_divisible_by)]
        self.tower = nn.ModuleList(
            nn.Sequential(ConvBlock(c_in, c_out, 5, norm=norm), Residual(ConvBlock(c_out, norm=norm)),
                          AttentionPool(c_out))
            for c_in, c_out in zip(channels[:-1], channels[1:]))
        c_last = channels[-1]
        self.project = nn.Identity() if c_last == dim else nn.Conv1d(c_last, dim, 1)
        pooled = None                                   # positions entering the transformer (w known)
        if w is not None:
            pooled = w
            for _ in range(num_downsamples):
                pooled = -(-pooled // 2)
        self.transformer = nn.ModuleList(
            TransformerBlock(dim, heads, attn_dim_key, dropout, attn_dropout, pos_dropout, n_positions=pooled)
            for _ in range(depth))
        self.pointwise = nn.Sequential(ConvBlock(dim, 2 * dim, 1, norm=norm), nn.Dropout(dropout / 8), nn.GELU())
        self.head = nn.Linear(2 * dim, 1)
        nn.init.normal_(self.head.weight, std=head_init_std / math.sqrt(2 * dim))
        nn.init.zeros_(self.head.bias)
        if w is not None:
            if target_length is not None and pooled < target_length:
                raise ValueError(f"w = {w} pools to {pooled} positions after {num_downsamples} halvings, fewer "
                                 f"than target_length = {target_length}; lower num_downsamples or target_length")

    @classmethod
    def from_size(cls, size: str, d_func: int, d_pred: int, w: Optional[int] = None, **overrides) -> "EnformerNN":
        """Build a named size from SIZES (e.g. "full", "reduced", "tiny"); keyword overrides win."""
        if size not in SIZES:
            raise KeyError(f"unknown network size {size!r}; known: {sorted(SIZES)}")
        kw = {k: v for k, v in SIZES[size].items() if k != "expected_params"}
        kw.update(overrides)
        return cls(d_func, d_pred, w, **kw)

    def _run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(module, x, use_reentrant=False)
        return module(x)

    def forward(self, tracks: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """tracks [B, d_func, w], pred [B, d_pred] -> NN_theta [B] (float32, log scale)."""
        if tracks.dim() != 3 or tracks.shape[1] != self.d_func:
            raise ValueError(f"tracks must be [B, d_func={self.d_func}, w], got {tuple(tracks.shape)}")
        if pred.shape != (tracks.shape[0], self.d_pred):
            raise ValueError(f"pred must be [B={tracks.shape[0]}, d_pred={self.d_pred}], got {tuple(pred.shape)}")
        if self.w is not None and tracks.shape[2] != self.w:
            raise ValueError(f"tracks have window length {tracks.shape[2]}, the network was built for w={self.w}")
        dtype = self.stem[0].weight.dtype
        x = torch.cat([tracks.to(dtype), pred.to(dtype)[:, :, None].expand(-1, -1, tracks.shape[2])], dim=1)
        x = self._run(self.stem, x)
        for stage in self.tower:
            x = self._run(stage, x)
        x = self.project(x).transpose(1, 2)                     # [B, n, dim]
        for block in self.transformer:
            x = self._run(block, x)
        if self.target_length is not None:
            n = x.shape[1]
            if n < self.target_length:
                raise ValueError(f"{n} positions after pooling < target_length {self.target_length}")
            start = (n - self.target_length) // 2
            x = x[:, start:start + self.target_length]
        x = self.pointwise(x.transpose(1, 2))                   # [B, 2 dim, n]
        out = self.head(x.mean(dim=2)).squeeze(1)
        return out if out.dtype == torch.float64 else out.float()
