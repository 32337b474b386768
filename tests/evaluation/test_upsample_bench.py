"""The 100 → 500 Hz metrics (evaluation.upsample_bench) on signals whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.bootstrap import record_interval
from evaluation.upsample_bench import high_frequency_share, record_metrics
from synth.data.transforms import resample


def _signals(n: int = 3, seconds: float = 4.0) -> np.ndarray:
    t = np.arange(int(500 * seconds)) / 500.0
    rng = np.random.default_rng(0)
    slow = np.sin(2 * np.pi * 5 * t)  # inside 100 Hz's band
    fast = 0.2 * np.sin(2 * np.pi * 80 * t)  # only a 500 Hz recording has it
    x = np.stack([[slow * (1 + 0.1 * i) + fast + 0.01 * rng.standard_normal(t.size) for i in range(12)]
                  for _ in range(n)])
    return x.astype(np.float32)


def test_the_truth_scores_perfectly_and_a_filtered_copy_lacks_the_band_above_50_hz():
    x = _signals()
    same = record_metrics(x, x)
    np.testing.assert_allclose(same["rmse"], 0.0, atol=1e-9)
    np.testing.assert_allclose(same["power ratio 50-100 Hz"], 1.0)
    np.testing.assert_allclose(same["lsd_db"], 0.0, atol=1e-9)
    np.testing.assert_allclose(same["qrs_amplitude_ratio"], 1.0)
    poly = resample(resample(x, 500, 100), 100, 500)[..., : x.shape[-1]]
    m = record_metrics(poly, x)
    assert (m["power ratio 50-100 Hz"] < 0.01).all() and (m["rmse"] > 0.1).all() and (m["lsd_db"] > 3).all()
    share_x, share_poly = high_frequency_share(x), high_frequency_share(poly)
    slow_power = sum((1 + 0.1 * i) ** 2 for i in range(12))  # 5 Hz sines over the 12 leads (x2, as the 80 Hz ones)
    expected = 12 * 0.2**2 / (12 * 0.2**2 + slow_power)  # the 80 Hz sines' share of the power
    assert share_x == pytest.approx(np.full(3, expected), rel=0.15)
    assert (share_poly < 0.01 * share_x).all()
    with pytest.raises(ValueError, match="differ in shape"):
        record_metrics(x[:, :, :-1], x)


def test_record_interval_brackets_the_estimate():
    values = np.random.default_rng(1).normal(2.0, 1.0, 200)
    s = record_interval(values, lambda v: float(np.mean(v)), 200, 0)
    assert s["low"] < s["estimate"] < s["high"] and s["estimate"] == pytest.approx(values.mean())
    assert record_interval(values, lambda v: float(np.mean(v)), 200, np.random.default_rng(0)) == s  # seed = generator
