"""What every backbone shares: construction from a config, the conditioning call, and the protocol.

The protocol is ``loss(x, cond) -> LossOutput`` and ``sample(cond, num_samples, *, steps, guidance_scale,
modality_guidance, generator) -> Tensor``; autoencoders and tokenizers (``vae``, ``vqvae``) add ``encode(x)`` / ``decode(z)`` and
``latent_shape``. A backbone whose ``sample`` cannot make signals on its own (a tokenizer, which needs a prior
over its codes) sets ``generates = False`` and raises :class:`NotAGeneratorError` there.

Latent models: when the config has a ``latent:`` section, :meth:`GenerativeModel.from_config` attaches that
frozen autoencoder and the process runs on ``to_process(x)`` (the autoencoder's scaled latent, or its codes)
instead of ``x / scale_mv``; ``to_signal`` maps samples back to mV. Every backbone gets this for free, as long
as it goes through these two methods and draws its noise in ``process_shape`` (Rombach et al. 2022, "High-
Resolution Image Synthesis with Latent Diffusion Models", §3; DiffuSETS and PPGFlowECG for ECG).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from synth import registry
from synth.conditioning.stack import Conditioning, ConditioningStack
from synth.config import ConfigError, LatentConfig, ModelConfig, load_config, model_config_to_dict
from synth.errors import SynthError
from synth.generative.guidance import GuidanceError, PartialGuidance, guided

Cond = Mapping[str, Any]


@dataclass
class LossOutput:
    """``loss``: scalar tensor to back-propagate; ``metrics``: detached floats for logging."""

    loss: Tensor
    metrics: dict[str, float] = field(default_factory=dict)


class NotAGeneratorError(SynthError, TypeError):
    """``sample`` called on a model that cannot generate on its own (a tokenizer needs a prior over codes)."""


class GenerativeModel(nn.Module, abc.ABC):
    """A process around a network and a conditioning stack.

    Subclasses define a nested ``Config`` dataclass (the ``process:`` section of the YAML), ``loss`` and
    ``sample``. ``from_config`` builds the network and the stack from the registry; the constructor takes them
    as objects, so tests can plug in any ``f(x_t, t, tokens, mask, cond_channels)``.
    """

    Config: type
    #: False for autoencoders/tokenizers whose ``sample`` raises :class:`NotAGeneratorError`.
    generates: ClassVar[bool] = True

    def __init__(self, cfg: ModelConfig, network: nn.Module, conditioning: ConditioningStack):
        super().__init__()
        self.cfg = cfg
        self.network = network
        self.conditioning = conditioning
        #: The frozen autoencoder of a latent model (set by :meth:`attach_autoencoder`), else None.
        self.autoencoder: GenerativeModel | None = None

    @classmethod
    def network_channels(cls, cfg: ModelConfig, autoencoder: GenerativeModel | None) -> tuple[int, int]:
        """(in_channels, out_channels) of the network, before concatenated condition channels: the signal's
        channels, or the latent channels of the autoencoder."""
        channels = cfg.signal.channels if autoencoder is None else autoencoder.latent_shape[0]
        return channels, channels

    @classmethod
    def from_config(cls, cfg: ModelConfig, autoencoder: GenerativeModel | None = None) -> GenerativeModel:
        """Build the model; ``autoencoder`` (a loaded ``autoencoder/`` sub-folder) overrides ``cfg.latent``."""
        if autoencoder is None and cfg.latent is not None:
            autoencoder = load_autoencoder(cfg.latent)
        conditioning = ConditioningStack.from_config(cfg.conditioning, cfg.signal)
        in_channels, out_channels = cls.network_channels(cfg, autoencoder)
        network = registry.build(
            "network",
            cfg.network,
            in_channels=in_channels,
            out_channels=out_channels,
            cond_dim=cfg.conditioning.dim,
            cond_channels=conditioning.num_channels,
        )
        model = cls(cfg, network, conditioning)
        if autoencoder is not None:
            model.attach_autoencoder(autoencoder)
        return model

    def attach_autoencoder(self, autoencoder: GenerativeModel) -> None:
        """Make this a latent model over ``autoencoder``, frozen (no gradients, always in eval mode)."""
        if not hasattr(autoencoder, "encode") or not hasattr(autoencoder, "latent_shape"):
            raise ConfigError(
                f"latent: a {autoencoder.cfg.backbone!r} model has no encode/decode",
                hint="name a trained vae or vqvae export",
            )
        if autoencoder.conditioning.num_modalities:
            raise ConfigError(
                "latent: the autoencoder is conditional; a latent model needs an unconditional one",
                hint="train the vae/vqvae without conditioning.adapters",
            )
        # Channels live at the signal rate; only a network that folds them onto its token grid itself (a
        # token_transformer with time_tokens, adding per-frame channels to a video tokenizer's codes) takes them.
        if self.conditioning.num_channels and getattr(self.network, "frame_channels", None) is None:
            raise ConfigError(
                "a latent model cannot take concatenated condition channels (they live at the signal rate)",
                hint="set as_channels: false; the condition still reaches the network as tokens",
            )
        signal, own = autoencoder.cfg.signal, self.cfg.signal
        if (signal.channels, signal.length, signal.fs_hz) != (own.channels, own.length, own.fs_hz):
            raise ConfigError(
                f"latent: the autoencoder codes {signal.channels}×{signal.length} at {signal.fs_hz} Hz, this model "
                f"generates {own.channels}×{own.length} at {own.fs_hz} Hz",
                hint="make signal: match the autoencoder's",
            )
        self.autoencoder = autoencoder.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> GenerativeModel:
        super().train(mode)
        for sub in self.frozen_submodels().values():
            sub.eval()  # frozen parts keep eval-mode behaviour (dropout off, fixed codebook) while training
        return self

    def config_dict(self) -> dict[str, Any]:
        """The JSON-able config written to ``config.json``."""
        return model_config_to_dict(self.cfg)

    def frozen_submodels(self) -> dict[str, GenerativeModel]:
        """Separately trained parts saved as sub-folders and loaded frozen (e.g. the VAE under a latent
        model)."""
        return {} if self.autoencoder is None else {"autoencoder": self.autoencoder}

    @property
    def sample_shape(self) -> tuple[int, int]:
        """(C, T) of what ``sample`` returns (and ``loss`` takes), in mV."""
        return self.cfg.signal.channels, self.cfg.signal.length

    @property
    def process_shape(self) -> tuple[int, ...]:
        """Per-sample shape the process works in: (C, T), or the autoencoder's ``latent_shape``."""
        return self.sample_shape if self.autoencoder is None else tuple(self.autoencoder.latent_shape)

    def to_process(self, x: Tensor) -> Tensor:
        """x (B, C, T) mV → (B, *process_shape): x / scale_mv, or the frozen autoencoder's encoding."""
        x = x.to(self.device)
        if self.autoencoder is None:
            return x / self.cfg.signal.scale_mv
        with torch.no_grad():
            return self.autoencoder.encode(x)

    def to_signal(self, x: Tensor) -> Tensor:
        """(N, *process_shape) → (N, C, T) float32 mV; the inverse of :meth:`to_process`."""
        if self.autoencoder is None:
            return (x * self.cfg.signal.scale_mv).float()
        with torch.no_grad():
            return self.autoencoder.decode(x).float()

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
        self, x_t: Tensor, t: Tensor, c: Conditioning, u: Conditioning | None, guidance_scale: float,
        partial: PartialGuidance = (),
    ) -> Tensor:
        return guided(self.call_network, x_t, t, c, u, guidance_scale, partial)

    def guidance_branches(
        self, cond: Cond, num_samples: int, guidance_scale: float,
        modality_guidance: Mapping[str, float] | None = None,
    ) -> tuple[Conditioning | None, PartialGuidance]:
        """The unconditional branch (None at ``guidance_scale`` 1) and the per-modality terms of
        :func:`synth.generative.guidance.guided`: for each ``name: w`` of ``modality_guidance`` the condition
        with that modality dropped, weighted ``w``. Raises :class:`GuidanceError` for a modality the model lacks
        or one that ``cond`` does not give (guiding towards an absent condition would guide towards nothing).
        ``modality_guidance`` None takes the model's defaults (``conditioning.guidance`` of its config) for the
        modalities ``cond`` gives; ``{}`` turns them off."""
        u = self.conditioning.unconditional(num_samples) if guidance_scale != 1.0 else None
        partial = []
        names = list(self.conditioning.adapters)
        if modality_guidance is None:
            modality_guidance = {name: w for name, w in self.cfg.conditioning.guidance.items()
                                 if self.conditioning.adapters[name].present(cond)}
        for name, weight in modality_guidance.items():
            if name not in names:
                raise GuidanceError(f"no modality {name!r} to guide", hint=f"this model reads {names}")
            adapter = self.conditioning.adapters[name]
            if not adapter.present(cond):
                raise GuidanceError(f"modality {name!r} is guided but not given",
                                    hint=f"give {list(adapter.keys)} or drop its guidance")
            if float(weight) == 0.0:
                continue
            drop = torch.zeros(num_samples, len(names), dtype=torch.bool, device=self.device)
            drop[:, names.index(name)] = True
            partial.append((self.conditioning(cond, num_samples, drop=drop), float(weight)))
        return u, tuple(partial)

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
        self, num_samples: int, shape: tuple[int, ...], generator: torch.Generator | Sequence[torch.Generator] | None
    ) -> Tensor:
        """N(0, I) of (num_samples, *shape), drawn on the generator's device so a seed gives the same
        noise. A list of ``num_samples`` generators draws each sample from its own (as diffusers does), so a
        sample's noise does not depend on the batch it is drawn in."""
        if isinstance(generator, Sequence):
            if len(generator) != num_samples:
                raise ValueError(f"{len(generator)} generators for {num_samples} samples")
            return torch.stack([torch.randn(shape, generator=g, device=g.device) for g in generator]).to(self.device)
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
        modality_guidance: Mapping[str, float] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """(num_samples, C, T) float32 in mV; cond entries have batch size 1 or ``num_samples``;
        ``modality_guidance`` ``{modality: w}`` adds per-modality guidance terms (:meth:`guidance_branches`)."""


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


def load_autoencoder(latent: LatentConfig) -> GenerativeModel:
    """The frozen autoencoder ``latent`` names: a trained export, or a fresh one built from a model YAML."""
    from synth.checkpoint import load_pretrained  # the checkpoint module builds models: imported at call time

    if latent.pretrained is not None:
        model = load_pretrained(latent.pretrained)
    else:
        model = build_model(load_config(latent.untrained))
    return model.requires_grad_(False).eval()


def build_model(cfg: ModelConfig) -> GenerativeModel:
    """The backbone named by ``cfg.backbone``, with its network and conditioning stack, freshly
    initialised."""
    return registry.build("backbone", cfg)
