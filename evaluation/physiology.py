"""Physiological plausibility of ECG records: cheap checks that are hard to game (EVALUATION.md).

- **R peaks and heart rate** (bpm): the library's Pan-Tompkins detector (:mod:`synth.data.beats`).
- **QRS duration** (ms): on the median beat, the span over which the spatial velocity
  ``sqrt(sum_leads (dV/dt)^2)`` stays above a fraction of its peak (a global, all-lead measurement in the spirit of
  the CSE measurement study, Willems et al. 1985). A plausibility check, not a diagnostic-grade delineator.
- **Einthoven / Goldberger residuals** (mV RMS, 0 is ideal): ``III - (II - I)``, ``aVR + (I + II)/2``,
  ``aVL - (I - II/2)``, ``aVF - (II - I/2)``. Recorded 12-lead ECGs satisfy these up to quantisation; a generator
  that models leads independently does not.
- **Amplitude outliers**: a record with any |sample| above ``limit_mv`` (10 mV) or any non-finite sample.
- **Beat-to-beat QRS correlation**: how alike a record's consecutive QRS complexes are: each beat's QRS (all
  leads, ±60 ms around its R-peak, 0.5-40 Hz) is correlated with the next one's, and the record's value is the
  median over its pairs. Real sinus records are near 1 with a spread that ectopy, noise and respiration set;
  a generator that redraws the QRS shape from beat to beat scores below the real records' interquartile range.

Every function takes one record ``(C, T)`` or a batch ``(N, C, T)`` in mV at ``fs_hz``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

# R-peaks and heart rate live in the library (tasks and training use them); the evaluation suite re-exports them.
from synth.data.beats import _as_batch, detect_r_peaks, heart_rate, qrs_energy  # noqa: F401
from synth.data.leads import LEADS_12, canonical_leads
from synth.errors import DataError

#: Relations between the limb leads that hold exactly for a recorded ECG (Einthoven 1912; Goldberger 1942).
LEAD_LAWS: dict[str, str] = {
    "III": "III - (II - I)",
    "aVR": "aVR + (I + II) / 2",
    "aVL": "aVL - (I - II / 2)",
    "aVF": "aVF - (II - I / 2)",
}


# -- QRS duration ----------------------------------------------------------------------------------------------


def median_beat(x: np.ndarray, fs_hz: float, peaks: np.ndarray, *, before_s: float = 0.25, after_s: float = 0.4
                ) -> np.ndarray | None:
    """The sample-wise median of the beats ``[R - before_s, R + after_s]`` of ``(C, T)``: ``(C, W)``, or None
    when no beat fits inside the record. R sits at index ``round(before_s * fs_hz)``."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    pre, post = int(round(before_s * fs_hz)), int(round(after_s * fs_hz))
    starts = [int(round(p)) - pre for p in peaks]
    beats = [x[:, s : s + pre + post + 1] for s in starts if s >= 0 and s + pre + post + 1 <= x.shape[-1]]
    return np.median(np.stack(beats), axis=0) if beats else None


def qrs_duration(x: np.ndarray, fs_hz: float, *, fraction: float = 0.05, max_gap_s: float = 0.02) -> np.ndarray | float:
    """QRS duration in ms per record: a float for ``(C, T)``, ``(N,)`` for ``(N, C, T)``; NaN without beats.

    On the median beat (0.5-40 Hz band-passed), the spatial velocity ``v(t) = sqrt(sum_leads (dV/dt)^2)`` (mV/s)
    is thresholded at ``fraction`` of its maximum within 100 ms of R; the QRS is the run of supra-threshold samples
    around that maximum, dips shorter than ``max_gap_s`` (where a wave turns, the slope passes through 0) bridged,
    searched within R - 150 ms ... R + 200 ms. Duration = last - first supra-threshold sample.
    """
    batch, single = _as_batch(x)
    high = min(40.0, 0.45 * fs_hz)
    sos = sps.butter(2, (0.5, high), btype="bandpass", fs=fs_hz, output="sos")
    out = np.full(len(batch), np.nan)
    gap = max(1, int(round(max_gap_s * fs_hz)))
    for i, record in enumerate(batch):
        peaks = detect_r_peaks(record, fs_hz)
        beat = median_beat(sps.sosfiltfilt(sos, record, axis=-1), fs_hz, peaks)
        if beat is None:
            continue
        r0 = int(round(0.25 * fs_hz))
        v = np.sqrt(((np.gradient(beat, axis=-1) * fs_hz) ** 2).sum(axis=0))  # (W,) mV/s
        lo, hi = max(0, r0 - int(0.15 * fs_hz)), min(len(v), r0 + int(0.2 * fs_hz) + 1)
        near = slice(max(0, r0 - int(0.1 * fs_hz)), r0 + int(0.1 * fs_hz) + 1)
        centre = near.start + int(v[near].argmax())
        above = v >= fraction * v[centre]
        start = end = centre
        while start - 1 >= lo and above[max(lo, start - gap) : start].any():  # extend left, bridging short dips
            start = max(lo, start - gap) + int(np.flatnonzero(above[max(lo, start - gap) : start])[0])
        while end + 1 < hi and above[end + 1 : min(hi, end + 1 + gap)].any():
            end = end + 1 + int(np.flatnonzero(above[end + 1 : min(hi, end + 1 + gap)])[-1])
        out[i] = 1000.0 * (end - start) / fs_hz
    return float(out[0]) if single else out


# -- lead laws and amplitude -----------------------------------------------------------------------------------


def lead_law_residuals(x: np.ndarray, leads: Sequence[str] = LEADS_12) -> dict[str, np.ndarray | float]:
    """RMS residual (mV) of each relation in :data:`LEAD_LAWS`, per record: ``{"III": (N,), "aVR": ..., ...}``
    (floats for one record). Leads are found by name; all of I, II, III, aVR, aVL, aVF must be present."""
    batch, single = _as_batch(x)
    names = canonical_leads(leads)
    if len(names) != batch.shape[1]:
        raise DataError(f"{len(names)} lead names for {batch.shape[1]} channels")
    missing = [n for n in ("I", "II", "III", "aVR", "aVL", "aVF") if n not in names]
    if missing:
        raise DataError(f"lead-law residuals need the six limb leads; missing {missing}")
    lead = {n: batch[:, names.index(n)] for n in ("I", "II", "III", "aVR", "aVL", "aVF")}  # each (N, T)
    residual = {
        "III": lead["III"] - (lead["II"] - lead["I"]),
        "aVR": lead["aVR"] + (lead["I"] + lead["II"]) / 2,
        "aVL": lead["aVL"] - (lead["I"] - lead["II"] / 2),
        "aVF": lead["aVF"] - (lead["II"] - lead["I"] / 2),
    }
    rms = {k: np.sqrt((r**2).mean(axis=-1)) for k, r in residual.items()}
    return {k: float(v[0]) for k, v in rms.items()} if single else rms


def amplitude_outliers(x: np.ndarray, *, limit_mv: float = 10.0) -> np.ndarray | bool:
    """Per record, True when any sample has ``|x| > limit_mv`` or is not finite (bool, or ``(N,)`` bool)."""
    batch, single = _as_batch(x)
    flat = batch.reshape(len(batch), -1)
    out = ~np.isfinite(flat).all(axis=1) | (np.abs(np.nan_to_num(flat, nan=0.0)) > limit_mv).any(axis=1)
    return bool(out[0]) if single else out


def amplitude_outlier_rate(x: np.ndarray, *, limit_mv: float = 10.0) -> float:
    """Fraction of records (0-1, lower is better) with a sample beyond ``limit_mv`` or a non-finite sample."""
    return float(np.mean(amplitude_outliers(x, limit_mv=limit_mv)))


def qrs_beat_correlation(x: np.ndarray, fs_hz: float, *, half_s: float = 0.06) -> np.ndarray | float:
    """Median Pearson correlation of each QRS complex with the next (all leads, ±``half_s`` around the R-peaks,
    0.5-40 Hz band-passed), per record: a float for ``(C, T)``, ``(N,)`` for ``(N, C, T)``; NaN with fewer than
    two complete beats. Higher = more alike beats; compare with the real records' interquartile range."""
    batch, single = _as_batch(x)
    half = max(2, int(round(half_s * fs_hz)))
    out = np.full(len(batch), np.nan)
    for i, rec in enumerate(batch):
        if not np.isfinite(rec).all():
            continue
        try:
            peaks = detect_r_peaks(rec, fs_hz)
        except DataError:
            continue
        high = min(40.0, 0.45 * fs_hz)
        sos = sps.butter(2, (0.5, high), btype="bandpass", fs=fs_hz, output="sos")
        f = sps.sosfiltfilt(sos, rec, axis=-1)
        beats = [f[:, int(round(p)) - half : int(round(p)) + half + 1].ravel() for p in peaks
                 if half <= round(p) < rec.shape[-1] - half]
        if len(beats) < 2:
            continue
        rs = [np.corrcoef(a, b)[0, 1] for a, b in zip(beats[:-1], beats[1:]) if a.std() > 0 and b.std() > 0]
        if rs:
            out[i] = float(np.median(rs))
    return float(out[0]) if single else out


# -- everything at once ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhysiologyReport:
    """Per-record physiology of a batch ``(N, C, T)`` and its summary (``as_dict``)."""

    heart_rate_bpm: np.ndarray  # (N,)
    heart_rate_error_bpm: np.ndarray | None  # (N,) |measured - requested|, when a rate was requested
    qrs_ms: np.ndarray  # (N,)
    lead_law_rms_mv: dict[str, np.ndarray] | None  # {"III": (N,), ...}; None without the six limb leads
    outlier: np.ndarray  # (N,) bool
    limit_mv: float
    qrs_beat_correlation: np.ndarray | None = None  # (N,) median consecutive-beat QRS correlation

    def as_dict(self) -> dict:
        med = lambda v: float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")  # noqa: E731
        out = {"heart_rate_bpm_median": med(self.heart_rate_bpm), "qrs_ms_median": med(self.qrs_ms),
               "beats_found_fraction": float(np.isfinite(self.heart_rate_bpm).mean()),
               "amplitude_outlier_rate": float(self.outlier.mean()), "limit_mv": self.limit_mv}
        if self.heart_rate_error_bpm is not None:
            out["heart_rate_mae_bpm"] = float(np.nanmean(self.heart_rate_error_bpm))
        if self.lead_law_rms_mv is not None:
            out["lead_law_rms_mv_mean"] = {k: float(v.mean()) for k, v in self.lead_law_rms_mv.items()}
        c = self.qrs_beat_correlation
        if c is not None and np.isfinite(c).any():
            q25, q50, q75 = np.nanpercentile(c, [25, 50, 75])
            out["qrs_beat_correlation"] = {"median": float(q50), "q25": float(q25), "q75": float(q75)}
        return out


def physiology_report(
    x: np.ndarray,
    fs_hz: float,
    *,
    leads: Sequence[str] = LEADS_12,
    requested_hr_bpm: float | np.ndarray | None = None,
    limit_mv: float = 10.0,
) -> PhysiologyReport:
    """All physiology checks on ``(N, C, T)`` mV. ``requested_hr_bpm`` (scalar or ``(N,)``) adds the heart-rate
    error; records with non-finite samples count as outliers and get NaN heart rate and QRS duration."""
    batch, _ = _as_batch(x)
    names = canonical_leads(leads)
    finite = np.isfinite(batch.reshape(len(batch), -1)).all(axis=1)
    hr, qrs = np.full(len(batch), np.nan), np.full(len(batch), np.nan)
    if finite.any():
        hr[finite] = heart_rate(batch[finite], fs_hz)
        qrs[finite] = qrs_duration(batch[finite], fs_hz)
    error = None if requested_hr_bpm is None else np.abs(hr - np.broadcast_to(requested_hr_bpm, hr.shape))
    limb = {"I", "II", "III", "aVR", "aVL", "aVF"} <= set(names)
    laws = lead_law_residuals(batch, names) if limb else None
    beats = np.full(len(batch), np.nan)
    if finite.any():
        beats[finite] = qrs_beat_correlation(batch[finite], fs_hz)
    return PhysiologyReport(hr, error, qrs, laws, amplitude_outliers(batch, limit_mv=limit_mv), limit_mv, beats)
