"""PPG → tokens through a small strided 1D convolutional encoder (one token per ``downsample`` samples)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from synth.conditioning.base import Adapter, AdapterOutput, AdapterParams
from synth.config import SignalConfig
from synth.registry import register


@register("adapter", "ppg")
class PPGAdapter(Adapter):
    """``cond["ppg"]`` (B, 1, T_ppg) in any unit → tokens (B, ceil(T_ppg / downsample), D), all visible.

    PPG amplitude is not calibrated across devices, so each sample is standardised (zero mean, unit std)
    first.
    """

    keys = ("ppg",)

    @dataclass
    class Config(AdapterParams):
        #: Samples per PPG window; 0 = the model's ``signal.length``.
        length: int = 0
        hidden_channels: int = 64
        #: Samples per token; a power of two (one stride-2 convolution per factor of two).
        downsample: int = 8
        #: Also emit the standardised PPG as one channel (B, 1, T) for concatenation to x_t (PPG and ECG at the
        #: same rate and length, so the network sees the pulse in register with the beat it drives).
        as_channels: bool = False

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.downsample < 1 or self.downsample & (self.downsample - 1):
                raise ValueError(f"downsample must be a power of two, got {self.downsample}")

    def __init__(self, cfg: Config, *, dim: int, signal: SignalConfig):
        super().__init__(dim, signal)
        self.cfg = cfg
        self.length = cfg.length or signal.length
        self.num_tokens = math.ceil(self.length / cfg.downsample)
        if cfg.as_channels and self.length != signal.length:
            raise ValueError("as_channels needs the PPG to have the model's signal.length")
        self.num_channels = 1 if cfg.as_channels else 0
        h = cfg.hidden_channels
        layers: list[nn.Module] = [nn.Conv1d(1, h, 7, padding=3), nn.SiLU()]
        for _ in range(int(math.log2(cfg.downsample))):
            layers += [nn.Conv1d(h, h, 4, stride=2, padding=1), nn.GroupNorm(1, h), nn.SiLU()]
        self.encoder = nn.Sequential(*layers)
        self.proj = nn.Linear(h, dim)
        self.position_embedding = nn.Parameter(torch.randn(self.num_tokens, dim) * 0.02)

    def forward(self, cond: Mapping[str, Any]) -> AdapterOutput:
        x = torch.as_tensor(cond["ppg"], device=self.device).float()  # (B, 1, T)
        if x.ndim != 3 or x.shape[1:] != (1, self.length):
            raise ValueError(f"cond['ppg'] must be (B, 1, {self.length}), got {tuple(x.shape)}")
        x = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True).clamp(min=1e-6)
        channels = x if self.cfg.as_channels else None  # (B, 1, T)
        x = F.pad(x, (0, self.num_tokens * self.cfg.downsample - self.length))  # (B, 1, N*ds)
        h = self.encoder(x)  # (B, H, N)
        tokens = self.proj(rearrange(h, "b h n -> b n h")) + self.position_embedding  # (B, N, D)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=self.device)  # (B, N)
        return AdapterOutput(tokens=tokens, mask=mask, channels=channels)
