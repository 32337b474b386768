"""Layers shared by the 1D networks: time embedding and masked (cross-)attention through torch SDPA.

On CUDA, :func:`torch.nn.functional.scaled_dot_product_attention` dispatches to FlashAttention or the
memory-efficient kernel by itself, so no separate xformers path is needed for speed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features of ``t`` (B,) in [0, 1] → (B, dim); ``t`` is scaled by 1000 so that the frequencies
    resolve 1000 discrete diffusion steps (Vaswani et al. 2017, as used by DDPM/DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2*half)
    return F.pad(emb, (0, dim % 2))


class TimeEmbedding(nn.Module):
    """t (B,) in [0, 1] → (B, dim) through sinusoidal features and a 2-layer MLP."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(t, self.dim))  # (B, dim)


def masked_attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None) -> Tensor:
    """SDPA with a key-padding mask.

    q (B, H, Lq, d), k/v (B, H, Lk, d), key_mask (B, Lk) bool, True = attend. A row whose keys are all masked
    would give NaN inside SDPA; it attends to everything instead and its output is set to zero, so a sample
    without any visible condition token gets no cross-attention update (and no NaN gradients).
    """
    if key_mask is None:
        return F.scaled_dot_product_attention(q, k, v)
    any_key = key_mask.any(dim=-1)  # (B,)
    safe_mask = key_mask | ~any_key[:, None]  # (B, Lk)
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
