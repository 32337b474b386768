"""Bootstrap confidence intervals shared by the metrics (Efron & Tibshirani 1993, *An Introduction to the
Bootstrap*, ch. 13 percentile intervals and §10 bias estimation)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from synth.errors import DataError


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval ``[low, high]`` at ``level`` (e.g. 0.95)."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "level": self.level}

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


def percentile_interval(
    replicates: np.ndarray,
    estimate: float,
    *,
    level: float = 0.95,
    bias_correct: bool = False,
    lower_bound: float | None = None,
) -> Interval:
    """The ``level`` percentile interval of bootstrap ``replicates`` around the full-sample ``estimate``.

    ``bias_correct`` shifts the replicates by the bootstrap bias estimate ``mean(replicates) - estimate`` first.
    Statistics with a strong finite-sample bias need it: resampling with replacement repeats records, which
    shrinks the effective sample and pushes every Fréchet-distance replicate above the full-sample value, so the
    plain percentile interval of an FD can lie entirely above its own estimate. ``lower_bound`` clips the interval
    at a value the statistic cannot go below (0 for a distance). Non-finite replicates (a resample with one class
    only, say) are dropped; with none left the interval is ``[nan, nan]``.
    """
    if not 0.0 < level < 1.0:
        raise DataError(f"confidence level must be in (0, 1), got {level}")
    reps = np.asarray(replicates, dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return Interval(float(estimate), float("nan"), float("nan"), level)
    if bias_correct:
        reps = reps - (reps.mean() - estimate)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [alpha, 1.0 - alpha])
    if lower_bound is not None:
        low, high = max(low, lower_bound), max(high, lower_bound)
    return Interval(float(estimate), float(low), float(high), level)


def record_interval(values: np.ndarray, stat: Callable[[np.ndarray], float], n_boot: int,
                    rng: np.random.Generator | int) -> dict[str, float]:
    """``stat(values)`` with the percentile interval of ``n_boot`` resamples of ``values``' first axis (records,
    drawn with replacement); ``rng`` a generator (consumed, so consecutive calls differ) or a seed."""
    values = np.asarray(values)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    reps = np.array([stat(values[rng.integers(0, len(values), len(values))]) for _ in range(n_boot)])
    return percentile_interval(reps, stat(values)).as_dict()
