"""VQ-VAE tokenizer for multi-lead signals: (B, C, T) mV ⇄ codes (B, T / 2^levels) in {0, …, K − 1}.

van den Oord et al. 2017, "Neural Discrete Representation Learning", Eq. 3: the convolutional encoder's
vectors are replaced by their nearest codebook entries (:class:`synth.generative.quantize.VectorQuantizer`:
EMA codebook, Razavi et al. 2019, straight-through gradient, dead-code restarts) and decoded; loss = MSE
reconstruction in model units (mV / ``scale_mv``) + β · commitment. Perplexity and the fraction of codes used
are reported with every loss.

A tokenizer models no distribution over its codes, so it does not generate by itself: ``generates = False``
and ``sample`` raises :class:`~synth.generative.base.NotAGeneratorError`. Train a ``maskgit`` model with
``latent: {pretrained: <this export>}`` as the prior over the codes, and sample that.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from synth.conditioning.stack import Conditioning, ConditioningStack
from synth.config import ConfigError, ModelConfig
from synth.generative.base import Cond, GenerativeModel, LossOutput, NotAGeneratorError
from synth.generative.quantize import VectorQuantizer
from synth.registry import register


@register("backbone", "vqvae")
class VQVAE(GenerativeModel):
    """Unconditional tokenizer: signals (B, C, T) in mV → codes (B, T') long, and back."""

    generates = False

    @dataclass
    class Config:
        #: K, the number of codes; their dimension is the network's ``latent_channels``.
        codebook_size: int = 512
        #: EMA decay γ of the codebook (van den Oord et al. 2017, App. A.1: 0.99).
        decay: float = 0.99
        #: Weight β of the commitment loss (van den Oord et al. 2017, Eq. 3: 0.25).
        commitment_weight: float = 0.25
        #: A code whose EMA assignment count per batch falls below this is moved onto an encoder output.
        dead_code_threshold: float = 1.0

        def __post_init__(self) -> None:
            if self.codebook_size < 2 or not 0.0 < self.decay < 1.0 or self.commitment_weight < 0:
                raise ValueError("codebook_size must be >= 2, decay in (0, 1) and commitment_weight >= 0")

    def __init__(self, cfg: ModelConfig, network: nn.Module, conditioning: ConditioningStack):
        super().__init__(cfg, network, conditioning)
        if conditioning.num_modalities:
            raise ConfigError(
                "a vqvae tokenizer is unconditional",
                hint="remove conditioning.adapters; condition the maskgit prior",
            )
        self.process = cfg.process
        self.quantizer = VectorQuantizer(
            self.process.codebook_size,
            network.latent_channels,
            decay=self.process.decay,
            dead_code_threshold=self.process.dead_code_threshold,
        )
        length = cfg.signal.length
        if network.padding(length):
            warnings.warn(
                f"signal.length {length} is not a multiple of {network.factor}: encode pads it to "
                f"{length + network.padding(length)} samples and decode crops back; {network.latent_length(length)} "
                "codes per signal",
                stacklevel=2,
            )

    @property
    def codebook_size(self) -> int:
        return self.process.codebook_size

    @property
    def latent_shape(self) -> tuple[int]:
        """(T',): codes per signal."""
        return (self.network.latent_length(self.cfg.signal.length),)

    def _condition(self, batch: int) -> Conditioning:
        return self.encode_condition({}, batch, train=False)  # the stack's learned empty token

    def loss(self, x: Tensor, cond: Cond) -> LossOutput:
        """x (B, C, T) float32 mV → reconstruction MSE (model units) + β · commitment; ``cond`` must be empty."""
        x = x.to(self.device) / self.cfg.signal.scale_mv  # (B, C, T)
        c = self.encode_condition(cond, x.shape[0], train=True)
        h = self.network.encode(x, c.tokens, c.mask)  # (B, D, T')
        q = self.quantizer(h)
        x_hat = self.network.decode(q.z_q, c.tokens, c.mask, length=x.shape[-1])  # (B, C, T)
        recon = F.mse_loss(x_hat.float(), x)
        loss = recon + self.process.commitment_weight * q.commitment
        return LossOutput(
            loss=loss,
            metrics={"mse": float(recon.detach()), "commitment": float(q.commitment.detach()), **q.metrics},
        )

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """x (B, C, T) float32 mV → codes (B, T') long in [0, codebook_size)."""
        x = x.to(self.device) / self.cfg.signal.scale_mv
        c = self._condition(x.shape[0])
        h = self.network.encode(x, c.tokens, c.mask)  # (B, D, T')
        return self.quantizer.nearest(rearrange(h.float(), "b d n -> b n d"))  # (B, T')

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, T') long → (B, C, T) float32 mV."""
        codes = codes.to(self.device).long()
        c = self._condition(codes.shape[0])
        z_q = self.quantizer.lookup(codes)  # (B, D, T')
        x = self.network.decode(z_q, c.tokens, c.mask, length=self.cfg.signal.length)  # (B, C, T)
        return (x * self.cfg.signal.scale_mv).float()

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
        """Always raises :class:`NotAGeneratorError`: a tokenizer has no prior over its codes."""
        raise NotAGeneratorError(
            "a vqvae is a tokenizer and cannot sample on its own",
            hint="train a maskgit model with latent: {pretrained: <this export>} and sample that",
        )
