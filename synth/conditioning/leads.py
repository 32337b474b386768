"""Given ECG leads (any subset of the 12) → patch tokens with lead-identity embeddings, and optionally
channels.

Each lead is cut into patches of ``patch_size`` samples; a patch becomes a token = linear(patch) + embedding
of its lead (canonical order, :data:`synth.data.leads.LEADS_12`) + embedding of its position. Tokens of leads
that are not given are masked and their samples zeroed, so nothing leaks from a hidden lead. With
``as_channels`` the adapter also emits (B, 24, T) = the given leads and their 0/1 mask, for networks that take
the condition concatenated to x_t (lead reconstruction).
"""

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
from synth.data.leads import LEADS_12
from synth.registry import register


@register("adapter", "leads")
class LeadsAdapter(Adapter):
    """``cond["leads"]`` (B, 12, T) mV + ``cond["lead_mask"]`` (B, 12) bool → tokens (B, 12 * ceil(T / p),
    D)."""

    keys = ("leads", "lead_mask")
    signal_key, mask_key = "leads", "lead_mask"

    @dataclass
    class Config(AdapterParams):
        patch_size: int = 50  # samples per token (0.5 s at 100 Hz)
        #: Samples per lead; 0 = the model's ``signal.length``.
        length: int = 0
        #: Also emit the given leads and their mask as 24 channels for concatenation to x_t.
        as_channels: bool = False
        #: mV per unit of the given leads; 0 = the model's ``signal.scale_mv`` (a model whose output is on
        #: another scale than its input, e.g. the 500 Hz detail of an upsampler, sets its own).
        scale_mv: float = 0.0

    def __init__(self, cfg: Config, *, dim: int, signal: SignalConfig):
        super().__init__(dim, signal)
        self.cfg = cfg
        self.length = cfg.length or signal.length
        if cfg.as_channels and self.length != signal.length:
            raise ValueError("as_channels needs the leads to have the model's signal.length")
        self.num_patches = math.ceil(self.length / cfg.patch_size)
        self.num_tokens = len(LEADS_12) * self.num_patches
        self.num_channels = 2 * len(LEADS_12) if cfg.as_channels else 0
        self.scale_mv = cfg.scale_mv or signal.scale_mv
        self.patch = nn.Linear(cfg.patch_size, dim)
        self.lead_embedding = nn.Parameter(torch.randn(len(LEADS_12), dim) * 0.02)
        self.position_embedding = nn.Parameter(torch.randn(self.num_patches, dim) * 0.02)

    def present(self, cond: Mapping[str, Any]) -> bool:
        return cond.get(self.signal_key) is not None

    def forward(self, cond: Mapping[str, Any]) -> AdapterOutput:
        x = torch.as_tensor(cond[self.signal_key], device=self.device).float() / self.scale_mv  # (B, 12, T)
        if x.ndim != 3 or x.shape[1:] != (len(LEADS_12), self.length):
            raise ValueError(
                f"cond[{self.signal_key!r}] must be (B, 12, {self.length}) in canonical lead order, "
                f"got {tuple(x.shape)}"
            )
        given = cond.get(self.mask_key)
        given = (
            torch.ones(x.shape[:2], dtype=torch.bool, device=self.device)
            if given is None
            else torch.as_tensor(given, device=self.device).bool()
        )  # (B, 12)
        x = x * given[..., None]  # hidden leads carry nothing
        patches = F.pad(x, (0, self.num_patches * self.cfg.patch_size - self.length))  # (B, 12, P*p)
        patches = rearrange(patches, "b l (n p) -> b l n p", p=self.cfg.patch_size)  # (B, 12, P, p)
        tokens = self.patch(patches) + self.lead_embedding[:, None] + self.position_embedding  # (B, 12, P, D)
        tokens = rearrange(tokens, "b l n d -> b (l n) d")  # (B, 12*P, D)
        mask = given[:, :, None].expand(-1, -1, self.num_patches).reshape(x.shape[0], -1)  # (B, 12*P)
        channels = None
        if self.cfg.as_channels:
            channels = torch.cat([x, given[..., None].expand_as(x).float()], dim=1)  # (B, 24, T)
        return AdapterOutput(tokens=tokens, mask=mask, channels=channels)


@register("adapter", "ecg")
class ECGAdapter(LeadsAdapter):
    """The leads adapter reading ``cond["ecg"]`` (B, 12, T_ecg) mV and ``cond["ecg_lead_mask"]``: ECG →
    echo."""

    keys = ("ecg", "ecg_lead_mask")
    signal_key, mask_key = "ecg", "ecg_lead_mask"
