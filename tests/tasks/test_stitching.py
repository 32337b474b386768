"""Windows and crossfade stitching: exact for a model that returns its input, seamless for one that returns a
different constant per window, short signals padded and cropped back."""

from __future__ import annotations

import numpy as np
import pytest

from synth.tasks.common import crossfade_weights, run_windowed, stitch, window_starts


@pytest.mark.parametrize(("total", "width", "hop"), [(64, 64, 32), (100, 64, 32), (1000, 64, 32), (130, 64, 16)])
def test_windows_cover_the_signal_and_end_at_it(total, width, hop):
    starts = window_starts(total, width, hop)
    assert starts[0] == 0 and starts[-1] + width == total
    assert all(0 < b - a <= hop for a, b in zip(starts, starts[1:]))


def test_crossfade_ramps_are_complementary_at_half_overlap():
    width, total = 64, 64 + 32 * 29  # windows exactly half a window apart
    starts = window_starts(total, width, width // 2)
    assert np.all(np.diff(starts) == 32)
    w = crossfade_weights(starts, width)
    norm = np.zeros(total)
    for s, wi in zip(starts, w):
        norm[s : s + width] += wi
    np.testing.assert_allclose(norm, 1.0, atol=1e-12)  # sin^2 + cos^2: the blend needs no normalising here


@pytest.mark.parametrize("total", [64, 100, 257, 1000])
def test_stitched_weights_are_positive_and_normalised(total):
    width = 64
    starts = window_starts(total, width, width // 2)
    assert (crossfade_weights(starts, width) > 0).all()
    ones = stitch(np.ones((len(starts), 2, width)), starts, total)
    np.testing.assert_allclose(ones, 1.0, atol=1e-6)


@pytest.mark.parametrize("total", [40, 64, 301, 1000])
def test_identity_model_returns_the_input_exactly(total):
    x = np.random.default_rng(0).normal(size=(3, total)).astype(np.float32)
    y = run_windowed(x, 64, lambda w: w, num_samples=1, batch_size=3)
    assert y.shape == (1, 3, total)
    np.testing.assert_allclose(y[0], x, atol=1e-5)


def test_constant_per_window_model_is_stitched_without_seams():
    calls = []

    def fn(windows):  # window k -> the constant k (mV): a hard seam would jump by 1 between windows
        out = np.empty_like(windows)
        for i in range(len(windows)):
            out[i] = len(calls)
            calls.append(1)
        return out

    width, total = 64, 1000
    y = run_windowed(np.zeros((2, total), np.float32), width, fn, batch_size=4)[0]
    n = len(calls)
    assert n == len(window_starts(total, width, width // 2)) and n > 10
    step = np.abs(np.diff(y, axis=-1)).max()
    # The sin^2 ramp over an overlap of 32 samples rises by at most pi / (2 * 32) per sample for a jump of 1.
    assert step <= np.pi / (2 * 32) + 1e-4, f"seam of {step:.3f} mV"
    assert y[0, 0] == 0 and y[0, -1] == n - 1  # outer ends are the first and last window's own output
    assert y.min() >= 0 and y.max() <= n - 1


def test_samples_are_kept_apart_and_short_signal_is_padded_then_cropped():
    def fn(windows):  # two draws per window: +1 and -1 around the input
        return np.concatenate([[w + 1, w - 1] for w in windows])

    x = np.linspace(0, 1, 40, dtype=np.float32)[None]
    y = run_windowed(x, 64, fn, num_samples=2)
    assert y.shape == (2, 1, 40)
    np.testing.assert_allclose(y[0], x + 1, atol=1e-6)
    np.testing.assert_allclose(y[1], x - 1, atol=1e-6)
