"""Paired metrics on constructed predictions whose errors are known."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.paired import best_lag, paired_metrics
from synth.data.leads import LEADS_12
from synth.errors import DataError

from .signals import smooth_records


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return smooth_records(40, 12, 500, seed=0).astype(np.float64)  # (40, 12, 500) "mV" at 100 Hz


def test_known_amplitude_scale_shows_as_the_ratio(truth):
    centred = truth - truth.mean(axis=-1, keepdims=True)
    result = paired_metrics(0.4 * centred, centred, 100.0, given=("I",))
    for scores in result.per_lead.values():
        assert scores.amplitude_ratio == pytest.approx(0.4, rel=1e-9)  # regression to the mean, measured
        assert scores.pearson_r == pytest.approx(1.0, abs=1e-9)  # ... while r alone looks perfect
        assert scores.lag_ms == 0.0


def test_known_noise_gives_rmse_sigma(truth):
    rng = np.random.default_rng(1)
    sigma = 0.05
    result = paired_metrics(truth + sigma * rng.standard_normal(truth.shape), truth, 100.0)
    for scores in result.per_lead.values():
        assert scores.rmse_mv == pytest.approx(sigma, rel=0.03)
        assert scores.mae_mv == pytest.approx(sigma * np.sqrt(2 / np.pi), rel=0.03)
    assert result.mean["rmse_mv"] == pytest.approx(sigma, rel=0.02)


@pytest.mark.parametrize("lag", [-9, 7])
def test_constant_lag_is_found(truth, lag):
    late = np.roll(truth, lag, axis=-1)  # prediction[t] = truth[t - lag]
    result = paired_metrics(late, truth, 100.0, max_lag_s=0.2)
    for scores in result.per_lead.values():
        assert scores.lag_ms == pytest.approx(10.0 * lag)
        assert scores.lag_agreement == 1.0
    np.testing.assert_array_equal(best_lag(late, truth, max_lag=20), lag)


def test_given_leads_are_not_scored(truth):
    prediction = truth.copy()
    prediction[:, 6:] += 0.2  # only V1-V6 are wrong
    result = paired_metrics(prediction, truth, 100.0, given=("I", "II"))
    assert result.leads == tuple(n for n in LEADS_12 if n not in ("I", "II"))
    assert result.per_lead["III"].mae_mv == 0.0
    assert result.per_lead["V4"].mae_mv == pytest.approx(0.2)
    assert result.mae.shape == (40, 10)


def test_a_flat_truth_has_no_correlation_and_bad_input_is_refused(truth):
    flat = truth.copy()
    flat[:, 3] = 0.0
    result = paired_metrics(truth, flat, 100.0)
    assert np.isnan(result.per_lead["aVR"].pearson_r)
    assert np.isnan(result.per_lead["aVR"].amplitude_ratio)
    with pytest.raises(DataError, match="every lead was given"):
        paired_metrics(truth, truth, 100.0, given=LEADS_12)
    with pytest.raises(DataError, match="must match"):
        paired_metrics(truth[:, :, :10], truth, 100.0)
