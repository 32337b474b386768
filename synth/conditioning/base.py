"""The adapter contract: raw inputs from the ``cond`` dict → tokens (B, L, D) + mask (B, L) [+ channels]."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from synth.config import SignalConfig


@dataclass
class AdapterParams:
    """Fields every adapter config has. ``p_drop``: probability of dropping this modality in training
    (CFG)."""

    p_drop: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_drop <= 1.0:
            raise ValueError(f"p_drop must be in [0, 1], got {self.p_drop}")


@dataclass
class AdapterOutput:
    """tokens (B, L, D) float, mask (B, L) bool (True = visible), channels (B, Cc, T) or None."""

    tokens: Tensor
    mask: Tensor
    channels: Tensor | None = None


class Adapter(nn.Module, abc.ABC):
    """Base class. Subclasses set ``keys`` (the ``cond`` keys they read), ``num_tokens`` (fixed L) and, if
    they emit channels for concatenation, ``num_channels``; they are built as ``cls(params, dim=D,
    signal=...)``."""

    keys: tuple[str, ...] = ()
    num_tokens: int
    num_channels: int = 0

    def __init__(self, dim: int, signal: SignalConfig):
        super().__init__()
        self.dim = dim
        self.signal = signal

    @classmethod
    def from_config(cls, params: Any, *, dim: int, signal: SignalConfig) -> Adapter:
        return cls(params, dim=dim, signal=signal)

    def present(self, cond: Mapping[str, Any]) -> bool:
        """Whether ``cond`` carries this modality at all; an absent modality is encoded as dropped."""
        return any(cond.get(key) is not None for key in self.keys)

    def absent(self, cond: Mapping[str, Any], batch_size: int) -> Tensor:
        """(B,) bool: the samples that do not give this modality, encoded as dropped (its null token), so one
        batch can mix samples with and without it. Default: all of them when it is not in ``cond``, else none;
        adapters whose inputs can mark a missing value per sample (an empty report, NaN) say so."""
        return torch.full((batch_size,), not self.present(cond), dtype=torch.bool)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @abc.abstractmethod
    def forward(self, cond: Mapping[str, Any]) -> AdapterOutput:
        """Encode this modality for a batch in which it is present."""


def as_float(value: Any, device: torch.device, batch_size: int, name: str) -> Tensor:
    """A (B,) float tensor from a number, list or tensor; NaN marks a missing value."""
    tensor = torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1)
    if tensor.numel() == 1 and batch_size != 1:
        tensor = tensor.expand(batch_size)
    if tensor.numel() != batch_size:
        raise ValueError(f"cond[{name!r}] has {tensor.numel()} values for a batch of {batch_size}")
    return tensor
