"""Classifier-free guidance: the one place where conditional and unconditional outputs are mixed.

Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", Eq. 6: ε̃ = ε(x, ∅) + w (ε(x, c) − ε(x, ∅)) with ``w
= guidance_scale`` (w = 1: conditional model, w = 0: unconditional). The mix is linear, so it applies
unchanged to ε, v, x0, flow velocities or MaskGIT logits.

Per-modality terms (compositional guidance, Liu et al. 2022, "Compositional Visual Generation with Composable
Diffusion Models", Eq. 10; Brooks et al. 2023, "InstructPix2Pix", Eq. 3): ``+ Σ_m w_m (ε(x, c) − ε(x, c ∖ m))``
pushes further along one modality only (``c ∖ m``: the condition with modality m dropped), e.g. the EF asked of
an echo, without guiding the others harder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from synth.conditioning.stack import Conditioning
from synth.errors import SynthError


class GuidanceError(SynthError, ValueError):
    """Guidance the model cannot sample with: a scale it refuses, or a modality it lacks or was not given."""

#: ``f(x_t, t, conditioning) -> output``: a network call with the condition already encoded.
ModelFn = Callable[[Tensor, Tensor, Conditioning], Tensor]


def mix_guidance(cond_out: Tensor, uncond_out: Tensor, guidance_scale: float) -> Tensor:
    """uncond + guidance_scale · (cond − uncond); any shape, cond_out and uncond_out alike."""
    return uncond_out + guidance_scale * (cond_out - uncond_out)


#: ``(condition without modality m, w_m)`` pairs: the per-modality guidance terms.
PartialGuidance = Sequence[tuple[Conditioning, float]]


def guided(
    model_fn: ModelFn,
    x_t: Tensor,
    t: Tensor,
    cond: Conditioning,
    uncond: Conditioning | None,
    guidance_scale: float,
    partial: PartialGuidance = (),
) -> Tensor:
    """Evaluate ``model_fn`` with guidance; every branch shares one batched call.

    With ``guidance_scale == 1`` (or no ``uncond``) and no ``partial`` terms this *is* the conditional output: one
    call, nothing mixed. Each ``(cond_without_m, w_m)`` of ``partial`` adds ``w_m · (out(cond) − out(cond ∖ m))``.
    """
    partial = [(c, w) for c, w in partial if w != 0.0]
    branches = [cond]
    if uncond is not None and guidance_scale != 1.0:
        branches.append(uncond)
    branches += [c for c, _ in partial]
    if len(branches) == 1:
        return model_fn(x_t, t, cond)
    stacked = branches[0]
    for other in branches[1:]:
        stacked = stacked.cat(other)
    k = len(branches)
    outs = model_fn(torch.cat([x_t] * k), torch.cat([t] * k), stacked).chunk(k)  # k × (B, ...)
    cond_out = outs[0]
    out = mix_guidance(cond_out, outs[1], guidance_scale) if uncond is not None and guidance_scale != 1.0 else cond_out
    for (_, w), without in zip(partial, outs[k - len(partial):]):
        out = out + w * (cond_out - without)
    return out
