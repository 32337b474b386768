"""Physiology checks on constructed beats with known answers, and on real PTB-XL records."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.physiology import (
    amplitude_outlier_rate,
    amplitude_outliers,
    detect_r_peaks,
    heart_rate,
    lead_law_residuals,
    physiology_report,
    qrs_duration,
)
from synth.data.leads import LEADS_12

from .signals import beat_train


@pytest.mark.parametrize("fs_hz", [100.0, 500.0])
@pytest.mark.parametrize("hr_bpm", [50.0, 72.0, 120.0, 180.0])
def test_heart_rate_of_a_beat_train(fs_hz, hr_bpm, make_synthetic_record):
    one_lead = beat_train(fs_hz, hr_bpm, qrs_ms=80.0)
    assert heart_rate(one_lead, fs_hz) == pytest.approx(hr_bpm, abs=1.0)
    record = make_synthetic_record(fs_hz, 10.0, heart_rate_bpm=hr_bpm).signal  # 12 leads, Gaussian waves
    assert heart_rate(record, fs_hz) == pytest.approx(hr_bpm, abs=1.0)
    beats = detect_r_peaks(one_lead, fs_hz)
    assert len(beats) >= int(10.0 * hr_bpm / 60.0) - 1  # no beat lost, none doubled (RR would be halved)


@pytest.mark.parametrize("fs_hz", [100.0, 500.0])
@pytest.mark.parametrize("qrs_ms", [80.0, 120.0])
def test_qrs_duration_of_a_known_complex(fs_hz, qrs_ms):
    x = beat_train(fs_hz, 70.0, qrs_ms=qrs_ms, gains=np.linspace(-0.8, 1.5, 12))
    # 40 Hz low-pass widens a sharp-edged complex by ~5 ms; at 100 Hz a sample is 10 ms.
    assert qrs_duration(x, fs_hz) == pytest.approx(qrs_ms, abs=12.0)


def test_lead_laws_hold_for_consistent_leads_and_catch_a_swap(synthetic_record):
    x = synthetic_record.signal
    residuals = lead_law_residuals(x)
    assert max(residuals.values()) < 1e-6
    swapped = x.copy()  # the aVL/aVF swap of a released loader
    swapped[[4, 5]] = swapped[[5, 4]]
    broken = lead_law_residuals(np.stack([x, swapped]))
    assert broken["III"][1] < 1e-6 and broken["aVR"][1] < 1e-6
    assert broken["aVL"][1] > 0.05 and broken["aVF"][1] > 0.05
    assert broken["aVL"][0] < 1e-6


def test_amplitude_outliers():
    x = np.zeros((4, 12, 100), dtype=np.float32)
    x[1, 3, 10] = 10.5
    x[2, 0, 0] = np.nan
    x[3, 5, 5] = -9.9
    np.testing.assert_array_equal(amplitude_outliers(x), [False, True, True, False])
    assert amplitude_outlier_rate(x) == 0.5
    assert amplitude_outlier_rate(x, limit_mv=5.0) == 0.75
    assert amplitude_outliers(x[1]) is True


def test_report_on_a_batch(make_synthetic_record):
    batch = np.stack([make_synthetic_record(100.0, 10.0, heart_rate_bpm=hr).signal for hr in (60.0, 90.0)])
    batch = np.concatenate([batch, np.full((1, 12, 1000), np.nan, dtype=np.float32)])
    report = physiology_report(batch, 100.0, requested_hr_bpm=np.array([60.0, 100.0, 70.0]))
    np.testing.assert_allclose(report.heart_rate_error_bpm[:2], [0.0, 10.0], atol=1.0)
    assert np.isnan(report.heart_rate_bpm[2]) and report.outlier.tolist() == [False, False, True]
    summary = report.as_dict()
    assert summary["amplitude_outlier_rate"] == pytest.approx(1 / 3)
    assert summary["beats_found_fraction"] == pytest.approx(2 / 3)


@pytest.mark.shared_data
def test_heart_rate_on_real_records_agrees_with_neurokit2(ptbxl_root):
    nk = pytest.importorskip("neurokit2", reason="the cross-check uses NeuroKit2's own R-peak detector")
    from synth.data.ptbxl import PTBXL

    ds = PTBXL(ptbxl_root, fs_hz=100)
    ids = ds.ecg_ids[:12]
    x = np.stack([ds.record(i).signal for i in ids])  # (12, 12, 1000) mV
    ours = heart_rate(x, 100.0)
    lead_ii = LEADS_12.index("II")
    for i, record in enumerate(x):
        _, info = nk.ecg_peaks(nk.ecg_clean(record[lead_ii], sampling_rate=100), sampling_rate=100)
        reference = 60.0 * 100.0 / np.median(np.diff(info["ECG_R_Peaks"]))
        assert ours[i] == pytest.approx(reference, abs=3.0), f"ecg_id {ids[i]}"
    qrs = qrs_duration(x, 100.0)
    assert np.all((qrs >= 40.0) & (qrs <= 200.0))  # plausible for every record
    assert np.all(lead_law_residuals(x)["III"] < 0.01)  # PTB-XL stores III exactly as II - I (to quantisation)


def test_qrs_beat_correlation_is_high_for_steady_beats_and_low_when_the_qrs_is_redrawn(make_synthetic_record):
    from evaluation.physiology import qrs_beat_correlation

    steady = make_synthetic_record(duration_s=10.0, heart_rate_bpm=70.0)
    assert qrs_beat_correlation(steady.signal, steady.fs_hz) > 0.95  # sub-sample R timing at 100 Hz costs a little
    rng = np.random.default_rng(0)
    drifting = steady.signal.copy()
    from evaluation.physiology import detect_r_peaks

    for p in detect_r_peaks(steady.signal, steady.fs_hz).astype(int):  # a new random QRS every beat
        lo, hi = max(0, p - 5), min(drifting.shape[1], p + 6)
        drifting[:, lo:hi] = rng.normal(0, 0.5, (12, hi - lo)) + drifting[:, lo:hi] * 0.2
    assert qrs_beat_correlation(drifting, steady.fs_hz) < 0.7
    batch = qrs_beat_correlation(np.stack([steady.signal, np.zeros_like(steady.signal)]), steady.fs_hz)
    assert batch.shape == (2,) and np.isnan(batch[1])
