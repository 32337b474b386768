"""Cardiac timing from an ECG: R-peaks (end-diastole) and T-wave ends (end-systole), in seconds.

Electromechanical coupling used by the simulator and checked by the evaluation: ventricular contraction starts at
the QRS (end-diastole ≈ R-peak) and ejection ends near the end of the T wave (end-systole ≈ T-end; Boudoulas et
al. 1981, "Changes in diastolic time with various pharmacologic agents", QT ≈ electromechanical systole).

- R-peaks: :func:`evaluation.physiology.detect_r_peaks` (Pan & Tompkins decision rules), the project's one detector.
- T-end: the tangent method (Lepeschkin & Surawicz 1952; Postema & Kors 2014 review): in a lead-combined,
  baseline-corrected, 0.5-25 Hz filtered signal, find the T peak in a window after each R-peak, then the steepest
  point of the descending limb after it; T-end is where the tangent there crosses the baseline (the isoelectric
  PR level). When no T wave stands out the beat's T-end falls back to Bazett's QT = 0.40 s · √RR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal as sps

from synth.errors import DataError


@dataclass(frozen=True)
class BeatTimes:
    """r_s (N,) R-peak times and t_end_s (N,) T-wave end times in seconds from the record start; rr_s (N,) the
    interval to the next R-peak (the last repeats the median)."""

    r_s: np.ndarray
    t_end_s: np.ndarray
    rr_s: np.ndarray

    @property
    def heart_rate_bpm(self) -> float:
        return float(60.0 / np.median(self.rr_s)) if len(self.rr_s) else float("nan")


def _combined(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """(C, T) mV → (T,) the filtered lead with the largest T-wave energy, sign-flipped so its T wave is positive."""
    b, a = sps.butter(2, [0.5 / (fs_hz / 2), min(25.0, 0.45 * fs_hz) / (fs_hz / 2)], btype="band")
    y = sps.filtfilt(b, a, x, axis=-1, padlen=min(x.shape[-1] - 1, 3 * max(len(a), len(b))))
    return y


def beat_times(x: np.ndarray, fs_hz: float) -> BeatTimes:
    """R-peaks and T-ends of an ECG ``(C, T)`` (or ``(T,)``) in mV; raises :class:`DataError` without two beats."""
    from evaluation.physiology import detect_r_peaks

    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    peaks = detect_r_peaks(x, fs_hz)
    if len(peaks) < 2:
        raise DataError(f"found {len(peaks)} R-peak(s); at least two beats are needed to time the heart cycle",
                        hint="give a longer or cleaner ECG")
    rr = np.diff(peaks) / fs_hz
    rr = np.append(rr, np.median(rr))
    y = _combined(x, fs_hz)  # (C, T)
    n = y.shape[-1]
    t_end = np.empty(len(peaks))
    for k, (p, interval) in enumerate(zip(peaks, rr)):
        bazett = 0.40 * np.sqrt(interval)
        t_end[k] = p / fs_hz + bazett
        lo = int(p + 0.10 * fs_hz)
        hi = int(min(n - 1, p + min(0.60, 0.75 * interval) * fs_hz))
        if hi - lo < int(0.2 * fs_hz):
            continue
        base_lo = int(max(0, p - 0.12 * fs_hz))
        base_hi = int(max(base_lo + 1, p - 0.05 * fs_hz))
        baseline = np.median(y[:, base_lo:base_hi], axis=-1, keepdims=True)  # (C, 1) PR level
        seg = y[:, lo:hi] - baseline  # (C, L)
        start = int(0.1 * fs_hz)  # skip the ST segment right after the QRS
        energy = np.abs(seg[:, start:]).max(axis=-1)
        lead = int(energy.argmax())
        s = seg[lead] * np.sign(seg[lead, start + int(np.abs(seg[lead, start:]).argmax())])  # T positive
        peak = start + int(s[start:].argmax())
        if s[peak] < 0.05:  # mV: no T wave worth the name
            continue
        slope = np.gradient(s)
        steep = peak + int(slope[peak:].argmin()) if peak < len(s) - 1 else peak
        if slope[steep] >= 0:
            continue
        cross = steep - s[steep] / slope[steep]  # tangent meets the baseline (samples into the segment)
        t_est = (lo + cross) / fs_hz
        if p / fs_hz + 0.2 <= t_est <= p / fs_hz + min(0.65, 0.9 * interval):
            t_end[k] = t_est
    return BeatTimes(r_s=peaks / fs_hz, t_end_s=t_end, rr_s=rr)
