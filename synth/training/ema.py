"""Exponential moving average of a model's trainable weights, with the usual decay warm-up.

After update ``n`` (counting from 1) the shadow moves as ``shadow ← d·shadow + (1 − d)·θ`` with
``d = min(decay, (1 + n) / (10 + n))`` (the ``num_updates`` rule of TensorFlow's ``ExponentialMovingAverage``):
early on the average follows the fast-changing weights instead of remembering the random initialisation for
~1 / (1 − decay) steps. Only trainable parameters are averaged; buffers and frozen parts are taken from the model
as they are when the EMA weights are swapped in, so the exported state dict is complete.

The shadow is a dict ``name → fp32 tensor`` with the model's own (unwrapped) parameter names, which is what a
safetensors file stores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn


class EMA:
    """The EMA of ``model``'s parameters that require a gradient; ``model`` must be unwrapped (no DDP prefix)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {
            name: p.detach().float().clone() for name, p in model.named_parameters() if p.requires_grad
        }

    def current_decay(self) -> float:
        """The decay the next update will use."""
        n = self.num_updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow towards the model's current weights (call once per optimizer step)."""
        d = self.current_decay()
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach().float(), 1.0 - d)
        self.num_updates += 1

    def state_dict(self) -> dict[str, Tensor]:
        """The shadow weights (fp32, CPU, contiguous copies: ready for safetensors)."""
        return {name: t.detach().cpu().contiguous().clone() for name, t in self.shadow.items()}

    def load_state_dict(self, state: dict[str, Tensor], num_updates: int) -> None:
        if set(state) != set(self.shadow):
            missing, extra = sorted(set(self.shadow) - set(state)), sorted(set(state) - set(self.shadow))
            raise KeyError(f"EMA weights do not match the model: missing {missing[:5]}, unexpected {extra[:5]}")
        for name, t in state.items():
            self.shadow[name].copy_(t)
        self.num_updates = int(num_updates)

    @contextlib.contextmanager
    def swapped_into(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily put the EMA weights into ``model`` (for validation, sampling, export), then restore."""
        params = {name: p for name, p in model.named_parameters() if name in self.shadow}
        backup = {name: p.detach().clone() for name, p in params.items()}
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(self.shadow[name])
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(backup[name])
