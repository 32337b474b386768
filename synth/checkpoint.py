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
import re
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
#: Sub-folder names a config.json may list under ``submodels`` (plain names: no paths, no ``.``/``..``).
_SUBMODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
#: Frozen parts nest at most this deep (a prior over a tokenizer over ... ).
MAX_SUBMODEL_DEPTH = 3
#: Largest weights file read (bytes); shipped models are a few MB.
MAX_WEIGHTS_BYTES = 8 * 1024**3


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
    if final.exists() or final.is_symlink():
        reason = _not_an_export(final)
        if reason:
            from synth.outputs import OutputRefusedError

            raise OutputRefusedError(f"will not replace it with a checkpoint: {reason}", path=final,
                                     hint="export to a new folder")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    try:
        _write(model, tmp)
        _readable(tmp)
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


def _not_an_export(folder: Path) -> str | None:
    """Why ``folder`` is not an export that ``save_pretrained(..., overwrite=True)`` may replace (None when it is:
    ``config.json``, ``model.safetensors`` and sub-model folders of the same kind, nothing else, no links)."""
    if folder.is_symlink() or not folder.is_dir():
        return "it is not a folder"
    if not (folder / CONFIG_NAME).is_file():
        return f"it is not a checkpoint export (no {CONFIG_NAME})"
    for p in folder.iterdir():
        if p.is_symlink():
            return f"it holds a link ({p.name})"
        if p.is_dir():
            reason = _not_an_export(p)
            if reason:
                return f"{p.name}: {reason}"
        elif p.name not in (CONFIG_NAME, WEIGHTS_NAME):
            return f"it holds files an export does not ({p.name})"
    return None


def _readable(folder: Path) -> None:
    """Give an export the usual modes (a temporary folder is made private): everyone may read a checkpoint."""
    from synth.io_utils import current_umask

    mask = current_umask()
    for p in [folder, *folder.rglob("*")]:
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


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
    except (UnicodeDecodeError, OSError) as err:
        raise CheckpointError(f"config.json cannot be read ({err})", path=path) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"config.json must hold a JSON object, not a {type(meta).__name__}", path=path,
                              hint="export with synth.checkpoint.save_pretrained")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"unsupported format_version {meta.get('format_version')!r}",
            path=path,
            hint=f"this synth reads format_version {FORMAT_VERSION}",
        )
    if not isinstance(meta.get("model"), dict):
        raise CheckpointError("config.json has no model object", path=path)
    subs = meta.get("submodels", [])
    if not isinstance(subs, list) or not all(isinstance(s, str) and _SUBMODEL_NAME.fullmatch(s) for s in subs):
        raise CheckpointError(f"submodels must list names of sub-folders of the checkpoint, got {subs!r}"[:300],
                              path=path, hint="plain folder names only: no paths, '.', '..' or separators")
    for name in subs:
        sub = Path(folder) / name
        if sub.is_symlink() or not sub.is_dir():
            raise MissingFileError(f"submodel folder {name!r} listed in config.json is missing", path=folder)
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
    if path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise CheckpointError(f"weights file of {path.stat().st_size / 1024**3:.1f} GB is larger than synth reads",
                              path=path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"not a valid safetensors file ({err})",
            path=path,
            hint="pickled checkpoints are refused; re-export with save_pretrained",
        ) from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{len(bad)} weight tensors hold NaN or inf (e.g. {bad[0]})", path=path,
                              hint="the checkpoint is damaged or its training diverged; use another export")
    return state


def checkpoint_digest(folder: str | os.PathLike) -> str:
    """SHA-256 over an export's ``config.json`` and ``model.safetensors`` (and its sub-folders'): the identity of
    the model that made an output (resuming, manifests)."""
    import hashlib

    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.name in (CONFIG_NAME, WEIGHTS_NAME)):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def weight_shapes(folder: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Names and shapes in ``model.safetensors`` from its header, without reading the tensors."""
    from safetensors import safe_open

    path = Path(folder) / WEIGHTS_NAME
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"not a valid safetensors file ({err})", path=path,
                              hint="pickled checkpoints are refused; re-export with save_pretrained") from None


def _build(backbone, cfg, subs: dict, folder: Path) -> nn.Module:
    """Build the model of ``cfg``, first on the meta device (no memory) and checked against the shapes in the
    weights file, so a config.json with absurd or negative sizes fails before anything is allocated."""
    def make():
        return backbone.from_config(cfg, **subs) if subs else backbone.from_config(cfg)

    where = folder / CONFIG_NAME
    try:
        with torch.device("meta"):
            probe = make()
    except SynthError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure to build comes from the config's values
        raise CheckpointError(f"config.json describes a model that cannot be built ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})"[:300], path=where) from None
    prefixes = tuple(f"{name}." for name in subs)
    own = {k: tuple(v.shape) for k, v in probe.state_dict().items() if not k.startswith(prefixes)}
    stored = weight_shapes(folder)
    wrong = sorted(k for k in own if k in stored and stored[k] != own[k])
    if wrong:
        k = wrong[0]
        raise CheckpointError(f"weights do not match config.json: {k} is {stored[k]} in the file, {own[k]} by the "
                              f"config", path=folder / WEIGHTS_NAME,
                              hint="the weights come from another model; re-export it with save_pretrained")
    del probe
    return make()


def load_pretrained(folder: str | os.PathLike, *, device: str | torch.device = "cpu", _depth: int = 0) -> nn.Module:
    """Rebuild an exported model from ``config.json`` + ``model.safetensors`` (+ frozen sub-folders), in eval
    mode. The config is validated (schema, finite values, sub-folders inside the checkpoint, at most
    :data:`MAX_SUBMODEL_DEPTH` levels, sizes that match the weights file) before anything is allocated, and
    weights holding NaN or inf are refused."""
    folder = Path(folder)
    if _depth > MAX_SUBMODEL_DEPTH:
        raise CheckpointError(f"submodels nest deeper than {MAX_SUBMODEL_DEPTH} levels", path=folder)
    meta = read_config(folder)
    cfg = model_config_from_dict(meta["model"], source=str(folder / CONFIG_NAME))
    if not (folder / WEIGHTS_NAME).is_file():
        load_weights(folder)  # raises the explanatory MissingFileError
    subs = {name: load_pretrained(folder / name, device=device, _depth=_depth + 1)
            for name in meta.get("submodels", [])}
    for sub in subs.values():
        sub.requires_grad_(False)
    backbone = registry.get("backbone", cfg.backbone)
    model = _build(backbone, cfg, subs, folder)
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
    except (EOFError, RuntimeError, OSError) as err:
        text = str(err).lower()
        if isinstance(err, EOFError | OSError) or "zip archive" in text or "central directory" in text or "eof" in text:
            raise CheckpointError("truncated or damaged file (it cannot be read to its end)", path=path,
                                  hint="the run writing it was interrupted; resume from an earlier checkpoint") from None
        raise CheckpointError(f"refused: the file holds pickled objects that are not plain data ({text[:200]})",
                              path=path, hint="training state must contain only tensors and plain Python types"
                              ) from None
    except (pickle.UnpicklingError, AttributeError, TypeError) as err:
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
