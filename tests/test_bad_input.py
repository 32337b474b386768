"""Bad input: every refusal is a :mod:`synth.errors` type whose message names the file and the problem.

All files here are written by the tests themselves (mostly with the project's own writers, then damaged).
"""

from __future__ import annotations

import numpy as np
import pytest
import wfdb

from synth.data.ptbxl import PTBXL
from synth.data.readers import read_csv, read_npy, read_npz, read_record, read_wfdb
from synth.data.record import Record
from synth.data.writers import write_csv, write_npz, write_record, write_wfdb
from synth.errors import DataError, MissingFileError, OutputExistsError


def _two_lead_record(n_samples: int = 1000, fs_hz: float = 100.0, **kwargs) -> Record:
    t = np.arange(n_samples) / fs_hz
    signal = np.stack([np.sin(2 * np.pi * 1.2 * t), 0.5 * np.cos(2 * np.pi * 1.2 * t)]).astype(np.float32)
    return Record(signal, fs_hz, kwargs.pop("leads", ("I", "II")), **kwargs)


def _edit_header(hea, old: str, new: str) -> None:
    text = hea.read_text()
    assert old in text, f"{old!r} not in header:\n{text}"
    hea.write_text(text.replace(old, new, 1))


# -- missing files -------------------------------------------------------------------------------------------


def test_missing_wfdb_record(tmp_path):
    with pytest.raises(MissingFileError) as exc:
        read_wfdb(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(exc.value) and "no .hea header" in str(exc.value)
    assert isinstance(exc.value, FileNotFoundError)  # catchable by library users without knowing synth


@pytest.mark.parametrize("name", ["nope.csv", "nope.npz", "nope.npy", "bidmc_01_Signals.csv.gz", "nope.hea"])
def test_missing_file_of_every_format(tmp_path, name):
    with pytest.raises(MissingFileError) as exc:
        read_record(tmp_path / name, fs_hz=100, leads=["II"])
    assert "nope" in str(exc.value) or "bidmc_01" in str(exc.value)
    assert str(tmp_path) in str(exc.value)


def test_missing_dat_named_in_header(tmp_path):
    write_wfdb(_two_lead_record(), tmp_path / "rec")
    (tmp_path / "rec.dat").unlink()
    with pytest.raises(MissingFileError) as exc:
        read_wfdb(tmp_path / "rec")
    assert "rec.dat" in str(exc.value) and "missing" in str(exc.value)


# -- damaged WFDB --------------------------------------------------------------------------------------------


def test_header_sample_count_exceeds_the_data(tmp_path):
    write_wfdb(_two_lead_record(1000), tmp_path / "rec")
    _edit_header(tmp_path / "rec.hea", "rec 2 100 1000", "rec 2 100 1500")
    with pytest.raises(DataError) as exc:
        read_wfdb(tmp_path / "rec")
    message = str(exc.value)
    assert str(tmp_path / "rec.hea") in message and "rec.dat" in message
    assert "1500 samples" in message and "holds only 1000" in message


@pytest.mark.parametrize(("n_bytes", "frames"), [(2 * 2 * 600 + 1, 600), (2 * 2 * 600, 600), (0, 0)])
def test_truncated_dat(tmp_path, n_bytes, frames):
    write_wfdb(_two_lead_record(1000), tmp_path / "rec")
    dat = tmp_path / "rec.dat"
    dat.write_bytes(dat.read_bytes()[:n_bytes])  # 2 leads x 2 bytes per frame
    with pytest.raises(DataError) as exc:
        read_wfdb(tmp_path / "rec")
    message = str(exc.value)
    assert str(tmp_path / "rec.hea") in message and "rec.dat" in message
    assert "truncated" in message and f"holds only {frames}" in message


def test_malformed_header(tmp_path):
    (tmp_path / "rec.hea").write_text("rec two 100 1000\nrec.dat 16 200/mV I\n")
    with pytest.raises(DataError) as exc:
        read_wfdb(tmp_path / "rec")
    assert str(tmp_path / "rec.hea") in str(exc.value) and "header" in str(exc.value)


def test_unknown_lead_name_in_header(tmp_path):
    write_wfdb(_two_lead_record(leads=("I", "XYZ")), tmp_path / "rec")
    with pytest.raises(DataError) as exc:
        read_wfdb(tmp_path / "rec")
    assert "XYZ" in str(exc.value) and str(tmp_path / "rec.hea") in str(exc.value)


def test_unknown_lead_can_be_renamed_with_a_lead_map(tmp_path):
    write_wfdb(_two_lead_record(leads=("I", "XYZ")), tmp_path / "rec")
    assert read_wfdb(tmp_path / "rec", lead_map={"XYZ": "V2"}).leads == ("I", "V2")


def test_duplicate_leads_in_header(tmp_path):
    write_wfdb(_two_lead_record(leads=("II", "MLII")), tmp_path / "rec")  # two spellings of one lead
    with pytest.raises(DataError) as exc:
        read_wfdb(tmp_path / "rec")
    assert "duplicate" in str(exc.value) and "II" in str(exc.value) and "rec.hea" in str(exc.value)


# -- NaN and inf ---------------------------------------------------------------------------------------------


def test_nan_samples_are_rejected_by_default(tmp_path):
    rec = _two_lead_record()
    rec.signal[1, 300:303] = np.nan  # written as WFDB's invalid sample
    write_wfdb(rec, tmp_path / "rec")
    with pytest.raises(DataError) as exc:
        read_wfdb(tmp_path / "rec")
    message = str(exc.value)
    assert "rec.hea" in message and "NaN" in message and "'II': 3" in message and "interpolate" in message


def test_inf_samples_are_rejected(tmp_path):
    path = tmp_path / "rec.csv"
    path.write_text("time_s,I,II\n0,0.1,0.2\n0.01,inf,0.2\n0.02,0.1,-inf\n0.03,0.1,0.2\n")
    with pytest.raises(DataError) as exc:
        read_csv(path)
    assert str(path) in str(exc.value) and "2 missing (NaN/inf)" in str(exc.value)


def test_short_gap_is_interpolated_with_a_warning(tmp_path):
    rec = _two_lead_record()
    expected = rec.signal.copy()
    rec.signal[0, 300:305] = np.nan  # 50 ms at 100 Hz: under the 0.1 s limit
    write_wfdb(rec, tmp_path / "rec")
    with pytest.warns(UserWarning, match=r"interpolated 5 missing samples") as record:
        back = read_wfdb(tmp_path / "rec", nan_policy="interpolate")
    assert "rec.hea" in str(record[0].message)
    assert np.isfinite(back.signal).all()
    linear = np.interp(np.arange(300, 305), [299, 305], back.signal[0, [299, 305]])
    np.testing.assert_allclose(back.signal[0, 300:305], linear, atol=1e-6)  # a straight line across the gap
    np.testing.assert_allclose(back.signal[0, 300:305], expected[0, 300:305], atol=0.02)  # close to the sine
    np.testing.assert_allclose(back.signal[1], expected[1], atol=1e-3)


def test_inf_sample_is_written_as_invalid_without_losing_the_lead(tmp_path):
    rec = _two_lead_record()
    expected = rec.signal.copy()
    rec.signal[0, 100] = np.inf  # a finite peak must still set the gain, not the inf
    rec.signal[1, 200] = -np.inf
    write_wfdb(rec, tmp_path / "rec")
    assert wfdb.rdheader(str(tmp_path / "rec")).adc_gain == [1000.0, 1000.0]
    with pytest.raises(DataError, match="2 missing"):
        read_wfdb(tmp_path / "rec")
    with pytest.warns(UserWarning, match="interpolated 2"):
        back = read_wfdb(tmp_path / "rec", nan_policy="interpolate")
    np.testing.assert_allclose(back.signal, expected, atol=5e-3)  # linear across one sample near a peak


def test_all_nan_lead_is_written_with_the_default_gain(tmp_path):
    rec = _two_lead_record()
    rec.signal[1] = np.nan
    write_wfdb(rec, tmp_path / "rec")
    assert wfdb.rdheader(str(tmp_path / "rec")).adc_gain == [1000.0, 1000.0]
    assert np.isnan(wfdb.rdrecord(str(tmp_path / "rec")).p_signal[:, 1]).all()
    with pytest.raises(DataError, match="'II': 1000"):
        read_wfdb(tmp_path / "rec")


def test_long_gap_is_refused_even_when_interpolating(tmp_path):
    rec = _two_lead_record()
    rec.signal[1, 300:350] = np.nan  # 0.5 s
    write_npz(rec, tmp_path / "rec.npz")
    with pytest.raises(DataError) as exc:
        read_npz(tmp_path / "rec.npz", nan_policy="interpolate")
    assert "rec.npz" in str(exc.value) and "gap of 50" in str(exc.value) and "II" in str(exc.value)


def test_unknown_nan_policy(tmp_path):
    rec = _two_lead_record()
    rec.signal[0, 5] = np.nan
    write_npz(rec, tmp_path / "rec.npz")
    with pytest.raises(DataError, match="unknown NaN policy 'drop'"):
        read_npz(tmp_path / "rec.npz", nan_policy="drop")


# -- units and rates -----------------------------------------------------------------------------------------


def test_microvolt_header_is_converted_to_millivolts(tmp_path):
    digital = np.array([[0, 1000, -500, 250], [10, 20, 30, -1500]], dtype=np.int16).T.copy()  # µV at gain 1
    wfdb.wrsamp("uv", fs=500, units=["uV", "uV"], sig_name=["I", "II"], d_signal=digital, fmt=["16", "16"],
                adc_gain=[1.0, 1.0], baseline=[0, 0], write_dir=str(tmp_path))
    rec = read_wfdb(tmp_path / "uv")
    assert rec.units == ("mV", "mV")
    np.testing.assert_allclose(rec.signal, digital.T / 1000.0, atol=1e-7)


def test_requested_rate_that_disagrees_with_the_file(tmp_path):
    write_wfdb(_two_lead_record(1000, 100.0), tmp_path / "rec")
    with pytest.raises(DataError) as exc:
        read_wfdb(tmp_path / "rec", fs_hz=500)
    message = str(exc.value)
    assert "rec.hea" in message and "100 Hz" in message and "500 Hz" in message and "target_fs_hz" in message


def test_target_rate_resamples(tmp_path):
    write_wfdb(_two_lead_record(1000, 100.0), tmp_path / "rec")
    rec = read_wfdb(tmp_path / "rec", target_fs_hz=500)
    assert rec.fs_hz == 500 and rec.signal.shape == (2, 5000)
    t = np.arange(5000) / 500
    np.testing.assert_allclose(rec.signal[0, 500:-500], np.sin(2 * np.pi * 1.2 * t)[500:-500], atol=0.01)


# -- CSV -----------------------------------------------------------------------------------------------------


def test_empty_csv(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError) as exc:
        read_csv(path, fs_hz=100)
    assert str(path) in str(exc.value) and "empty" in str(exc.value)


def test_header_only_csv(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("time_s,I,II\n")
    with pytest.raises(DataError) as exc:
        read_csv(path)
    assert str(path) in str(exc.value) and "no samples" in str(exc.value)


def test_csv_without_time_column_or_rate(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("I,II\n0.1,0.2\n0.3,0.4\n")
    with pytest.raises(DataError) as exc:
        read_csv(path)
    assert str(path) in str(exc.value) and "no time column" in str(exc.value) and "fs_hz" in str(exc.value)
    assert read_csv(path, fs_hz=250).fs_hz == 250  # the documented way out


def test_csv_with_text_in_a_sample(tmp_path):
    path = tmp_path / "text.csv"
    path.write_text("time_s,I\n0,0.1\n0.01,lead-off\n")
    with pytest.raises(DataError) as exc:
        read_csv(path)
    assert str(path) in str(exc.value) and "non-numeric" in str(exc.value)


def test_csv_time_column_not_increasing(tmp_path):
    path = tmp_path / "time.csv"
    path.write_text("time_s,I\n0.02,0.1\n0.01,0.1\n0.00,0.1\n")
    with pytest.raises(DataError) as exc:
        read_csv(path)
    assert str(path) in str(exc.value) and "not increasing" in str(exc.value)


def test_headerless_csv_with_wrong_number_of_leads(tmp_path):
    path = tmp_path / "bare.csv"
    path.write_text("0.1,0.2,0.3\n0.1,0.2,0.3\n")
    with pytest.raises(DataError) as exc:
        read_csv(path, fs_hz=100, leads=["I", "II"])
    assert str(path) in str(exc.value) and "2 lead names given for 3 columns" in str(exc.value)
    assert read_csv(path, fs_hz=100, leads=["I", "II", "V1"]).leads == ("I", "II", "V1")


def test_npz_that_is_not_a_synth_record(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(DataError) as exc:
        read_npz(path)
    assert str(path) in str(exc.value) and "not a synth NPZ" in str(exc.value)


def test_npy_without_rate_or_leads(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(DataError) as exc:
        read_npy(path, leads=["I", "II"])
    assert str(path) in str(exc.value) and "fs_hz" in str(exc.value)
    with pytest.raises(DataError, match="does not fit 3 leads"):
        read_npy(path, fs_hz=100, leads=["I", "II", "III"])


# -- PTB-XL folders ------------------------------------------------------------------------------------------

SCP_STATEMENTS = (
    ",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass\n"
    "NORM,normal ECG,1.0,,,NORM,NORM\n"
    "IMI,inferior myocardial infarction,1.0,,,MI,IMI\n"
    "LVOLT,low QRS voltages,,1.0,,,\n"
    "SR,sinus rhythm,,,1.0,,\n"
)


def _tiny_ptbxl(root, synthetic_record, database: bytes | None) -> None:
    for ecg_id in (1, 2):
        write_wfdb(synthetic_record, root / "records100" / "00000" / f"{ecg_id:05d}_lr")
    (root / "scp_statements.csv").write_text(SCP_STATEMENTS)
    if database is not None:
        (root / "ptbxl_database.csv").write_bytes(database)


def test_ptbxl_database_in_latin1_loads_with_a_warning(tmp_path, synthetic_record):
    database = (
        b"ecg_id,patient_id,age,sex,report,scp_codes,strat_fold,filename_lr,filename_hr\n"
        b"1,101.0,56.0,1,sinusrhythmus periphere niederspannung,"
        b"\"{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}\",3,"
        b"records100/00000/00001_lr,records500/00000/00001_hr\n"
        b"2,102.0,300.0,0,inferiorer infarkt m\xf6glich,\"{'IMI': 35.0, 'SR': 0.0}\",10,"
        b"records100/00000/00002_lr,records500/00000/00002_hr\n"
    )
    _tiny_ptbxl(tmp_path, synthetic_record, database)
    with pytest.warns(UserWarning, match="not valid UTF-8") as record:
        ds = PTBXL(tmp_path)
    assert "ptbxl_database.csv" in str(record[0].message)
    assert len(ds) == 2
    assert ds.metadata(2)["report"] == "inferiorer infarkt möglich"
    assert ds.metadata(2)["superclasses"] == ["MI"] and ds.metadata(2)["split"] == "test"
    assert ds.metadata(2)["age"] == 90.0 and ds.metadata(2)["age_over_89"] and ds.metadata(2)["sex"] == "M"
    assert ds.metadata(1)["form"] == ["LVOLT"] and ds.metadata(1)["rhythm"] == ["SR"]
    rec = ds.record(2)
    np.testing.assert_allclose(rec.signal, synthetic_record.signal, atol=1e-3)
    assert rec.metadata["report"] == "inferiorer infarkt möglich"
    with pytest.raises(DataError, match="no record files at 500 Hz"), pytest.warns(UserWarning):
        PTBXL(tmp_path, 500)


def test_ptbxl_folder_without_database(tmp_path, synthetic_record):
    _tiny_ptbxl(tmp_path, synthetic_record, database=None)
    with pytest.raises(DataError) as exc:
        PTBXL(tmp_path)
    assert "ptbxl_database.csv" in str(exc.value) and str(tmp_path) in str(exc.value)


def test_ptbxl_folder_that_does_not_exist(tmp_path):
    with pytest.raises(MissingFileError) as exc:
        PTBXL(tmp_path / "ptbxl")
    assert str(tmp_path / "ptbxl") in str(exc.value)


# -- writing -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out", "out.npz", "out.csv"])
def test_writing_over_an_existing_output_is_refused(tmp_path, synthetic_record, name):
    first = write_record(synthetic_record, tmp_path / name)
    before = {p: p.read_bytes() for p in first}
    other = Record(-synthetic_record.signal, 100, synthetic_record.leads)
    with pytest.raises(OutputExistsError) as exc:
        write_record(other, tmp_path / name)
    assert "already exists" in str(exc.value) and str(tmp_path / "out") in str(exc.value)
    assert {p: p.read_bytes() for p in first} == before
    assert write_record(other, tmp_path / name, overwrite=True) == first
    np.testing.assert_allclose(read_record(tmp_path / name).signal, other.signal, atol=1e-3)


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*"))


def test_interrupted_npz_write_leaves_nothing(tmp_path, synthetic_record, monkeypatch):
    def boom(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(KeyboardInterrupt):
        write_npz(synthetic_record, tmp_path / "rec.npz")
    assert _leftovers(tmp_path) == []


def test_interrupted_npz_overwrite_keeps_the_old_file(tmp_path, synthetic_record, monkeypatch):
    write_npz(synthetic_record, tmp_path / "rec.npz")
    before = (tmp_path / "rec.npz").read_bytes()

    def boom(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError, match="disk full"):
        write_record(synthetic_record, tmp_path / "rec.npz", overwrite=True)
    assert _leftovers(tmp_path) == ["rec.npz"] and (tmp_path / "rec.npz").read_bytes() == before


def test_interrupted_wfdb_write_leaves_nothing(tmp_path, synthetic_record, monkeypatch):
    def boom(record_name, write_dir, **kwargs):
        from pathlib import Path

        (Path(write_dir) / f"{record_name}.dat").write_bytes(b"\x00" * 100)
        raise KeyboardInterrupt

    monkeypatch.setattr(wfdb, "wrsamp", boom)
    with pytest.raises(KeyboardInterrupt):
        write_wfdb(synthetic_record, tmp_path / "sub" / "rec")
    assert _leftovers(tmp_path) == ["sub"]


def test_interrupted_csv_write_leaves_nothing(tmp_path, synthetic_record, monkeypatch):
    def boom(fname, *args, **kwargs):
        with open(fname, "w") as fh:
            fh.write("time_s,I\n0,0.1\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savetxt", boom)
    with pytest.raises(KeyboardInterrupt):
        write_csv(synthetic_record, tmp_path / "rec.csv")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["my rec", "rec.v2", "out.edf"])
def test_wfdb_record_name_that_wfdb_cannot_write_is_refused(tmp_path, synthetic_record, name):
    with pytest.raises(DataError) as exc:
        write_record(synthetic_record, tmp_path / name)  # no .npz/.csv suffix: WFDB
    assert name in str(exc.value) and "letters, digits" in str(exc.value)
    assert _leftovers(tmp_path) == []


def test_unknown_output_format(tmp_path, synthetic_record):
    with pytest.raises(DataError, match="unknown output format 'edf'"):
        write_record(synthetic_record, tmp_path / "x.edf", fmt="edf")
