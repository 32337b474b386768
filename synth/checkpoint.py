"""The one checkpoint format.

Export (for inference and sharing) = a folder::

    config.json          {"format_version": 1, "synth_version": ..., "model": <model config>, "submodels":
    [...]}
    model.safetensors    the state dict, unwrapped (no ``module.`` / ``_orig_mod.`` prefixes), frozen parts
    excluded
    <name>/              one sub-folder per separately trained frozen part (e.g. ``vae/``), same layout

:func:`load_pretrained` rebuilds the model from ``config.json`` alone and never unpickles anything. Training
state (optimizer, step counters, RNG) is a dict of plain types and tensors saved with ``torch.save`` and read
back with ``torch.load(..., weights_only=True)`` only, so a file carrying a pickled custom object is refused.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from synth import __version__, registry
from synth.config import model_config_from_dict
from synth.errors import MissingFileError, OutputExistsError, SynthError
from synth.io_utils import atomic_path

FORMAT_VERSION = 1
TRAINING_STATE_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_WRAPPER_PREFIXES = ("_orig_mod.", "module.")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class CheckpointError(SynthError, ValueError):
    """A checkpoint that cannot be loaded safely or does not match its config."""


def unwrap(model: nn.Module) -> nn.Module:
    """Strip DDP/Accelerate (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(getattr(model, "module", None), nn.Module) and type(model).__name__ in {
            "DistributedDataParallel",
            "DataParallel",
        }:
            model = model.module
        else:
            return model


def clean_key(key: str) -> str:
    """``module._orig_mod.network.x`` → ``network.x``: wrapper prefixes never reach the file."""
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key.replace("._orig_mod.", ".")


def _state_for_export(model: nn.Module, skip_prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    state = {}
    for key, tensor in model.state_dict().items():
        key = clean_key(key)
        if not key.startswith(skip_prefixes):
            state[key] = (
                tensor.detach().cpu().contiguous().clone()
            )  # clone: safetensors refuses shared storage
    return state


def _write(model: nn.Module, folder: Path) -> None:
    model = unwrap(model)
    subs = model.frozen_submodels()
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "synth_version": __version__,
        "model": model.config_dict(),
        "submodels": sorted(subs),
    }
    (folder / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=False), encoding="utf-8")
    save_file(
        _state_for_export(model, tuple(f"{name}." for name in subs)),
        str(folder / WEIGHTS_NAME),
        metadata={"format": "pt"},
    )
    for name, sub in subs.items():
        _write(sub, folder / name)


def save_pretrained(model: nn.Module, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Export ``model`` (a :class:`~synth.generative.GenerativeModel`, possibly wrapped) to ``folder``.

    Written into a temporary folder beside the target and renamed into place, so an interrupted export never
    leaves a half-written checkpoint.
    """
    final = Path(folder)
    if final.exists() and not overwrite:
        raise OutputExistsError(
            "checkpoint folder already exists", path=final, hint="choose another folder or overwrite"
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    try:
        _write(model, tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of an export folder."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise MissingFileError(
            "not a synth export (no config.json)",
            path=folder,
            hint="export with synth.checkpoint.save_pretrained",
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"config.json is not valid JSON ({err.msg}, line {err.lineno})", path=path
        ) from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"unsupported format_version {meta.get('format_version')!r}",
            path=path,
            hint=f"this synth reads format_version {FORMAT_VERSION}",
        )
    return meta


def load_weights(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of ``model.safetensors``; anything else (pickled ``.bin``/``.pt``) is refused."""
    folder = Path(folder)
    path = folder / WEIGHTS_NAME
    if not path.is_file():
        pickled = [p.name for p in folder.glob("*") if p.suffix in _PICKLE_SUFFIXES]
        hint = (
            f"found {pickled}: pickled weights are never loaded; re-export with save_pretrained"
            if pickled
            else "export with synth.checkpoint.save_pretrained"
        )
        raise MissingFileError(f"no {WEIGHTS_NAME}", path=folder, hint=hint)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"not a valid safetensors file ({err})",
            path=path,
            hint="pickled checkpoints are refused; re-export with save_pretrained",
        ) from None


def load_pretrained(folder: str | os.PathLike, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild an exported model from ``config.json`` + ``model.safetensors`` (+ frozen sub-folders), in eval
    mode."""
    folder = Path(folder)
    meta = read_config(folder)
    cfg = model_config_from_dict(meta["model"], source=str(folder / CONFIG_NAME))
    subs = {name: load_pretrained(folder / name, device=device) for name in meta.get("submodels", [])}
    for sub in subs.values():
        sub.requires_grad_(False)
    backbone = registry.get("backbone", cfg.backbone)
    model = backbone.from_config(cfg, **subs) if subs else backbone.from_config(cfg)
    state = load_weights(folder)
    hint = "the weights come from another model; re-export it with save_pretrained"
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        detail = str(err).strip().splitlines()[1].strip() if "\n" in str(err).strip() else str(err)
        raise CheckpointError(
            f"weights do not match config.json: {detail}", path=folder / WEIGHTS_NAME, hint=hint
        ) from None
    sub_prefixes = tuple(f"{name}." for name in subs)
    missing = [k for k in result.missing_keys if not k.startswith(sub_prefixes)]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"weights do not match config.json: missing {missing[:5]}, unexpected "
            f"{result.unexpected_keys[:5]}",
            path=folder / WEIGHTS_NAME,
            hint=hint,
        )
    return model.to(device).eval()


def save_training_state(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a training-state dict (plain types, tensors, nested dicts/lists only) atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format_version": TRAINING_STATE_VERSION, **state}, tmp)
    return Path(path)


def load_training_state(
    path: str | os.PathLike, *, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a training-state file with ``weights_only=True``: tensors and plain types only, never custom
    classes."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("training state not found", path=path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"refused: the file holds pickled objects that are not plain data ({first})",
            path=path,
            hint="training state must contain only tensors and plain Python types",
        ) from None
    if not isinstance(state, dict) or state.get("format_version") != TRAINING_STATE_VERSION:
        raise CheckpointError(
            "not a synth training-state file (missing or unknown format_version)", path=path
        )
    return state
