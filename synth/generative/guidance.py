"""Classifier-free guidance: the one place where conditional and unconditional outputs are mixed.

Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", Eq. 6: ε̃ = ε(x, ∅) + w (ε(x, c) − ε(x, ∅)) with ``w
= guidance_scale`` (w = 1: conditional model, w = 0: unconditional). The mix is linear, so it applies
unchanged to ε, v, x0, flow velocities or MaskGIT logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from synth.conditioning.stack import Conditioning

#: ``f(x_t, t, conditioning) -> output``: a network call with the condition already encoded.
ModelFn = Callable[[Tensor, Tensor, Conditioning], Tensor]


def mix_guidance(cond_out: Tensor, uncond_out: Tensor, guidance_scale: float) -> Tensor:
    """uncond + guidance_scale · (cond − uncond); any shape, cond_out and uncond_out alike."""
    return uncond_out + guidance_scale * (cond_out - uncond_out)


def guided(
    model_fn: ModelFn,
    x_t: Tensor,
    t: Tensor,
    cond: Conditioning,
    uncond: Conditioning | None,
    guidance_scale: float,
) -> Tensor:
    """Evaluate ``model_fn`` with guidance; conditional and unconditional halves share one batched call.

    With ``guidance_scale == 1`` (or no ``uncond``) this *is* the conditional output: one call, nothing mixed.
    """
    if uncond is None or guidance_scale == 1.0:
        return model_fn(x_t, t, cond)
    out = model_fn(torch.cat([x_t, x_t]), torch.cat([t, t]), cond.cat(uncond))  # (2B, ...)
    cond_out, uncond_out = out.chunk(2)
    return mix_guidance(cond_out, uncond_out, guidance_scale)
