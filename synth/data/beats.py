"""Beats in an ECG: R-peak detection and heart rate, for tasks, training data and evaluation alike.

A Pan-Tompkins detector (Pan & Tompkins 1985, "A real-time QRS detection algorithm", IEEE TBME 32(3):230-236):
5-15 Hz band-pass, derivative, squaring, 150 ms moving-window integration, adaptive signal/noise thresholds with a
200 ms refractory period, search-back for missed beats and T-wave rejection by slope. Filters are zero-phase
(offline), so the integrated energy peaks on the QRS itself. Multi-lead records are combined by averaging the
per-lead energies, each scaled by its own 99th percentile, so one noisy or flat lead cannot dominate. Heart rate =
60 / median RR, with R times refined to a fraction of a sample (parabolic interpolation), which keeps 100 Hz
records accurate at high rates. :func:`rpeak_timing` pairs the beats of two recordings of one heart.

Every function takes one record ``(C, T)`` (or ``(T,)``) or, where it says so, a batch ``(N, C, T)``, in mV at
``fs_hz``.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

from synth.errors import DataError

#: Largest |Δt| at which a generated R-peak counts as the recorded beat's (:func:`rpeak_timing`).
MATCH_S = 0.15


def _as_batch(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(C, T)`` or ``(N, C, T)`` -> ``(N, C, T)`` float64 and whether the input was a single record."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        return x[None], True
    if x.ndim != 3:
        raise DataError(f"signals must be (C, T) or (N, C, T), got shape {x.shape}")
    return x, False


def _qrs_band(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """5-15 Hz zero-phase band-pass of ``(C, T)``: the QRS band of Pan & Tompkins, which suppresses baseline
    wander, P and T waves (below 5 Hz) and muscle noise (above 15 Hz)."""
    high = min(15.0, 0.45 * fs_hz)
    sos = sps.butter(2, (5.0, high), btype="bandpass", fs=fs_hz, output="sos")
    return sps.sosfiltfilt(sos, x, axis=-1)


def _unit_scale(e: np.ndarray) -> np.ndarray:
    """Divide each row of ``(C, T)`` by its 99th percentile; flat rows become 0."""
    scale = np.percentile(e, 99, axis=-1, keepdims=True)
    return np.divide(e, scale, out=np.zeros_like(e), where=scale > 1e-12)


def qrs_energy(x: np.ndarray, fs_hz: float, *, window_s: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Pan-Tompkins detection signals of one record ``(C, T)`` (or ``(T,)``) mV.

    Returns ``(integrated (T,), slope (T,))``: the moving-window integral of the squared derivative of the QRS
    band, and the squared derivative itself, both averaged over leads after scaling each lead to its 99th
    percentile (unitless).
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    band = _qrs_band(x, fs_hz)
    slope = _unit_scale(np.gradient(band, axis=-1) ** 2)  # (C, T)
    width = max(1, int(round(window_s * fs_hz)))
    integrated = sps.fftconvolve(slope, np.ones((1, width)) / width, mode="same", axes=-1)  # centred: no delay
    return _unit_scale(integrated).mean(axis=0), slope.mean(axis=0)


def _refine(y: np.ndarray, i: int) -> float:
    """Sub-sample position of the local maximum of ``y`` at index ``i`` (parabola through 3 points)."""
    if i <= 0 or i >= len(y) - 1:
        return float(i)
    a, b, c = y[i - 1], y[i], y[i + 1]
    denom = a - 2 * b + c
    return float(i) if denom >= 0 else float(i + 0.5 * (a - c) / denom)


def detect_r_peaks(x: np.ndarray, fs_hz: float, *, refractory_s: float = 0.2) -> np.ndarray:
    """R-peak times of one record ``(C, T)`` or ``(T,)`` mV, in (fractional) samples, ascending.

    Pan & Tompkins 1985 decision rules on the integrated energy: a candidate (local maximum at least
    ``refractory_s`` from a larger one) is a QRS when it exceeds ``NPK + 0.25 (SPK - NPK)``, SPK and NPK being
    running estimates (weight 1/8) of signal and noise peak heights, initialised on the first 2 s. A candidate
    within 360 ms of the previous QRS whose peak slope is under half that QRS's is a T wave. When no QRS has come
    for 1.66 mean RR, the largest candidate in the gap above half the threshold is taken (search-back). Each QRS
    is then placed at the peak of the lead-combined QRS-band magnitude, refined to a fraction of a sample.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n = x.shape[-1]
    if n < int(fs_hz):
        raise DataError(f"a record of {n} samples at {fs_hz} Hz is too short for R-peak detection (need >= 1 s)")
    if not np.isfinite(x).all():
        raise DataError("signal contains NaN or inf", hint="interpolate or drop non-finite samples first")
    energy, slope = qrs_energy(x, fs_hz)
    refractory = max(1, int(round(refractory_s * fs_hz)))
    candidates, _ = sps.find_peaks(energy, distance=refractory)
    if len(candidates) == 0:
        return np.empty(0)
    half = max(1, int(round(0.075 * fs_hz)))
    peak_slope = np.array([slope[max(0, c - half) : c + half + 1].max() for c in candidates])
    learn = energy[: int(2 * fs_hz)]
    spk, npk = 0.25 * learn.max(), 0.5 * learn.mean()
    qrs: list[int] = []  # indices into candidates
    rr: list[int] = []
    for j, c in enumerate(candidates):
        threshold = npk + 0.25 * (spk - npk)
        if qrs and rr:
            last = candidates[qrs[-1]]
            mean_rr = float(np.mean(rr[-8:]))
            if c - last > 1.66 * mean_rr:  # search-back between the last QRS and this candidate
                gap = [k for k in range(qrs[-1] + 1, j) if energy[candidates[k]] > 0.5 * threshold]
                if gap:
                    k = max(gap, key=lambda k: energy[candidates[k]])
                    spk = 0.25 * energy[candidates[k]] + 0.75 * spk
                    rr.append(candidates[k] - last)
                    qrs.append(k)
        if energy[c] > threshold:
            if qrs:
                last = candidates[qrs[-1]]
                if c - last < 0.36 * fs_hz and np.sqrt(peak_slope[j]) < 0.5 * np.sqrt(peak_slope[qrs[-1]]):
                    npk = 0.125 * energy[c] + 0.875 * npk  # T wave
                    continue
                rr.append(c - last)
            qrs.append(j)
            spk = 0.125 * energy[c] + 0.875 * spk
        else:
            npk = 0.125 * energy[c] + 0.875 * npk
    # Fiducial point: peak of the per-lead-scaled magnitude of the QRS band near each integrated-energy peak.
    band = _qrs_band(x, fs_hz)
    scale = np.percentile(np.abs(band), 99, axis=-1, keepdims=True)
    magnitude = np.sqrt((np.divide(band, scale, out=np.zeros_like(band), where=scale > 1e-12) ** 2).sum(axis=0))
    peaks = []
    for c in candidates[qrs]:
        lo, hi = max(0, c - half), min(n, c + half + 1)
        peaks.append(_refine(magnitude, lo + int(magnitude[lo:hi].argmax())))
    return np.unique(np.asarray(peaks))


def heart_rate(x: np.ndarray, fs_hz: float) -> np.ndarray | float:
    """Heart rate in bpm, ``60 / median RR``, per record: a float for ``(C, T)``, ``(N,)`` for ``(N, C, T)``.

    NaN where fewer than two beats are found. The median ignores a single missed or extra beat.
    """
    batch, single = _as_batch(x)
    out = np.full(len(batch), np.nan)
    for i, record in enumerate(batch):
        peaks = detect_r_peaks(record, fs_hz)
        if len(peaks) >= 2:
            out[i] = 60.0 * fs_hz / np.median(np.diff(peaks))
    return float(out[0]) if single else out


def rpeak_timing(generated: np.ndarray, recorded: np.ndarray, fs_hz: float, *, tolerance_s: float = MATCH_S,
                 signed: bool = False) -> tuple[np.ndarray, int]:
    """|Δt| (ms) of each recorded R-peak to the nearest generated one within ``tolerance_s`` (matched beats only)
    and the number of recorded R-peaks; both ``(T,)`` signals of one recording at ``fs_hz``. ``signed``: Δt =
    generated − recorded (negative: the generated beat comes early)."""
    try:
        real = detect_r_peaks(np.nan_to_num(recorded), fs_hz)
        made = detect_r_peaks(np.nan_to_num(generated), fs_hz)
    except DataError:
        return np.empty(0), 0
    if len(real) == 0:
        return np.empty(0), 0
    if len(made) == 0:
        return np.empty(0), len(real)
    k = np.clip(np.searchsorted(made, real), 1, len(made) - 1)
    nearest = np.where(np.abs(made[k] - real) < np.abs(made[k - 1] - real), made[k], made[k - 1])
    dt = (nearest - real) / fs_hz * 1000.0
    keep = np.abs(dt) <= tolerance_s * 1000.0
    return (dt if signed else np.abs(dt))[keep], len(real)
