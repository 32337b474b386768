"""The PPG pulse: finding each beat's onset, the cardiac phase it implies, and synthesising a PPG from an ECG.

- :func:`pulse_onsets`: the foot of each systolic upstroke (where the pulse wave arrives), robust to baseline
  wander, amplitude changes and clipping: systolic peaks are found on the band-passed pulse (0.5-8 Hz) with a
  refractory distance and a prominence relative to the signal's spread; each onset is the maximum of the second
  derivative in the 300 ms before its peak (the "maximum of the second derivative" foot of Elgendi 2012; it marks
  the start of the upstroke like the intersecting-tangents method, with less sensitivity to noise).
- :func:`phase_channels`: per-sample channels that say where in its beat every sample is: ``sin``/``cos`` of the
  cycle phase between consecutive beat references and the time since the last one. The reference is the onset
  moved back by the pulse arrival time (``delay_s``: R-peak → PPG foot, about 150-300 ms), so phase 0 is where
  the R-peak is expected, and a model has only to draw the QRS at phase 0.
- :func:`simulate_ppg`: a PPG for an ECG, from its R-peaks: each beat's pulse (systolic and diastolic waves,
  shaped by the RR interval) arrives a pulse arrival time after its R-peak (drawn per record, jittered per beat),
  with beat-to-beat amplitude changes, respiratory baseline wander and noise. PTB-XL's ECGs with such PPGs
  pretrain a PPG → ECG model on far more beats than BIDMC's 37 training subjects give.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps


def _bandpass(x: np.ndarray, fs_hz: float, low: float = 0.5, high: float = 8.0) -> np.ndarray:
    high = min(high, 0.45 * fs_hz)
    sos = sps.butter(2, (low, high), btype="bandpass", fs=fs_hz, output="sos")
    padlen = min(len(x) - 1, int(2 * fs_hz / low))
    return sps.sosfiltfilt(sos, x, padlen=max(padlen, 0))


def pulse_onsets(ppg: np.ndarray, fs_hz: float, *, max_rate_bpm: float = 200.0) -> np.ndarray:
    """Onset times (fractional samples, ascending) of the beats of a PPG ``(T,)`` in any unit; empty if the
    signal is too short or flat."""
    x = np.asarray(ppg, dtype=np.float64).ravel()
    if len(x) < int(fs_hz) or not np.isfinite(x).all() or np.ptp(x) == 0:
        return np.empty(0)
    f = _bandpass(x - np.median(x), fs_hz)
    spread = np.subtract(*np.percentile(f, [95, 5]))
    if spread <= 0:
        return np.empty(0)
    peaks, _ = sps.find_peaks(f, distance=max(1, int(60.0 / max_rate_bpm * fs_hz)), prominence=0.3 * spread)
    d2 = np.gradient(np.gradient(f))
    look = max(2, int(0.3 * fs_hz))
    onsets = []
    for p in peaks:
        lo = max(0, p - look)
        if p - lo < 2:
            continue
        k = lo + int(np.argmax(d2[lo:p]))
        if 0 < k < len(d2) - 1:  # parabolic refinement to a fraction of a sample
            a, b, c = d2[k - 1], d2[k], d2[k + 1]
            denom = a - 2 * b + c
            k = k + (0.5 * (a - c) / denom if denom != 0 else 0.0)
        onsets.append(float(k))
    return np.unique(np.asarray(onsets))


def phase_channels(references: np.ndarray, n: int, fs_hz: float, *, max_gap_s: float = 2.0) -> np.ndarray:
    """``(3, n)`` float32: sin and cos of the cycle phase between consecutive beat ``references`` (samples), and
    the time since the last reference (s, capped at ``max_gap_s``). Before the first and after the last reference,
    the phase is extrapolated with the nearest beat's period; with fewer than two references the channels are 0."""
    out = np.zeros((3, n), dtype=np.float32)
    r = np.sort(np.asarray(references, dtype=np.float64))
    if len(r) < 2:
        return out
    t = np.arange(n, dtype=np.float64)
    periods = np.diff(r)
    k = np.clip(np.searchsorted(r, t, side="right") - 1, 0, len(r) - 2)  # beat each sample is in (or nearest)
    start = np.where(t < r[0], r[0] - periods[0] * np.ceil((r[0] - t) / periods[0]), r[k])
    period = np.where(t < r[0], periods[0], np.where(t >= r[-1], periods[-1], periods[k]))
    start = np.where(t >= r[-1], r[-1] + period * np.floor((t - r[-1]) / period), start)
    phase = np.clip((t - start) / period, 0.0, 1.0)
    out[0], out[1] = np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)
    out[2] = np.minimum((t - start) / fs_hz, max_gap_s)
    return out


def simulate_ppg(r_peaks: np.ndarray, n: int, fs_hz: float, rng: np.random.Generator, *,
                 pat_s: float | None = None) -> np.ndarray:
    """A PPG ``(n,)`` (arbitrary units) whose beats arrive ``pat_s`` (default: drawn in 0.15-0.30 s) after the
    ``r_peaks`` (samples) with 8 ms of beat-to-beat jitter."""
    pat = float(rng.uniform(0.15, 0.30)) if pat_s is None else float(pat_s)
    t = np.arange(n) / fs_hz
    x = np.zeros(n)
    r = np.sort(np.asarray(r_peaks, dtype=np.float64)) / fs_hz
    rr_all = np.diff(r) if len(r) > 1 else np.array([0.8])
    rr_med = float(np.median(rr_all))
    systolic_w, diastolic_gap = rng.uniform(0.04, 0.07), rng.uniform(0.22, 0.32)
    diastolic_amp = rng.uniform(0.2, 0.5)
    # Beats before the first R-peak in view keep the rhythm going, so the window starts mid-pulse as a real one.
    extended = np.concatenate([r[0] - rr_med * np.arange(3, 0, -1), r, r[-1] + rr_med * np.arange(1, 3)]) \
        if len(r) else np.array([])
    for i, rp in enumerate(extended):
        rr = float(extended[i + 1] - rp) if i + 1 < len(extended) else rr_med
        scale = np.clip(rr / 0.8, 0.6, 1.4)  # the pulse contour stretches with the beat
        onset = rp + pat + rng.normal(0, 0.008)
        amp = rng.normal(1.0, 0.08)
        up = onset + 0.12 * scale
        x += amp * np.exp(-0.5 * ((t - up) / (systolic_w * scale)) ** 2) * (t > onset - 0.05)
        x += amp * diastolic_amp * np.exp(-0.5 * ((t - up - diastolic_gap * scale) / (0.09 * scale)) ** 2)
    resp_hz = rng.uniform(0.15, 0.40)
    x += rng.uniform(0.05, 0.30) * np.sin(2 * np.pi * resp_hz * t + rng.uniform(0, 2 * np.pi))
    x += rng.normal(0, rng.uniform(0.01, 0.05), n)
    return x.astype(np.float32)
