"""Model configs: dataclass schemas, loaded from OmegaConf YAML and validated before anything is built.

Configs are data: YAML is parsed, never executed. A model config has five parts, and a sixth for latent models::

    backbone: diffusion            # registry name of the process (synth/generative/*.py)
    signal: {channels: 12, length: 1000, fs_hz: 100.0, scale_mv: 1.0}
    network: {name: unet1d, ...}   # the network's own ``Config`` dataclass checks the rest
    conditioning: {dim: 256, adapters: {report: {name: text, ...}, labels: {name: labels, ...}}}
    process: {...}                 # the backbone's own ``Config`` dataclass
    latent: {pretrained: runs/vae/model}   # optional: work in the space of this frozen autoencoder

Each registered part carries its schema as a nested ``Config`` dataclass, so the schema of a new backbone
lives in its one file. Unknown keys, wrong types and values outside a ``Literal`` raise :class:`ConfigError`
naming the file and the dotted key. :func:`model_config_to_dict` is the inverse used for ``config.json`` in
exports.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from synth import registry
from synth.errors import MissingFileError, SynthError


class ConfigError(SynthError, ValueError):
    """A config that does not match its schema: unknown key, wrong type, value outside its allowed set."""


@dataclass
class SignalConfig:
    """What the model generates: ``channels`` × ``length`` samples at ``fs_hz``; model units are mV /
    ``scale_mv``."""

    channels: int = 12
    length: int = 1000
    fs_hz: float = 100.0
    #: Divide signals in mV by this before the model sees them (ECG std is ~0.2-0.5 mV; diffusion wants ~1).
    scale_mv: float = 1.0

    def __post_init__(self) -> None:
        if self.channels < 1 or self.length < 1 or self.fs_hz <= 0 or self.scale_mv <= 0:
            raise ValueError("channels, length, fs_hz and scale_mv must be positive")


@dataclass
class Component:
    """A validated registered part: its registry ``name`` and its typed ``params`` (the part's ``Config``)."""

    name: str
    params: Any


@dataclass
class ConditioningConfig:
    """``dim``: token width D shared by every adapter; ``adapters``: modality name → adapter component;
    ``guidance``: modality name → the per-modality guidance weight ``sample`` applies by default (those given in
    the condition; see :meth:`synth.generative.base.GenerativeModel.guidance_branches`)."""

    dim: int = 64
    adapters: dict[str, Component] = field(default_factory=dict)
    guidance: dict[str, float] = field(default_factory=dict)


@dataclass
class LatentConfig:
    """The frozen autoencoder (a ``vae`` or a ``vqvae`` tokenizer) whose latent space a model works in.

    Exactly one key: ``pretrained``, the export folder of a trained autoencoder, or ``untrained``, a model YAML
    built with fresh weights (tests and smoke runs only: a latent model over random features learns nothing
    useful). Relative paths are read from the working directory, else beside the YAML that names them. An
    export of the latent model carries the autoencoder as its ``autoencoder/`` sub-folder, which wins over
    both keys when it is loaded.
    """

    pretrained: str | None = None
    untrained: str | None = None

    def __post_init__(self) -> None:
        if (self.pretrained is None) == (self.untrained is None):
            raise ValueError(
                "latent needs exactly one of pretrained (an export folder) or untrained (a model YAML)"
            )


@dataclass
class ModelConfig:
    backbone: str
    signal: SignalConfig
    network: Component
    conditioning: ConditioningConfig
    process: Any
    latent: LatentConfig | None = None


@dataclass
class _TopSchema:
    backbone: str = "???"
    signal: SignalConfig = field(default_factory=SignalConfig)
    network: dict[str, Any] = field(default_factory=dict)
    conditioning: dict[str, Any] = field(default_factory=dict)
    process: dict[str, Any] = field(default_factory=dict)
    latent: LatentConfig | None = None


@dataclass
class _ConditioningSchema:
    dim: int = 64
    adapters: dict[str, Any] = field(default_factory=dict)
    guidance: dict[str, float] = field(default_factory=dict)


def validate(schema: type, node: Any, *, source: str | None, keypath: str = "") -> Any:
    """Merge ``node`` (a mapping) onto the dataclass ``schema`` and return the dataclass instance.

    Raises :class:`ConfigError` naming ``source`` and the dotted key for unknown keys, type errors,
    ``Literal`` violations and ``__post_init__`` range checks.
    """
    prefix = f"{keypath}." if keypath else ""
    if node is None:
        node = {}
    if not isinstance(node, Mapping | DictConfig):
        raise ConfigError(f"{keypath or 'config'} must be a mapping, got {type(node).__name__}", path=source)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        _check_numbers(OmegaConf.to_container(merged, resolve=True), keypath, source)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or getattr(err, "key", None) or "?"
        message = str(err).splitlines()[0]
        known = ", ".join(f.name for f in dataclasses.fields(schema))
        raise ConfigError(
            f"{prefix}{key}: {message}", path=source, hint=f"keys allowed here: {known}"
        ) from None
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{keypath or 'config'}: {err}", path=source) from None


#: Largest magnitude of an integer in a config (sizes, steps, counts): anything above is a typo.
MAX_CONFIG_INT = 10**9


def _check_numbers(node: Any, keypath: str, source: str | None) -> None:
    """Every number in a config is finite and every integer bounded: NaN, inf or 10**20 never reach a model."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            _check_numbers(value, f"{keypath}.{key}" if keypath else str(key), source)
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            _check_numbers(value, f"{keypath}[{i}]", source)
    elif isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{keypath}: {node} is not a finite number", path=source)
    elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > MAX_CONFIG_INT:
        raise ConfigError(f"{keypath}: {node} is out of range (at most {MAX_CONFIG_INT:,} in magnitude)", path=source)


def read_yaml(path: str | os.PathLike) -> DictConfig:
    """A YAML config file as an OmegaConf mapping. YAML is data here: tags that would build Python objects
    (``!!python/object``) are refused, like any parse error, as a :class:`ConfigError` naming the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise MissingFileError("config file not found", path=path, hint="see configs/ for presets")
    try:
        node = OmegaConf.load(path)
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"not a plain YAML mapping ({first})", path=path,
                          hint="configs hold plain values; Python tags are not allowed") from None
    except (OmegaConfBaseException, UnicodeDecodeError, OSError) as err:
        raise ConfigError(str(err).splitlines()[0] if str(err) else type(err).__name__, path=path) from None
    if not isinstance(node, DictConfig):
        raise ConfigError(f"the file holds a {type(node).__name__}, not a mapping of keys", path=path)
    return node


def component_from_dict(kind: registry.Kind, node: Any, *, source: str | None, keypath: str) -> Component:
    """Validate ``{name: ..., **params}`` against the registered part's ``Config``."""
    if not isinstance(node, Mapping | DictConfig) or "name" not in node:
        raise ConfigError(
            f"{keypath} needs a 'name' key",
            path=source,
            hint=f"registered: {', '.join(registry.list_registered()[kind])}",
        )
    params = {k: v for k, v in node.items() if k != "name"}
    try:
        cls = registry.get(kind, str(node["name"]))
    except registry.RegistryError as err:
        raise ConfigError(f"{keypath}.name: {err.problem}", path=source, hint=err.hint) from None
    return Component(
        name=str(node["name"]), params=validate(cls.Config, params, source=source, keypath=keypath)
    )


def model_config_from_dict(data: Any, *, source: str | None = None) -> ModelConfig:
    """Validate a whole model config (a mapping as read from YAML or ``config.json``)."""
    top = validate(_TopSchema, data, source=source)
    if top.backbone == "???":
        raise ConfigError("backbone: missing", path=source, hint="name a registered backbone, e.g. diffusion")
    try:
        backbone_cls = registry.get("backbone", top.backbone)
    except registry.RegistryError as err:
        raise ConfigError(f"backbone: {err.problem}", path=source, hint=err.hint) from None
    cond = validate(_ConditioningSchema, top.conditioning, source=source, keypath="conditioning")
    adapters = {
        modality: component_from_dict(
            "adapter", node, source=source, keypath=f"conditioning.adapters.{modality}"
        )
        for modality, node in cond.adapters.items()
    }
    unknown = sorted(set(cond.guidance) - set(adapters))
    if unknown:
        raise ConfigError(f"conditioning.guidance: no adapter {unknown[0]!r} to guide", path=source,
                          hint=f"name one of {sorted(adapters)}")
    return ModelConfig(
        backbone=top.backbone,
        signal=top.signal,
        network=component_from_dict("network", top.network, source=source, keypath="network"),
        conditioning=ConditioningConfig(dim=cond.dim, adapters=adapters,
                                        guidance={k: float(v) for k, v in cond.guidance.items()}),
        process=validate(backbone_cls.Config, top.process, source=source, keypath="process"),
        latent=top.latent,
    )


def _beside(value: str, config_file: Path) -> str:
    """A relative path in a config: as given if it exists from the working directory, else beside the
    config file."""
    candidate = Path(value).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return str(candidate)
    beside = config_file.parent / candidate
    return str(beside.resolve()) if beside.exists() else value


def load_config(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> ModelConfig:
    """Read a model YAML (optionally with dotted-key ``overrides``) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("config file not found", path=path, hint="see configs/model/ for presets")
    node = read_yaml(path)
    try:
        for key, value in (overrides or {}).items():
            OmegaConf.update(node, key, value, force_add=True)
        data = OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(str(err).splitlines()[0], path=path) from None
    latent = data.get("latent") if isinstance(data, dict) else None
    if isinstance(latent, dict):
        data["latent"] = {k: _beside(v, path) if isinstance(v, str) else v for k, v in latent.items()}
    return model_config_from_dict(data, source=str(path))


def _plain(obj: Any) -> Any:
    if isinstance(obj, Component):
        return {"name": obj.name, **_plain(obj.params)}
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def model_config_to_dict(cfg: ModelConfig) -> dict[str, Any]:
    """Plain JSON-able dict that :func:`model_config_from_dict` turns back into an equal config."""
    return _plain(cfg)
