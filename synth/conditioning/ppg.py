"""PPG → tokens through a small strided 1D convolutional encoder (one token per ``downsample`` samples)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
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
        #: Also emit 3 channels of cardiac phase (sin, cos of the cycle phase, time since the beat reference;
        #: :func:`synth.data.pulse.phase_channels`) from the pulse onsets found in the PPG, so the network knows
        #: where each beat is, not only how fast they come.
        phase_channels: bool = False
        #: Pulse arrival delay (s): the beat reference is each onset moved back by this much, where the R-peak is
        #: expected. 0.52 s is the median onset delay of BIDMC's training subjects 1-37 (IQR 0.49-0.54; its
        #: monitor's pleth lags the ECG more than the physiological 0.15-0.30 s).
        delay_s: float = 0.52

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.downsample < 1 or self.downsample & (self.downsample - 1):
                raise ValueError(f"downsample must be a power of two, got {self.downsample}")

    def __init__(self, cfg: Config, *, dim: int, signal: SignalConfig):
        super().__init__(dim, signal)
        self.cfg = cfg
        self.length = cfg.length or signal.length
        self.num_tokens = math.ceil(self.length / cfg.downsample)
        if (cfg.as_channels or cfg.phase_channels) and self.length != signal.length:
            raise ValueError("as_channels and phase_channels need the PPG to have the model's signal.length")
        self.num_channels = (1 if cfg.as_channels else 0) + (3 if cfg.phase_channels else 0)
        h = cfg.hidden_channels
        layers: list[nn.Module] = [nn.Conv1d(1, h, 7, padding=3), nn.SiLU()]
        for _ in range(int(math.log2(cfg.downsample))):
            layers += [nn.Conv1d(h, h, 4, stride=2, padding=1), nn.GroupNorm(1, h), nn.SiLU()]
        self.encoder = nn.Sequential(*layers)
        self.proj = nn.Linear(h, dim)
        self.position_embedding = nn.Parameter(torch.randn(self.num_tokens, dim) * 0.02)

    def phase(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T) cardiac-phase channels of standardised PPG windows ``x`` (B, 1, T), beats referenced at each
        pulse onset minus ``delay_s``."""
        from synth.data.pulse import phase_channels, pulse_onsets

        fs = float(self.signal.fs_hz)
        out = [phase_channels(pulse_onsets(w, fs) - self.cfg.delay_s * fs, self.length, fs)
               for w in x[:, 0].detach().cpu().numpy()]
        return torch.from_numpy(np.stack(out)).to(x.device)

    def forward(self, cond: Mapping[str, Any]) -> AdapterOutput:
        x = torch.as_tensor(cond["ppg"], device=self.device).float()  # (B, 1, T)
        if x.ndim != 3 or x.shape[1:] != (1, self.length):
            raise ValueError(f"cond['ppg'] must be (B, 1, {self.length}), got {tuple(x.shape)}")
        x = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True).clamp(min=1e-6)
        parts = [x] if self.cfg.as_channels else []
        if self.cfg.phase_channels:
            parts.append(self.phase(x))  # (B, 3, T)
        channels = torch.cat(parts, dim=1) if parts else None  # (B, C, T)
        x = F.pad(x, (0, self.num_tokens * self.cfg.downsample - self.length))  # (B, 1, N*ds)
        h = self.encoder(x)  # (B, H, N)
        tokens = self.proj(rearrange(h, "b h n -> b n h")) + self.position_embedding  # (B, N, D)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=self.device)  # (B, N)
        return AdapterOutput(tokens=tokens, mask=mask, channels=channels)


@register("adapter", "beat_template")
class BeatTemplateAdapter(Adapter):
    """``cond["template"]`` (B, 1, T): the subject's own beat drawn where its beats are expected, on the model's
    amplitude scale (a calibrated template from a short ECG recorded with the PPG,
    :func:`synth.tasks.ppg2ecg.template_channel`) → that signal as one channel for concatenation to x_t (in
    register with the beats) and one learned token saying it is there. A sample whose template is NaN has none
    and is encoded as dropped, so one batch can mix calibrated and uncalibrated windows."""

    keys = ("template",)

    @dataclass
    class Config(AdapterParams):
        #: The model generates the ECG minus the template (trained on that difference), and
        #: :func:`synth.tasks.ppg2ecg.ppg_to_ecg` adds the template back: where the model has nothing to add, the
        #: subject's own beat stays. Such a model needs the template (a calibration ECG), so ``p_drop`` must be 0.
        residual: bool = False

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.residual and self.p_drop:
                raise ValueError("a residual beat template cannot be dropped: set p_drop: 0")

    def __init__(self, cfg: Config, *, dim: int, signal: SignalConfig):
        super().__init__(dim, signal)
        self.cfg = cfg
        self.length = int(signal.length)
        self.num_tokens = 1
        self.num_channels = 1
        self.token = nn.Parameter(torch.randn(1, dim) * 0.02)

    def _signal(self, cond: Mapping[str, Any]) -> torch.Tensor:
        x = torch.as_tensor(cond["template"], device=self.device).float()  # (B, 1, T)
        if x.ndim != 3 or x.shape[1:] != (1, self.length):
            raise ValueError(f"cond['template'] must be (B, 1, {self.length}), got {tuple(x.shape)}")
        return x

    def absent(self, cond: Mapping[str, Any], batch_size: int) -> torch.Tensor:
        if not self.present(cond):
            return torch.ones(batch_size, dtype=torch.bool)
        return ~torch.isfinite(self._signal(cond)).all(dim=2)[:, 0].cpu()

    def forward(self, cond: Mapping[str, Any]) -> AdapterOutput:
        x = torch.nan_to_num(self._signal(cond))  # (B, 1, T); absent rows are zeroed by the stack anyway
        b = x.shape[0]
        tokens = self.token.expand(b, 1, self.dim)
        return AdapterOutput(tokens=tokens, mask=torch.ones(b, 1, dtype=torch.bool, device=self.device), channels=x)
