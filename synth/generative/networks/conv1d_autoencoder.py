"""1D convolutional encoder/decoder for multi-lead signals: (B, C, T) ⇄ (B, c, T / 2^levels).

The first-stage autoencoder of latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with
Latent Diffusion Models", §3.1 and App. G) in one dimension, as DiffuSETS and PPGFlowECG use for ECG: a stem
convolution, then per level ``num_res_blocks`` residual blocks and a stride-2 convolution, so 3 levels map 12 ×
1000 samples at 100 Hz to c × 125 (and 12 × 5000 at 500 Hz to c × 625); the decoder mirrors it with nearest
up-sampling. The stem kernel sets the time span the first layer sees: 7 samples is 70 ms at 100 Hz, about a QRS;
use ~31 at 500 Hz for the same span. A length that is not a multiple of 2^levels is padded at the end
(replicating the last sample) before encoding and cropped after decoding; :meth:`Conv1dAutoencoder.padding`
says by how much, and the backbones warn about it once at construction.

Conditioning (for conditional VAEs, Sohn et al. 2015): condition channels (B, Cc, T) are concatenated to the
encoder input (posterior q(z | x, c)), summarised at the latent rate by a second encoder of the same shape and
concatenated to z at the decoder input, and concatenated again at full rate before the decoder's output
convolution, so given leads reach the output without passing the bottleneck. Condition tokens (B, L, D) enter
every residual block as a FiLM scale/shift from their masked mean. The process (VAE moments, vector
quantisation) lives in the backbone, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from synth.generative.networks.layers import ResBlock, zero_module
from synth.registry import register


def pooled(tokens: Tensor, mask: Tensor) -> Tensor:
    """Masked mean of tokens (B, L, D) over the visible positions of mask (B, L) → (B, D)."""
    weights = mask.to(tokens.dtype)[..., None]  # (B, L, 1)
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class Encoder(nn.Module):
    """x (B, in_channels, T) with T a multiple of 2^levels, emb (B, E) → (B, out_channels, T / 2^levels)."""

    def __init__(self, cfg: Conv1dAutoencoder.Config, in_channels: int, out_channels: int, emb_dim: int):
        super().__init__()
        chs = [cfg.base_channels * m for m in cfg.channel_mults]
        block = dict(
            time_dim=emb_dim, groups=cfg.norm_groups, dropout=cfg.dropout, kernel_size=cfg.kernel_size
        )
        self.stem = nn.Conv1d(in_channels, chs[0], cfg.stem_kernel, padding=cfg.stem_kernel // 2)
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        ch = chs[0]
        for out_ch in chs:
            self.blocks.append(
                nn.ModuleList(
                    ResBlock(ch if i == 0 else out_ch, out_ch, **block) for i in range(cfg.num_res_blocks)
                )
            )
            self.downs.append(nn.Conv1d(out_ch, out_ch, 3, stride=2, padding=1))
            ch = out_ch
        self.mid = ResBlock(ch, ch, **block)
        self.out = nn.Sequential(
            nn.GroupNorm(cfg.norm_groups, ch), nn.SiLU(), nn.Conv1d(ch, out_channels, 3, padding=1)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.stem(x)  # (B, ch0, T)
        for blocks, down in zip(self.blocks, self.downs):
            for block in blocks:
                h = block(h, emb)
            h = down(h)  # (B, ch_level, T_level / 2)
        return self.out(self.mid(h, emb))  # (B, out_channels, T / 2^levels)


class Decoder(nn.Module):
    """z (B, in_channels, T') , emb (B, E), full-rate condition channels (B, Cc, T' · 2^levels) → (B, C, T)."""

    def __init__(
        self,
        cfg: Conv1dAutoencoder.Config,
        in_channels: int,
        out_channels: int,
        emb_dim: int,
        cond_channels: int,
    ):
        super().__init__()
        chs = [cfg.base_channels * m for m in cfg.channel_mults]
        block = dict(
            time_dim=emb_dim, groups=cfg.norm_groups, dropout=cfg.dropout, kernel_size=cfg.kernel_size
        )
        ch = chs[-1]
        self.stem = nn.Conv1d(in_channels, ch, 3, padding=1)
        self.mid = ResBlock(ch, ch, **block)
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for out_ch in reversed(chs):
            self.ups.append(
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(ch, ch, 3, padding=1))
            )
            self.blocks.append(
                nn.ModuleList(
                    ResBlock(ch if i == 0 else out_ch, out_ch, **block) for i in range(cfg.num_res_blocks)
                )
            )
            ch = out_ch
        self.norm = nn.Sequential(nn.GroupNorm(cfg.norm_groups, ch), nn.SiLU())
        self.head = nn.Conv1d(ch + cond_channels, out_channels, cfg.stem_kernel, padding=cfg.stem_kernel // 2)

    def forward(self, z: Tensor, emb: Tensor, cond_channels: Tensor | None) -> Tensor:
        h = self.mid(self.stem(z), emb)  # (B, ch_last, T')
        for up, blocks in zip(self.ups, self.blocks):
            h = up(h)  # (B, ch, 2 T_level)
            for block in blocks:
                h = block(h, emb)
        h = self.norm(h)  # (B, ch0, T)
        if cond_channels is not None:
            h = torch.cat([h, cond_channels], dim=1)  # (B, ch0 + Cc, T)
        return self.head(h)  # (B, C, T)


@register("network", "conv1d_autoencoder")
class Conv1dAutoencoder(nn.Module):
    """``encode``: x (B, C, T) → (B, latent_channels, ceil(T / 2^levels)); ``decode`` maps back to (B, C, T).

    Built like every network, with ``(params, *, in_channels, out_channels, cond_dim, cond_channels)``; what the
    latent means (Gaussian moments, vectors to quantise) is the backbone's business.
    """

    @dataclass
    class Config:
        base_channels: int = 64
        #: Channel multiplier per level; every level halves the length (3 levels: T / 8).
        channel_mults: list[int] = field(default_factory=lambda: [1, 2, 4])
        num_res_blocks: int = 2
        #: Channels c of the latent the encoder emits and the decoder reads.
        latent_channels: int = 4
        #: Kernel of the first and last convolution, in samples (~70 ms: 7 at 100 Hz, 31-35 at 500 Hz).
        stem_kernel: int = 7
        #: Kernel of the residual-block convolutions.
        kernel_size: int = 3
        norm_groups: int = 8
        dropout: float = 0.0

        def __post_init__(self) -> None:
            if not self.channel_mults or any(m < 1 for m in self.channel_mults):
                raise ValueError("channel_mults must be a non-empty list of positive integers")
            if self.stem_kernel % 2 == 0 or self.kernel_size % 2 == 0:
                raise ValueError("stem_kernel and kernel_size must be odd (same-length convolutions)")
            if self.num_res_blocks < 1 or self.latent_channels < 1:
                raise ValueError("num_res_blocks and latent_channels must be positive")
            if any((self.base_channels * m) % self.norm_groups for m in self.channel_mults):
                raise ValueError("base_channels × every channel_mult must be divisible by norm_groups")

    def __init__(
        self, cfg: Config, *, in_channels: int, out_channels: int, cond_dim: int, cond_channels: int = 0
    ):
        super().__init__()
        self.cfg = cfg
        self.latent_channels = cfg.latent_channels
        self.cond_channels = cond_channels
        self.factor = 2 ** len(cfg.channel_mults)
        emb_dim = 4 * cfg.base_channels
        self.embed = nn.Sequential(
            nn.Linear(cond_dim, emb_dim), nn.SiLU(), zero_module(nn.Linear(emb_dim, emb_dim))
        )
        self.encoder = Encoder(cfg, in_channels + cond_channels, cfg.latent_channels, emb_dim)
        self.cond_encoder = (
            Encoder(cfg, cond_channels, cfg.latent_channels, emb_dim) if cond_channels else None
        )
        decoder_in = cfg.latent_channels * (2 if cond_channels else 1)
        self.decoder = Decoder(cfg, decoder_in, out_channels, emb_dim, cond_channels)

    @classmethod
    def from_config(cls, cfg: Config, **kwargs) -> Conv1dAutoencoder:
        return cls(cfg, **kwargs)

    def padding(self, length: int) -> int:
        """Samples appended to a signal of ``length`` so that it is a multiple of the down-sampling factor."""
        return (-length) % self.factor

    def latent_length(self, length: int) -> int:
        """T' = ceil(T / 2^levels)."""
        return (length + self.padding(length)) // self.factor

    def _pad(self, x: Tensor | None) -> Tensor | None:
        if x is None or not self.padding(x.shape[-1]):
            return x
        return F.pad(x, (0, self.padding(x.shape[-1])), mode="replicate")  # (B, C, T + pad)

    def encode(self, x: Tensor, tokens: Tensor, mask: Tensor, cond_channels: Tensor | None = None) -> Tensor:
        """x (B, C, T) model units, tokens (B, L, D), mask (B, L) bool, cond_channels (B, Cc, T) →
        (B, latent_channels, T')."""
        if self.cond_channels:
            x = torch.cat([x, cond_channels], dim=1)  # (B, C + Cc, T)
        return self.encoder(self._pad(x), self.embed(pooled(tokens, mask)))

    def decode(
        self,
        z: Tensor,
        tokens: Tensor,
        mask: Tensor,
        cond_channels: Tensor | None = None,
        *,
        length: int | None = None,
    ) -> Tensor:
        """z (B, latent_channels, T'), tokens (B, L, D), mask (B, L), cond_channels (B, Cc, T) → (B, C, T);
        T = ``length``, else the condition channels' length, else T' · 2^levels (the padding is cropped)."""
        emb = self.embed(pooled(tokens, mask))  # (B, E)
        if length is None:
            length = cond_channels.shape[-1] if self.cond_channels else z.shape[-1] * self.factor
        if self.cond_channels:
            cond_channels = self._pad(cond_channels)  # (B, Cc, T' · 2^levels)
            z = torch.cat([z, self.cond_encoder(cond_channels, emb)], dim=1)  # (B, 2c, T')
        return self.decoder(z, emb, cond_channels)[..., :length]  # (B, C, T)

    def condition_features(self, tokens: Tensor, mask: Tensor, cond_channels: Tensor) -> Tensor:
        """The condition summarised at the latent rate: cond_channels (B, Cc, T) → (B, latent_channels, T')."""
        return self.cond_encoder(self._pad(cond_channels), self.embed(pooled(tokens, mask)))

    def forward(self, x: Tensor, tokens: Tensor, mask: Tensor, cond_channels: Tensor | None = None) -> Tensor:
        """Reconstruction through the bottleneck, no regularisation: x (B, C, T) → (B, C, T)."""
        z = self.encode(x, tokens, mask, cond_channels)  # (B, c, T')
        return self.decode(z, tokens, mask, cond_channels, length=x.shape[-1])
