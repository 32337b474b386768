"""Rectified flow: straight paths from N(0, I) to data, a velocity target, Euler and Heun on explicit grids.

Liu et al. 2023, "Flow Straight and Fast", Eq. 1: x_t = t · x_1 + (1 − t) · x_0 with x_0 ~ N(0, I) (t = 0) and
x_1 the data (t = 1); the network v(x_t, t) regresses the velocity x_1 − x_0. Training times are uniform or
logit-normal, t = sigmoid(m + s · n), n ~ N(0, 1) (Esser et al. 2024, "Scaling Rectified Flow Transformers",
§3.1), which spends more updates on the middle of the path. Sampling integrates dx/dt = v(x, t) from t = 0 to
1 with a pure function over an explicit grid (k-diffusion style): nothing is kept between calls.

Reflow (Liu et al. 2023, §2.2, "k-rectified flow"): trained on pairs (x_0, x_1) that a flow already couples, the
noise each sample was drawn from and the sample itself, the new flow's paths are straighter, so a few Euler steps
follow them. A teacher sampled with classifier-free guidance gives a student that draws guided samples in one
network call per step (guidance distilled, as in InstaFlow, Liu et al. 2024); such a student declares the scale
it was distilled at (``distilled_guidance``) and samples at guidance 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from synth.conditioning.stack import ConditioningStack
from synth.config import ModelConfig
from synth.generative.base import Cond, GenerativeModel, LossOutput, resolve_sampler
from synth.generative.guidance import GuidanceError
from synth.registry import register

#: ``v(x_t, t) -> velocity``, x_t (B, ...) and t (B,) in [0, 1].
VelocityFn = Callable[[Tensor, Tensor], Tensor]


def flow_sampler(name: str, nfe_per_step: int) -> Callable:
    def deco(fn: Callable) -> Callable:
        fn.process = "flow"
        fn.nfe_per_step = nfe_per_step
        return register("sampler", name)(fn)

    return deco


@flow_sampler("euler", nfe_per_step=1)
def euler(velocity: VelocityFn, x: Tensor, grid: Tensor) -> Tensor:
    """Explicit Euler: x ← x + (t_{i+1} − t_i) · v(x, t_i). grid (K+1,) increasing; K evaluations."""
    for t, t_next in zip(grid[:-1], grid[1:]):
        x = x + (t_next - t) * velocity(x, t.expand(x.shape[0]))
    return x


@flow_sampler("heun", nfe_per_step=2)
def heun(velocity: VelocityFn, x: Tensor, grid: Tensor) -> Tensor:
    """Heun's method (explicit trapezoid, Karras et al. 2022, Alg. 1 without churn): 2K evaluations."""
    for t, t_next in zip(grid[:-1], grid[1:]):
        dt = t_next - t
        v = velocity(x, t.expand(x.shape[0]))
        x_euler = x + dt * v
        v_next = velocity(x_euler, t_next.expand(x.shape[0]))
        x = x + dt * 0.5 * (v + v_next)
    return x


@register("backbone", "flow")
class FlowModel(GenerativeModel):
    """Rectified flow on signals (B, C, T) in mV; the network predicts the velocity at t ∈ [0, 1] (1 =
    data)."""

    @dataclass
    class Config:
        time_sampling: Literal["uniform", "logit_normal"] = "logit_normal"
        logit_mean: float = 0.0
        logit_std: float = 1.0
        #: A registered flow sampler: euler or heun.
        sampler: str = "euler"
        #: Grid intervals when ``sample`` gets no ``steps``; None = 16 evaluations (16 Euler or 8 Heun steps).
        default_steps: int | None = None
        #: The guidance scale of the teacher whose guided samples this model was reflowed on (None: not
        #: distilled). Such a model is guided already: it samples at guidance_scale 1 only.
        distilled_guidance: float | None = None
        #: Guidance in a limited interval (Kynkäänniemi et al. 2024, "Applying Guidance in a Limited Interval
        #: Improves Sample and Distribution Quality in Diffusion Models"): guidance (scale and per-modality
        #: terms) acts only at flow times guidance_from <= t <= guidance_until (0 = noise, 1 = data); elsewhere
        #: the step takes the conditional velocity alone, in one network call. 0 and 1: guidance throughout.
        guidance_from: float = 0.0
        guidance_until: float = 1.0

        def __post_init__(self) -> None:
            if self.default_steps is not None and self.default_steps < 1:
                raise ValueError("default_steps must be >= 1")
            if not 0.0 <= self.guidance_from <= self.guidance_until <= 1.0:
                raise ValueError("guidance_from and guidance_until must satisfy 0 <= guidance_from <= "
                                 f"guidance_until <= 1, got {self.guidance_from:g} and {self.guidance_until:g}")
            if self.distilled_guidance is not None and not 0 <= self.distilled_guidance <= 50:
                raise ValueError("distilled_guidance must be in [0, 50]")

    def __init__(self, cfg: ModelConfig, network: nn.Module, conditioning: ConditioningStack):
        super().__init__(cfg, network, conditioning)
        self.process = cfg.process
        self.sampler = resolve_sampler(self.process.sampler, "flow")

    def sample_time(self, batch: int) -> Tensor:
        """(B,) training times in (0, 1), uniform or logit-normal."""
        if self.process.time_sampling == "uniform":
            return torch.rand(batch, device=self.device)
        normal = torch.randn(batch, device=self.device)
        return torch.sigmoid(self.process.logit_mean + self.process.logit_std * normal)

    def loss(self, x: Tensor, cond: Cond) -> LossOutput:
        """x (B, C, T) float32 mV → mean squared error of the velocity x_1 − x_0 (Liu et al. 2023, Eq. 1).

        ``cond["noise"]`` (B, *process_shape), when given, is the coupled x_0 of each x (reflow: the noise a
        teacher drew x from); otherwise x_0 is drawn independently.
        """
        cond = dict(cond)
        noise = cond.pop("noise", None)
        x1 = self.to_process(x)  # (B, C, T) model units, or (B, c, T') latents
        batch = x1.shape[0]
        if noise is None:
            x0 = torch.randn_like(x1)
        else:
            x0 = torch.as_tensor(noise, dtype=x1.dtype, device=x1.device)
            if x0.shape != x1.shape:
                raise ValueError(f"cond['noise'] has shape {tuple(x0.shape)}, expected {tuple(x1.shape)}")
        t = self.sample_time(batch)  # (B,)
        x_t = t[:, None, None] * x1 + (1 - t[:, None, None]) * x0
        c = self.encode_condition(cond, batch, train=True)
        out = self.call_network(x_t, t, c)  # (B, C, T)
        loss = F.mse_loss(out.float(), x1 - x0)
        return LossOutput(loss=loss, metrics={"mse": float(loss.detach())})

    def time_grid(self, steps: int) -> Tensor:
        """(steps + 1,) uniform grid from 0 (noise) to 1 (data)."""
        return torch.linspace(0.0, 1.0, steps + 1, device=self.device)

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
        """(num_samples, C, T) float32 in mV; ``steps`` grid intervals (default: 16 network evaluations).

        Guidance acts only at the steps whose flow time lies in [guidance_from, guidance_until] of the config."""
        distilled = self.process.distilled_guidance
        if distilled is not None and guidance_scale != 1.0:
            raise GuidanceError(f"this model has guidance {distilled:g} distilled into it; it samples at guidance "
                                f"scale 1 only, got {guidance_scale:g}",
                                hint="leave the guidance scale at 1 (or use the guided teacher model)")
        integrate = self.sampler if sampler is None else resolve_sampler(sampler, "flow")
        steps = steps or self.process.default_steps or max(1, 16 // integrate.nfe_per_step)
        with self.eval_mode():
            c = self.encode_condition(cond, num_samples, train=False)
            u, partial = self.guidance_branches(cond, num_samples, guidance_scale, modality_guidance)
            t_from, t_until = self.process.guidance_from, self.process.guidance_until

            def velocity(x_t: Tensor, t: Tensor) -> Tensor:
                if not t_from <= float(t[0]) <= t_until:
                    return self.call_network(x_t, t, c)  # outside the guidance interval: conditional only
                return self.guided_network(x_t, t, c, u, guidance_scale, partial)  # (N, C, T)

            x = integrate(
                velocity,
                self.initial_noise(num_samples, self.process_shape, generator),
                self.time_grid(steps),
            )
        return self.to_signal(x)
