"""Memorisation: does a generator hand back its training records?

For every generated record, the distance to its nearest training record is compared with the same distance for
real *test* records, which the generator never saw and which come from other patients (PTB-XL folds are
patient-disjoint). A generator that generalises produces records about as far from the training set as new real
records are; a generator that copies produces records much closer. This is the "distance to closest record"
of the synthetic-data privacy literature (Park et al. 2018, VLDB) read against a holdout set (Platzer & Reutterer
2021, "Holdout-based fidelity and privacy assessment of mixed-type synthetic data"):

- ``threshold`` = the ``quantile`` (default 1%) of the real-test nearest-training distances;
- ``fraction_below`` = fraction of generated records nearer than that to some training record (about
  ``quantile`` for a generator that does not copy, up to 1 for one that does);
- ``copies`` flags it when the excess is both large (at least ``2 x quantile``) and significant (one-sided
  binomial test at ``alpha``; the count of generated records below the threshold is Binomial(N_g, quantile)
  when generated and test records are equally far from the training set).

Distances are computed after per-lead standardisation with the *training* set's per-lead mean and standard
deviation (so quiet leads such as aVL weigh as much as V2). Euclidean distances are divided by sqrt(C T): the
RMS per-sample difference in training standard deviations. Cosine distance (1 - cosine similarity of the
standardised records) ignores overall amplitude, so a copy rescaled by the generator is still caught.
Limitation: the distance is sample-by-sample, so a copy shifted in time by a fraction of a beat is not caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from evaluation.neighbours import nearest_neighbours
from synth.errors import DataError

Metric = Literal["euclidean", "cosine"]


@dataclass(frozen=True)
class LeadScaler:
    """Per-lead mean and standard deviation ``(C,)`` of a training set, in mV."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, *, eps: float = 1e-6) -> LeadScaler:
        """From training records ``x (N, C, T)`` mV; a flat lead gets std ``eps`` instead of 0."""
        x = _check(x, "training records")
        mean = np.array([x[:, c].mean(dtype=np.float64) for c in range(x.shape[1])])
        std = np.array([x[:, c].std(dtype=np.float64) for c in range(x.shape[1])])
        return cls(mean, np.maximum(std, eps))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``(N, C, T)`` mV -> ``(N, C, T)`` float32 in training standard deviations."""
        return ((np.asarray(x, np.float32) - self.mean[None, :, None]) / self.std[None, :, None]).astype(np.float32)


def _check(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3:
        raise DataError(f"{name} must be (N, C, T), got shape {x.shape}")
    return x


def _embed(x: np.ndarray, scaler: LeadScaler, metric: Metric) -> np.ndarray:
    """Records -> flat float32 vectors in which Euclidean distance is the wanted metric (up to a monotone map)."""
    flat = scaler.apply(x).reshape(len(x), -1)  # (n, C*T)
    if not np.isfinite(flat).all():
        raise DataError("records contain NaN or inf", hint="drop or repair non-finite generated records first")
    if metric == "cosine":
        flat /= np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
    return flat


def nearest_training_distances(
    x: np.ndarray,
    train: np.ndarray,
    *,
    metric: Metric = "euclidean",
    scaler: LeadScaler | None = None,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each record of ``x (N, C, T)`` mV to its nearest record of ``train (M, C, T)`` mV.

    Returns ``(distances (N,), indices (N,))``: euclidean in training standard deviations RMS per sample, or cosine
    distance in [0, 2]. ``scaler`` defaults to one fitted on ``train``. Memory: the standardised training set
    (``M x C x T`` float32) plus ``batch_size x M`` distances; ``x`` is processed ``batch_size`` records at a time.
    """
    x, train = _check(x, "records"), _check(train, "training records")
    if x.shape[1:] != train.shape[1:]:
        raise DataError(f"records of shape {x.shape[1:]} against training records of shape {train.shape[1:]}")
    if metric not in ("euclidean", "cosine"):
        raise DataError(f"unknown metric {metric!r}; use 'euclidean' or 'cosine'")
    scaler = scaler or LeadScaler.fit(train)
    ref = _embed(train, scaler, metric)  # (M, C*T)
    dist, index = np.empty(len(x)), np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), batch_size):
        q = _embed(x[start : start + batch_size], scaler, metric)
        d, i = nearest_neighbours(q, ref, k=1, batch_size=batch_size)
        dist[start : start + len(q)], index[start : start + len(q)] = d[:, 0], i[:, 0]
    # Euclidean: RMS per sample, comparable across record lengths. Cosine: |a - b|^2 / 2 = 1 - cos for unit a, b.
    dist = dist / np.sqrt(ref.shape[1]) if metric == "euclidean" else dist**2 / 2.0
    return dist, index


@dataclass(frozen=True)
class MemorisationReport:
    """Nearest-training distances of generated vs real test records and the copying verdict (lower distances
    than real test records mean memorisation; ``copies`` is the flag)."""

    generated_distances: np.ndarray  # (N_g,)
    generated_nearest: np.ndarray  # (N_g,) index of the nearest training record
    test_distances: np.ndarray  # (N_t,)
    metric: str
    quantile: float
    threshold: float
    fraction_below: float
    p_value: float
    copies: bool

    @property
    def median_generated(self) -> float:
        return float(np.median(self.generated_distances))

    @property
    def median_test(self) -> float:
        return float(np.median(self.test_distances))

    def as_dict(self) -> dict:
        return {"metric": self.metric, "median_generated": self.median_generated, "median_test": self.median_test,
                "quantile": self.quantile, "threshold": self.threshold, "fraction_below": self.fraction_below,
                "expected_fraction": self.quantile, "p_value": self.p_value, "copies": self.copies,
                "n_generated": len(self.generated_distances), "n_test": len(self.test_distances)}


def memorisation_report(
    generated: np.ndarray,
    real_test: np.ndarray,
    real_train: np.ndarray,
    *,
    metric: Metric = "euclidean",
    quantile: float = 0.01,
    alpha: float = 1e-3,
    batch_size: int = 256,
) -> MemorisationReport:
    """Compare nearest-training distances of ``generated`` and ``real_test`` records (all ``(N, C, T)`` mV).

    ``quantile`` sets the threshold on the real-test distances (with few test records it is a coarse estimate:
    keep ``quantile * N_t >= 10``); ``alpha`` is the significance level of the copying flag.
    """
    if not 0.0 < quantile < 0.5:
        raise DataError(f"quantile must be in (0, 0.5), got {quantile}")
    scaler = LeadScaler.fit(real_train)
    kw = dict(metric=metric, scaler=scaler, batch_size=batch_size)
    d_gen, idx_gen = nearest_training_distances(generated, real_train, **kw)
    d_test, _ = nearest_training_distances(real_test, real_train, **kw)
    threshold = float(np.quantile(d_test, quantile))
    below = int((d_gen < threshold).sum())
    p_value = float(stats.binomtest(below, len(d_gen), quantile, alternative="greater").pvalue)
    fraction = below / len(d_gen)
    return MemorisationReport(d_gen, idx_gen, d_test, metric, quantile, threshold, fraction, p_value,
                              copies=bool(p_value < alpha and fraction >= 2 * quantile))
