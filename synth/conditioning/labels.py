"""Diagnostic labels (multi-hot) → one learned token per active label plus an always-visible summary token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from synth.conditioning.base import Adapter, AdapterOutput, AdapterParams
from synth.config import SignalConfig
from synth.registry import register


@register("adapter", "labels")
class LabelsAdapter(Adapter):
    """``cond["labels"]``: (B, K) multi-hot (values > 0.5 = present) → tokens (B, K + 1, D), mask (B, K + 1).

    The first token is visible for every sample, so "labels given, none positive" differs from "labels
    dropped".
    """

    keys = ("labels",)

    @dataclass
    class Config(AdapterParams):
        num_labels: int = 71  # the PTB-XL SCP statements

    def __init__(self, cfg: Config, *, dim: int, signal: SignalConfig):
        super().__init__(dim, signal)
        self.num_tokens = cfg.num_labels + 1
        self.embedding = nn.Parameter(torch.randn(self.num_tokens, dim) * 0.02)  # row 0: the summary token

    def forward(self, cond: Mapping[str, Any]) -> AdapterOutput:
        labels = torch.as_tensor(cond["labels"], device=self.device).float()  # (B, K)
        if labels.ndim != 2 or labels.shape[1] != self.num_tokens - 1:
            raise ValueError(f"cond['labels'] must be (B, {self.num_tokens - 1}), got {tuple(labels.shape)}")
        present = labels > 0.5  # (B, K)
        mask = torch.cat([torch.ones_like(present[:, :1]), present], dim=1)  # (B, K + 1)
        tokens = self.embedding.expand(labels.shape[0], -1, -1)  # (B, K + 1, D)
        return AdapterOutput(tokens=tokens, mask=mask)
