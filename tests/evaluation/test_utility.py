"""AUROC with bootstrap intervals, and the TSTR / TRTR / TRTS / augmentation pipeline on tiny data."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from evaluation.utility import (
    TrainBudget,
    macro_auroc,
    macro_auroc_ci,
    macro_auroc_difference_ci,
    per_class_auroc,
    utility_table,
)


def test_perfect_reversed_and_random_scores():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(300, 3)).astype(np.float32)
    perfect = macro_auroc_ci(labels + 0.1 * rng.random(labels.shape), labels, n_boot=200)
    assert perfect.estimate == pytest.approx(1.0) and perfect.low == pytest.approx(1.0)  # float32 AUROC
    assert perfect.high == pytest.approx(1.0)
    assert macro_auroc(-labels, labels) == pytest.approx(0.0, abs=1e-6)
    random = macro_auroc_ci(rng.random(labels.shape), labels, n_boot=200, seed=1)
    assert 0.4 < random.estimate < 0.6 and 0.5 in random and random.estimate in random
    assert random.high - random.low < 0.15


def test_a_class_without_positives_is_left_out_not_scored_zero():
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], dtype=np.float32)
    scores = np.array([[0.9, 0.5], [0.1, 0.4], [0.8, 0.3], [0.2, 0.2]])
    auc = per_class_auroc(scores, labels)
    assert auc[0] == 1.0 and np.isnan(auc[1])
    assert macro_auroc(scores, labels) == 1.0


def test_rare_class_missing_from_resamples_keeps_the_interval_finite():
    rng = np.random.default_rng(2)
    labels = np.zeros((60, 2), dtype=np.float32)
    labels[:30, 0] = 1
    labels[0, 1] = 1  # one positive: absent from about a third of the resamples
    ci = macro_auroc_ci(labels + 0.5 * rng.random(labels.shape), labels, n_boot=200)
    assert np.isfinite(ci.low) and np.isfinite(ci.high) and ci.estimate in ci


def test_paired_difference_interval():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=(400, 2)).astype(np.float32)
    good = labels + 0.8 * rng.standard_normal(labels.shape)
    worse = labels + 2.0 * rng.standard_normal(labels.shape)
    gain = macro_auroc_difference_ci(good, worse, labels, n_boot=200)
    assert gain.estimate == pytest.approx(macro_auroc(good, labels) - macro_auroc(worse, labels))
    assert gain.low > 0.0
    assert macro_auroc_difference_ci(good, good, labels, n_boot=50).high == 0.0


# -- the pipeline on tiny data: label 0 = ST elevation, label 1 = tachycardia ----------------------------------


def tiny_ecgs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 1, 200)`` beat trains at 50 Hz (4 s) and their labels ``(n, 2)``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=(n, 2)).astype(np.float32)
    t = np.arange(200) / 50.0
    x = np.empty((n, 1, 200), dtype=np.float32)
    for i, (st, fast) in enumerate(labels):
        period = 60.0 / (rng.uniform(130, 160) if fast else rng.uniform(50, 70))
        phase = np.mod(t + rng.uniform(0, period), period)
        beat = np.exp(-0.5 * ((phase - 0.1) / 0.015) ** 2)  # R wave
        beat += (0.4 if st else 0.0) * ((phase > 0.14) & (phase < 0.3))  # ST segment raised
        x[i, 0] = beat + 0.05 * rng.standard_normal(200)
    return x, labels


def tiny_classifier() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 8, 5, padding=2), nn.ReLU(), nn.Conv1d(8, 8, 5, padding=2), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 2),
    )


@pytest.fixture(scope="module")
def tiny_sets():
    good = tiny_ecgs(256, 2)
    # A generator that mixes up its conditions: asked for ST elevation it makes tachycardia and vice versa.
    # (Shuffled labels would not do: AUROC is rank-based, so a classifier that picks up the small chance
    # correlation left after shuffling still separates this noise-free test set perfectly.)
    swapped = (good[0], good[1][:, ::-1].copy())
    return {"train": tiny_ecgs(256, 0), "test": tiny_ecgs(128, 1), "good": good, "swapped": swapped}


BUDGET = TrainBudget(steps=250, batch_size=32, lr=1e-2)


def test_tstr_smoke(tiny_sets):
    kw = dict(real_train=tiny_sets["train"], real_test=tiny_sets["test"], classes=["STE", "TACHY"], budget=BUDGET,
              seed=0, n_boot=100)
    good = utility_table(tiny_classifier, synthetic=tiny_sets["good"], **kw)
    assert good.rows["TRTR"].auroc.estimate > 0.9
    assert good.rows["TSTR"].auroc.estimate > 0.9
    assert good.rows["TRTS"].auroc.estimate > 0.9
    assert set(good.rows["TRTR"].per_class) == {"STE", "TACHY"}
    swapped = utility_table(tiny_classifier, synthetic=tiny_sets["swapped"], **kw)
    # Each output then follows the other condition, which is drawn independently of its own label: near chance
    # (not exactly: more beats also means more raised ST segment, so the two features overlap a little).
    assert swapped.rows["TSTR"].auroc.high < 0.8 and swapped.rows["TRTS"].auroc.high < 0.8
    assert swapped.rows["TSTR"].auroc.high < good.rows["TSTR"].auroc.low
    assert swapped.rows["TRTR"] == good.rows["TRTR"]  # same seed, same data: the same classifier
    assert swapped.augmentation_gain.high < 0.0  # mislabelled synthetic data hurts the real classifier
    assert good.augmentation_gain.low > -0.05
    assert "TSTR" in str(good)


def test_pipeline_is_deterministic_under_a_seed(tiny_sets):
    small = {k: (x[:64], y[:64]) for k, (x, y) in tiny_sets.items()}
    kw = dict(real_train=small["train"], real_test=small["test"], synthetic=small["good"],
              budget=TrainBudget(steps=20, batch_size=16), n_boot=20)
    first = utility_table(tiny_classifier, seed=5, **kw).as_dict()
    assert utility_table(tiny_classifier, seed=5, **kw).as_dict() == first


def test_a_single_label_has_an_auroc_too():
    from evaluation.utility import per_class_auroc

    scores = np.array([[0.1], [0.9], [0.8], [0.2]], dtype=np.float32)
    assert per_class_auroc(scores, np.array([[0], [1], [1], [0]])).tolist() == [1.0]
