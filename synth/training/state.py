"""Training checkpoints on disk: one folder per saved step, written atomically, the newest few kept.

Layout of ``<out_dir>/checkpoints/step-00001000/``::

    model.safetensors     raw weights, unwrapped names (what the optimizer state refers to)
    ema.safetensors       EMA shadow of the trainable weights (what gets exported)
    training_state.pt     optimizer, LR schedule, step / epoch / position, config: plain types and tensors only,
                          written by synth.checkpoint.save_training_state, read back with weights_only=True
    rng-<rank>.pt         python / numpy / torch / CUDA generator states of each process, same format

A checkpoint is assembled in ``.tmp-step-…`` beside its final name and renamed into place only when complete, so
``kill -9`` at any moment leaves either the previous checkpoints alone or the new one complete; leftovers of an
interrupted save are hidden (leading dot) and removed by the next run. Only names ``step-<digits>`` count.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from synth.checkpoint import CheckpointError, load_training_state, save_training_state
from synth.outputs import WRITER, OutputRefusedError, command_line, protected_reason

CHECKPOINTS_DIR = "checkpoints"
#: Written into a run's ``out_dir`` when training starts there: the folder is a synth run, to resume or continue.
RUN_MARKER = ".synth-run.json"
#: What a run writes into its ``out_dir`` (a folder holding only these and a ``train_config.json`` is an older run).
RUN_ENTRIES = frozenset({RUN_MARKER, "train_config.json", "train_log.csv", CHECKPOINTS_DIR, "model", "samples",
                         "tensorboard"})
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "training_state.pt"
_STEP_NAME = re.compile(r"^step-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def run_folder_refusal(out_dir: str | os.PathLike) -> str | None:
    """Why training may not use ``out_dir`` (None when it may: absent, empty, or a synth run). A run deletes and
    replaces what it wrote there (checkpoint folders, ``model/``, ``train_config.json``), so a folder holding
    anything else, or a protected one (``.``, home, a repository root), is refused before any work starts."""
    out = Path(out_dir)
    reason = protected_reason(out)
    if reason:
        return reason
    if not out.exists():
        return None
    if out.is_symlink() or not out.is_dir():
        return "it is not a folder"
    names = {p.name for p in out.iterdir()}
    if not names:
        return None
    links = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_symlink())
    if links:  # the run writes its log, config and checkpoints through these names
        return f"it holds links ({', '.join(links[:3])})"
    if RUN_MARKER not in names:
        other = sorted(names - RUN_ENTRIES)
        if other:
            more = f" and {len(other) - 3} more" if len(other) > 3 else ""
            return f"it holds files a training run did not write ({', '.join(other[:3])}{more})"
        if "train_config.json" not in names:
            return "it is not a training run's folder (no train_config.json)"
    if "model" in names and not list_checkpoints(out / CHECKPOINTS_DIR):
        return ("it holds a finished run's model/ but no checkpoint to resume from (a new run would start at step "
                "0 and replace that model and its log)")
    return None


def check_run_folder(out_dir: str | os.PathLike) -> None:
    """Raise :class:`synth.outputs.OutputRefusedError` when training may not write into ``out_dir``."""
    reason = run_folder_refusal(out_dir)
    if reason:
        raise OutputRefusedError(f"will not train into this folder: {reason}", path=out_dir,
                                 hint="choose a new out_dir, or an existing run's out_dir to resume it")


def mark_run_folder(out_dir: str | os.PathLike) -> None:
    """Create ``out_dir`` (if needed) and its :data:`RUN_MARKER`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / RUN_MARKER
    if not marker.exists():
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(json.dumps({"writer": WRITER, "command": command_line()}), encoding="utf-8")
        tmp.replace(marker)


def remove_partial(root: str | os.PathLike) -> None:
    """Delete folders left by a save that was killed before its rename."""
    root = Path(root)
    if root.is_dir():
        for p in root.glob(".tmp-step-*"):
            shutil.rmtree(p, ignore_errors=True)


def staging_dir(root: str | os.PathLike, step: int) -> Path:
    """Where the checkpoint of ``step`` is assembled; the same path on every process (shared filesystem)."""
    return Path(root) / f".tmp-{checkpoint_name(step)}"


def _fsync_tree(folder: Path) -> None:
    # A rename is atomic, but without fsync a power cut could still publish a folder whose files are empty.
    for path in folder.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(staging: Path, keep_last: int) -> Path:
    """Rename a complete staging folder to its final ``step-…`` name and delete all but the newest ``keep_last``."""
    _fsync_tree(staging)
    final = staging.with_name(staging.name[len(".tmp-"):])
    if final.exists():  # the same step saved again (a resumed run stopping where it started): swap, never merge
        old = final.with_name(f".tmp-old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)
    for stale in list_checkpoints(final.parent)[:-keep_last]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    # Contiguous CPU copies: safetensors refuses views and tensors that share storage (tied weights).
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(path),
              metadata={"format": "pt"})


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"incomplete checkpoint: {path.name} is missing", path=path.parent,
                              hint="delete this checkpoint folder to resume from the one before it")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"not a valid safetensors file ({err})", path=path,
                              hint="checkpoints hold safetensors only; pickled weights are never loaded") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{len(bad)} weight tensors hold NaN or inf (e.g. {bad[0]})", path=path,
                              hint="the checkpoint is damaged: delete its folder to resume from the one before it")
    return state


def capture_rng() -> dict[str, Any]:
    """The generator states of this process as plain types and tensors (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_rng(folder: Path, rank: int) -> None:
    save_training_state({"rng": capture_rng()}, folder / f"rng-{rank}.pt")


def load_rng(folder: Path, rank: int) -> dict[str, Any] | None:
    """This process's saved generator states, or None when the run that saved them had fewer processes."""
    path = folder / f"rng-{rank}.pt"
    return load_training_state(path)["rng"] if path.is_file() else None


def save_state(state: dict[str, Any], folder: Path) -> None:
    save_training_state(state, folder / STATE_FILE)


def load_state(folder: Path) -> dict[str, Any]:
    """``training_state.pt`` of a checkpoint; a file with pickled custom objects raises :class:`CheckpointError`."""
    return load_training_state(folder / STATE_FILE)
