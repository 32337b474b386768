"""Other layouts (PhysioNet Challenge .mat, MIMIC-IV-ECG, BIDMC WFDB, bare NPY) and the signal transforms.

Every file is written here, in the layout the real dataset uses, so nothing downloads.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import wfdb

from synth.data.bidmc import BIDMC, read_bidmc_wfdb
from synth.data.leads import LEADS_12
from synth.data.mimic import MIMICIVECG
from synth.data.readers import read_npy, read_record, record_format
from synth.data.record import Record
from synth.data.transforms import bandpass, remove_baseline, standardise, windows
from synth.data.writers import write_wfdb
from synth.errors import DataError

# -- PhysioNet/CinC Challenge: WFDB header + MATLAB .mat -----------------------------------------------------


def test_challenge_mat_layout_gives_physical_values(tmp_path):
    rng = np.random.default_rng(0)
    val = rng.integers(-3000, 3000, size=(3, 500)).astype(np.int16)  # digital units, (C, T) as the Challenge
    scipy.io.savemat(tmp_path / "A0001.mat", {"val": val})
    (tmp_path / "A0001.hea").write_text(
        "A0001 3 500 500 05-Feb-2020 11:39:16\n"
        f"A0001.mat 16+24 1000/mV 16 0 {val[0, 0]} 0 0 I\n"
        f"A0001.mat 16+24 1000(-40)/mV 16 0 {val[1, 0]} 0 0 aVF\n"  # non-zero baseline
        f"A0001.mat 16+24 1000/mV 16 0 {val[2, 0]} 0 0 V1\n"
        "#Age: 74\n#Sex: Male\n#Dx: 59118001\n"
    )
    for path in (tmp_path / "A0001", tmp_path / "A0001.hea", tmp_path / "A0001.mat"):
        assert record_format(path) == "wfdb"
        rec = read_record(path)
        assert rec.leads == ("I", "aVF", "V1") and rec.fs_hz == 500 and rec.units == ("mV",) * 3
        np.testing.assert_allclose(rec.signal[0], val[0] / 1000.0, atol=1e-7)
        np.testing.assert_allclose(rec.signal[1], (val[1] + 40) / 1000.0, atol=1e-7)
        np.testing.assert_allclose(rec.signal[2], val[2] / 1000.0, atol=1e-7)
        assert "Dx: 59118001" in rec.metadata["comments"]


def test_challenge_mat_without_val(tmp_path):
    scipy.io.savemat(tmp_path / "A0002.mat", {"data": np.zeros((1, 10), dtype=np.int16)})
    (tmp_path / "A0002.hea").write_text("A0002 1 500 10\nA0002.mat 16+24 1000/mV 16 0 0 0 0 II\n")
    with pytest.raises(DataError) as exc:
        read_record(tmp_path / "A0002")
    assert "A0002.mat" in str(exc.value) and "no 'val'" in str(exc.value)


# -- MIMIC-IV-ECG --------------------------------------------------------------------------------------------

MIMIC_ORDER = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
MIMIC_STUDIES = [(10000032, 40689238), (10000117, 45090959)]


def _mimic_path(subject: int, study: int) -> str:
    return f"files/p{str(subject)[:4]}/p{subject}/s{study}/{study}"


@pytest.fixture
def mimic_root(tmp_path, synthetic_record):
    root = tmp_path / "mimic-iv-ecg"
    for k, (subject, study) in enumerate(MIMIC_STUDIES):
        canonical = synthetic_record.signal * (1 + k)
        rec = Record(np.stack([canonical[LEADS_12.index(n)] for n in MIMIC_ORDER]), 100, MIMIC_ORDER)
        write_wfdb(Record(_upsample_5x(rec.signal), 500, MIMIC_ORDER), root / _mimic_path(subject, study))
    (root / "record_list.csv").write_text(
        "subject_id,study_id,file_name,ecg_time,path\n"
        + "".join(f"{s},{st},{st},2180-07-23 08:44:00,{_mimic_path(s, st)}\n" for s, st in MIMIC_STUDIES)
    )
    reports = [""] * 18
    reports[0], reports[1], reports[3] = "Sinus rhythm", " ", "Possible inferior infarct"
    reports[10] = "Abnormal ECG"
    header = "subject_id,study_id,cart_id,rr_interval," + ",".join(f"report_{i}" for i in range(18))
    (root / "machine_measurements.csv").write_text(
        f"{header}\n{MIMIC_STUDIES[0][0]},{MIMIC_STUDIES[0][1]},6848296,659,{','.join(reports)}\n"
        f"{MIMIC_STUDIES[1][0]},{MIMIC_STUDIES[1][1]},6848296,800,{','.join([''] * 18)}\n"
    )
    return root


def _upsample_5x(signal: np.ndarray) -> np.ndarray:
    return np.repeat(signal, 5, axis=-1)


def test_mimic_layout_reads_reports_and_maps_leads_by_name(mimic_root, synthetic_record):
    # The files really store aVF before aVL:
    assert wfdb.rdheader(str(mimic_root / _mimic_path(*MIMIC_STUDIES[0]))).sig_name[4:6] == ["aVF", "aVL"]
    ds = MIMICIVECG(mimic_root)
    assert len(ds) == 2 and ds.study_ids == [s for _, s in MIMIC_STUDIES]
    rec = ds.record(MIMIC_STUDIES[0][1])
    assert rec.leads == LEADS_12 and rec.fs_hz == 500 and rec.signal.shape == (12, 5000)
    expected = _upsample_5x(synthetic_record.signal)
    np.testing.assert_allclose(rec.signal, expected, atol=1e-3)
    np.testing.assert_allclose(rec.channel("aVL"), expected[LEADS_12.index("aVL")], atol=1e-3)
    assert not np.allclose(rec.channel("aVL"), rec.channel("aVF"), atol=0.05)
    # Non-empty report_N joined in numeric order (report_10 after report_3, not after report_1).
    assert rec.metadata["report"] == "Sinus rhythm; Possible inferior infarct; Abnormal ECG"
    assert rec.metadata["subject_id"] == MIMIC_STUDIES[0][0] and rec.metadata["dataset"] == "mimic-iv-ecg"
    second = ds[1]
    assert second.metadata["report"] == ""
    np.testing.assert_allclose(second.signal, 2 * expected, atol=1e-3)
    assert ds.summary()["with_report"] == 1


def test_mimic_folder_without_record_list(tmp_path):
    with pytest.raises(DataError) as exc:
        MIMICIVECG(tmp_path)
    assert "record_list.csv" in str(exc.value) and str(tmp_path) in str(exc.value)


def test_mimic_unknown_study(mimic_root):
    with pytest.raises(DataError, match="study_id 1 is not in record_list.csv"):
        MIMICIVECG(mimic_root).record(1)


# -- BIDMC WFDB release --------------------------------------------------------------------------------------

BIDMC_NAMES = ["RESP,", "PLETH,", "V,", "AVR,", "II,"]


def _write_bidmc_wfdb(folder, subject: int, order: list[int], seed: int) -> np.ndarray:
    signal = np.random.default_rng(seed).uniform(0, 1, size=(250, 5))  # (T, C) in the BIDMC_NAMES order
    wfdb.wrsamp(f"bidmc{subject:02d}", fs=125, units=["pm", "NU", "mV", "mV", "mV"],
                sig_name=[BIDMC_NAMES[i] for i in order], p_signal=signal[:, order], fmt=["16"] * 5,
                write_dir=str(folder))
    return signal


def test_bidmc_wfdb_layout_with_trailing_commas(tmp_path):
    first = _write_bidmc_wfdb(tmp_path, 1, [0, 1, 2, 3, 4], seed=1)
    second = _write_bidmc_wfdb(tmp_path, 46, [4, 3, 2, 1, 0], seed=2)  # channels in reverse order
    assert wfdb.rdheader(str(tmp_path / "bidmc01")).sig_name[1] == "PLETH,"
    rec = read_bidmc_wfdb(tmp_path / "bidmc01.hea")
    assert rec.leads == ("II", "PPG") and rec.fs_hz == 125.0 and rec.signal.dtype == np.float32
    np.testing.assert_allclose(rec.signal, first[:, [4, 1]].T, atol=1e-4)
    assert rec.metadata == {"dataset": "bidmc", "subject": 1, "split": "train"}
    ds = BIDMC(tmp_path)
    assert ds.subjects == [1, 46] and ds.split("test") == [46]
    np.testing.assert_allclose(ds.record(46).signal, second[:, [4, 1]].T, atol=1e-4)
    assert ds.summary()["layout"] == "wfdb"


def test_bidmc_wfdb_without_pleth(tmp_path):
    wfdb.wrsamp("bidmc03", fs=125, units=["mV"], sig_name=["II,"], p_signal=np.zeros((10, 1)), fmt=["16"],
                write_dir=str(tmp_path))
    with pytest.raises(DataError) as exc:
        read_bidmc_wfdb(tmp_path / "bidmc03")
    assert "PLETH" in str(exc.value) and "bidmc03" in str(exc.value)


def test_bidmc_folder_without_records(tmp_path):
    with pytest.raises(DataError, match="no BIDMC records"):
        BIDMC(tmp_path)


# -- NPY -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["CT", "TC"])
def test_npy_in_either_orientation(tmp_path, synthetic_record, layout):
    three = synthetic_record.select(["II", "V1", "V5"]).signal
    np.save(tmp_path / "x.npy", three if layout == "CT" else three.T)
    rec = read_npy(tmp_path / "x.npy", fs_hz=100, leads=["II", "v1", "V5"])
    assert rec.leads == ("II", "V1", "V5") and rec.fs_hz == 100
    np.testing.assert_array_equal(rec.signal, three)
    via_read_record = read_record(tmp_path / "x.npy", fs_hz=100, leads=["II", "V1", "V5"], target_fs_hz=500)
    assert via_read_record.signal.shape == (3, 5000)


def test_npy_in_microvolts(tmp_path):
    np.save(tmp_path / "uv.npy", np.array([[1000.0, -500.0, 0.0]]))
    rec = read_npy(tmp_path / "uv.npy", fs_hz=250, leads=["II"], units="uV")
    np.testing.assert_allclose(rec.signal, [[1.0, -0.5, 0.0]])
    assert rec.units == ("mV",)


# -- transforms ----------------------------------------------------------------------------------------------


def test_remove_baseline_removes_slow_drift_and_keeps_the_beats(synthetic_record):
    fs = synthetic_record.fs_hz
    t = np.arange(synthetic_record.n_samples) / fs
    drift = 0.8 * np.sin(2 * np.pi * 0.1 * t) + 0.3  # 0.1 Hz wander plus an offset
    clean = remove_baseline(synthetic_record.signal, fs)
    drifted = remove_baseline(synthetic_record.signal + drift, fs)
    assert drifted.dtype == np.float32 and drifted.shape == synthetic_record.signal.shape
    inner = slice(int(fs), -int(fs))
    assert np.abs(drifted - clean)[:, inner].max() < 0.05  # the drift is gone
    assert np.abs(remove_baseline(drift[None], fs)[:, inner]).max() < 0.05
    qrs = np.ptp(synthetic_record.channel("II"))
    assert np.ptp(drifted[1]) == pytest.approx(qrs, rel=0.2)  # the beats are not


def test_bandpass_keeps_the_band_and_drops_dc_and_mains(synthetic_record):
    fs = 500.0
    t = np.arange(int(10 * fs)) / fs
    inside = np.sin(2 * np.pi * 10 * t)
    x = np.stack([inside + 2.0, inside + 0.5 * np.sin(2 * np.pi * 100 * t)])
    y = bandpass(x, fs, low_hz=0.5, high_hz=40.0)
    inner = slice(int(2 * fs), -int(2 * fs))  # the 0.5 Hz edge rings for over a second at each end
    np.testing.assert_allclose(y[:, inner], np.stack([inside, inside])[:, inner], atol=0.03)
    # At 100 Hz the upper edge is clipped below Nyquist instead of failing.
    assert bandpass(synthetic_record.signal, 100.0, high_hz=60.0).shape == synthetic_record.signal.shape
    with pytest.raises(DataError, match="empty"):
        bandpass(x, fs, low_hz=50.0, high_hz=40.0)
    with pytest.raises(DataError, match="too short"):
        bandpass(x[:, :10], fs)


def test_transforms_do_not_mutate_their_input(synthetic_record):
    before = synthetic_record.signal.copy()
    remove_baseline(synthetic_record.signal, 100.0)
    bandpass(synthetic_record.signal, 100.0)
    standardise(synthetic_record.signal)
    windows(synthetic_record.signal, 100.0, window_s=2.0)
    np.testing.assert_array_equal(synthetic_record.signal, before)


def test_windows_with_stride():
    x = np.arange(2 * 1000, dtype=np.float32).reshape(2, 1000)
    out, starts = windows(x, 100.0, window_s=2.0, stride_s=1.0)
    assert out.shape == (9, 2, 200) and starts.tolist() == list(range(0, 801, 100))
    for w, s in zip(out, starts):
        np.testing.assert_array_equal(w, x[:, s : s + 200])
    out, starts = windows(x, 100.0, window_s=3.0)  # no stride: back to back, tail dropped
    assert out.shape == (3, 2, 300) and starts.tolist() == [0, 300, 600]


def test_windows_with_pad_cover_the_tail():
    x = np.arange(1050, dtype=np.float32)[None] + 1
    out, starts = windows(x, 100.0, window_s=2.0, stride_s=1.0, pad=True)
    assert starts.tolist() == list(range(0, 901, 100))
    np.testing.assert_array_equal(out[-1, 0, :150], x[0, 900:])
    np.testing.assert_array_equal(out[-1, 0, 150:], 0)
    covered = np.zeros(1050, bool)
    for s in starts:
        covered[s : s + 200] = True
    assert covered.all()
    short, starts = windows(x[:, :50], 100.0, window_s=2.0, pad=True)  # shorter than one window
    assert short.shape == (1, 1, 200) and starts.tolist() == [0] and short[0, 0, 50:].max() == 0
    with pytest.raises(DataError, match="shorter than one"):
        windows(x[:, :50], 100.0, window_s=2.0)


@pytest.mark.parametrize(("n", "window_s", "stride_s"), [(13, 2, 5), (1050, 2, 1), (1000, 2, 3), (7, 3, 1)])
def test_padded_windows_never_start_past_the_end(n, window_s, stride_s):
    """A padded window that starts after the last sample would be all zeros: junk in a training set."""
    x = np.ones((1, n), dtype=np.float32)
    out, starts = windows(x, 1.0, window_s=window_s, stride_s=stride_s, pad=True)
    assert (starts < n).all()
    assert (out.reshape(len(out), -1).max(axis=1) == 1).all()


def test_windows_refuse_non_positive_sizes():
    with pytest.raises(DataError, match="must be positive"):
        windows(np.zeros((1, 100)), 100.0, window_s=0.001)


def test_standardise_is_per_lead_and_undoable():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 500)) * [[0.1], [2.0], [5.0]] + [[1.0], [-3.0], [0.0]]).astype(np.float32)
    z, mean, std = standardise(x)
    assert z.dtype == np.float32 and mean.shape == std.shape == (3, 1)
    np.testing.assert_allclose(z.mean(axis=-1), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=-1), 1, atol=1e-4)
    np.testing.assert_allclose(z * std + mean, x, atol=1e-5)
    flat, _, _ = standardise(np.full((1, 10), 2.5, dtype=np.float32))  # a flat lead: no NaN
    np.testing.assert_array_equal(flat, 0)


def test_read_record_dispatches_bidmc_wfdb_records(tmp_path):
    _write_bidmc_wfdb(tmp_path, 7, [0, 1, 2, 3, 4], seed=3)
    assert record_format(tmp_path / "bidmc07") == "bidmc_wfdb"
    rec = read_record(tmp_path / "bidmc07.hea")
    assert rec.leads == ("II", "PPG") and rec.metadata["subject"] == 7


def test_non_ascii_microvolt_header_is_not_misread_as_volts(tmp_path, synthetic_record):
    """wfdb parses 'μV' as 'V'; the reader takes the unit from the header text instead."""
    write_wfdb(synthetic_record.select(["I", "II"]), tmp_path / "r")
    hea = tmp_path / "r.hea"
    # Same digital values, gain now per µV: physical values must come out 1000x smaller in mV.
    hea.write_text(hea.read_text().replace("/mV", "/μV"), encoding="utf-8")
    rec = read_record(tmp_path / "r")
    np.testing.assert_allclose(rec.signal, synthetic_record.select(["I", "II"]).signal / 1000, atol=2e-6)
    assert rec.units == ("mV", "mV")


def test_wfdb_metadata_round_trips_through_header_comments(tmp_path, synthetic_record):
    rec = Record(synthetic_record.signal, 100, synthetic_record.leads,
                 metadata={"report": "sinus rhythm, LVH", "age": 63, "labels": ["NORM"]})
    write_wfdb(rec, tmp_path / "m")
    back = read_record(tmp_path / "m")
    assert back.metadata["report"] == "sinus rhythm, LVH"
    assert back.metadata["age"] == 63 and back.metadata["labels"] == ["NORM"]


def test_baseline_filter_edges_do_not_ring(synthetic_record):
    """A pure 0.05 Hz drift is removed everywhere, the first and last second included."""
    t = np.arange(1000) / 100.0
    drift = np.tile(0.5 * np.sin(2 * np.pi * 0.05 * t), (2, 1)).astype(np.float32)
    out = remove_baseline(drift, 100.0)
    assert np.abs(out).max() < 0.05


def test_a_csv_whose_times_are_printed_in_milliseconds_keeps_its_whole_rate(tmp_path):
    from synth.data.readers import read_csv

    path = tmp_path / "r360.csv"
    path.write_text("time_s,II\n" + "".join(f"{i / 360:.3f},0.1\n" for i in range(3000)))
    assert read_csv(path).fs_hz == 360.0
    exact = tmp_path / "r333.csv"  # a rate that is not whole, with exact times, stays as it is
    exact.write_text("time_s,II\n" + "".join(f"{i / 333.5:.9f},0.1\n" for i in range(3000)))
    assert abs(read_csv(exact).fs_hz - 333.5) < 1e-3
