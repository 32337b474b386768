"""Variational autoencoder for multi-lead signals: a latent space for diffusion/flow, or a conditional generator.

Kingma & Welling 2014, "Auto-Encoding Variational Bayes", Eq. 3/10: q(z | x) = N(μ, σ²) from the encoder,
z = μ + σ ⊙ ε (reparametrisation), loss = reconstruction + β · KL(q(z | x) ‖ p(z)). Here the reconstruction is
the mean squared error in model units (mV / ``scale_mv``), optionally plus a multi-resolution STFT magnitude
term (Yamamoto et al. 2020, "Parallel WaveGAN", §2.3), and the KL is in nats per signal sample (summed over the
latent, divided by C · T), so β = 1 is the ELBO of a Gaussian decoder with variance ½ and β < 1 a β-VAE
(Higgins et al. 2017). β ramps linearly from 0 over ``kl_warmup_steps`` (Bowman et al. 2016, "Generating
Sentences from a Continuous Space", §3.1) so the decoder learns to use z before the KL pulls q to the prior.
The ramp counts training ``loss`` calls in a persistent buffer: it is in every checkpoint, so a resumed run
continues the ramp where it stopped.

(a) Latent space. ``encode(x)`` returns the posterior mean times ``latent_scale``, a buffer set by
:meth:`VAE.fit_latent_scale` to 1 / std of the posterior means over data (Rombach et al. 2022, "High-Resolution
Image Synthesis with Latent Diffusion Models", §4.3.2: unit-variance latents suit the diffusion noise
schedule); ``decode(z)`` inverts both. A ``diffusion`` or ``flow`` config with ``latent: {pretrained: <vae
export>}`` trains and samples in this space (see :mod:`synth.generative.base`).

(b) Conditional VAE (Sohn et al. 2015, "Learning Structured Output Representation using Deep Conditional
Generative Models", §3): with conditioning adapters, the posterior is q(z | x, c) (condition channels enter the
encoder) and the decoder is p(x | z, c) (tokens as FiLM, channels summarised at the latent rate and again at
full rate, see :mod:`synth.generative.networks.conv1d_autoencoder`). The prior is ``standard``, N(0, I), as
Sohn et al. allow ("the prior can be relaxed to be independent of the input", §3), or ``learned``, p(z | c) =
N(μ_c, σ_c²) from the condition channels (their prior network), which needs an adapter with channels, e.g.
``leads`` with ``as_channels: true`` for 3 → 12-lead reconstruction as in WearECG. ``sample`` draws z from
the prior of the condition and decodes; ``guidance_scale`` w mixes the decoder means of the same z under the
condition and under the null condition (Ho & Salimans 2022, Eq. 6, through :mod:`synth.generative.guidance`),
which the condition dropout of the stack trains for; w = 1 is the plain conditional decoder.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from synth.conditioning.stack import Conditioning, ConditioningStack
from synth.config import ConfigError, ModelConfig
from synth.generative.base import Cond, GenerativeModel, LossOutput
from synth.generative.guidance import guided
from synth.registry import register


def gaussian_kl(mean: Tensor, logvar: Tensor, prior_mean: Tensor, prior_logvar: Tensor) -> Tensor:
    """KL(N(mean, e^logvar) ‖ N(prior_mean, e^prior_logvar)) per element, any broadcastable shapes, nats."""
    return 0.5 * (
        prior_logvar - logvar + (logvar.exp() + (mean - prior_mean) ** 2) / prior_logvar.exp() - 1.0
    )


def stft_magnitude_loss(x_hat: Tensor, x: Tensor, fft_sizes: Iterable[int]) -> Tensor:
    """Mean over ``fft_sizes`` of the L1 distance of log STFT magnitudes (Yamamoto et al. 2020, Eq. 3-5);
    x_hat, x (B, C, T), each size ≤ T, hop = size / 4, Hann window."""
    a, b = x_hat.flatten(0, 1).float(), x.flatten(0, 1).float()  # (B·C, T)
    losses = []
    for n_fft in fft_sizes:
        window = torch.hann_window(n_fft, device=x.device)
        spec_a = torch.stft(a, n_fft, hop_length=n_fft // 4, window=window, return_complex=True).abs()
        spec_b = torch.stft(b, n_fft, hop_length=n_fft // 4, window=window, return_complex=True).abs()
        losses.append(F.l1_loss(torch.log(spec_a + 1e-5), torch.log(spec_b + 1e-5)))
    return torch.stack(losses).mean()


@register("backbone", "vae")
class VAE(GenerativeModel):
    """Gaussian VAE on signals (B, C, T) in mV with latents (B, c, T / 2^levels); optionally conditional."""

    @dataclass
    class Config:
        #: KL weight after warm-up (KL in nats per signal sample; 1 = ELBO with decoder variance ½).
        beta: float = 1e-3
        #: Training ``loss`` calls over which β ramps linearly from 0 (0: no warm-up).
        kl_warmup_steps: int = 5000
        #: Weight of the multi-resolution log-STFT term (0: off).
        spectral_weight: float = 0.0
        spectral_fft_sizes: list[int] = field(default_factory=lambda: [16, 64, 256])
        #: p(z): ``standard`` N(0, I) or ``learned`` p(z | c) from condition channels.
        prior: Literal["standard", "learned"] = "standard"

        def __post_init__(self) -> None:
            if self.beta < 0 or self.kl_warmup_steps < 0 or self.spectral_weight < 0:
                raise ValueError("beta, kl_warmup_steps and spectral_weight must be >= 0")

    def __init__(self, cfg: ModelConfig, network: nn.Module, conditioning: ConditioningStack):
        super().__init__(cfg, network, conditioning)
        self.process = cfg.process
        c = network.latent_channels
        self.moments = nn.Conv1d(c, 2 * c, 1)  # latent features → (μ, log σ²), LDM's ``quant_conv``
        if self.process.prior == "learned":
            if not conditioning.num_channels:
                raise ConfigError(
                    "process.prior: learned needs a condition with channels",
                    hint="add an adapter with channels (leads with as_channels: true) or use prior: standard",
                )
            self.prior_moments = nn.Conv1d(c, 2 * c, 3, padding=1)  # condition features → (μ_c, log σ_c²)
        self.register_buffer("kl_step", torch.zeros((), dtype=torch.long))  # training loss calls so far
        self.register_buffer("latent_scale", torch.ones(()))  # set by fit_latent_scale
        length = cfg.signal.length
        if network.padding(length):
            warnings.warn(
                f"signal.length {length} is not a multiple of {network.factor}: encode pads it to "
                f"{length + network.padding(length)} samples and decode crops back; latents have "
                f"{network.latent_length(length)} steps",
                stacklevel=2,
            )

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(c, T') of one latent."""
        return self.network.latent_channels, self.network.latent_length(self.cfg.signal.length)

    def kl_weight(self) -> float:
        """β · min(1, (step + 1) / kl_warmup_steps) at the current training step: linear, never 0 (like the
        trainer's LR warm-up), reaching β at step ``kl_warmup_steps`` − 1."""
        if not self.process.kl_warmup_steps:
            return self.process.beta
        return self.process.beta * min(1.0, (int(self.kl_step) + 1) / self.process.kl_warmup_steps)

    def posterior(self, x: Tensor, c: Conditioning) -> tuple[Tensor, Tensor]:
        """x (B, C, T) model units → (μ, log σ²), each (B, c, T'), unscaled."""
        h = self.network.encode(x, c.tokens, c.mask, c.channels)  # (B, c, T')
        mean, logvar = self.moments(h).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def prior(self, c: Conditioning, batch: int) -> tuple[Tensor, Tensor]:
        """(μ_p, log σ_p²) of p(z | c), each (B, c, T') (zeros for the standard prior)."""
        if self.process.prior == "standard":
            zeros = torch.zeros(batch, *self.latent_shape, device=self.device)
            return zeros, zeros
        h = self.network.condition_features(c.tokens, c.mask, c.channels)  # (B, c, T')
        mean, logvar = self.prior_moments(h).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def _decode(self, z: Tensor, t: Tensor, c: Conditioning) -> Tensor:
        """Unscaled z (B, c, T') → (B, C, T) model units; ``t`` is unused (the guidance model_fn signature)."""
        return self.network.decode(z, c.tokens, c.mask, c.channels, length=self.cfg.signal.length)

    def loss(self, x: Tensor, cond: Cond) -> LossOutput:
        """x (B, C, T) float32 mV → reconstruction MSE (model units) [+ spectral] + β_warm-up · KL per sample."""
        x = x.to(self.device) / self.cfg.signal.scale_mv  # (B, C, T) model units
        batch = x.shape[0]
        c = self.encode_condition(cond, batch, train=True)
        mean, logvar = self.posterior(x, c)  # (B, c, T') each
        # Reparametrisation (Kingma & Welling 2014, Eq. 10).
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)  # (B, c, T')
        x_hat = self._decode(z, torch.zeros(batch, device=self.device), c)  # (B, C, T)
        recon = F.mse_loss(x_hat.float(), x)
        prior_mean, prior_logvar = self.prior(c, batch)
        kl = gaussian_kl(mean, logvar, prior_mean, prior_logvar).sum((1, 2)).mean() / x[0].numel()
        beta = self.kl_weight()
        loss = recon + beta * kl
        metrics = {"mse": float(recon.detach()), "kl": float(kl.detach()), "beta": beta}
        if self.process.spectral_weight:
            spectral = stft_magnitude_loss(x_hat, x, self.process.spectral_fft_sizes)
            loss = loss + self.process.spectral_weight * spectral
            metrics["spectral"] = float(spectral.detach())
        if self.training and torch.is_grad_enabled():
            self.kl_step.add_(1)
        return LossOutput(loss=loss, metrics=metrics)

    @torch.no_grad()
    def encode(self, x: Tensor, cond: Cond | None = None) -> Tensor:
        """x (B, C, T) float32 mV → posterior mean × ``latent_scale``, (B, c, T') float32."""
        x = x.to(self.device) / self.cfg.signal.scale_mv
        c = self.encode_condition(cond or {}, x.shape[0], train=False)
        mean, _ = self.posterior(x, c)
        return mean * self.latent_scale

    @torch.no_grad()
    def decode(self, z: Tensor, cond: Cond | None = None) -> Tensor:
        """z (B, c, T') scaled latents (as ``encode`` returns) → decoder mean (B, C, T) float32 mV."""
        z = z.to(self.device) / self.latent_scale
        c = self.encode_condition(cond or {}, z.shape[0], train=False)
        x = self._decode(z, torch.zeros(z.shape[0], device=self.device), c)
        return (x * self.cfg.signal.scale_mv).float()

    @torch.no_grad()
    def fit_latent_scale(self, batches: Iterable[Tensor | tuple[Tensor, Cond]]) -> float:
        """Set ``latent_scale`` = 1 / std of the unscaled posterior means over ``batches`` (x (B, C, T) mV, or
        (x, cond) pairs as a data loader yields them); returns the new scale. Rombach et al. 2022, §4.3.2."""
        was_training = self.training
        self.eval()
        total, total_sq, count = 0.0, 0.0, 0
        try:
            for batch in batches:
                x, cond = batch if isinstance(batch, tuple | list) else (batch, None)
                mean = self.encode(x, cond) / self.latent_scale  # (B, c, T') unscaled
                total += float(mean.double().sum())
                total_sq += float(mean.double().pow(2).sum())
                count += mean.numel()
        finally:
            self.train(was_training)
        if count < 2:
            raise ValueError("fit_latent_scale needs at least one batch with two latent values")
        variance = (total_sq - total**2 / count) / (count - 1)
        self.latent_scale.fill_(1.0 / max(variance, 1e-12) ** 0.5)
        return float(self.latent_scale)

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
        """(num_samples, C, T) float32 mV: z ~ p(z | c), decoded. ``steps`` is ignored (one decoder pass);
        ``guidance_scale`` mixes the decoder means of the same z with and without the condition."""
        with self.eval_mode():
            c = self.encode_condition(cond, num_samples, train=False)
            u, partial = self.guidance_branches(cond, num_samples, guidance_scale, modality_guidance)
            prior_mean, prior_logvar = self.prior(c, num_samples)
            noise = self.initial_noise(num_samples, self.latent_shape, generator)  # (N, c, T')
            z = prior_mean + torch.exp(0.5 * prior_logvar) * noise
            t = torch.zeros(num_samples, device=self.device)
            x = guided(self._decode, z, t, c, u, guidance_scale, partial)  # (N, C, T)
        return (x * self.cfg.signal.scale_mv).float()
