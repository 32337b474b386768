"""What the three tasks share: where the shipped checkpoints live, overlapping windows stitched with a crossfade,
and small output helpers (CSV tables, record suffixes).

Stitching: a signal longer than the model's window is cut into evenly spaced windows that overlap by at least half
(the first starts at the signal's start, the last ends at its end, so no window runs past it), each window goes
through the model, and neighbouring outputs are blended with complementary raised-cosine ramps over their overlap
(``sin^2`` rising, ``cos^2`` falling). The weights are normalised by their sum, so a model that returns its input returns the signal exactly and a model that
returns a different constant per window gives a smooth transition instead of a step. A signal shorter than one
window is edge-padded into one window and cropped back.
"""

from __future__ import annotations

import csv
import numbers
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from synth.errors import DataError, MissingFileError, SynthError
from synth.io_utils import atomic_path

#: Checkpoints the tasks use, by name (folders under ``checkpoints/``).
TASK_CHECKPOINTS: tuple[str, ...] = ("report2ecg", "reconstruct", "ppg2ecg", "upsample500")
#: Environment variable naming a folder that holds the task checkpoints (instead of ``<repo>/checkpoints``).
CHECKPOINTS_ENV = "SYNTH_CHECKPOINTS"


def checkpoints_root() -> Path:
    """``$SYNTH_CHECKPOINTS`` if set, else ``checkpoints/`` in the repository root (beside the ``synth`` package)."""
    env = os.environ.get(CHECKPOINTS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "checkpoints"


def checkpoint_path(name: str) -> Path:
    """The folder of the shipped checkpoint ``name`` (``report2ecg``, ``reconstruct``, ``ppg2ecg``).

    Raises :class:`MissingFileError` naming the folder when it holds no ``config.json``.
    """
    folder = checkpoints_root() / name
    if not (folder / "config.json").is_file():
        raise MissingFileError(
            f"shipped checkpoint {name!r} not found (no config.json)",
            path=folder,
            hint=f"put the {name} export there, set {CHECKPOINTS_ENV} to the folder holding it, or pass --checkpoint",
        )
    return folder


def checkpoint_signal(folder: str | os.PathLike) -> tuple[float, int]:
    """``(fs_hz, length)`` of the signals a checkpoint folder's model draws, read from its ``config.json`` without
    loading the weights. A rate no synth reader or writer takes, or a length below one sample, is refused with a
    :class:`DataError` naming that config.json, so a damaged export fails before any output is claimed."""
    from synth import limits
    from synth.checkpoint import read_config

    path = str(Path(folder) / "config.json")
    signal = read_config(folder)["model"].get("signal", {})
    hint = "this export's config is damaged: use the checkpoint as it was saved"
    fs_hz = limits.check_rate(signal.get("fs_hz", 100.0), path=path,
                              what="the model's sampling rate (model.signal.fs_hz)", hint=hint)
    length = signal.get("length", 1000)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise DataError(f"the model's window (model.signal.length) is {length!r}, not a whole number of samples >= 1",
                        path=path, hint=hint)
    return fs_hz, length


def load_task_model(checkpoint: str | os.PathLike | None, name: str, *, required_keys: Sequence[str] = ()):
    """Load ``checkpoint`` (default: the shipped ``name``) and check it reads ``required_keys``.

    Returns ``(model, folder)``.
    """
    from synth.checkpoint import load_pretrained

    folder = Path(checkpoint) if checkpoint is not None else checkpoint_path(name)
    model = load_pretrained(folder)
    missing = [k for k in required_keys if k not in model.conditioning.keys]
    if missing:
        raise DataError(
            f"this checkpoint is not a {name} model: it reads no {', '.join(missing)}",
            path=folder,
            hint=f"it is conditioned on {', '.join(sorted(model.conditioning.keys)) or 'nothing'}",
        )
    return model, folder


# -- windows and stitching ------------------------------------------------------------------------------------
def window_starts(total: int, width: int, hop: int) -> list[int]:
    """Start samples of the fewest windows of ``width``, at most ``hop`` apart, that cover ``total`` samples: the
    first starts at 0, the last ends exactly at ``total``, and the spacing is even (so no overlap is a sliver)."""
    if total <= width:
        return [0]
    n = -(-(total - width) // hop) + 1  # ceil division
    return [int(s) for s in np.round(np.linspace(0, total - width, n))]


def crossfade_weights(starts: Sequence[int], width: int) -> np.ndarray:
    """``(N, width)`` blending weights: 1 inside each window, raised-cosine ramps where it overlaps a neighbour.

    Window ``i``'s left ramp rises as ``sin^2`` over its overlap with window ``i - 1``, whose right ramp falls as
    ``cos^2`` over the same samples, so the two sum to one there. Ramps sample half-way between grid points, so every
    weight is positive and the normalising sum never vanishes.
    """
    n = len(starts)
    w = np.ones((n, width), dtype=np.float64)
    for i in range(1, n):
        overlap = starts[i - 1] + width - starts[i]
        if overlap <= 0:
            continue
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2  # (overlap,) rising 0 -> 1
        w[i, :overlap] *= ramp
        w[i - 1, width - overlap :] *= 1.0 - ramp
    return w


def stitch(pieces: np.ndarray, starts: Sequence[int], total: int) -> np.ndarray:
    """Blend window outputs ``(N, C, W)`` starting at ``starts`` into one ``(C, total)`` signal."""
    n, c, width = pieces.shape
    w = crossfade_weights(starts, width)  # (N, W)
    out = np.zeros((c, max(total, width)), dtype=np.float64)
    norm = np.zeros(max(total, width), dtype=np.float64)
    for i, s in enumerate(starts):
        out[:, s : s + width] += pieces[i] * w[i]
        norm[s : s + width] += w[i]
    return (out / norm)[:, :total].astype(np.float32)


def run_windowed(
    x: np.ndarray,
    width: int,
    fn: Callable[[np.ndarray], np.ndarray],
    *,
    num_samples: int = 1,
    batch_size: int = 16,
    progress: str | None = None,
) -> np.ndarray:
    """Apply a window model to a long signal and stitch the results.

    Args:
        x: ``(C_in, T)`` input at the model's rate.
        width: the model's window length in samples; windows overlap by at least half.
        fn: ``(B, C_in, W) -> (B * num_samples, C_out, W)``: each window's ``num_samples`` outputs, consecutive.
        num_samples: outputs per window (independent draws).
        batch_size: windows per call of ``fn``.
        progress: label of a tqdm bar over windows (None: no bar).

    Returns ``(num_samples, C_out, T)``. A signal shorter than one window is edge-padded and cropped back.
    """
    from tqdm.auto import tqdm

    total = x.shape[-1]
    padded = np.pad(x, ((0, 0), (0, width - total)), mode="edge") if total < width else x
    starts = window_starts(padded.shape[-1], width, max(1, width // 2))
    windows = np.stack([padded[:, s : s + width] for s in starts])  # (N, C_in, W)
    outs = []
    with tqdm(total=len(starts), desc=progress, unit="window", disable=progress is None or len(starts) < 2) as bar:
        for b in range(0, len(starts), batch_size):
            chunk = windows[b : b + batch_size]
            y = np.asarray(fn(chunk), dtype=np.float32)  # (B * K, C_out, W)
            outs.append(y.reshape(len(chunk), num_samples, *y.shape[1:]))
            bar.update(len(chunk))
    pieces = np.concatenate(outs)  # (N, K, C_out, W)
    return np.stack([stitch(pieces[:, k], starts, padded.shape[-1])[:, :total] for k in range(num_samples)])


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """Crop or edge-pad the last axis to ``length`` (resampling can be one sample off)."""
    if x.shape[-1] >= length:
        return x[..., :length]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])]
    return np.pad(x, pad, mode="edge")


def sample_fn(model, cond_of: Callable[[torch.Tensor], dict], num_samples: int, *, steps: int | None,
              generator: torch.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """A window function for :func:`run_windowed`: each window's ``cond`` repeated ``num_samples`` times."""

    def fn(windows: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(windows)).float()  # (B, C_in, W)
        x = x.repeat_interleave(num_samples, dim=0)  # (B * K, C_in, W): window-major, K draws each
        with torch.no_grad():
            y = model.sample(cond_of(x), x.shape[0], steps=steps, generator=generator)
        return check_finite_output(y.cpu().numpy())

    return fn


class NonFiniteOutputError(SynthError, RuntimeError):
    """A model produced NaN or inf: nothing of it is written."""


def model_leads(model) -> tuple[str, ...]:
    """The leads a model's records have once written: 12 in canonical order (an 8-lead model's four dependent
    limb leads are derived, :func:`synth.data.leads.twelve_from_eight`), or what its channels name."""
    from synth.data.leads import LEADS_12, leads_for_channels

    channels = model.cfg.signal.channels
    return LEADS_12 if channels == 8 else leads_for_channels(channels)


def check_finite_output(x: np.ndarray, *, checkpoint: str | None = None) -> np.ndarray:
    """``x`` unchanged if every sample is finite, else :class:`NonFiniteOutputError` (before anything is written)."""
    bad = ~np.isfinite(x)
    if bad.any():
        raise NonFiniteOutputError(f"the model produced {int(bad.sum())} NaN/inf samples; none of them was written",
                                   path=checkpoint, hint="the checkpoint may be damaged, or --steps/--guidance-scale "
                                                         "push it outside what it was trained for")
    return x


def check_finite(x: np.ndarray, what: str, *, path: str | None = None) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        raise DataError(f"{int(bad.sum())} missing (NaN/inf) samples in {what}", path=path,
                        hint="clean the input, or read it with --nan interpolate to fill short gaps")


#: First characters that make a spreadsheet read a text cell as a formula (OWASP, "CSV injection"), and the
#: apostrophe that :func:`write_table` puts before them (so it also escapes a text that starts with one).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
#: A number written as text ("-1.5", "+3", "2e-05"): a spreadsheet reads it as a number, never as a formula.
_NUMERAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _table_cell(value):
    """``value`` as :func:`write_table` writes it: numbers as they are; a text that a spreadsheet would run as a
    formula behind a leading apostrophe."""
    if value is None or isinstance(value, numbers.Number):
        return value
    text = str(value)
    if text.startswith(_FORMULA_START) and not _NUMERAL.fullmatch(text):
        return "'" + text
    return value


def table_text(cell: str) -> str:
    """The text of a cell of a table :func:`write_table` wrote, as it was given (its escape apostrophe removed)."""
    return cell[1:] if cell.startswith("'") else cell


def read_table(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a table :func:`write_table` wrote (every cell a string, as given: see :func:`table_text`)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: table_text(v) if isinstance(v, str) else v for k, v in row.items()} for row in csv.DictReader(fh)]


def write_table(rows: list[dict], path: Path) -> Path:
    """A CSV of ``rows`` (columns: the union of keys, in first-seen order), written atomically.

    Text cells are written so that a spreadsheet never runs them (OWASP's guidance against CSV injection): a text
    that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, as a prompt's report may, gets a leading
    apostrophe (``'=HYPERLINK(...)``), and so does one that starts with an apostrophe, so that the escape can be
    undone exactly: :func:`read_table` (or :func:`table_text` on a cell) gives every text back as it was. Numbers
    (Python or NumPy numbers, and texts that are plain decimal numbers such as ``-1.5``) are written as they are.
    """
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: _table_cell(v) for k, v in row.items()} for row in rows)
    return path


def record_suffix(fmt: str) -> str:
    return {"wfdb": "", "npz": ".npz", "csv": ".csv"}[fmt]
