"""Baselines: linear lead reconstruction, nearest-neighbour retrieval, real-train sampling and ECGSYN."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.baselines import (
    LinearLeadReconstructor,
    NearestNeighbourGenerator,
    ecgsyn_baseline,
    real_train_baseline,
)
from evaluation.physiology import heart_rate
from synth.data.leads import LEADS_12
from synth.errors import DataError

from .signals import smooth_records


def test_linear_reconstructor_recovers_an_exact_linear_map(tmp_path):
    rng = np.random.default_rng(0)
    given = ("I", "II", "V2")
    train = smooth_records(30, 12, 200, seed=1).astype(np.float64)
    cols = [LEADS_12.index(n) for n in given]
    missing = [i for i in range(12) if i not in cols]
    true_w = rng.standard_normal((3, 9))
    true_b = rng.standard_normal(9)
    train[:, missing] = np.einsum("ngt,gm->nmt", train[:, cols], true_w) + true_b[None, :, None]
    model = LinearLeadReconstructor(given).fit(train, batch_size=7)
    np.testing.assert_allclose(model.weights[:-1], true_w, atol=1e-6)
    np.testing.assert_allclose(model.weights[-1], true_b, atol=1e-6)
    test = train[:4].copy()
    masked = test.copy()
    masked[:, missing] = 0.0  # what a reconstruction input looks like: the missing leads are unknown
    np.testing.assert_allclose(model.predict(masked), test, atol=1e-4)
    reloaded = LinearLeadReconstructor.load(model.save(tmp_path / "linear"))
    assert reloaded.given == model.given and reloaded.missing == model.missing
    np.testing.assert_array_equal(reloaded.predict(masked), model.predict(masked))


def test_linear_reconstructor_tolerates_dependent_given_leads(synthetic_record):
    x = synthetic_record.signal[None].astype(np.float64)  # III = II - I exactly
    model = LinearLeadReconstructor(("I", "II", "III"), ("aVR", "aVL", "aVF")).fit(x)
    pred = model.predict(x)
    for lead in ("aVR", "aVL", "aVF"):  # Goldberger's laws are linear in I and II: recovered exactly
        i = LEADS_12.index(lead)
        np.testing.assert_allclose(pred[0, i], x[0, i], atol=1e-5)
    with pytest.raises(DataError, match="not fitted"):
        LinearLeadReconstructor(("I",)).predict(x)


def test_nearest_neighbour_by_labels_breaks_ties_at_random():
    signals = np.arange(6, dtype=np.float32)[:, None, None] * np.ones((6, 2, 10), np.float32)
    labels = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [0, 0]])
    gen = NearestNeighbourGenerator(signals, labels=labels)
    out, index = gen.sample(labels=np.array([[1, 1], [0, 0]] * 10), seed=0)
    assert set(index[::2]) == {4} and set(index[1::2]) == {5}  # unique exact matches
    assert out.shape == (20, 2, 10) and np.all(out[:, 0, 0] == index)
    ties = gen.retrieve(labels=np.array([[1, 0]] * 40), seed=1)
    assert set(ties) == {0, 1}  # both exact matches get retrieved
    np.testing.assert_array_equal(gen.retrieve(labels=np.array([[1, 0]] * 40), seed=1), ties)


def test_nearest_neighbour_by_report_with_any_encoder():
    vocabulary = ["sinus", "rhythm", "infarct", "atrial", "fibrillation", "normal"]

    def embed(texts: list[str]) -> np.ndarray:  # a bag of words stands in for a sentence encoder
        return np.array([[t.lower().split().count(w) for w in vocabulary] for t in texts], dtype=float)

    reports = ["sinus rhythm normal", "atrial fibrillation", "sinus rhythm infarct", "normal"]
    labels = np.array([[1, 0], [0, 1], [1, 1], [1, 0]])
    signals = np.zeros((4, 1, 5), np.float32)
    gen = NearestNeighbourGenerator(signals, labels=labels, reports=reports, embed=embed)
    np.testing.assert_array_equal(gen.retrieve(reports=["Atrial fibrillation", "infarct"]), [1, 2])
    # Labels first: among records labelled [1, 0] (0 and 3), the report decides.
    np.testing.assert_array_equal(gen.retrieve(labels=np.array([[1, 0]]), reports=["normal ecg"]), [3])
    with pytest.raises(DataError, match="reports and embed"):
        NearestNeighbourGenerator(signals, reports=reports)


def test_real_train_baseline_draws_distinct_training_records():
    train = smooth_records(20, 2, 8, seed=0)
    records, index = real_train_baseline(train, 10, seed=3)
    assert len(set(index)) == 10
    np.testing.assert_array_equal(records, train[index])
    np.testing.assert_array_equal(real_train_baseline(train, 10, seed=3)[1], index)


def test_ecgsyn_baseline_maps_leads_by_name_and_meets_the_requested_rate():
    nk = pytest.importorskip("neurokit2", reason="baseline:ecgsyn uses NeuroKit2")
    x = ecgsyn_baseline(2, [60.0, 100.0], fs_hz=100.0, duration_s=8.0, seed=7)
    assert x.shape == (2, 12, 800) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.abs(x).max() < 3.0  # NeuroKit2 scales each lead to [-0.4, 1.2] mV; centred, it stays in mV range
    np.testing.assert_allclose(heart_rate(x, 100.0), [60.0, 100.0], atol=4.0)  # hr_std 1 bpm plus RR process
    # Same simulation straight from NeuroKit2, its columns picked by name: aVF must land in aVF's row.
    table = nk.ecg_simulate(duration=8.0, sampling_rate=500, heart_rate=60.0, heart_rate_std=1.0, noise=0.01,
                            method="multileads", random_state=7)
    same = ecgsyn_baseline(1, 60.0, fs_hz=500.0, duration_s=8.0, seed=7)[0]
    for lead in ("aVL", "aVF", "V1", "V6"):
        column = table[lead].to_numpy()
        np.testing.assert_allclose(same[LEADS_12.index(lead)], column - np.median(column), atol=1e-5)
