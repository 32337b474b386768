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
    from synth.data.beats import detect_r_peaks

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


def extended_beats(beats: BeatTimes, cover: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(r, te): the R-peaks and T-ends of ``beats`` with beats added one median RR apart (same QT as the nearest
    detected beat): one before the first and one after the last, and more until ``cover`` = (t0, t1) seconds lies
    strictly inside, so every time there has a beat on each side."""
    rr_med = float(np.median(beats.rr_s))
    qt_first = beats.t_end_s[0] - beats.r_s[0]
    qt_last = beats.t_end_s[-1] - beats.r_s[-1]
    t0, t1 = cover if cover is not None else (beats.r_s[0], beats.r_s[-1])
    before = max(1, int(np.floor((beats.r_s[0] - t0) / rr_med)) + 1)
    after = max(1, int(np.floor((t1 - beats.r_s[-1] - beats.rr_s[-1]) / rr_med)) + 2)
    r_before = beats.r_s[0] - rr_med * np.arange(before, 0, -1)
    r_after = beats.r_s[-1] + beats.rr_s[-1] + rr_med * np.arange(after)
    r = np.concatenate([r_before, beats.r_s, r_after])
    te = np.concatenate([r_before + qt_first, beats.t_end_s, r_after + qt_last])
    return r, te


#: Names of the rows of :func:`phase_features`.
PHASE_FEATURES = ("present", "sin_cycle", "cos_cycle", "since_r_s", "systole", "systole_fraction",
                  "diastole_fraction")


def phase_features(beats: BeatTimes | None, t_s: np.ndarray) -> np.ndarray:
    """(7, len(t_s)) float32: the cardiac phase at each time ``t_s`` (seconds, same origin as ``beats``), the rows
    of :data:`PHASE_FEATURES`: 1 (timing known), sin/cos of the position in the R-R cycle, seconds since the
    R-peak (clipped to 2), 1 in systole (R-peak to T-end) else 0, the fraction of systole and of diastole elapsed.
    ``beats`` None (no two detectable beats) gives all zeros: timing unknown."""
    t_s = np.asarray(t_s, dtype=np.float64)
    out = np.zeros((len(PHASE_FEATURES), len(t_s)), dtype=np.float32)
    if beats is None or len(beats.r_s) < 1:
        return out
    r, te = extended_beats(beats, (float(t_s.min()), float(t_s.max())) if len(t_s) else None)
    k = np.clip(np.searchsorted(r, t_s, side="right") - 1, 0, len(r) - 2)  # beat containing each time
    r0, r1 = r[k], r[k + 1]
    es = np.minimum(te[k], r0 + 0.8 * (r1 - r0))
    cycle = np.clip((t_s - r0) / (r1 - r0), 0.0, 1.0)
    systole = t_s < es
    out[0] = 1.0
    out[1] = np.sin(2 * np.pi * cycle)
    out[2] = np.cos(2 * np.pi * cycle)
    out[3] = np.clip(t_s - r0, 0.0, 2.0)
    out[4] = systole
    out[5] = np.where(systole, np.clip((t_s - r0) / np.maximum(es - r0, 1e-3), 0.0, 1.0), 1.0)
    out[6] = np.where(systole, 0.0, np.clip((t_s - es) / np.maximum(r1 - es, 1e-3), 0.0, 1.0))
    return out


def pseudo_ecg(r_s: np.ndarray, duration_s: float, *, t_end_s: np.ndarray | None = None, fs_hz: float = 100.0
               ) -> np.ndarray:
    """(12, T) mV: a template 12-lead ECG with a QRS at each time of ``r_s`` and a T wave ending at each ``t_end_s``
    (default R + 0.40 s · √RR), for echo data without an ECG (EchoNet-Dynamic): put ``r_s`` on the end-diastolic
    frames (``VolumeTracings.csv`` or the LV area maxima) and ``t_end_s`` on the end-systolic ones, and the model
    gets the cardiac phase it was trained to follow. The waveform is generic (Gaussian P, QRS and T waves with
    per-lead amplitudes of a normal axis); only its timing carries information."""
    t = np.arange(int(round(duration_s * fs_hz))) / fs_hz
    r_s = np.asarray(r_s, dtype=np.float64)
    rr = np.diff(r_s) if len(r_s) > 1 else np.array([0.8])
    rr = np.append(rr, np.median(rr))
    t_end = np.asarray(t_end_s, dtype=np.float64) if t_end_s is not None else r_s + 0.40 * np.sqrt(rr)
    # (P, QRS, T) amplitudes in mV per lead, I, II, III, aVR, aVL, aVF, V1-V6 (normal axis, R-wave progression).
    amp = np.array([[0.08, 0.7, 0.2], [0.12, 1.1, 0.3], [0.04, 0.4, 0.1], [-0.10, -0.9, -0.25], [0.02, 0.15, 0.05],
                    [0.08, 0.75, 0.2], [0.05, -0.6, -0.1], [0.06, -0.2, 0.3], [0.06, 0.4, 0.4], [0.06, 0.9, 0.4],
                    [0.06, 1.1, 0.3], [0.05, 0.9, 0.25]])
    x = np.zeros((12, len(t)))
    for r, te in zip(r_s, t_end):
        t_peak = te - 0.08
        for k, (centre, width) in enumerate(((r - 0.16, 0.025), (r, 0.012), (t_peak, 0.045))):
            x += amp[:, k:k + 1] * np.exp(-0.5 * ((t - centre) / width) ** 2)
    return x.astype(np.float32)
