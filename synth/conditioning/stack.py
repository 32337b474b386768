"""One stack for every modality: concatenate adapter tokens, add modality embeddings, drop for guidance.

Classifier-free guidance (Ho & Salimans 2022) needs the model to have seen "no condition". Each modality is
dropped independently with its own ``p_drop`` during training; a dropped (or absent) modality is replaced by
its learned null token (lucidrains' ``null_embed``), shown in the first of its L positions with the other L-1
masked, and its channels are zeroed. The unconditional input for guidance is every modality dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from synth import registry
from synth.conditioning.base import Adapter
from synth.config import ConditioningConfig, SignalConfig
from synth.errors import SynthError


class ConditioningError(SynthError, ValueError):
    """A ``cond`` dict that the model cannot use (unknown key, wrong batch size)."""


@dataclass
class Conditioning:
    """What a network sees: tokens (B, L, D), mask (B, L) bool, channels (B, Cc, T) or None."""

    tokens: Tensor
    mask: Tensor
    channels: Tensor | None = None

    def cat(self, other: Conditioning) -> Conditioning:
        """Stack two batches (conditional then unconditional) along the batch dimension."""
        channels = None if self.channels is None else torch.cat([self.channels, other.channels], dim=0)
        return Conditioning(
            torch.cat([self.tokens, other.tokens]), torch.cat([self.mask, other.mask]), channels
        )


def _batch_of(value: Any) -> int | None:
    if isinstance(value, Tensor):
        return value.shape[0] if value.ndim else None
    if isinstance(value, list | tuple):
        return len(value)
    return None


def expand_cond(cond: Mapping[str, Any], batch_size: int) -> dict[str, Any]:
    """Repeat batch-of-1 entries to ``batch_size``; entries already of ``batch_size`` (or scalars) pass
    unchanged."""
    out: dict[str, Any] = {}
    for key, value in cond.items():
        n = _batch_of(value)
        if n is None or n == batch_size:
            out[key] = value
        elif n == 1:
            out[key] = (
                value.expand(batch_size, *value.shape[1:])
                if isinstance(value, Tensor)
                else list(value) * batch_size
            )
        else:
            raise ConditioningError(f"cond[{key!r}] has batch size {n}, expected 1 or {batch_size}")
    return out


class ConditioningStack(nn.Module):
    """Adapters (modality name → :class:`Adapter`) → one :class:`Conditioning`."""

    def __init__(self, adapters: Mapping[str, Adapter], dim: int, p_drop: Mapping[str, float] | None = None):
        super().__init__()
        self.dim = dim
        self.adapters = nn.ModuleDict(dict(adapters))
        self.p_drop = {name: float((p_drop or {}).get(name, 0.0)) for name in self.adapters}
        num = len(self.adapters)
        if num:
            self.modality_embedding = nn.Parameter(torch.randn(num, dim) * 0.02)
            self.null_tokens = nn.Parameter(torch.randn(num, dim) * 0.02)
        else:  # an unconditional model still hands the network one (learned) token
            self.empty_token = nn.Parameter(torch.randn(1, dim) * 0.02)
        self.num_channels = sum(a.num_channels for a in self.adapters.values())
        self.keys = frozenset(key for a in self.adapters.values() for key in a.keys)

    @classmethod
    def from_config(cls, cfg: ConditioningConfig, signal: SignalConfig) -> ConditioningStack:
        adapters = {
            name: registry.build("adapter", comp, dim=cfg.dim, signal=signal)
            for name, comp in cfg.adapters.items()
        }
        return cls(adapters, cfg.dim, {name: comp.params.p_drop for name, comp in cfg.adapters.items()})

    @property
    def num_modalities(self) -> int:
        return len(self.adapters)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def sample_drop(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """(B, M) bool: which modality each sample drops, each with its own ``p_drop``."""
        probs = torch.tensor([self.p_drop[name] for name in self.adapters], device=self._device())
        u = torch.rand(batch_size, len(probs), generator=generator, device=self._device())
        return u < probs

    def forward(
        self, cond: Mapping[str, Any], batch_size: int, *, drop: Tensor | None = None
    ) -> Conditioning:
        """Encode ``cond`` for ``batch_size`` samples.

        drop: (B, M) bool, True = replace modality m of sample b by its null token. None means: sampled from
        ``p_drop`` in training mode, nothing dropped in eval mode. Absent modalities are always dropped.
        """
        unknown = set(cond) - self.keys
        if unknown:
            raise ConditioningError(
                f"cond has keys {sorted(unknown)} that no adapter reads",
                hint=f"this model reads {sorted(self.keys) or 'no conditioning'}",
            )
        device = self._device()
        if not self.adapters:
            tokens = self.empty_token.expand(batch_size, 1, self.dim)  # (B, 1, D)
            return Conditioning(tokens, torch.ones(batch_size, 1, dtype=torch.bool, device=device))
        if drop is None:
            drop = (
                self.sample_drop(batch_size)
                if self.training
                else torch.zeros(batch_size, self.num_modalities, dtype=torch.bool, device=device)
            )
        cond = expand_cond(cond, batch_size)
        tokens, masks, channels = [], [], []
        for m, adapter in enumerate(self.adapters.values()):
            keep = ~(drop[:, m].to(device) | adapter.absent(cond, batch_size).to(device))  # (B,)
            null = self.null_tokens[m].expand(batch_size, adapter.num_tokens, self.dim)  # (B, L_m, D)
            null_mask = torch.zeros(batch_size, adapter.num_tokens, dtype=torch.bool, device=device)
            null_mask[:, 0] = True
            if adapter.present(cond) and bool(keep.any()):
                out = adapter(cond)
                if out.tokens.shape != null.shape:
                    raise ConditioningError(
                        f"adapter {adapter.registry_name!r} made tokens {tuple(out.tokens.shape)}"
                        f", expected {tuple(null.shape)}",
                        hint="check the batch sizes in cond",
                    )
                tok = torch.where(keep[:, None, None], out.tokens, null)  # (B, L_m, D)
                mask = torch.where(keep[:, None], out.mask, null_mask)  # (B, L_m)
                chan = (
                    None
                    if out.channels is None
                    else out.channels * keep[:, None, None].to(out.channels.dtype)
                )
            else:
                tok, mask, chan = null, null_mask, None
            if adapter.num_channels and chan is None:
                chan = torch.zeros(batch_size, adapter.num_channels, self._length(adapter), device=device)
            tokens.append(tok + self.modality_embedding[m])
            masks.append(mask)
            if adapter.num_channels:
                channels.append(chan)
        return Conditioning(
            tokens=torch.cat(tokens, dim=1),  # (B, sum L_m, D)
            mask=torch.cat(masks, dim=1),  # (B, sum L_m)
            channels=torch.cat(channels, dim=1) if channels else None,  # (B, sum Cc_m, T)
        )

    @staticmethod
    def _length(adapter: Adapter) -> int:
        return adapter.signal.length

    def unconditional(self, batch_size: int) -> Conditioning:
        """Every modality dropped: the input for the unconditional branch of guidance."""
        drop = torch.ones(batch_size, max(self.num_modalities, 1), dtype=torch.bool, device=self._device())
        return self({}, batch_size, drop=drop[:, : self.num_modalities])
