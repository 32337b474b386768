"""Fréchet distance against closed forms, and the floor/bootstrap contract."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from evaluation.frechet import (
    LeadPCA,
    fd_with_floor,
    frechet_distance,
    frechet_distance_from_stats,
    per_lead_fd_with_floor,
    raw_signal_features,
)
from synth.errors import DataError

from .signals import smooth_records


def test_diagonal_gaussians_match_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, -1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + (var1 + var2 - 2 * np.sqrt(var1 * var2)).sum()
    assert frechet_distance_from_stats(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-12)


def test_full_covariances_match_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 6, 6))
    s1, s2 = a @ a.T, b @ b.T
    mu1, mu2 = rng.standard_normal((2, 6))
    reference = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-8)


def test_samples_from_two_gaussians_approach_the_closed_form():
    rng = np.random.default_rng(1)
    sd1, sd2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([1.5, 1.0, 0.5, 3.0])
    x = rng.normal(0.0, sd1, size=(200_000, 4))
    y = rng.normal(1.0, sd2, size=(200_000, 4))
    expected = 4 * 1.0**2 + ((sd1 - sd2) ** 2).sum()  # var1 + var2 - 2 sqrt(var1 var2) = (sd1 - sd2)^2
    assert frechet_distance(x, y) == pytest.approx(expected, rel=0.02)


def test_identity_symmetry_and_translation():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((300, 5)), rng.standard_normal((300, 5)) * 2 + 1
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-9)
    shift = np.array([3.0, 0.0, -1.0, 0.0, 2.0])
    assert frechet_distance(x, x + shift) == pytest.approx((shift**2).sum(), rel=1e-9)


def test_singular_covariances_give_a_finite_non_negative_distance():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, 50))  # N < D: rank-deficient covariance
    y = np.hstack([rng.standard_normal((10, 25)), np.zeros((10, 25))])  # constant features
    fd = frechet_distance(x, y)
    assert np.isfinite(fd) and fd > 0
    assert frechet_distance(y, y) == pytest.approx(0.0, abs=1e-9)


def test_floor_and_generated_intervals():
    rng = np.random.default_rng(4)
    train, test = rng.standard_normal((600, 6)), rng.standard_normal((400, 6))
    good, bad = rng.standard_normal((500, 6)), rng.standard_normal((500, 6)) + 1.0
    same = fd_with_floor(good, test, train, n=300, n_boot=100, seed=0)
    shifted = fd_with_floor(bad, test, train, n=300, n_boot=100, seed=0)
    for result in (same, shifted):
        assert result.n == 300 and result.n_boot == 100
        for interval in (result.generated, result.floor):
            assert interval.estimate in interval and interval.low >= 0.0
    # The floor is computed on the same subsamples whatever the generated set: identical here.
    assert shifted.floor == same.floor
    # A generator from the real distribution sits at the floor; a shifted one far above it (|shift|^2 = 6).
    assert same.generated.low <= same.floor.high and same.floor.low <= same.generated.high
    assert shifted.generated.low > shifted.floor.high
    assert shifted.generated.estimate == pytest.approx(6.0, rel=0.2)
    assert fd_with_floor(bad, test, train, n=300, n_boot=100, seed=0) == shifted  # deterministic under a seed


def test_floor_uses_the_smallest_set_by_default_and_refuses_a_larger_n():
    rng = np.random.default_rng(5)
    a, b, c = rng.standard_normal((50, 3)), rng.standard_normal((40, 3)), rng.standard_normal((60, 3))
    assert fd_with_floor(a, b, c, n_boot=10).n == 40
    with pytest.raises(DataError, match="n=41"):
        fd_with_floor(a, b, c, n=41)


def test_lead_pca_is_fitted_on_train_and_keeps_mv_units():
    train = smooth_records(80, 3, 64, seed=0)
    pca = LeadPCA.fit(train, 8)
    for lead in range(3):  # orthonormal components: scores are in mV, FD in mV^2
        np.testing.assert_allclose(pca.components[lead] @ pca.components[lead].T, np.eye(8), atol=1e-10)
    other = smooth_records(30, 3, 64, seed=1)
    feats = raw_signal_features(other, fit_on=pca)
    assert feats.shape == (30, 3, 8)
    np.testing.assert_allclose(raw_signal_features(other, 8, fit_on=train), feats)
    # A constant offset c along a unit component direction moves that score by exactly c.
    moved = raw_signal_features(other + 0.5 * pca.components[1, 0][None, None, :], fit_on=pca)
    np.testing.assert_allclose(moved[:, 1, 0] - feats[:, 1, 0], 0.5, atol=1e-9)
    with pytest.raises(DataError, match="pca_dim is required"):
        raw_signal_features(other, fit_on=train)


def test_per_lead_fd_flags_only_the_distorted_lead():
    leads = ("I", "II", "V1")
    train, test = smooth_records(200, 3, 64, seed=10), smooth_records(150, 3, 64, seed=11)
    gen = smooth_records(150, 3, 64, seed=12)
    gen[:, 2] *= 3.0  # V1 three times too large
    result = per_lead_fd_with_floor(gen, test, train, pca_dim=6, leads=leads, n=150, n_boot=50, seed=0)
    assert set(result) == set(leads)
    assert result["I"].ratio < 2 and result["II"].ratio < 2
    assert result["V1"].generated.low > 5 * result["V1"].floor.high
