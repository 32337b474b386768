"""Video VQ tokenizer: grey clips (B, C, F, H, W) in [-1, 1] ⇄ codes (B, F'·H'·W') of the core's quantiser.

- Network ``video_vq_autoencoder`` (registered): factorised space-time convolutions. Space first, per frame (2D
  convolutions, a patchify stem then stride-2 levels), then time on the coarse grid with stride-2 temporal
  convolutions and (2+1)D residual blocks, a 1×3×3 spatial then a 3×1×1 temporal kernel (Tran et al. 2018, "A
  Closer Look at Spatiotemporal Convolutions for Action Recognition", §3.5). Full 3D convolutions at 64×64 were
  ~3 s per clip per training step on one CPU thread; this layout is what makes CPU training possible.
- Backbone ``video_vqvae`` (registered): the core :class:`synth.generative.vqvae.VQVAE` process unchanged (loss =
  MSE + β · commitment with :class:`synth.generative.quantize.VectorQuantizer`, EMA codebook, dead-code restarts);
  only ``encode``/``decode``/``latent_shape`` change, to flatten the (F', H', W') code grid to N tokens, so the
  core ``maskgit`` backbone models the codes without a line of video-specific code.

The time axis of a video is described by the model's ``signal`` section (``channels`` = 1 grey channel, ``length``
= frames, ``fs_hz`` = frames per second); ``process.height``/``process.width`` give the frame size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import Tensor, nn

from synth.conditioning.stack import ConditioningStack
from synth.config import ConfigError, ModelConfig
from synth.generative.vqvae import VQVAE
from synth.registry import register


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, channels), channels)


class ResBlock2d(nn.Module):
    """Per-frame residual block; x (B·F, C, H, W)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(_norm(channels, groups), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  _norm(channels, groups), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResBlock3d(nn.Module):
    """(2+1)D residual block: 1×3×3 spatial then 3×1×1 temporal kernels; x (B, C, F, H, W)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        def conv() -> nn.Sequential:
            return nn.Sequential(nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1)),
                                 nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)))
        self.body = nn.Sequential(_norm(channels, groups), nn.SiLU(), conv(), _norm(channels, groups), nn.SiLU(),
                                  conv())

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


@register("network", "video_vq_autoencoder")
class VideoVQAutoencoder(nn.Module):
    """encode: x (B, C, F, H, W) → h (B, D, F / 2^time_levels, H / s, W / s), s = patch · 2^(len(channels) − 1);
    decode: the reverse. Built as every network (``in_channels`` = grey channels); ``tokens``/``mask`` are
    accepted for the common signature and unused (a tokenizer is unconditional).

    Space first, per frame, with 2D convolutions (a patchify stem of stride ``patch``, then stride-2 levels), then
    time at the coarse grid with (2+1)D blocks and stride-2 temporal convolutions: on a CPU, 2D convolutions over
    frames-as-batch cost a fraction of 3D ones at full resolution.
    """

    @dataclass
    class Config:
        patch: int = 4
        channels: list[int] = field(default_factory=lambda: [32, 64])
        #: Number of stride-2 temporal levels (frames / 2^time_levels latent frames).
        time_levels: int = 2
        num_res_blocks: int = 1
        latent_channels: int = 32
        #: Channels of the last full-resolution convolution of the decoder.
        out_hidden: int = 16
        norm_groups: int = 8

        def __post_init__(self) -> None:
            if not self.channels or self.patch < 1 or self.time_levels < 0:
                raise ValueError("channels needs at least one level, patch >= 1 and time_levels >= 0")

    def __init__(self, cfg: Config, *, in_channels: int, out_channels: int, cond_dim: int, cond_channels: int = 0):
        super().__init__()
        if cond_channels:
            raise ValueError("video_vq_autoencoder takes no concatenated condition channels")
        self.cfg = cfg
        self.latent_channels = cfg.latent_channels
        self.time_factor = 2**cfg.time_levels
        self.space_factor = cfg.patch * 2 ** (len(cfg.channels) - 1)
        self.factor = self.time_factor  # along the signal (time) axis, as the 1D autoencoders report it
        ch, g, n = cfg.channels, cfg.norm_groups, cfg.num_res_blocks
        spatial: list[nn.Module] = [nn.Conv2d(in_channels, ch[0], cfg.patch, stride=cfg.patch)]
        for i, c in enumerate(ch):
            if i:
                spatial.append(nn.Conv2d(ch[i - 1], c, 2, stride=2))
            spatial += [ResBlock2d(c, g) for _ in range(n)]
        self.enc_space = nn.Sequential(*spatial)
        temporal: list[nn.Module] = []
        for _ in range(cfg.time_levels):
            temporal += [nn.Conv3d(ch[-1], ch[-1], (4, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0)),
                         ResBlock3d(ch[-1], g)]
        temporal += [_norm(ch[-1], g), nn.SiLU(), nn.Conv3d(ch[-1], cfg.latent_channels, 1)]
        self.enc_time = nn.Sequential(*temporal)
        dec_t: list[nn.Module] = [nn.Conv3d(cfg.latent_channels, ch[-1], 1), ResBlock3d(ch[-1], g)]
        for _ in range(cfg.time_levels):
            dec_t += [nn.Upsample(scale_factor=(2, 1, 1), mode="nearest"),
                      nn.Conv3d(ch[-1], ch[-1], (3, 1, 1), padding=(1, 0, 0)), ResBlock3d(ch[-1], g)]
        self.dec_time = nn.Sequential(*dec_t)
        dec_s: list[nn.Module] = []
        for i in reversed(range(len(ch))):
            dec_s += [ResBlock2d(ch[i], g) for _ in range(n)]
            if i:
                dec_s.append(nn.ConvTranspose2d(ch[i], ch[i - 1], 2, stride=2))
        dec_s += [nn.ConvTranspose2d(ch[0], cfg.out_hidden, cfg.patch, stride=cfg.patch),
                  _norm(cfg.out_hidden, g), nn.SiLU(), nn.Conv2d(cfg.out_hidden, out_channels, 3, padding=1)]
        self.dec_space = nn.Sequential(*dec_s)

    @classmethod
    def from_config(cls, cfg: Config, **kwargs) -> VideoVQAutoencoder:
        return cls(cfg, **kwargs)

    def padding(self, length: int) -> int:
        return (-length) % self.time_factor

    def latent_length(self, length: int) -> int:
        return -(-length // self.time_factor)

    def encode(self, x: Tensor, tokens: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """x (B, C, F, H, W) → h (B, D, F', H', W')."""
        b = x.shape[0]
        h = self.enc_space(rearrange(x, "b c f h w -> (b f) c h w"))  # (B·F, C1, H', W')
        h = rearrange(h, "(b f) c h w -> b c f h w", b=b)  # (B, C1, F, H', W')
        return self.enc_time(h)  # (B, D, F', H', W')

    def decode(self, z: Tensor, tokens: Tensor | None = None, mask: Tensor | None = None,
               length: int | None = None) -> Tensor:
        """z (B, D, F', H', W') → (B, C, F, H, W) (``length`` unused: the grid fixes the output size)."""
        b = z.shape[0]
        h = self.dec_time(z)  # (B, C1, F, H', W')
        h = self.dec_space(rearrange(h, "b c f h w -> (b f) c h w"))  # (B·F, C, H, W)
        return rearrange(h, "(b f) c h w -> b c f h w", b=b)


@register("backbone", "video_vqvae")
class VideoVQVAE(VQVAE):
    """The core VQ-VAE over video: x (B, 1, F, H, W) in [-1, 1] ⇄ codes (B, F'·H'·W') long."""

    @dataclass
    class Config(VQVAE.Config):
        height: int = 64
        width: int = 64

    def __init__(self, cfg: ModelConfig, network: nn.Module, conditioning: ConditioningStack):
        super().__init__(cfg, network, conditioning)
        s, t = network.space_factor, network.time_factor
        if cfg.process.height % s or cfg.process.width % s or cfg.signal.length % t:
            raise ConfigError(f"frames {cfg.signal.length} must divide by {t} and height/width "
                              f"{cfg.process.height}×{cfg.process.width} by {s}", hint="change process or network")
        self.grid = (cfg.signal.length // t, cfg.process.height // s, cfg.process.width // s)

    @property
    def latent_shape(self) -> tuple[int]:
        """(N,) = F'·H'·W' codes per clip, flattened in (frame, row, column) order."""
        f, h, w = self.grid
        return (f * h * w,)

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        """(C, F, H, W) of the clips this tokenizer codes."""
        return (self.cfg.signal.channels, self.cfg.signal.length, self.process.height, self.process.width)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """x (B, C, F, H, W) in [-1, 1] → codes (B, F'·H'·W') long."""
        h = self.network.encode(x.to(self.device).float() / self.cfg.signal.scale_mv)  # (B, D, F', H', W')
        return self.quantizer.nearest(rearrange(h.float(), "b d f h w -> b (f h w) d"))  # (B, N)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, F'·H'·W') long → (B, C, F, H, W) float32 in [-1, 1]."""
        f, h, w = self.grid
        codes = rearrange(codes.to(self.device).long(), "b (f h w) -> b f h w", f=f, h=h, w=w)
        z_q = self.quantizer.lookup(codes)  # (B, D, F', H', W')
        return (self.network.decode(z_q) * self.cfg.signal.scale_mv).float().clamp(-1, 1)
