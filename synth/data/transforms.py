"""Pure signal transforms on ``(C, T)`` arrays or :class:`Record` objects. Nothing here mutates its input."""

from __future__ import annotations

import warnings
from dataclasses import replace
from fractions import Fraction
from typing import Literal

import numpy as np
from scipy import signal as sps

from synth.data.record import Record
from synth.errors import DataError

NanPolicy = Literal["reject", "interpolate"]


def resample(x: np.ndarray, fs_in: float, fs_out: float, *, axis: int = -1) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``) from ``fs_in`` to ``fs_out`` Hz.

    The ratio is approximated by a fraction with denominator <= 1000 (exact for every rate in common use:
    100, 125, 128, 250, 256, 360, 500, 1000 Hz). Output length is ``round(T * fs_out / fs_in)``.
    """
    if fs_in <= 0 or fs_out <= 0:
        raise DataError(f"sampling rates must be positive, got {fs_in} -> {fs_out}")
    if fs_in == fs_out:
        return np.array(x, dtype=np.float32, copy=True)
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    y = sps.resample_poly(np.asarray(x, dtype=np.float64), ratio.numerator, ratio.denominator, axis=axis)
    n_out = int(round(np.asarray(x).shape[axis] * fs_out / fs_in))
    y = np.take(y, np.arange(min(n_out, y.shape[axis])), axis=axis)
    return y.astype(np.float32)


def resample_record(record: Record, fs_out: float) -> Record:
    return replace(record, signal=resample(record.signal, record.fs_hz, fs_out), fs_hz=float(fs_out))


def _sos(kind: str, cutoff: float | tuple[float, float], fs_hz: float, order: int) -> np.ndarray:
    return sps.butter(order, cutoff, btype=kind, fs=fs_hz, output="sos")


def _padlen(x: np.ndarray, fs_hz: float, low_hz: float) -> int:
    """Odd-extension length of two periods of the lowest cutoff: scipy's default (a few samples) lets a 0.5 Hz
    high-pass ring for over a second at each end of a 10 s record."""
    return int(min(x.shape[-1] - 1, round(2 * fs_hz / low_hz)))


def remove_baseline(x: np.ndarray, fs_hz: float, *, cutoff_hz: float = 0.5, order: int = 2) -> np.ndarray:
    """Remove baseline wander with a zero-phase Butterworth high-pass at ``cutoff_hz``."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] <= 3 * (2 * order + 1):
        raise DataError(f"signal of {x.shape[-1]} samples is too short to filter")
    return sps.sosfiltfilt(_sos("highpass", cutoff_hz, fs_hz, order), x, axis=-1,
                           padlen=_padlen(x, fs_hz, cutoff_hz)).astype(np.float32)


def bandpass(x: np.ndarray, fs_hz: float, *, low_hz: float = 0.5, high_hz: float = 40.0, order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth band-pass; ``high_hz`` is clipped below Nyquist (45 Hz at 100 Hz sampling)."""
    x = np.asarray(x, dtype=np.float64)
    high = min(high_hz, 0.45 * fs_hz)
    if not 0 < low_hz < high:
        raise DataError(f"band {low_hz}-{high_hz} Hz is empty at fs={fs_hz} Hz")
    if x.shape[-1] <= 3 * (4 * order + 1):
        raise DataError(f"signal of {x.shape[-1]} samples is too short to filter")
    return sps.sosfiltfilt(_sos("bandpass", (low_hz, high), fs_hz, order), x, axis=-1,
                           padlen=_padlen(x, fs_hz, low_hz)).astype(np.float32)


def windows(
    x: np.ndarray, fs_hz: float, *, window_s: float, stride_s: float | None = None, pad: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``(C, T)`` into windows ``(N, C, W)``; returns them and their start samples ``(N,)``.

    ``stride_s`` defaults to ``window_s`` (no overlap). With ``pad=True`` the tail is zero-padded into a last window
    so that every sample is covered; otherwise a short tail is dropped.
    """
    x = np.asarray(x)
    width = int(round(window_s * fs_hz))
    stride = width if stride_s is None else int(round(stride_s * fs_hz))
    if width <= 0 or stride <= 0:
        raise DataError(f"window {window_s} s and stride {stride_s} s must be positive at {fs_hz} Hz")
    total = x.shape[-1]
    if total < width and not pad:
        raise DataError(f"signal of {total / fs_hz:.2f} s is shorter than one {window_s} s window")
    starts = list(range(0, max(total - width, 0) + 1, stride))
    # A stride longer than the window skips samples anyway; never add a window past the end (all zeros).
    if pad and starts[-1] + width < total and starts[-1] + stride < total:
        starts.append(starts[-1] + stride)
    out = np.zeros((len(starts), x.shape[0], width), dtype=x.dtype)
    for i, s in enumerate(starts):
        seg = x[:, s : s + width]
        out[i, :, : seg.shape[-1]] = seg
    return out, np.asarray(starts, dtype=np.int64)


def standardise(x: np.ndarray, *, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-lead zero mean, unit variance. Returns ``(x_std, mean (C, 1), std (C, 1))`` so it can be undone."""
    x = np.asarray(x, dtype=np.float32)
    mean = x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    return ((x - mean) / np.maximum(std, eps)).astype(np.float32), mean, std


def handle_nan(
    x: np.ndarray,
    fs_hz: float,
    *,
    policy: NanPolicy = "reject",
    max_gap_s: float = 0.1,
    leads: tuple[str, ...] | None = None,
    source: str | None = None,
) -> np.ndarray:
    """Apply the NaN policy to ``(C, T)``; ``inf`` counts as missing too.

    - ``reject``: any missing sample raises :class:`DataError` naming the file, lead and count.
    - ``interpolate``: gaps up to ``max_gap_s`` are filled linearly (a warning says how many samples); a longer
      gap, or a lead with no finite sample, still raises.
    """
    x = np.asarray(x, dtype=np.float32)
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    names = leads or tuple(str(i) for i in range(x.shape[0]))
    per_lead = {names[i]: int(n) for i, n in enumerate(bad.sum(axis=-1)) if n}
    if policy == "reject":
        raise DataError(
            f"{int(bad.sum())} missing (NaN/inf) samples in leads {per_lead}",
            path=source,
            hint="clean the file, or read it with nan_policy='interpolate' (CLI: --nan interpolate) to fill short gaps",
        )
    if policy != "interpolate":
        raise DataError(f"unknown NaN policy {policy!r}; use 'reject' or 'interpolate'")
    max_gap = max(1, int(round(max_gap_s * fs_hz)))
    out = x.copy()
    t = np.arange(x.shape[-1])
    for c in range(x.shape[0]):
        if not bad[c].any():
            continue
        if bad[c].all():
            raise DataError(f"lead {names[c]} has no finite sample", path=source)
        edges = np.diff(np.concatenate([[0], bad[c].astype(np.int8), [0]]))
        gap_lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        if gap_lengths.max() > max_gap:
            raise DataError(
                f"lead {names[c]} has a gap of {gap_lengths.max()} missing samples (> {max_gap_s} s)",
                path=source,
                hint="gaps this long cannot be interpolated honestly; crop the record or raise max_gap_s",
            )
        out[c, bad[c]] = np.interp(t[bad[c]], t[~bad[c]], x[c, ~bad[c]])
    where = f"{source}: " if source else ""
    warnings.warn(f"{where}interpolated {int(bad.sum())} missing samples in leads {per_lead}", stacklevel=2)
    return out
