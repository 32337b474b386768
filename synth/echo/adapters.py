"""Echo conditioning beside the ECG: ejection fraction and heart rate → two tokens (B, 2, D), each masked out
where its value is missing (NaN or key absent), so EchoNet-Dynamic users without ECGs can condition on EF and
heart rate alone. The ECG itself goes through the core ``ecg`` adapter (:class:`synth.conditioning.leads.ECGAdapter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from synth.conditioning.base import Adapter, AdapterOutput, AdapterParams, as_float
from synth.conditioning.demographics import _fourier
from synth.config import SignalConfig
from synth.registry import register


@register("adapter", "echo_params")
class EchoParamsAdapter(Adapter):
    """``ef`` (B,) percent and ``heart_rate`` (B,) bpm → tokens (B, 2, D), mask (B, 2)."""

    keys = ("ef", "heart_rate")
    num_tokens = 2

    @dataclass
    class Config(AdapterParams):
        num_frequencies: int = 6
        ef_scale: float = 100.0
        heart_rate_scale: float = 200.0

    def __init__(self, cfg: Config, *, dim: int, signal: SignalConfig):
        super().__init__(dim, signal)
        self.cfg = cfg
        feats = 2 * cfg.num_frequencies + 1
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(feats, dim), nn.SiLU(), nn.Linear(dim, dim)) for _ in range(2))
        self.field = nn.Parameter(torch.randn(2, dim) * 0.02)

    def forward(self, cond: Mapping[str, Any]) -> AdapterOutput:
        present = [cond[k] for k in self.keys if cond.get(k) is not None]
        first = present[0]
        batch = first.shape[0] if isinstance(first, Tensor) and first.ndim else (len(first) if isinstance(first, list | tuple) else 1)
        nan = torch.full((batch,), float("nan"), device=self.device)
        values = [nan if cond.get(k) is None else as_float(cond[k], self.device, batch, k) for k in self.keys]
        tokens = []
        for mlp, value, scale in zip(self.mlps, values, (self.cfg.ef_scale, self.cfg.heart_rate_scale)):
            x = torch.nan_to_num(value / scale)  # (B,)
            tokens.append(mlp(torch.cat([x[:, None], _fourier(x, self.cfg.num_frequencies)], dim=-1)))  # (B, D)
        mask = ~torch.isnan(torch.stack(values, dim=1))  # (B, 2)
        return AdapterOutput(tokens=torch.stack(tokens, dim=1) + self.field, mask=mask)
