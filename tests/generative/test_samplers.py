"""Sampler correctness on a case with a closed form: 1D Gaussian-mixture data and its exact denoiser /
velocity.

Plugging the Bayes-optimal network into a process must reproduce the data distribution, so the sample moments
measure the sampler (and the ε/v/x0 conversions) alone.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from synth.conditioning import ConditioningStack
from synth.conditioning.stack import Conditioning
from synth.config import Component, ConditioningConfig, ModelConfig, SignalConfig
from synth.generative.diffusion import DiffusionModel, ddim_scheduler, ddpm_scheduler, dpmsolver_scheduler
from synth.generative.flow import FlowModel, euler, heun
from synth.generative.guidance import guided, mix_guidance

WEIGHTS = torch.tensor([0.3, 0.7])
MEANS = torch.tensor([-1.5, 1.0])
STDS = torch.tensor([0.3, 0.5])
TRUE_MEAN = float((WEIGHTS * MEANS).sum())
TRUE_STD = math.sqrt(float((WEIGHTS * (STDS**2 + MEANS**2)).sum()) - TRUE_MEAN**2)
TRUE_LEFT = 0.3  # mass of the left component, essentially all below -0.25


def posterior(x: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """For y = a·x_data + b·n (n ~ N(0, 1)): E[x_data | y] and E[n | y] under the mixture; a, b broadcast to
    y."""
    var = a[..., None] ** 2 * STDS**2 + b[..., None] ** 2  # (..., K)
    resid = x[..., None] - a[..., None] * MEANS  # (..., K)
    logw = torch.log(WEIGHTS) - 0.5 * resid**2 / var - 0.5 * torch.log(var)
    w = torch.softmax(logw, dim=-1)
    data = (w * (MEANS + a[..., None] * STDS**2 / var * resid)).sum(-1)
    noise = (w * (b[..., None] / var * resid)).sum(-1)
    return data, noise


class OptimalDenoiser(nn.Module):
    """The exact ε- or v-prediction of the mixture at t = step / N, as a network."""

    def __init__(self, alphas_cumprod: Tensor, prediction: str):
        super().__init__()
        self.alphas_cumprod, self.prediction = alphas_cumprod.double(), prediction

    def forward(self, x_t, t, tokens, mask, cond_channels=None):
        step = (t * len(self.alphas_cumprod)).round().long()
        ab = self.alphas_cumprod[step][:, None, None].expand_as(x_t).float()
        x0, eps = posterior(x_t, ab.sqrt(), (1 - ab).sqrt())
        return eps if self.prediction == "epsilon" else ab.sqrt() * eps - (1 - ab).sqrt() * x0


class OptimalVelocity(nn.Module):
    """E[x_1 − x_0 | x_t] for x_t = t·x_1 + (1 − t)·x_0, x_1 the mixture, x_0 ~ N(0, 1)."""

    def forward(self, x_t, t, tokens, mask, cond_channels=None):
        tt = t[:, None, None].expand_as(x_t)
        x1, x0 = posterior(x_t, tt, 1 - tt)
        return x1 - x0


def _cfg(backbone: str, process) -> ModelConfig:
    return ModelConfig(
        backbone=backbone,
        signal=SignalConfig(channels=1, length=64),
        process=process,
        network=Component("optimal", None),
        conditioning=ConditioningConfig(dim=4),
    )


def _check(x: Tensor, tol: float) -> None:
    assert x.shape == (256, 1, 64) and torch.isfinite(x).all()
    assert abs(float(x.mean()) - TRUE_MEAN) < tol
    assert abs(float(x.std()) - TRUE_STD) < tol
    assert abs(float((x < -0.25).float().mean()) - TRUE_LEFT) < tol


@pytest.mark.parametrize(
    ("sampler", "prediction", "steps", "tol"),
    [
        ("ddim", "v_prediction", 50, 0.04),
        ("ddim", "epsilon", 50, 0.04),
        ("dpmsolver++", "v_prediction", 20, 0.04),
        ("dpmsolver++", "epsilon", 20, 0.04),
        ("ddpm", "v_prediction", 1000, 0.04),
    ],
)
def test_diffusion_samplers_reproduce_a_gaussian_mixture(sampler, prediction, steps, tol):
    cfg = _cfg("diffusion", DiffusionModel.Config(prediction=prediction, sampler=sampler))
    stack = ConditioningStack({}, dim=4)
    model = DiffusionModel(cfg, nn.Identity(), stack)
    model.network = OptimalDenoiser(model.alphas_cumprod, prediction)
    x = model.sample({}, 256, steps=steps, generator=torch.Generator().manual_seed(0))
    _check(x, tol)


@pytest.mark.parametrize(("sampler", "steps", "tol"), [("euler", 100, 0.04), ("heun", 16, 0.04)])
def test_flow_samplers_reproduce_a_gaussian_mixture(sampler, steps, tol):
    cfg = _cfg("flow", FlowModel.Config(sampler=sampler))
    model = FlowModel(cfg, OptimalVelocity(), ConditioningStack({}, dim=4))
    _check(model.sample({}, 256, steps=steps, generator=torch.Generator().manual_seed(0)), tol)


def test_heun_is_more_accurate_than_euler_at_equal_evaluations():
    x0 = torch.randn(4096, generator=torch.Generator().manual_seed(0))
    velocity = lambda x, t: OptimalVelocity()(x[:, None, None], t, None, None)[:, 0, 0]  # noqa: E731
    exact = euler(velocity, x0.clone(), torch.linspace(0, 1, 2001))
    err_euler = (euler(velocity, x0.clone(), torch.linspace(0, 1, 9)) - exact).abs().mean()
    err_heun = (heun(velocity, x0.clone(), torch.linspace(0, 1, 5)) - exact).abs().mean()
    assert err_heun < err_euler


def test_flow_samplers_are_exact_on_a_constant_velocity():
    x = torch.zeros(3)
    grid = torch.linspace(0, 1, 5)
    assert torch.allclose(euler(lambda x, t: torch.ones_like(x) * 2, x, grid), torch.full((3,), 2.0))
    assert torch.allclose(heun(lambda x, t: t * 2, x, grid), torch.ones(3))  # ∫ 2t dt = 1, trapezoid is exact


@pytest.mark.parametrize("make", [ddpm_scheduler, ddim_scheduler, dpmsolver_scheduler])
def test_schedules_end_at_pure_noise(make):
    process = DiffusionModel.Config()
    scheduler = make(process)
    # DPM-Solver++ keeps ᾱ_T = 2^-24 on purpose so its log-SNR stays finite (diffusers); SNR ≈ 6e-8.
    assert float(scheduler.alphas_cumprod[-1]) < 1e-7
    scheduler.set_timesteps(10)
    assert int(scheduler.timesteps[0]) == process.num_train_timesteps - 1  # sampling starts at t = T
    model = DiffusionModel(_cfg("diffusion", process), nn.Identity(), ConditioningStack({}, dim=4))
    assert float(model.alphas_cumprod[-1]) == 0.0  # training: x_T is exactly noise
    assert torch.all(model.alphas_cumprod[1:] < model.alphas_cumprod[:-1])


def test_a_fresh_scheduler_per_call_makes_repeated_calls_identical():
    cfg = _cfg("diffusion", DiffusionModel.Config(sampler="dpmsolver++"))
    model = DiffusionModel(cfg, nn.Identity(), ConditioningStack({}, dim=4))
    model.network = OptimalDenoiser(model.alphas_cumprod, "v_prediction")
    a = model.sample({}, 4, steps=5, generator=torch.Generator().manual_seed(0))
    model.sample({}, 4, steps=7, generator=torch.Generator().manual_seed(1))
    b = model.sample({}, 4, steps=5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_mix_guidance_is_the_cfg_formula():
    cond, uncond = torch.randn(2, 3), torch.randn(2, 3)
    assert torch.allclose(mix_guidance(cond, uncond, 1.0), cond)
    assert torch.equal(mix_guidance(cond, uncond, 0.0), uncond)
    assert torch.allclose(mix_guidance(cond, uncond, 3.0), uncond + 3 * (cond - uncond))


def test_partial_guidance_is_the_composed_formula():
    """u + w (c − u) + Σ w_m (c − c∖m), every branch in one batched network call."""
    calls = []

    def model_fn(x, t, c):
        calls.append(x.shape[0])
        return x * c.tokens.sum(dim=(1, 2))[:, None, None] + t[:, None, None]

    def conditioning(value):
        return Conditioning(torch.full((2, 3, 4), value), torch.ones(2, 3, dtype=torch.bool), None)

    x, t = torch.randn(2, 1, 5), torch.rand(2)
    c, u, minus_a, minus_b = conditioning(1.0), conditioning(0.0), conditioning(0.5), conditioning(0.25)
    out = guided(model_fn, x, t, c, u, 2.0, [(minus_a, 1.5), (minus_b, -0.5), (minus_b, 0.0)])
    f = {k: x * 12 * v + t[:, None, None] for k, v in (("c", 1.0), ("u", 0.0), ("a", 0.5), ("b", 0.25))}
    expected = f["u"] + 2.0 * (f["c"] - f["u"]) + 1.5 * (f["c"] - f["a"]) - 0.5 * (f["c"] - f["b"])
    assert torch.allclose(out, expected, atol=1e-5)
    assert calls == [8]  # c, u and the two non-zero terms in one call
    calls.clear()
    assert torch.allclose(guided(model_fn, x, t, c, u, 1.0, [(minus_a, 1.0)]),
                          f["c"] + (f["c"] - f["a"]), atol=1e-5)
    assert calls == [4]  # no unconditional branch at scale 1
    calls.clear()
    assert torch.equal(guided(model_fn, x, t, c, u, 1.0), model_fn(x, t, c))
