"""Name → class registry for the pluggable parts: backbones, networks, conditioning adapters and samplers.

A config names a part (``network: {name: unet1d, ...}``); :func:`get` turns the name into the class once, at
build time, and from then on code passes objects and callables, never option strings.

Registration is a decorator in the file that defines the part. :func:`load_all` is the one place that imports
those files: it walks the ``synth.generative`` and ``synth.conditioning`` packages, so a new backbone is one
new file (plus its YAML presets) and nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from synth.errors import SynthError

Kind = Literal["backbone", "network", "adapter", "sampler"]
KINDS: tuple[str, ...] = ("backbone", "network", "adapter", "sampler")
#: Packages whose modules register parts when imported.
PLUGIN_PACKAGES: tuple[str, ...] = ("synth.generative", "synth.conditioning", "synth.echo")

T = TypeVar("T")

_REGISTRY: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_loaded = False


class RegistryError(SynthError, KeyError):
    """A name that is not registered (a typo in a config, or a plugin module that failed to import)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return SynthError.__str__(self)


def _check_kind(kind: str) -> None:
    if kind not in _REGISTRY:
        raise RegistryError(f"unknown registry kind {kind!r}", hint=f"one of {', '.join(KINDS)}")


def register(kind: Kind, name: str) -> Callable[[T], T]:
    """Class (or function) decorator: make ``obj`` buildable as ``name`` of ``kind``; sets
    ``obj.registry_name``."""
    _check_kind(kind)

    def deco(obj: T) -> T:
        existing = _REGISTRY[kind].get(name)
        if existing is not None and existing is not obj:
            raise RegistryError(
                f"{kind} {name!r} is registered twice ({existing!r} and {obj!r})", hint="pick a unique name"
            )
        _REGISTRY[kind][name] = obj
        obj.registry_name = name  # type: ignore[attr-defined]
        return obj

    return deco


def load_all() -> None:
    """Import every module under :data:`PLUGIN_PACKAGES` once, so their ``@register`` decorators run."""
    global _loaded
    if _loaded:
        return
    for package_name in PLUGIN_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            importlib.import_module(info.name)
    _loaded = True


def get(kind: Kind, name: str) -> Any:
    """The class or function registered as ``name``; the error lists the registered names."""
    _check_kind(kind)
    load_all()
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY[kind])) or "none"
        raise RegistryError(f"no {kind} named {name!r}", hint=f"registered {kind}s: {known}") from None


def build(kind: Kind, cfg: Any, **kwargs: Any) -> Any:
    """Build a registered part from a validated config.

    ``cfg`` is either a :class:`synth.config.Component` (``name`` + typed ``params``), handed to the class's
    ``from_config(params, **kwargs)`` (or its constructor), or, for a backbone, a whole
    :class:`synth.config.ModelConfig` handed to ``from_config(cfg)``.
    """
    if kind == "backbone":
        return get(kind, cfg.backbone).from_config(cfg, **kwargs)
    obj = get(kind, cfg.name)
    factory = getattr(obj, "from_config", obj)
    return factory(cfg.params, **kwargs)


def list_registered() -> dict[str, list[str]]:
    """``{kind: sorted names}`` for every kind; what ``synth registry`` prints."""
    load_all()
    return {kind: sorted(entries) for kind, entries in _REGISTRY.items()}
