"""Constructed signals with known answers for the metric tests."""

from __future__ import annotations

import numpy as np


def beat_train(
    fs_hz: float, hr_bpm: float, *, qrs_ms: float = 90.0, duration_s: float = 10.0, gains=(1.0,)
) -> np.ndarray:
    """``(len(gains), T)`` mV: beats at exactly ``hr_bpm`` with a piecewise-linear Q-R-S complex of exactly
    ``qrs_ms`` (onset to offset, flat baseline on both sides), a Gaussian P wave before it and T wave after it.
    Each row is the same train scaled by its gain."""
    t = np.arange(int(round(fs_hz * duration_s))) / fs_hz
    period, width = 60.0 / hr_bpm, qrs_ms / 1000.0
    x = np.zeros_like(t)
    for k in range(int(duration_s / period) + 2):
        onset = 0.15 + k * period
        knots = onset + width * np.array([0.0, 0.15, 0.5, 0.8, 1.0])  # Q, R, S turning points
        inside = (t >= knots[0]) & (t <= knots[-1])
        x[inside] += np.interp(t[inside], knots, [0.0, -0.1, 1.0, -0.25, 0.0])
        x += 0.1 * np.exp(-0.5 * ((t - (onset - 0.12)) / 0.02) ** 2)  # P
        x += 0.25 * np.exp(-0.5 * ((t - (onset + width + 0.12)) / 0.04) ** 2)  # T
    return np.stack([g * x for g in gains]).astype(np.float32)


def smooth_records(n: int, channels: int, length: int, *, seed: int) -> np.ndarray:
    """``(n, channels, length)`` float32 of i.i.d. low-pass Gaussian processes with random per-record amplitude:
    a stand-in for a population of records with no two alike."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((n, channels, length + 8))
    kernel = np.hanning(9) / np.hanning(9).sum()
    smooth = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), -1, white)
    return (smooth * rng.uniform(0.5, 1.5, size=(n, 1, 1))).astype(np.float32)
