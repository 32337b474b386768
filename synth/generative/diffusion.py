"""Denoising diffusion with ε- or v-prediction on a zero-terminal-SNR schedule; samplers from diffusers.

Forward process (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", Eq. 4):
    x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε,   ε ~ N(0, I),   t ∈ {0, …, N−1}.
Training targets: ε (Ho et al. 2020, Eq. 14) or v = √ᾱ_t · ε − √(1 − ᾱ_t) · x_0 (Salimans & Ho 2022,
"Progressive Distillation", §4 / App. D). The betas are rescaled so that ᾱ_{N−1} = 0 exactly (Lin et al. 2024,
"Common Diffusion Noise Schedules and Sample Steps are Flawed", Alg. 1, via diffusers'
``rescale_betas_zero_snr``): the last training step is pure noise, which is what sampling starts from, and the
timesteps are spaced "trailing" so the sampler does start at t = N−1 (§3.3).

Sampling converts the network output to an x_0 estimate and hands it to a diffusers scheduler made fresh
inside each ``sample`` call (``prediction_type="sample"``): DDPM ancestral sampling (Ho et al. 2020, Alg. 2;
1000 steps is the DiffuSETS setting), DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", Eq. 12,
η = 0) and DPM-Solver++(2M) (Lu et al. 2022). At zero SNR an ε-prediction says nothing about x_0 (Lin et al.
2024, §3.2); there x_0 is taken as 0, the mean of zero-mean signals such as ECG; v-prediction, the default,
needs no such rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from torch import Tensor, nn

from synth.conditioning.stack import ConditioningStack
from synth.config import ModelConfig
from synth.generative.base import Cond, GenerativeModel, LossOutput, resolve_sampler
from synth.registry import register


def _schedule_kwargs(cfg: DiffusionModel.Config) -> dict[str, Any]:
    return dict(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
        prediction_type="sample",
    )


def diffusion_sampler(name: str) -> Callable:
    """Register a factory ``cfg -> fresh diffusers scheduler`` as a diffusion sampler."""

    def deco(fn: Callable) -> Callable:
        fn.process = "diffusion"
        return register("sampler", name)(fn)

    return deco


@diffusion_sampler("ddpm")
def ddpm_scheduler(cfg: DiffusionModel.Config) -> DDPMScheduler:
    """Ancestral sampling, Ho et al. 2020, Alg. 2 (σ_t² = β̃_t)."""
    return DDPMScheduler(**_schedule_kwargs(cfg), clip_sample=False, variance_type="fixed_small")


@diffusion_sampler("ddim")
def ddim_scheduler(cfg: DiffusionModel.Config) -> DDIMScheduler:
    """Deterministic DDIM, Song et al. 2021, Eq. 12 with η = 0; the last step lands on ᾱ = 1 (clean data)."""
    return DDIMScheduler(**_schedule_kwargs(cfg), clip_sample=False, set_alpha_to_one=True)


@diffusion_sampler("dpmsolver++")
def dpmsolver_scheduler(cfg: DiffusionModel.Config) -> DPMSolverMultistepScheduler:
    """DPM-Solver++(2M), Lu et al. 2022, Alg. 2: a second-order multistep solver in data prediction."""
    return DPMSolverMultistepScheduler(
        **_schedule_kwargs(cfg),
        algorithm_type="dpmsolver++",
        solver_order=2,
        final_sigmas_type="zero",
        lower_order_final=True,
    )


@register("backbone", "diffusion")
class DiffusionModel(GenerativeModel):
    """Diffusion on signals (B, C, T) in mV; the network predicts ε or v at t = step / N."""

    @dataclass
    class Config:
        prediction: Literal["epsilon", "v_prediction"] = "v_prediction"
        num_train_timesteps: int = 1000
        beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear"
        beta_start: float = 0.0001
        beta_end: float = 0.02
        #: A registered diffusion sampler: ddpm, ddim or dpmsolver++.
        sampler: str = "dpmsolver++"
        default_steps: int = 25

        def __post_init__(self) -> None:
            if self.num_train_timesteps < 2 or self.default_steps < 1:
                raise ValueError("num_train_timesteps must be >= 2 and default_steps >= 1")

    def __init__(self, cfg: ModelConfig, network: nn.Module, conditioning: ConditioningStack):
        super().__init__(cfg, network, conditioning)
        self.process = cfg.process
        self.sampler = resolve_sampler(self.process.sampler, "diffusion")
        alphas_cumprod = DDPMScheduler(**_schedule_kwargs(self.process)).alphas_cumprod.clone()
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)  # (N,), ᾱ_{N-1} = 0

    def _alpha_bar(self, step: Tensor) -> Tensor:
        return self.alphas_cumprod.to(self.device)[step.long()][:, None, None]  # (B, 1, 1)

    def _time(self, step: Tensor) -> Tensor:
        return step.float() / self.process.num_train_timesteps  # (B,) in [0, 1)

    def loss(self, x: Tensor, cond: Cond) -> LossOutput:
        """x (B, C, T) float32 mV → mean squared error of the ε or v prediction (Ho et al. 2020, Eq. 14)."""
        x0 = self.to_process(x)  # (B, C, T) model units, or (B, c, T') latents
        batch = x0.shape[0]
        step = torch.randint(0, self.process.num_train_timesteps, (batch,), device=self.device)  # (B,)
        noise = torch.randn_like(x0)
        alpha_bar = self._alpha_bar(step)  # (B, 1, 1)
        x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
        if self.process.prediction == "epsilon":
            target = noise
        else:
            target = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0
        c = self.encode_condition(cond, batch, train=True)
        out = self.call_network(x_t, self._time(step), c)  # (B, C, T)
        loss = F.mse_loss(out.float(), target)
        return LossOutput(loss=loss, metrics={"mse": float(loss.detach())})

    def predict_x0(self, output: Tensor, x_t: Tensor, step: Tensor) -> Tensor:
        """Network output (ε or v) at integer ``step`` (B,) → x_0 estimate, in model units."""
        alpha_bar = self._alpha_bar(step)  # (B, 1, 1)
        if self.process.prediction == "v_prediction":
            return alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * output
        x0 = (x_t - (1 - alpha_bar).sqrt() * output) / alpha_bar.clamp(min=1e-12).sqrt()
        return torch.where(alpha_bar > 0, x0, torch.zeros_like(x0))

    def sample(
        self,
        cond: Cond,
        num_samples: int,
        *,
        steps: int | None = None,
        guidance_scale: float = 1.0,
        modality_guidance: Mapping[str, float] | None = None,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
    ) -> Tensor:
        """(num_samples, C, T) float32 in mV.

        steps: sampler steps (default ``process.default_steps``; use 1000 with ``sampler="ddpm"`` for the DDPM
        baseline); guidance_scale: classifier-free guidance weight (1 = conditional); sampler: override the
        configured sampler by name.
        """
        make_scheduler = self.sampler if sampler is None else resolve_sampler(sampler, "diffusion")
        scheduler = make_scheduler(self.process)  # fresh: no step state survives between calls
        scheduler.set_timesteps(steps or self.process.default_steps, device=self.device)
        with self.eval_mode():
            c = self.encode_condition(cond, num_samples, train=False)
            u, partial = self.guidance_branches(cond, num_samples, guidance_scale, modality_guidance)
            x = self.initial_noise(num_samples, self.process_shape, generator) * scheduler.init_noise_sigma
            for timestep in scheduler.timesteps:
                step = torch.full((num_samples,), int(timestep), device=self.device)  # (N,)
                out = self.guided_network(
                    scheduler.scale_model_input(x, timestep), self._time(step), c, u, guidance_scale, partial
                )  # (N, C, T)
                x0 = self.predict_x0(out, x, step)
                x = scheduler.step(x0, timestep, x, generator=generator).prev_sample  # (N, C, T)
        return self.to_signal(x)
