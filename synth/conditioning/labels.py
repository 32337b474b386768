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
        #: Names of the K labels in column order (e.g. NORM, MI, STTC, CD, HYP), so users can ask by name.
        classes: list[str] | None = None

        def __post_init__(self) -> None:
            super().__post_init__()  # the p_drop range check of AdapterParams
            if self.classes is not None and len(self.classes) != self.num_labels:
                raise ValueError(f"classes names {len(self.classes)} labels but num_labels is {self.num_labels}")

    def __init__(self, cfg: Config, *, dim: int, signal: SignalConfig):
        super().__init__(dim, signal)
        self.classes = list(cfg.classes) if cfg.classes is not None else None
        self.num_tokens = cfg.num_labels + 1
        self.embedding = nn.Parameter(torch.randn(self.num_tokens, dim) * 0.02)  # row 0: the summary token

    def multi_hot(self, names: list[list[str]]) -> torch.Tensor:
        """Label names per sample → (B, K) multi-hot; unknown names are refused with the known ones listed."""
        if self.classes is None:
            raise ValueError("this model's labels adapter has no class names; pass cond['labels'] as (B, K)")
        index = {c.upper(): k for k, c in enumerate(self.classes)}
        out = torch.zeros(len(names), len(self.classes))
        for b, sample in enumerate(names):
            for name in sample:
                if name.upper() not in index:
                    raise ValueError(f"unknown label {name!r}; this model knows {', '.join(self.classes)}")
                out[b, index[name.upper()]] = 1.0
        return out

    def absent(self, cond: Mapping[str, Any], batch_size: int) -> torch.Tensor:
        """Samples whose label row is all NaN (labels not given, as against given and all negative)."""
        if not self.present(cond):
            return super().absent(cond, batch_size)
        labels = torch.as_tensor(cond["labels"]).float()
        return torch.isnan(labels).all(dim=1) if labels.ndim == 2 else super().absent(cond, batch_size)

    def forward(self, cond: Mapping[str, Any]) -> AdapterOutput:
        labels = torch.nan_to_num(torch.as_tensor(cond["labels"], device=self.device).float())  # (B, K)
        if labels.ndim != 2 or labels.shape[1] != self.num_tokens - 1:
            raise ValueError(f"cond['labels'] must be (B, {self.num_tokens - 1}), got {tuple(labels.shape)}")
        present = labels > 0.5  # (B, K)
        mask = torch.cat([torch.ones_like(present[:, :1]), present], dim=1)  # (B, K + 1)
        tokens = self.embedding.expand(labels.shape[0], -1, -1)  # (B, K + 1, D)
        return AdapterOutput(tokens=tokens, mask=mask)
