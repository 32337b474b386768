"""Metrics for paired tasks (lead reconstruction, PPG -> ECG), where every prediction has a true record.

Computed per lead on the leads that were *not* given (a given lead copied to the output would score perfectly):

- **MAE** (mV, lower is better): mean |prediction - truth| over records and samples.
- **RMSE** (mV, lower is better): sqrt of the mean squared error over records and samples.
- **Pearson r** (unitless, higher is better, 1 = same shape): per record, then the mean over records; records
  whose true or predicted lead is flat have no r and are left out.
- **amplitude ratio** (unitless, 1 is best): std(prediction) / std(truth) per record, summarised by the median
  over records. Regression to the mean, the typical failure of 1-lead -> 12-lead models in V1-V6, shows as a ratio
  well below 1 while r can still look fine.
- **lag** (ms, 0 is best): the shift maximising the cross-correlation between prediction and truth within
  ``max_lag_s``; a constant lag hurts MAE/RMSE/r and is reported so it is seen rather than hidden. Positive:
  the prediction is late.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from synth.data.leads import LEADS_12, canonical_leads
from synth.errors import DataError


def best_lag(prediction: np.ndarray, target: np.ndarray, *, max_lag: int) -> np.ndarray:
    """Lag in samples (int, ``|lag| <= max_lag``) maximising the cross-correlation, per record and channel.

    ``prediction`` and ``target`` are ``(..., T)``; returns ``(...)``. ``lag = L > 0`` means
    ``prediction[t] ~ target[t - L]`` (the prediction is late). Both are mean-removed; the correlation at each lag
    is normalised by its overlap length so that long lags are not penalised for overlapping less.
    """
    p = np.asarray(prediction, np.float64)
    y = np.asarray(target, np.float64)
    if p.shape != y.shape:
        raise DataError(f"prediction {p.shape} and target {y.shape} differ in shape")
    t = p.shape[-1]
    max_lag = int(min(max_lag, t - 1))
    p = p - p.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    n_fft = 1 << int(np.ceil(np.log2(2 * t - 1)))  # zero-padded: linear, not circular, correlation
    xc = np.fft.irfft(np.fft.rfft(p, n_fft) * np.conj(np.fft.rfft(y, n_fft)), n_fft)  # xc[L] = sum p[t+L] y[t]
    lags = np.arange(-max_lag, max_lag + 1)
    xc = np.take(xc, lags % n_fft, axis=-1) / (t - np.abs(lags))  # (..., 2 max_lag + 1)
    return lags[xc.argmax(axis=-1)]


@dataclass(frozen=True)
class LeadScores:
    """Summary for one lead over the records (see the module docstring for definitions and units)."""

    mae_mv: float
    rmse_mv: float
    pearson_r: float
    amplitude_ratio: float
    lag_ms: float
    lag_agreement: float  # fraction of records whose best lag equals the median lag

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PairedMetrics:
    """Per-lead scores on the leads not given, their unweighted mean over those leads, and the per-record values
    ``(N, L)`` behind them (for bootstrap intervals or plots)."""

    leads: tuple[str, ...]
    per_lead: dict[str, LeadScores]
    mae: np.ndarray
    rmse: np.ndarray
    pearson_r: np.ndarray
    amplitude_ratio: np.ndarray
    lag_samples: np.ndarray

    @property
    def mean(self) -> dict[str, float]:
        fields = ("mae_mv", "rmse_mv", "pearson_r", "amplitude_ratio", "lag_ms")
        return {f: float(np.mean([getattr(s, f) for s in self.per_lead.values()])) for f in fields}

    def as_dict(self) -> dict:
        return {"leads": list(self.leads), "per_lead": {k: v.as_dict() for k, v in self.per_lead.items()},
                "mean": self.mean}


def paired_metrics(
    prediction: np.ndarray,
    target: np.ndarray,
    fs_hz: float,
    *,
    leads: Sequence[str] = LEADS_12,
    given: Sequence[str] = (),
    max_lag_s: float = 0.2,
) -> PairedMetrics:
    """MAE, RMSE (mV), Pearson r, amplitude ratio and lag per lead, on the leads of ``leads`` not in ``given``.

    Args:
        prediction, target: ``(N, C, T)`` (or one record ``(C, T)``) in mV, channels named by ``leads``.
        fs_hz: sampling rate, for the lag in ms.
        given: the leads the model received; they are excluded from the scores.
        max_lag_s: largest lag searched, in seconds (keep it below half an RR interval, or a lag of one beat
            can win).
    """
    p, y = np.asarray(prediction, np.float64), np.asarray(target, np.float64)
    if p.ndim == 2:
        p, y = p[None], y[None]
    if p.shape != y.shape or p.ndim != 3:
        raise DataError(f"prediction {np.shape(prediction)} and target {np.shape(target)} must match as (N, C, T)")
    names = canonical_leads(leads)
    if len(names) != p.shape[1]:
        raise DataError(f"{len(names)} lead names for {p.shape[1]} channels")
    given_set = set(canonical_leads(given))
    if not given_set <= set(names):
        raise DataError(f"given leads {sorted(given_set - set(names))} are not among {list(names)}")
    scored = tuple(n for n in names if n not in given_set)
    if not scored:
        raise DataError("every lead was given: nothing to score")
    cols = [names.index(n) for n in scored]
    p, y = p[:, cols], y[:, cols]  # (N, L, T)
    if not (np.isfinite(p).all() and np.isfinite(y).all()):
        raise DataError("prediction or target contains NaN or inf")
    err = p - y
    mae = np.abs(err).mean(axis=-1)  # (N, L)
    rmse = np.sqrt((err**2).mean(axis=-1))  # (N, L)
    sd_p, sd_y = p.std(axis=-1), y.std(axis=-1)  # (N, L)
    cov = ((p - p.mean(-1, keepdims=True)) * (y - y.mean(-1, keepdims=True))).mean(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where((sd_p > 0) & (sd_y > 0), cov / (sd_p * sd_y), np.nan)
        ratio = np.where(sd_y > 0, sd_p / sd_y, np.nan)
    lag = best_lag(p, y, max_lag=int(round(max_lag_s * fs_hz)))  # (N, L)
    per_lead = {}
    for j, name in enumerate(scored):
        median_lag = float(np.median(lag[:, j]))
        per_lead[name] = LeadScores(
            mae_mv=float(mae[:, j].mean()),
            rmse_mv=float(np.sqrt((rmse[:, j] ** 2).mean())),  # pooled over records, not a mean of RMSEs
            pearson_r=float(np.nanmean(r[:, j])) if np.isfinite(r[:, j]).any() else float("nan"),
            amplitude_ratio=float(np.nanmedian(ratio[:, j])) if np.isfinite(ratio[:, j]).any() else float("nan"),
            lag_ms=1000.0 * median_lag / fs_hz,
            lag_agreement=float((lag[:, j] == median_lag).mean()),
        )
    return PairedMetrics(scored, per_lead, mae, rmse, r, ratio, lag)
