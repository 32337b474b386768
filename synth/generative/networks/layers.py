"""Layers shared by the networks: time embedding, sinusoidal positions, a FiLM residual block and masked
(cross-)attention through torch SDPA.

On CUDA, :func:`torch.nn.functional.scaled_dot_product_attention` dispatches to FlashAttention or the
memory-efficient kernel by itself, so SDPA is the default everywhere. ``SYNTH_ATTENTION=xformers`` switches to
xformers' ``memory_efficient_attention`` on CUDA (the optional ``gpu`` extra), for setups where it is faster or
where the torch build lacks the fused kernels. It is a run-time choice, not part of a model's config, so an export
loads the same whichever backend trained it.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from synth.errors import SynthError


def zero_module(module: nn.Module) -> nn.Module:
    """Zero every parameter of ``module``: a residual branch that starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features of ``t`` (B,) in [0, 1] → (B, dim); ``t`` is scaled by 1000 so that the frequencies
    resolve 1000 discrete diffusion steps (Vaswani et al. 2017, as used by DDPM/DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2*half)
    return F.pad(emb, (0, dim % 2))


def sincos_positions(n: int, dim: int, device: torch.device) -> Tensor:
    """(n, dim) sinusoidal position features (Vaswani et al. 2017, §3.5) of positions 0 … n-1."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]  # (N, 1)
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)
    emb = torch.zeros(n, dim, device=device)
    emb[:, 0::2] = torch.sin(pos * freqs)
    emb[:, 1::2] = torch.cos(pos * freqs)[:, : dim // 2]
    return emb  # (N, D)


class TimeEmbedding(nn.Module):
    """t (B,) in [0, 1] → (B, dim) through sinusoidal features and a 2-layer MLP."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(t, self.dim))  # (B, dim)


ATTENTION_BACKENDS: tuple[str, ...] = ("sdpa", "xformers")


def attention_backend() -> str:
    """The backend named by ``SYNTH_ATTENTION`` (default ``sdpa``)."""
    name = os.environ.get("SYNTH_ATTENTION", "sdpa").strip().lower()
    if name not in ATTENTION_BACKENDS:
        raise SynthError(f"SYNTH_ATTENTION={name!r} is not an attention backend",
                         hint=f"use one of {', '.join(ATTENTION_BACKENDS)}")
    return name


def _xformers_attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None) -> Tensor:
    """xformers' memory-efficient attention; same shapes and masking rule as :func:`masked_attention`."""
    try:
        import xformers.ops as xops
    except ImportError as err:
        raise SynthError("SYNTH_ATTENTION=xformers but xformers is not installed",
                         hint="pip install -e '.[gpu]' on a CUDA machine, or unset SYNTH_ATTENTION") from err
    if q.device.type != "cuda":
        raise SynthError("xformers attention runs on CUDA only", hint="unset SYNTH_ATTENTION on CPU")
    q_, k_, v_ = (rearrange(t, "b h l d -> b l h d") for t in (q, k, v))  # xformers layout (B, L, H, d)
    bias = None
    if key_mask is not None:
        b, h, lq, lk = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
        # The kernels need the bias rows 8-aligned in memory: allocate a wider tensor and slice it.
        full = torch.zeros(b, h, lq, 8 * ((lk + 7) // 8), device=q.device, dtype=q.dtype)[..., :lk]
        bias = full.masked_fill(~key_mask[:, None, None, :], torch.finfo(q.dtype).min)  # (B, H, Lq, Lk)
    out = xops.memory_efficient_attention(q_, k_, v_, attn_bias=bias)  # (B, Lq, H, d)
    return rearrange(out, "b l h d -> b h l d")


def masked_attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None) -> Tensor:
    """SDPA with a key-padding mask.

    q (B, H, Lq, d), k/v (B, H, Lk, d), key_mask (B, Lk) bool, True = attend. A row whose keys are all masked
    would give NaN inside SDPA; it attends to everything instead and its output is set to zero, so a sample
    without any visible condition token gets no cross-attention update (and no NaN gradients).
    """
    xformers = attention_backend() == "xformers"
    if key_mask is None:
        return _xformers_attention(q, k, v, None) if xformers else F.scaled_dot_product_attention(q, k, v)
    any_key = key_mask.any(dim=-1)  # (B,)
    safe_mask = key_mask | ~any_key[:, None]  # (B, Lk)
    if xformers:
        out = _xformers_attention(q, k, v, safe_mask)  # (B, H, Lq, d)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe_mask[:, None, None, :])  # (B, H, Lq, d)
    return out * any_key[:, None, None, None].to(out.dtype)


class Attention(nn.Module):
    """Multi-head self- (``context=None``) or cross-attention; x (B, L, D), context (B, S, Dc), mask (B,
    S)."""

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        context = x if context is None else context
        q = rearrange(self.to_q(x), "b l (h d) -> b h l d", h=self.num_heads)  # (B, H, L, d)
        k, v = rearrange(self.to_kv(context), "b s (two h d) -> two b h s d", two=2, h=self.num_heads)
        out = masked_attention(q, k, v, mask)  # (B, H, L, d)
        return self.out(rearrange(out, "b h l d -> b l (h d)"))  # (B, L, D)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv residual block whose second norm is scaled and shifted by an embedding (FiLM).

    x (B, in_ch, T), emb (B, emb_dim) → (B, out_ch, T). The DDPM block (Ho et al. 2020, App. B) with the time
    embedding generalised to any vector (time, pooled condition tokens); the last conv starts at zero.
    """

    def __init__(
        self, in_ch: int, out_ch: int, time_dim: int, groups: int, dropout: float, kernel_size: int = 3
    ):
        super().__init__()
        pad = kernel_size // 2
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv1d(in_ch, out_ch, kernel_size, padding=pad)
        self.time = nn.Linear(time_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.drop = nn.Dropout(dropout)
        self.conv2 = zero_module(nn.Conv1d(out_ch, out_ch, kernel_size, padding=pad))
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, T)
        scale, shift = rearrange(self.time(F.silu(temb)), "b (two c) -> two b c 1", two=2)  # 2 × (B, out, 1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))  # (B, out, T)
        return self.skip(x) + h
