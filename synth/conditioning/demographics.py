"""Age, sex and heart rate → three tokens, each masked out where the value is missing (NaN or key absent)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from synth.conditioning.base import Adapter, AdapterOutput, AdapterParams, as_float
from synth.config import SignalConfig
from synth.registry import register


def _fourier(x: Tensor, num: int) -> Tensor:
    """x (B,) roughly in [0, 1] → (B, 2*num) sin/cos features at octave frequencies."""
    freqs = 2.0 ** torch.arange(num, device=x.device, dtype=torch.float32) * math.pi  # (num,)
    args = x[:, None] * freqs  # (B, num)
    return torch.cat(
        [
            torch.sin(args),
            torch.cos(args),
        ],
        dim=-1,
    )


@register("adapter", "demographics")
class DemographicsAdapter(Adapter):
    """``age`` (B,) years, ``sex`` (B,) 0 = male / 1 = female, ``heart_rate`` (B,) bpm → tokens (B, 3, D)."""

    keys = ("age", "sex", "heart_rate")
    num_tokens = 3

    @dataclass
    class Config(AdapterParams):
        num_frequencies: int = 8
        #: Values are divided by these before the Fourier features (years, bpm).
        age_scale: float = 100.0
        heart_rate_scale: float = 200.0

    def __init__(self, cfg: Config, *, dim: int, signal: SignalConfig):
        super().__init__(dim, signal)
        self.cfg = cfg
        feats = 2 * cfg.num_frequencies + 1
        self.age = nn.Sequential(nn.Linear(feats, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.heart_rate = nn.Sequential(nn.Linear(feats, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.sex = nn.Embedding(2, dim)
        self.field = nn.Parameter(torch.randn(3, dim) * 0.02)  # which field a token is

    def _numeric(self, mlp: nn.Module, value: Tensor, scale: float) -> Tensor:
        x = torch.nan_to_num(value / scale)  # (B,)
        return mlp(torch.cat([x[:, None], _fourier(x, self.cfg.num_frequencies)], dim=-1))  # (B, D)

    def absent(self, cond: Mapping[str, Any], batch_size: int) -> Tensor:
        """Samples with none of age, sex and heart rate (every given field NaN)."""
        if not self.present(cond):
            return super().absent(cond, batch_size)
        fields = [as_float(cond[k], torch.device("cpu"), batch_size, k) for k in self.keys if cond.get(k) is not None]
        return torch.stack([torch.isnan(f) for f in fields]).all(dim=0)

    def forward(self, cond: Mapping[str, Any]) -> AdapterOutput:
        batch = next(
            len(cond[k]) if not isinstance(cond[k], Tensor) else cond[k].shape[0]
            for k in self.keys
            if cond.get(k) is not None
        )
        nan = torch.full((batch,), float("nan"), device=self.device)
        age, sex, hr = (
            nan if cond.get(k) is None else as_float(cond[k], self.device, batch, k) for k in self.keys
        )
        tokens = (
            torch.stack(
                [
                    self._numeric(self.age, age, self.cfg.age_scale),
                    self.sex(torch.nan_to_num(sex).round().clamp(0, 1).long()),
                    self._numeric(self.heart_rate, hr, self.cfg.heart_rate_scale),
                ],
                dim=1,
            )
            + self.field
        )  # (B, 3, D)
        mask = ~torch.isnan(torch.stack([age, sex, hr], dim=1))  # (B, 3)
        return AdapterOutput(tokens=tokens, mask=mask)
