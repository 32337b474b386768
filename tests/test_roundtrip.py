"""Write -> read round trips (WFDB, NPZ, CSV) on a real record and random signals; resampling properties."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import wfdb
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from synth.data.leads import LEADS_12
from synth.data.readers import read_csv, read_npz, read_record, read_wfdb
from synth.data.record import Record
from synth.data.transforms import resample, resample_record
from synth.data.writers import wfdb_gains, write_csv, write_npz, write_record, write_wfdb

RATES = (100, 125, 250, 500)


def _gains_in_header(base: Path) -> np.ndarray:
    return np.asarray(wfdb.rdheader(str(base)).adc_gain, dtype=np.float64)


# -- a real PTB-XL record ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ptbxl_record(ptbxl_root) -> Record:
    return read_wfdb(ptbxl_root / "records100" / "00000" / "00001_lr").canonical_order()


@pytest.mark.shared_data
def test_ptbxl_record_wfdb_round_trip_within_one_step(ptbxl_record, tmp_path):
    files = write_wfdb(ptbxl_record, tmp_path / "rec")
    assert [f.name for f in files] == ["rec.hea", "rec.dat"] and all(f.exists() for f in files)
    back = read_wfdb(tmp_path / "rec")
    assert back.leads == ptbxl_record.leads and back.fs_hz == 100 and back.units == ("mV",) * 12
    gains = _gains_in_header(tmp_path / "rec")
    np.testing.assert_array_equal(gains, 1000.0)  # PTB-XL amplitudes fit int16 at 1 µV steps
    assert (np.abs(back.signal - ptbxl_record.signal) <= 1.0 / gains[:, None] + 1e-6).all()


@pytest.mark.shared_data
def test_ptbxl_record_written_wfdb_reads_the_same_with_plain_wfdb(ptbxl_record, tmp_path):
    write_wfdb(ptbxl_record, tmp_path / "rec")
    raw = wfdb.rdrecord(str(tmp_path / "rec"))
    assert raw.sig_name == list(LEADS_12) and raw.fs == 100 and raw.units == ["mV"] * 12
    np.testing.assert_allclose(raw.p_signal.T, ptbxl_record.signal, atol=1e-3 + 1e-6)
    np.testing.assert_allclose(raw.p_signal.T, read_wfdb(tmp_path / "rec").signal, atol=1e-6)


@pytest.mark.shared_data
def test_ptbxl_record_npz_round_trip_is_exact(ptbxl_record, tmp_path):
    rec = Record(ptbxl_record.signal, ptbxl_record.fs_hz, ptbxl_record.leads,
                 metadata={"ecg_id": 1, "report": "sinusrhythmus über", "labels": ["NORM"]})
    write_npz(rec, tmp_path / "rec.npz")
    back = read_npz(tmp_path / "rec.npz")
    np.testing.assert_array_equal(back.signal, rec.signal)
    assert back.leads == rec.leads and back.fs_hz == rec.fs_hz and back.units == rec.units
    assert back.metadata == rec.metadata


@pytest.mark.shared_data
def test_ptbxl_record_csv_round_trip(ptbxl_record, tmp_path):
    write_csv(ptbxl_record, tmp_path / "rec.csv")
    back = read_csv(tmp_path / "rec.csv")
    assert back.fs_hz == 100 and back.leads == ptbxl_record.leads
    np.testing.assert_allclose(back.signal, ptbxl_record.signal, rtol=1e-5)


def test_write_record_picks_the_format_from_the_suffix(synthetic_record, tmp_path):
    assert write_record(synthetic_record, tmp_path / "a.npz") == [tmp_path / "a.npz"]
    assert write_record(synthetic_record, tmp_path / "a.csv") == [tmp_path / "a.csv"]
    assert write_record(synthetic_record, tmp_path / "a") == [tmp_path / "a.hea", tmp_path / "a.dat"]
    for name in ("a.npz", "a.csv", "a"):
        np.testing.assert_allclose(read_record(tmp_path / name).signal, synthetic_record.signal, atol=1e-3)


def test_metadata_goes_into_wfdb_comments_and_npz(synthetic_record, tmp_path):
    meta = {"subject": np.int64(7), "age": np.float32(61.5), "report": "Sinusrhythmus, Ü", "labels": ["NORM"]}
    rec = Record(synthetic_record.signal, 100, synthetic_record.leads, metadata=meta)
    write_wfdb(rec, tmp_path / "rec")  # numpy scalars are common in user metadata: no crash
    comments = read_wfdb(tmp_path / "rec").metadata["comments"]
    assert 'labels: ["NORM"]' in comments and 'report: "Sinusrhythmus, \\u00dc"' in comments
    assert any(c.startswith("subject: ") and "7" in c for c in comments)
    write_npz(rec, tmp_path / "rec.npz")
    back = read_npz(tmp_path / "rec.npz").metadata
    assert back["report"] == "Sinusrhythmus, Ü" and back["labels"] == ["NORM"] and "7" in str(back["subject"])


def test_large_amplitudes_lower_the_gain_instead_of_clipping(tmp_path):
    signal = np.zeros((2, 500), dtype=np.float32)
    signal[0, 100] = 40.0  # 40 mV does not fit int16 at 1 µV steps
    signal[1, 200] = -2.0
    rec = Record(signal, 250, ("II", "V2"))
    write_wfdb(rec, tmp_path / "big")
    gains = _gains_in_header(tmp_path / "big")
    assert gains[0] < 1000 and gains[1] == 1000
    back = read_wfdb(tmp_path / "big")
    assert back.signal[0, 100] == pytest.approx(40.0, abs=1 / gains[0])
    assert back.signal[1, 200] == pytest.approx(-2.0, abs=1e-3)


# -- random signals ------------------------------------------------------------------------------------------


@st.composite
def random_records(draw) -> Record:
    """1-12 distinct canonical leads in random order, 2-400 samples, up to ±40 mV, at a common rate."""
    leads = tuple(draw(st.permutations(LEADS_12))[: draw(st.integers(1, 12))])
    n_samples = draw(st.integers(2, 400))
    elements = st.floats(-40.0, 40.0, width=32, allow_nan=False, allow_subnormal=False)
    signal = draw(hnp.arrays(np.float32, (len(leads), n_samples), elements=elements))
    return Record(signal, draw(st.sampled_from(RATES)), leads)


@settings(max_examples=30, deadline=None)
@given(rec=random_records())
def test_random_wfdb_round_trip(rec):
    with tempfile.TemporaryDirectory() as tmp:
        write_wfdb(rec, Path(tmp) / "r")
        back = read_wfdb(Path(tmp) / "r")
        gains = _gains_in_header(Path(tmp) / "r")
    assert back.leads == rec.leads and back.fs_hz == rec.fs_hz and back.signal.shape == rec.signal.shape
    np.testing.assert_allclose(gains, wfdb_gains(rec.signal), rtol=1e-6)
    assert (gains <= 1000).all()
    error = np.abs(back.signal.astype(np.float64) - rec.signal)
    assert (error <= 1.0 / gains[:, None] + 1e-6).all()


@settings(max_examples=30, deadline=None)
@given(rec=random_records())
def test_random_npz_round_trip_is_exact(rec):
    with tempfile.TemporaryDirectory() as tmp:
        write_npz(rec, Path(tmp) / "r.npz")
        back = read_npz(Path(tmp) / "r.npz")
    np.testing.assert_array_equal(back.signal, rec.signal)
    assert back.leads == rec.leads and back.fs_hz == rec.fs_hz


@settings(max_examples=30, deadline=None)
@given(rec=random_records())
def test_random_csv_round_trip(rec):
    with tempfile.TemporaryDirectory() as tmp:
        write_csv(rec, Path(tmp) / "r.csv")
        back = read_csv(Path(tmp) / "r.csv")
    assert back.leads == rec.leads and back.fs_hz == rec.fs_hz  # the rate comes back from the time column
    np.testing.assert_allclose(back.signal, rec.signal, rtol=1e-5, atol=0)


@pytest.mark.parametrize("fs_hz", [128, 256, 360, 1000])
def test_csv_time_column_gives_back_rates_without_short_decimal_steps(tmp_path, fs_hz):
    """360 Hz (MIT-BIH) has no finite decimal step; 128/256 Hz need many digits late in a long record."""
    rec = Record(np.zeros((1, 200 * fs_hz), dtype=np.float32), fs_hz, ("II",))
    write_csv(rec, tmp_path / "r.csv")
    assert read_csv(tmp_path / "r.csv").fs_hz == fs_hz


# -- resampling ----------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(n_samples=st.integers(1, 3000), fs_in=st.sampled_from(RATES + (360, 1000)),
       fs_out=st.sampled_from(RATES + (360, 1000)), channels=st.integers(1, 3))
def test_resample_length_is_rounded_duration(n_samples, fs_in, fs_out, channels):
    x = np.random.default_rng(n_samples).standard_normal((channels, n_samples)).astype(np.float32)
    y = resample(x, fs_in, fs_out)
    assert y.shape == (channels, round(n_samples * fs_out / fs_in))
    assert y.dtype == np.float32


@settings(max_examples=25, deadline=None)
@given(fs_in=st.sampled_from(RATES), factor=st.sampled_from([2, 4, 5]), rel_freq=st.floats(0.02, 0.2),
       phase=st.floats(0, 2 * np.pi))
def test_band_limited_sinusoid_survives_up_then_down(fs_in, factor, rel_freq, phase):
    freq_hz = rel_freq * fs_in  # at most 0.2 fs_in: well below both Nyquists
    t = np.arange(int(10 * fs_in)) / fs_in
    x = np.sin(2 * np.pi * freq_hz * t + phase).astype(np.float32)[None]
    up = resample(x, fs_in, fs_in * factor)
    t_up = np.arange(up.shape[-1]) / (fs_in * factor)
    edge = int(fs_in)  # one second each side: the polyphase filter's edge transients
    edge_up = edge * factor
    expected_up = np.sin(2 * np.pi * freq_hz * t_up + phase)
    np.testing.assert_allclose(up[0, edge_up:-edge_up], expected_up[edge_up:-edge_up], atol=0.02)
    back = resample(up, fs_in * factor, fs_in)
    assert back.shape == x.shape
    np.testing.assert_allclose(back[0, edge:-edge], x[0, edge:-edge], atol=0.02)


@settings(max_examples=20, deadline=None)
@given(rec=random_records())
def test_resample_to_the_same_rate_is_identity(rec):
    y = resample(rec.signal, rec.fs_hz, rec.fs_hz)
    np.testing.assert_array_equal(y, rec.signal)
    assert y is not rec.signal  # a copy: transforms never hand back their input to be mutated
    same = resample_record(rec, rec.fs_hz)
    np.testing.assert_array_equal(same.signal, rec.signal)


def test_resample_record_keeps_leads_and_sets_rate(synthetic_record):
    up = resample_record(synthetic_record, 500)
    assert up.fs_hz == 500 and up.leads == synthetic_record.leads and up.signal.shape == (12, 5000)
    assert synthetic_record.fs_hz == 100 and synthetic_record.signal.shape == (12, 1000)  # input untouched
    # The beats stay where they were: peak of lead II within one 100 Hz sample.
    assert abs(np.argmax(up.channel("II")) / 500 - np.argmax(synthetic_record.channel("II")) / 100) <= 0.01


def test_csv_keeps_non_mv_units(tmp_path):
    rec = Record(np.random.default_rng(0).random((2, 500), dtype=np.float32), 125.0, ("II", "PPG"), ("au", "au"))
    write_csv(rec, tmp_path / "bidmc.csv")
    back = read_record(tmp_path / "bidmc.csv")
    assert back.units == ("au", "au") and back.leads == ("II", "PPG")
    np.testing.assert_allclose(back.signal, rec.signal, rtol=1e-5, atol=1e-6)
