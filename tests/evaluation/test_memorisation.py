"""Memorisation: a generator that returns (noisy, rescaled) training records must be caught, an honest one not."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.memorisation import LeadScaler, memorisation_report, nearest_training_distances

from .signals import smooth_records


@pytest.fixture(scope="module")
def population():
    train = smooth_records(300, 3, 80, seed=0)
    test = smooth_records(200, 3, 80, seed=1)
    fresh = smooth_records(200, 3, 80, seed=2)  # an "honest" generator: new draws from the same population
    return train, test, fresh


def test_noisy_copies_are_flagged(population):
    train, test, _ = population
    rng = np.random.default_rng(3)
    pick = rng.choice(len(train), 100)
    copies = train[pick] + 0.1 * train.std() * rng.standard_normal((100, 3, 80)).astype(np.float32)
    report = memorisation_report(copies, test, train)
    assert report.copies
    assert report.fraction_below > 0.9
    assert report.median_generated < 0.5 * report.median_test
    assert (report.generated_nearest == pick).mean() > 0.95  # and it finds which record was copied


def test_fresh_samples_are_not_flagged(population):
    train, test, fresh = population
    report = memorisation_report(fresh, test, train)
    assert not report.copies
    assert report.fraction_below < 0.05
    assert report.median_generated == pytest.approx(report.median_test, rel=0.1)


def test_cosine_catches_rescaled_copies(population):
    train, test, _ = population
    rescaled = 1.7 * train[:50]  # copied shapes, different gain
    assert memorisation_report(rescaled, test, train, metric="cosine").copies


def test_distances_do_not_depend_on_batch_size(population):
    train, _, fresh = population
    scaler = LeadScaler.fit(train)
    d1, i1 = nearest_training_distances(fresh, train, scaler=scaler, batch_size=7)
    d2, i2 = nearest_training_distances(fresh, train, scaler=scaler, batch_size=500)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(d1, d2, rtol=1e-10)
    exact_copy, _ = nearest_training_distances(train[:5], train, scaler=scaler)
    np.testing.assert_allclose(exact_copy, 0.0, atol=1e-6)  # recomputed directly, no cancellation error
