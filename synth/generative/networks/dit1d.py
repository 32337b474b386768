"""1D diffusion transformer (DiT) with adaLN-Zero blocks and cross-attention to condition tokens.

Peebles & Xie 2023, "Scalable Diffusion Models with Transformers", §3.2: the signal is cut into patches, each
block's LayerNorms are scaled/shifted by a regression from the conditioning vector c and each residual branch
is gated by a factor initialised to zero (adaLN-Zero), so every block starts as the identity. Here c = time
embedding + masked mean of the condition tokens, and each block also cross-attends to the tokens (as in
PixArt-α, Chen et al. 2024), so sequence conditions such as text or given leads are not squeezed into one
vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from synth.generative.networks.layers import Attention, TimeEmbedding, sincos_positions
from synth.registry import register


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]  # x (B, N, D), shift/scale (B, D)


class DiTBlock(nn.Module):
    def __init__(self, dim: int, cond_dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm_cross = nn.LayerNorm(dim)
        self.cross = Attention(dim, num_heads, context_dim=cond_dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: Tensor, c: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(F.silu(c)).chunk(6, dim=-1)  # 6 × (B, D)
        x = x + gate1[:, None] * self.attn(_modulate(self.norm1(x), shift1, scale1))  # (B, N, D)
        x = x + self.cross(self.norm_cross(x), tokens, mask)
        return x + gate2[:, None] * self.mlp(_modulate(self.norm2(x), shift2, scale2))


@register("network", "dit1d")
class DiT1D(nn.Module):
    """x_t (B, C, T), t (B,) in [0, 1], tokens (B, L, D_cond), mask (B, L) → (B, out_channels, T)."""

    @dataclass
    class Config:
        patch_size: int = 10
        hidden_dim: int = 256
        depth: int = 8
        num_heads: int = 4
        mlp_ratio: float = 4.0

        def __post_init__(self) -> None:
            if self.patch_size < 1 or self.depth < 1 or self.hidden_dim % self.num_heads:
                raise ValueError(
                    "patch_size and depth must be positive and hidden_dim divisible by num_heads"
                )

    def __init__(
        self, cfg: Config, *, in_channels: int, out_channels: int, cond_dim: int, cond_channels: int = 0
    ):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.cond_channels = cond_channels
        self.out_channels = out_channels
        dim = cfg.hidden_dim
        self.embed = nn.Linear((in_channels + cond_channels) * cfg.patch_size, dim)
        self.time = TimeEmbedding(dim)
        self.pool = nn.Linear(cond_dim, dim)
        self.blocks = nn.ModuleList(
            DiTBlock(dim, cond_dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth)
        )
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(dim, 2 * dim)
        self.head = nn.Linear(dim, out_channels * cfg.patch_size)
        for layer in (self.ada_out, self.head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @classmethod
    def from_config(cls, cfg: Config, **kwargs) -> DiT1D:
        return cls(cfg, **kwargs)

    def forward(
        self, x_t: Tensor, t: Tensor, tokens: Tensor, mask: Tensor, cond_channels: Tensor | None = None
    ) -> Tensor:
        """x_t (B, C, T), t (B,) in [0, 1], tokens (B, L, D), mask (B, L) bool, cond_channels (B, Cc, T) →
        (B, C_out, T)."""
        length = x_t.shape[-1]
        if self.cond_channels:
            x_t = torch.cat([x_t, cond_channels], dim=1)  # (B, C + Cc, T)
        x = F.pad(x_t, (0, (-length) % self.patch_size))  # (B, C_in, N*p)
        x = rearrange(x, "b c (n p) -> b n (p c)", p=self.patch_size)  # (B, N, p*C_in)
        x = self.embed(x) + sincos_positions(x.shape[1], self.embed.out_features, x.device)  # (B, N, D)
        weights = mask.to(tokens.dtype)[..., None]  # (B, L, 1)
        pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, D_cond)
        c = self.time(t) + self.pool(pooled)  # (B, D)
        for block in self.blocks:
            x = block(x, c, tokens, mask)  # (B, N, D)
        shift, scale = self.ada_out(F.silu(c)).chunk(2, dim=-1)  # 2 × (B, D)
        x = self.head(_modulate(self.norm_out(x), shift, scale))  # (B, N, p*C_out)
        x = rearrange(x, "b n (p c) -> b c (n p)", p=self.patch_size)  # (B, C_out, N*p)
        return x[..., :length]  # (B, C_out, T)
