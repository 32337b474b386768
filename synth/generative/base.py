"""What every backbone shares: construction from a config, the conditioning call, and the protocol."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from synth import registry
from synth.conditioning.stack import Conditioning, ConditioningStack
from synth.config import ModelConfig, model_config_to_dict
from synth.generative.guidance import guided

Cond = Mapping[str, Any]


@dataclass
class LossOutput:
    """``loss``: scalar tensor to back-propagate; ``metrics``: detached floats for logging."""

    loss: Tensor
    metrics: dict[str, float] = field(default_factory=dict)


class GenerativeModel(nn.Module, abc.ABC):
    """A process around a network and a conditioning stack.

    Subclasses define a nested ``Config`` dataclass (the ``process:`` section of the YAML), ``loss`` and
    ``sample``. ``from_config`` builds the network and the stack from the registry; the constructor takes them
    as objects, so tests can plug in any ``f(x_t, t, tokens, mask, cond_channels)``.
    """

    Config: type

    def __init__(self, cfg: ModelConfig, network: nn.Module, conditioning: ConditioningStack):
        super().__init__()
        self.cfg = cfg
        self.network = network
        self.conditioning = conditioning

    @classmethod
    def network_channels(cls, cfg: ModelConfig) -> tuple[int, int]:
        """(in_channels, out_channels) of the network, before concatenated condition channels."""
        return cfg.signal.channels, cfg.signal.channels

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> GenerativeModel:
        conditioning = ConditioningStack.from_config(cfg.conditioning, cfg.signal)
        in_channels, out_channels = cls.network_channels(cfg)
        network = registry.build(
            "network",
            cfg.network,
            in_channels=in_channels,
            out_channels=out_channels,
            cond_dim=cfg.conditioning.dim,
            cond_channels=conditioning.num_channels,
        )
        return cls(cfg, network, conditioning)

    def config_dict(self) -> dict[str, Any]:
        """The JSON-able config written to ``config.json``."""
        return model_config_to_dict(self.cfg)

    def frozen_submodels(self) -> dict[str, GenerativeModel]:
        """Separately trained parts saved as sub-folders and loaded frozen (e.g. the VAE under a latent
        model)."""
        return {}

    @property
    def sample_shape(self) -> tuple[int, int]:
        return self.cfg.signal.channels, self.cfg.signal.length

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode_condition(self, cond: Cond, batch_size: int, *, train: bool) -> Conditioning:
        """Training: per-modality dropout as configured; sampling: nothing dropped except absent
        modalities."""
        drop = (
            None
            if train
            else torch.zeros(
                batch_size, self.conditioning.num_modalities, dtype=torch.bool, device=self.device
            )
        )
        return self.conditioning(cond, batch_size, drop=drop)

    def call_network(self, x_t: Tensor, t: Tensor, c: Conditioning) -> Tensor:
        return self.network(x_t, t, c.tokens, c.mask, c.channels)

    def guided_network(
        self, x_t: Tensor, t: Tensor, c: Conditioning, u: Conditioning | None, guidance_scale: float
    ) -> Tensor:
        return guided(self.call_network, x_t, t, c, u, guidance_scale)

    @contextlib.contextmanager
    def eval_mode(self) -> Iterator[None]:
        """Eval mode and no autograd for the duration of a ``sample`` call; the previous mode is restored."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.train(was_training)

    def initial_noise(
        self, num_samples: int, shape: tuple[int, ...], generator: torch.Generator | None
    ) -> Tensor:
        """N(0, I) of (num_samples, *shape), drawn on the generator's device so a seed gives the same
        noise."""
        device = generator.device if generator is not None else self.device
        return torch.randn((num_samples, *shape), generator=generator, device=device).to(self.device)

    @abc.abstractmethod
    def loss(self, x: Tensor, cond: Cond) -> LossOutput:
        """x (B, C, T) float32 in mV; cond: raw conditioning inputs for the same B samples."""

    @abc.abstractmethod
    def sample(
        self,
        cond: Cond,
        num_samples: int,
        *,
        steps: int | None = None,
        guidance_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """(num_samples, C, T) float32 in mV; cond entries have batch size 1 or ``num_samples``."""


def resolve_sampler(name: str, process: str) -> Callable:
    """The registered sampler ``name``, checked to belong to ``process`` (``diffusion``, ``flow``, ...)."""
    fn = registry.get("sampler", name)
    if getattr(fn, "process", None) != process:
        samplers = [
            n
            for n in registry.list_registered()["sampler"]
            if getattr(registry.get("sampler", n), "process", None) == process
        ]
        raise registry.RegistryError(
            f"sampler {name!r} is not a {process} sampler", hint=f"use one of {samplers}"
        )
    return fn


def build_model(cfg: ModelConfig) -> GenerativeModel:
    """The backbone named by ``cfg.backbone``, with its network and conditioning stack, freshly
    initialised."""
    return registry.build("backbone", cfg)
