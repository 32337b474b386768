"""Echo conditioning beside the ECG's own tokens (the core ``ecg`` adapter, :class:`synth.conditioning.leads.ECGAdapter`).

- ``echo_params``: ejection fraction and heart rate → two tokens (B, 2, D), each masked out where its value is
  missing (NaN or key absent), so EchoNet-Dynamic users without ECGs can condition on EF and heart rate alone;
  with ``as_channels`` also four per-frame channels (value, present) × (EF, heart rate), constant in time.
- ``echo_phase``: the cardiac phase of every video frame, derived from the ECG (R-peaks start systole, T-wave ends
  end it; :func:`synth.echo.timing.phase_features`) → per-frame channels (B, 7, F) that a token network adds to
  the tokens of each frame group, so the timing of the contraction is given where it acts instead of being
  learned through cross-attention from raw ECG patches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from synth.conditioning.base import Adapter, AdapterOutput, AdapterParams, as_float
from synth.conditioning.demographics import _fourier
from synth.config import SignalConfig
from synth.echo.timing import PHASE_FEATURES, beat_times, phase_features
from synth.errors import DataError
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
        #: Also emit (B, 4, F) channels: EF / ef_scale, EF present, heart rate / heart_rate_scale, present.
        as_channels: bool = False
        #: Sampling only: the EF asked for is mapped through these knots (percent, piecewise linear, ascending;
        #: held at the end knots beyond them, so the model is never given an EF outside those it was measured at)
        #: to the EF the model is given, so that the clips it draws measure the EF asked for; fitted on validation
        #: clips (``benchmarks/echo_ef_response.py``). Training always sees the true EF. null: no mapping.
        ef_asked: list[float] | None = None
        ef_given: list[float] | None = None

        def __post_init__(self) -> None:
            super().__post_init__()
            if (self.ef_asked is None) != (self.ef_given is None):
                raise ValueError("ef_asked and ef_given come together")
            if self.ef_asked is not None:
                if len(self.ef_asked) != len(self.ef_given) or len(self.ef_asked) < 2:
                    raise ValueError("ef_asked and ef_given need the same number (>= 2) of knots")
                for knots in (self.ef_asked, self.ef_given):
                    if any(b <= a for a, b in zip(knots, knots[1:])):
                        raise ValueError("EF knots must be strictly ascending (the mapping is monotone)")

    def __init__(self, cfg: Config, *, dim: int, signal: SignalConfig):
        super().__init__(dim, signal)
        self.cfg = cfg
        self.num_channels = 4 if cfg.as_channels else 0
        feats = 2 * cfg.num_frequencies + 1
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(feats, dim), nn.SiLU(), nn.Linear(dim, dim)) for _ in range(2))
        self.field = nn.Parameter(torch.randn(2, dim) * 0.02)

    def given_ef(self, asked: Tensor) -> Tensor:
        """The EF (B,) the model is given at sampling for the EF ``asked`` (B,) (see ``Config.ef_asked``)."""
        if self.cfg.ef_asked is None:
            return asked
        xs = torch.tensor(self.cfg.ef_asked, dtype=asked.dtype, device=asked.device)
        ys = torch.tensor(self.cfg.ef_given, dtype=asked.dtype, device=asked.device)
        a = torch.minimum(torch.maximum(asked, xs[0]), xs[-1])  # held at the ends; NaN stays NaN
        k = torch.searchsorted(xs, a.contiguous()).clamp(1, len(xs) - 1)
        return ys[k - 1] + (a - xs[k - 1]) * (ys[k] - ys[k - 1]) / (xs[k] - xs[k - 1])

    def forward(self, cond: Mapping[str, Any]) -> AdapterOutput:
        present = [cond[k] for k in self.keys if cond.get(k) is not None]
        first = present[0]
        batch = first.shape[0] if isinstance(first, Tensor) and first.ndim else (len(first) if isinstance(first, list | tuple) else 1)
        nan = torch.full((batch,), float("nan"), device=self.device)
        values = [nan if cond.get(k) is None else as_float(cond[k], self.device, batch, k) for k in self.keys]
        if not self.training:
            values[0] = self.given_ef(values[0])
        tokens = []
        for mlp, value, scale in zip(self.mlps, values, (self.cfg.ef_scale, self.cfg.heart_rate_scale)):
            x = torch.nan_to_num(value / scale)  # (B,)
            tokens.append(mlp(torch.cat([x[:, None], _fourier(x, self.cfg.num_frequencies)], dim=-1)))  # (B, D)
        mask = ~torch.isnan(torch.stack(values, dim=1))  # (B, 2)
        channels = None
        if self.num_channels:
            scaled = torch.nan_to_num(torch.stack(values, dim=1) / torch.tensor(
                [self.cfg.ef_scale, self.cfg.heart_rate_scale], device=self.device))  # (B, 2)
            per_sample = torch.stack([scaled[:, 0], mask[:, 0], scaled[:, 1], mask[:, 1]], dim=1).float()  # (B, 4)
            channels = per_sample[:, :, None].expand(-1, -1, self.signal.length)  # (B, 4, F)
        return AdapterOutput(tokens=torch.stack(tokens, dim=1) + self.field, mask=mask, channels=channels)


@register("adapter", "echo_phase")
class EchoPhaseAdapter(Adapter):
    """``ecg`` (B, 12, T) mV at ``ecg_fs_hz`` covering the clip → channels (B, 7, F): the cardiac phase at each of
    the model's F frames (frame f at f / fps s, the ECG starting with the clip), plus one summary token.

    R-peaks and T-ends come from :func:`synth.echo.timing.beat_times`, extended beyond the window in steps of the
    median R-R interval (:func:`synth.echo.timing.extended_beats`); a clip whose ECG has fewer than two detectable
    beats gets zeros (the ``present`` row says so)."""

    keys = ("ecg",)
    num_tokens = 1

    @dataclass
    class Config(AdapterParams):
        ecg_fs_hz: float = 100.0

    def __init__(self, cfg: Config, *, dim: int, signal: SignalConfig):
        super().__init__(dim, signal)
        self.cfg = cfg
        self.num_channels = len(PHASE_FEATURES)
        self.summary = nn.Linear(self.num_channels, dim)
        self.field = nn.Parameter(torch.randn(1, dim) * 0.02)

    def phase(self, ecg: Tensor) -> Tensor:
        """(B, 12, T) mV → (B, 7, F) phase features (no gradient: the timing is detected, not learned)."""
        frame_s = np.arange(self.signal.length) / self.signal.fs_hz
        rows = []
        for x in ecg.detach().float().cpu().numpy():
            try:
                beats = beat_times(x, self.cfg.ecg_fs_hz)
            except DataError:
                beats = None
            rows.append(phase_features(beats, frame_s))
        return torch.from_numpy(np.stack(rows)).to(self.device)

    def forward(self, cond: Mapping[str, Any]) -> AdapterOutput:
        ecg = torch.as_tensor(cond["ecg"])
        if ecg.ndim != 3:
            raise ValueError(f"cond['ecg'] must be (B, 12, T), got {tuple(ecg.shape)}")
        channels = self.phase(ecg)  # (B, 7, F)
        tokens = self.summary(channels.mean(-1))[:, None] + self.field  # (B, 1, D)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=self.device)
        return AdapterOutput(tokens=tokens, mask=mask, channels=channels)
