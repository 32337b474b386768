"""1D U-Net with time conditioning and cross-attention to condition tokens.

The DDPM U-Net (Ho et al. 2020, App. B) in one dimension: residual blocks whose GroupNorm output is scaled and
shifted by the time embedding, stride-2 down/up-sampling with skip connections, and at the chosen resolutions
a transformer block (self-attention over time, cross-attention to the condition tokens, MLP) as in latent
diffusion (Rombach et al. 2022, §3.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from synth.generative.networks.layers import Attention, ResBlock, TimeEmbedding, zero_module
from synth.registry import register


class TransformerBlock(nn.Module):
    """Self-attention over time, cross-attention to tokens (with key mask), MLP; all pre-norm residual."""

    def __init__(self, channels: int, cond_dim: int, num_heads: int):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (
            nn.LayerNorm(channels),
            nn.LayerNorm(channels),
            nn.LayerNorm(channels),
        )
        self.self_attn = Attention(channels, num_heads)
        self.cross_attn = Attention(channels, num_heads, context_dim=cond_dim)
        self.mlp = nn.Sequential(
            nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels)
        )

    def forward(self, x: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
        h = rearrange(x, "b c t -> b t c")  # (B, T, C)
        h = h + self.self_attn(self.norm1(h))
        h = h + self.cross_attn(self.norm2(h), tokens, mask)
        h = h + self.mlp(self.norm3(h))
        return rearrange(h, "b t c -> b c t")  # (B, C, T)


@register("network", "unet1d")
class UNet1D(nn.Module):
    """x_t (B, C, T), t (B,) in [0, 1], tokens (B, L, D), mask (B, L) → (B, out_channels, T)."""

    @dataclass
    class Config:
        base_channels: int = 64
        channel_mults: list[int] = field(default_factory=lambda: [1, 2, 4])
        num_res_blocks: int = 2
        #: Indices into ``channel_mults`` of the levels that get a transformer block (the middle always has
        # one).
        attention_levels: list[int] = field(default_factory=lambda: [2])
        num_heads: int = 4
        norm_groups: int = 8
        dropout: float = 0.0

        def __post_init__(self) -> None:
            if not self.channel_mults or any(m < 1 for m in self.channel_mults):
                raise ValueError("channel_mults must be a non-empty list of positive integers")
            if any(not 0 <= i < len(self.channel_mults) for i in self.attention_levels):
                raise ValueError(
                    f"attention_levels must index channel_mults (0..{len(self.channel_mults) - 1})"
                )

    def __init__(
        self, cfg: Config, *, in_channels: int, out_channels: int, cond_dim: int, cond_channels: int = 0
    ):
        super().__init__()
        self.cond_channels = cond_channels
        chs = [cfg.base_channels * m for m in cfg.channel_mults]
        time_dim = 4 * cfg.base_channels
        block = dict(time_dim=time_dim, groups=cfg.norm_groups, dropout=cfg.dropout)
        self.time = TimeEmbedding(time_dim)
        self.stem = nn.Conv1d(in_channels + cond_channels, chs[0], 3, padding=1)
        self.down = nn.ModuleList()
        skip_chs, ch = [chs[0]], chs[0]
        for level, out_ch in enumerate(chs):
            for _ in range(cfg.num_res_blocks):
                attn = (
                    TransformerBlock(out_ch, cond_dim, cfg.num_heads)
                    if level in cfg.attention_levels
                    else None
                )
                self.down.append(nn.ModuleList([ResBlock(ch, out_ch, **block), attn or nn.Identity()]))
                ch = out_ch
                skip_chs.append(ch)
            if level < len(chs) - 1:
                self.down.append(nn.Conv1d(ch, ch, 3, stride=2, padding=1))
                skip_chs.append(ch)
        self.mid = nn.ModuleList(
            [
                ResBlock(ch, ch, **block),
                TransformerBlock(ch, cond_dim, cfg.num_heads),
                ResBlock(ch, ch, **block),
            ]
        )
        self.up = nn.ModuleList()
        for level, out_ch in reversed(list(enumerate(chs))):
            for _ in range(cfg.num_res_blocks + 1):
                attn = (
                    TransformerBlock(out_ch, cond_dim, cfg.num_heads)
                    if level in cfg.attention_levels
                    else None
                )
                self.up.append(
                    nn.ModuleList([ResBlock(ch + skip_chs.pop(), out_ch, **block), attn or nn.Identity()])
                )
                ch = out_ch
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.head = nn.Sequential(
            nn.GroupNorm(cfg.norm_groups, ch),
            nn.SiLU(),
            zero_module(nn.Conv1d(ch, out_channels, 3, padding=1)),
        )
        self.multiple = 2 ** (len(chs) - 1)

    @classmethod
    def from_config(cls, cfg: Config, **kwargs) -> UNet1D:
        return cls(cfg, **kwargs)

    def _run(self, layer: nn.Module, h: Tensor, temb: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
        if isinstance(layer, nn.ModuleList):  # (ResBlock, TransformerBlock | Identity)
            h = layer[0](h, temb)
            return layer[1](h, tokens, mask) if isinstance(layer[1], TransformerBlock) else h
        return layer(h)  # down/up-sampling

    def forward(
        self, x_t: Tensor, t: Tensor, tokens: Tensor, mask: Tensor, cond_channels: Tensor | None = None
    ) -> Tensor:
        """x_t (B, C, T), t (B,) in [0, 1], tokens (B, L, D), mask (B, L) bool, cond_channels (B, Cc, T) →
        (B, C_out, T)."""
        length = x_t.shape[-1]
        if self.cond_channels:
            x_t = torch.cat([x_t, cond_channels], dim=1)  # (B, C + Cc, T)
        pad = (-length) % self.multiple
        h = self.stem(F.pad(x_t, (0, pad)))  # (B, ch0, T') with T' a multiple of 2^(levels-1)
        temb = self.time(t)  # (B, 4*base)
        skips = [h]
        for layer in self.down:
            h = self._run(layer, h, temb, tokens, mask)
            skips.append(h)
        h = self.mid[0](h, temb)
        h = self.mid[1](h, tokens, mask)
        h = self.mid[2](h, temb)  # (B, ch_last, T'/2^(levels-1))
        for layer in self.up:
            if isinstance(layer, nn.ModuleList):
                h = torch.cat([h, skips.pop()], dim=1)  # (B, ch + skip_ch, T_level)
            h = self._run(layer, h, temb, tokens, mask)
        return self.head(h)[..., :length]  # (B, C_out, T)
