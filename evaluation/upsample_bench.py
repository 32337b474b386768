"""100 → 500 Hz: how close the learned upsampler and a polyphase filter come to PTB-XL's own 500 Hz recordings.

Scored on records present at both rates (the 100 Hz version in, the 500 Hz one as truth), per record over the 12
leads, with bootstrap intervals over records:

- **RMSE** (mV) against the 500 Hz truth;
- **band power ratio**: power of the output in 50-100 Hz and 100-250 Hz (Welch, summed over leads) over the
  truth's; a polyphase filter from 100 Hz has ~0 there, 1 = as much detail as the recording;
- **log-spectral distance** (dB) over 1-250 Hz: root mean square of 10 log10(P_out / P_truth) over 1 Hz bins;
- **QRS amplitude ratio**: peak-to-peak amplitude of each lead over the truth's, mean over leads (the 100 Hz
  version blunts the QRS peaks: < 1).

The same spectra are also compared for generated records (report → 12-lead at 100 Hz, taken to 500 Hz either
way): the share of power above 50 Hz and the whole spectrum, against the real 500 Hz records of the split.
"""

from __future__ import annotations

import numpy as np

FS_HIGH = 500.0
BANDS: dict[str, tuple[float, float]] = {"50-100 Hz": (50.0, 100.0), "100-250 Hz": (100.0, 250.0)}


def psd(x: np.ndarray, fs: float = FS_HIGH) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density of ``x`` ``(..., T)`` with 1 Hz bins (mV²/Hz): ``(freqs, (..., F))``."""
    from scipy.signal import welch

    nper = min(int(fs), x.shape[-1])
    return welch(np.asarray(x, dtype=np.float64), fs=fs, nperseg=nper, axis=-1)


def band_power(freqs: np.ndarray, p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Power in ``[lo, hi)`` Hz of ``p`` ``(..., F)``, summed over bins."""
    sel = (freqs >= lo) & (freqs < hi)
    return p[..., sel].sum(axis=-1)


def record_metrics(out: np.ndarray, truth: np.ndarray, fs: float = FS_HIGH) -> dict[str, np.ndarray]:
    """Per-record metrics of ``out`` vs ``truth``, both ``(N, 12, T)`` mV at ``fs``: each value ``(N,)``."""
    out, truth = np.asarray(out, np.float64), np.asarray(truth, np.float64)
    if out.shape != truth.shape:
        raise ValueError(f"output {out.shape} and truth {truth.shape} differ in shape")
    freqs, p_out = psd(out, fs)
    _, p_true = psd(truth, fs)
    p_out, p_true = p_out.sum(axis=1), p_true.sum(axis=1)  # (N, F): over leads
    res = {"rmse": np.sqrt(((out - truth) ** 2).mean(axis=(1, 2)))}
    for name, (lo, hi) in BANDS.items():
        res[f"power ratio {name}"] = band_power(freqs, p_out, lo, hi) / np.maximum(band_power(freqs, p_true, lo, hi),
                                                                                   1e-20)
    sel = (freqs >= 1.0) & (freqs <= fs / 2)
    ratio_db = 10 * np.log10(np.maximum(p_out[:, sel], 1e-20) / np.maximum(p_true[:, sel], 1e-20))
    res["lsd_db"] = np.sqrt((ratio_db**2).mean(axis=1))
    ptp_out, ptp_true = np.ptp(out, axis=-1), np.ptp(truth, axis=-1)  # (N, 12)
    res["qrs_amplitude_ratio"] = (ptp_out / np.maximum(ptp_true, 1e-6)).mean(axis=1)
    return res


def high_frequency_share(x: np.ndarray, fs: float = FS_HIGH, cutoff: float = 50.0) -> np.ndarray:
    """``(N,)`` share of each record's power (over leads, above 0.5 Hz) that lies above ``cutoff`` Hz."""
    freqs, p = psd(x, fs)
    p = p.sum(axis=1)
    return band_power(freqs, p, cutoff, fs / 2 + 1) / np.maximum(band_power(freqs, p, 0.5, fs / 2 + 1), 1e-20)


def mean_spectrum(x: np.ndarray, fs: float = FS_HIGH) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and the median over records of the lead-summed PSD (for plots)."""
    freqs, p = psd(x, fs)
    return freqs, np.median(p.sum(axis=1), axis=0)
