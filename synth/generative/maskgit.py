"""MaskGIT: a masked-token prior over the codes of a frozen VQ-VAE, decoded in a few parallel steps.

Chang et al. 2022, "MaskGIT: Masked Generative Image Transformer".

- Training (§3.2): draw r ~ U[0, 1), mask ⌈γ(r) · N⌉ of the N code tokens chosen uniformly (replaced by the
  [MASK] id K), and minimise the cross-entropy of the bidirectional transformer's prediction at the masked
  positions only (Eq. 1). γ is the mask schedule, cosine by default (§3.3: γ(r) = cos(π r / 2)).
- Sampling (§3.2, "iterative decoding"): start with every token masked; at step i of S, predict all masked
  tokens, sample each from softmax(logits / temperature), and keep the ⌊γ((i + 1) / S) · N⌋ least confident of
  the newly sampled ones masked for the next step, where the confidence is the log-probability of the sampled
  token plus Gumbel noise whose scale anneals linearly to 0 (the reference implementation's
  ``mask_by_random_topk``). A committed token is never re-masked and every token is committed after step S.
- Guidance: classifier-free guidance on the logits (Chang et al. 2023, "Muse", §2.4.1), mixed by
  :mod:`synth.generative.guidance`; condition dropout comes from the conditioning stack.

:func:`cosine_schedule`, :func:`mask_tokens` and :func:`iterative_decode` are pure functions over (B, N) token
tensors and a ``logits_fn(ids) -> logits`` callable: a video model reuses them unchanged by flattening its
(B, F', H', W') codes to (B, N) with einops and passing its own network, and the VQ tokenizer side reuses
:class:`synth.generative.quantize.VectorQuantizer`, which is shape-agnostic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from synth.conditioning.stack import ConditioningStack
from synth.config import ConfigError, ModelConfig
from synth.generative.base import Cond, GenerativeModel, LossOutput
from synth.registry import register

#: γ(r): fraction of tokens masked at decoding progress r ∈ [0, 1]; γ(0) = 1, γ(1) = 0, non-increasing.
MaskSchedule = Callable[[Tensor], Tensor]
#: ``logits_fn(ids (B, N) long) -> logits (B, N, K)``: the network with its condition already bound.
LogitsFn = Callable[[Tensor], Tensor]


def cosine_schedule(r: Tensor) -> Tensor:
    """γ(r) = cos(π r / 2) (Chang et al. 2022, §3.3, the schedule they found best)."""
    return torch.cos(0.5 * math.pi * r)


def linear_schedule(r: Tensor) -> Tensor:
    """γ(r) = 1 − r."""
    return 1.0 - r


def square_schedule(r: Tensor) -> Tensor:
    """γ(r) = 1 − r²."""
    return 1.0 - r**2


SCHEDULES: dict[str, MaskSchedule] = {
    "cosine": cosine_schedule,
    "linear": linear_schedule,
    "square": square_schedule,
}


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """U(0, 1) drawn on the generator's device (so a seed gives the same draw everywhere), moved to ``device``."""
    source = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=source).to(device)


def _gumbel(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    u = _uniform(shape, generator, device).clamp(1e-20, 1.0 - 1e-7)
    return -torch.log(-torch.log(u))


def mask_tokens(
    ids: Tensor, ratio: Tensor, mask_id: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Mask ⌈ratio · N⌉ (at least 1) uniformly chosen positions per row.

    ids (B, N) long, ratio (B,) in [0, 1] → (ids with ``mask_id`` at the masked positions (B, N), mask (B, N)
    bool, True = masked).
    """
    batch, n = ids.shape
    num_masked = torch.ceil(ratio * n).clamp(1, n).long()  # (B,)
    rank = _uniform((batch, n), generator, ids.device).argsort(dim=1).argsort(dim=1)  # (B, N) random ranks
    masked = rank < num_masked[:, None]  # (B, N)
    return torch.where(masked, torch.full_like(ids, mask_id), ids), masked


def iterative_decode(
    logits_fn: LogitsFn,
    num_samples: int,
    num_tokens: int,
    mask_id: int,
    *,
    steps: int,
    schedule: MaskSchedule = cosine_schedule,
    temperature: float = 1.0,
    choice_temperature: float = 4.5,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    known: Tensor | None = None,
) -> Tensor:
    """MaskGIT decoding (Chang et al. 2022, §3.2) from all-[MASK] to (num_samples, num_tokens) long codes.

    steps: S iterations; after step i, ⌊γ((i + 1) / S) · M⌋ of the M free tokens stay masked (0 after the last),
    and at least one new token is committed per step while any is masked. temperature: of the token sampling
    (0 = argmax). choice_temperature: initial scale of the Gumbel noise added to the confidences, annealed
    linearly to 0. known: (B, N) long, codes that are given (``mask_id`` elsewhere): they are kept and the rest is
    decoded around them (inpainting, continuation), as the training masks let the network see known codes.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    device = torch.device(device)
    ids = torch.full((num_samples, num_tokens), mask_id, dtype=torch.long, device=device)  # (B, N)
    if known is not None:
        if tuple(known.shape) != (num_samples, num_tokens):
            raise ValueError(f"known codes must be ({num_samples}, {num_tokens}), got {tuple(known.shape)}")
        ids = known.to(device=device, dtype=torch.long).clone()
    free = (ids == mask_id).sum(1)  # (B,) tokens to decode
    for i in range(steps):
        unknown = ids == mask_id  # (B, N)
        logits = logits_fn(ids).float()  # (B, N, K)
        if temperature > 0:
            logits = logits / temperature
            gumbel = _gumbel(tuple(logits.shape), generator, device)  # (B, N, K)
            sampled = (logits + gumbel).argmax(-1)  # (B, N): Gumbel-max = a draw from softmax(logits)
        else:
            sampled = logits.argmax(-1)
        log_prob = logits.log_softmax(-1).gather(-1, sampled[..., None])[..., 0]  # (B, N)
        sampled = torch.where(unknown, sampled, ids)
        progress = (i + 1) / steps
        ratio = schedule(torch.tensor(progress, device=device))
        num_unknown = unknown.sum(1)  # (B,)
        scheduled = torch.floor(ratio * free).long()  # (B,)
        keep_masked = torch.minimum(scheduled, num_unknown - 1).clamp(min=0)  # (B,): commit >= 1 per step
        noise = choice_temperature * (1.0 - progress) * _gumbel((num_samples, num_tokens), generator, device)
        confidence = torch.where(unknown, log_prob + noise, torch.full_like(log_prob, math.inf))  # (B, N)
        rank = confidence.argsort(dim=1).argsort(dim=1)  # (B, N), 0 = least confident
        ids = torch.where(rank < keep_masked[:, None], torch.full_like(ids, mask_id), sampled)
    return ids


@register("backbone", "maskgit")
class MaskGIT(GenerativeModel):
    """Masked-token prior over a frozen ``vqvae`` (``latent:``); samples (N, C, T) in mV through its decoder."""

    @dataclass
    class Config:
        mask_schedule: Literal["cosine", "linear", "square"] = "cosine"
        #: Decoding iterations when ``sample`` gets no ``steps`` (Chang et al. 2022 use 8-12).
        default_steps: int = 12
        #: Token sampling temperature (0 = argmax).
        temperature: float = 1.0
        #: Initial Gumbel scale of the confidence used to choose what to re-mask (reference value 4.5).
        choice_temperature: float = 4.5
        label_smoothing: float = 0.1

        def __post_init__(self) -> None:
            if self.default_steps < 1 or self.temperature < 0 or self.choice_temperature < 0:
                raise ValueError("default_steps must be >= 1 and the temperatures >= 0")
            if not 0.0 <= self.label_smoothing < 1.0:
                raise ValueError("label_smoothing must be in [0, 1)")

    def __init__(self, cfg: ModelConfig, network: nn.Module, conditioning: ConditioningStack):
        super().__init__(cfg, network, conditioning)
        self.process = cfg.process
        self.schedule = SCHEDULES[self.process.mask_schedule]

    @classmethod
    def network_channels(cls, cfg: ModelConfig, autoencoder: GenerativeModel | None) -> tuple[int, int]:
        """(K + 1 input ids including [MASK], K logits) for a tokenizer with K codes."""
        if autoencoder is None or not hasattr(autoencoder, "codebook_size"):
            raise ConfigError(
                "maskgit needs a vqvae tokenizer",
                hint="add latent: {pretrained: <vqvae export>} to the config",
            )
        return autoencoder.codebook_size + 1, autoencoder.codebook_size

    @property
    def mask_id(self) -> int:
        """The [MASK] id: K, one past the last code."""
        return self.autoencoder.codebook_size

    def loss(self, x: Tensor, cond: Cond) -> LossOutput:
        """x (B, C, T) float32 mV → cross-entropy of the codes at the masked positions (Chang et al. 2022, Eq. 1)."""
        ids = self.to_process(x)  # (B, N) codes of the frozen tokenizer
        batch = ids.shape[0]
        ratio = self.schedule(torch.rand(batch, device=self.device))  # (B,) γ(r), r ~ U[0, 1)
        x_t, masked = mask_tokens(ids, ratio, self.mask_id)  # (B, N), (B, N)
        c = self.encode_condition(cond, batch, train=True)
        logits = self.call_network(x_t, masked.float().mean(1), c)  # (B, N, K)
        loss = F.cross_entropy(
            logits[masked].float(), ids[masked], label_smoothing=self.process.label_smoothing
        )
        accuracy = (logits[masked].argmax(-1) == ids[masked]).float().mean()
        return LossOutput(loss=loss, metrics={"ce": float(loss.detach()), "masked_accuracy": float(accuracy)})

    def sample(
        self,
        cond: Cond,
        num_samples: int,
        *,
        steps: int | None = None,
        guidance_scale: float = 1.0,
        modality_guidance: Mapping[str, float] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """(num_samples, C, T) float32 mV: codes decoded in ``steps`` MaskGIT iterations (default
        ``process.default_steps``), then through the tokenizer's decoder; ``guidance_scale`` mixes the logits."""
        codes = self.sample_codes(cond, num_samples, steps=steps, guidance_scale=guidance_scale,
                                  modality_guidance=modality_guidance, generator=generator)
        return self.to_signal(codes)

    def sample_codes(
        self,
        cond: Cond,
        num_samples: int,
        *,
        steps: int | None = None,
        guidance_scale: float = 1.0,
        modality_guidance: Mapping[str, float] | None = None,
        generator: torch.Generator | None = None,
        known: Tensor | None = None,
    ) -> Tensor:
        """(num_samples, N) long codes, decoded around the ``known`` ones when given (see :func:`iterative_decode`);
        :meth:`to_signal` turns them into signals."""
        with self.eval_mode():
            c = self.encode_condition(cond, num_samples, train=False)
            u, partial = self.guidance_branches(cond, num_samples, guidance_scale, modality_guidance)

            def logits_fn(ids: Tensor) -> Tensor:
                t = (ids == self.mask_id).float().mean(1)  # (N,) masked fraction
                return self.guided_network(ids, t, c, u, guidance_scale, partial)  # (N, tokens, K)

            codes = iterative_decode(
                logits_fn,
                num_samples,
                self.process_shape[0],
                self.mask_id,
                steps=steps or self.process.default_steps,
                schedule=self.schedule,
                temperature=self.process.temperature,
                choice_temperature=self.process.choice_temperature,
                generator=generator,
                device=self.device,
                known=known,
            )
        return codes
