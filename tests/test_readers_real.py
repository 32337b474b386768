"""Readers and datasets on the real PTB-XL subset and BIDMC in ``../shared/data``.

Counts are not hard-coded where the data README says they may grow: they are checked for consistency with
the files on disk and with each other instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import wfdb

from synth.data.bidmc import BIDMC, SPLITS, read_bidmc_csv
from synth.data.leads import LEADS_12
from synth.data.ptbxl import PTBXL, SUPERCLASSES
from synth.data.readers import read_record, read_wfdb
from synth.errors import DataError

pytestmark = pytest.mark.shared_data

# PTB-XL writes the augmented leads in capitals; the reader must match them by name, not position.
PTBXL_NAMES = {"AVR": "aVR", "AVL": "aVL", "AVF": "aVF"}


@pytest.fixture(scope="module")
def ptbxl(ptbxl_root) -> PTBXL:
    return PTBXL(ptbxl_root, 100)


@pytest.fixture(scope="module")
def ptbxl_500(ptbxl_root) -> PTBXL:
    return PTBXL(ptbxl_root, 500)


@pytest.fixture(scope="module")
def bidmc(bidmc_root) -> BIDMC:
    return BIDMC(bidmc_root)


def _record_path(ptbxl_root, fs_hz: int, ecg_id: int):
    folder = "records100" if fs_hz == 100 else "records500"
    suffix = "lr" if fs_hz == 100 else "hr"
    return ptbxl_root / folder / f"{ecg_id // 1000 * 1000:05d}" / f"{ecg_id:05d}_{suffix}"


def _wfdb_by_name(path) -> dict[str, np.ndarray]:
    raw = wfdb.rdrecord(str(path))
    assert {"AVR", "AVL", "AVF"} <= set(raw.sig_name), "PTB-XL headers spell the augmented leads in capitals"
    return {PTBXL_NAMES.get(name, name): raw.p_signal[:, i] for i, name in enumerate(raw.sig_name)}


# -- PTB-XL signals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fs_hz", "n_samples"), [(100, 1000), (500, 5000)])
def test_read_wfdb_ptbxl_record_matches_wfdb_by_name(ptbxl_root, fs_hz, n_samples):
    path = _record_path(ptbxl_root, fs_hz, 1)
    rec = read_wfdb(path, fs_hz=fs_hz).canonical_order()
    assert rec.leads == LEADS_12
    assert rec.signal.shape == (12, n_samples)
    assert rec.signal.dtype == np.float32
    assert rec.units == ("mV",) * 12
    assert rec.fs_hz == fs_hz
    expected = _wfdb_by_name(path)
    for i, lead in enumerate(LEADS_12):
        np.testing.assert_allclose(rec.signal[i], expected[lead], rtol=1e-6, atol=1e-6, err_msg=lead)
    # aVL and aVF differ on this record, so a positional swap would not pass unnoticed.
    assert not np.allclose(rec.channel("aVL"), rec.channel("aVF"), atol=0.05)


@pytest.mark.parametrize(("fs_hz", "n_samples"), [(100, 1000), (500, 5000)])
def test_ptbxl_dataset_record_matches_wfdb(ptbxl_root, ptbxl, ptbxl_500, fs_hz, n_samples):
    ds = ptbxl if fs_hz == 100 else ptbxl_500
    rec = ds.record(1)
    assert rec.leads == LEADS_12
    assert rec.signal.shape == (12, n_samples) and rec.signal.dtype == np.float32
    assert rec.units == ("mV",) * 12 and rec.fs_hz == fs_hz
    expected = _wfdb_by_name(_record_path(ptbxl_root, fs_hz, 1))
    np.testing.assert_allclose(rec.signal, np.stack([expected[n] for n in LEADS_12]), rtol=1e-6, atol=1e-6)
    assert rec.metadata["ecg_id"] == 1 and rec.metadata["dataset"] == "ptbxl"
    np.testing.assert_array_equal(ds[0].signal, ds.record(ds.ecg_ids[0]).signal)


def test_read_record_picks_wfdb_with_or_without_hea(ptbxl_root):
    path = _record_path(ptbxl_root, 100, 1)
    a = read_record(path)
    b = read_record(path.with_name(path.name + ".hea"))
    np.testing.assert_array_equal(a.signal, b.signal)


@pytest.mark.parametrize("ecg_id", [1, 2, 3, 8, 30])
def test_einthoven_and_goldberger_hold_on_real_records(ptbxl, ecg_id):
    rec = ptbxl.record(ecg_id)
    lead = {name: rec.channel(name).astype(np.float64) for name in LEADS_12}
    step = 1e-3  # PTB-XL stores 1 µV steps; the laws hold up to rounding of the stored leads
    assert np.abs(lead["III"] - (lead["II"] - lead["I"])).max() <= 1.5 * step
    assert np.abs(lead["aVR"] + (lead["I"] + lead["II"]) / 2).max() <= 2 * step
    assert np.abs(lead["aVL"] - (lead["I"] - lead["II"] / 2)).max() <= 2 * step
    assert np.abs(lead["aVF"] - (lead["II"] - lead["I"] / 2)).max() <= 2 * step
    assert np.abs(lead["II"]).max() > 0.1  # a real signal, not zeros


@pytest.mark.parametrize(
    ("dat", "header_samples"), [("00001_lr_2.dat", None), ("00001_lr_1.dat", None), (None, 1500)]
)
def test_damaged_flac_record_is_refused(ptbxl_root, tmp_path, dat, header_samples):
    for f in (ptbxl_root / "records100" / "00000").glob("00001_lr*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    if dat is not None:  # a truncated FLAC signal file
        (tmp_path / dat).write_bytes((tmp_path / dat).read_bytes()[:3000])
    if header_samples is not None:  # a header that promises more samples than the files hold
        hea = tmp_path / "00001_lr.hea"
        hea.write_text(hea.read_text().replace("00001_lr 12 100 1000", f"00001_lr 12 100 {header_samples}"))
    with pytest.raises(DataError) as exc:
        read_wfdb(tmp_path / "00001_lr")
    message = str(exc.value)
    assert str(tmp_path / "00001_lr.hea") in message and "cannot read WFDB signal data" in message


# -- PTB-XL metadata, labels and splits ----------------------------------------------------------------------


def test_ptbxl_summary_is_consistent_with_the_files(ptbxl_root, ptbxl, ptbxl_500):
    summary = ptbxl.summary()
    db = pd.read_csv(ptbxl_root / "ptbxl_database.csv")
    n_lr = len(list((ptbxl_root / "records100").rglob("*_lr.hea")))
    n_hr = len(list((ptbxl_root / "records500").rglob("*_hr.hea")))
    assert summary["records"] == len(db)
    assert summary["records_100hz"] == n_lr == len(ptbxl)
    assert summary["records_500hz"] == n_hr == len(ptbxl_500)
    assert 0 < n_hr <= n_lr
    assert sum(summary["folds"].values()) == summary["records"]
    assert set(summary["folds"]) <= set(range(1, 11))
    assert sum(summary["splits"].values()) == summary["records"]
    folds = summary["folds"]
    assert summary["splits"]["train"] == sum(folds.get(f, 0) for f in range(1, 9))
    assert summary["splits"]["val"] == folds[9]
    assert summary["splits"]["test"] == folds[10]
    assert summary["folds"] == {int(k): int(v) for k, v in db["strat_fold"].value_counts().items()}
    assert summary["patients"] == db["patient_id"].nunique()
    assert set(summary["superclasses"]) <= set(SUPERCLASSES)
    assert summary["leads"] == list(LEADS_12)


def test_ptbxl_labels_of_known_records(ptbxl):
    first = ptbxl.metadata(1)
    assert first["scp_codes"] == {"NORM": 100.0, "LVOLT": 0.0, "SR": 0.0}
    assert first["superclasses"] == ["NORM"] and first["subclasses"] == ["NORM"]
    assert first["rhythm"] == ["SR"] and first["form"] == ["LVOLT"]
    assert first["sex"] == "F" and first["age"] == 56.0
    assert first["strat_fold"] == 3 and first["split"] == "train"
    assert first["report"] == "sinusrhythmus periphere niederspannung"
    # ASMI -> MI/AMI, LAFB -> CD/LAFB/LPFB, LVH -> HYP/LVH, ISC_ -> STTC/ISC_ (scp_statements.csv);
    # SR is a rhythm statement only.
    many = ptbxl.metadata(162)
    assert many["superclasses"] == ["CD", "HYP", "MI", "STTC"]
    assert many["subclasses"] == ["AMI", "ISC_", "LAFB/LPFB", "LVH"]
    assert many["rhythm"] == ["SR"] and many["split"] == "test"


def test_ptbxl_multi_hot_matches_superclasses(ptbxl):
    labels, classes = ptbxl.subset([1, 162]).multi_hot()
    assert classes == list(SUPERCLASSES)
    assert labels.dtype == np.float32 and labels.shape == (2, 5)
    assert labels[0].tolist() == [1, 0, 0, 0, 0]
    assert labels[1].tolist() == [0, 1, 1, 1, 1]


def test_ptbxl_multi_hot_joins_label_kinds_by_name(ptbxl):
    from synth.data.ptbxl import RHYTHMS, SUBCLASSES

    labels, classes = ptbxl.subset([1, 162]).multi_hot("superclasses+subclasses+rhythm")
    assert len(classes) == len(set(classes)) == 5 + len(SUBCLASSES) - 2 + len(RHYTHMS)  # NORM, STTC shared
    assert classes[:5] == list(SUPERCLASSES) and classes[-len(RHYTHMS):] == list(RHYTHMS)
    on = [{c for c, v in zip(classes, row) if v} for row in labels]
    assert on[1] == {"CD", "HYP", "MI", "STTC", "AMI", "ISC_", "LAFB/LPFB", "LVH", "SR"}  # ecg_id 162 (see above)
    with pytest.raises(DataError, match="unknown label kind 'rythm'"):
        ptbxl.multi_hot("superclasses+rythm")


def test_ptbxl_ages_over_89_are_capped(ptbxl):
    table = ptbxl.all_records
    assert (table["age"].dropna() < 300).all()
    assert (table.loc[table["age_over_89"], "age"] == 90.0).all()


def test_ptbxl_test_split_is_fold_10_only(ptbxl):
    test = ptbxl.split("test")
    assert len(test) > 0
    assert set(test.table["strat_fold"]) == {10}
    assert len(test) == ptbxl.summary()["folds"][10]
    assert set(ptbxl.split("val").table["strat_fold"]) == {9}
    assert set(ptbxl.split("train").table["strat_fold"]) <= set(range(1, 9))
    assert len(ptbxl.split("train")) + len(ptbxl.split("val")) + len(test) == len(ptbxl)


def test_ptbxl_splits_are_patient_disjoint(ptbxl):
    patients = {name: set(ptbxl.split(name).table["patient_id"]) for name in ("train", "val", "test")}
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]


# -- BIDMC ---------------------------------------------------------------------------------------------------


def test_bidmc_has_53_subjects_split_37_8_8(bidmc):
    assert len(bidmc) == 53 and bidmc.subjects == list(range(1, 54))
    splits = {name: bidmc.split(name) for name in SPLITS}
    assert {k: len(v) for k, v in splits.items()} == {"train": 37, "val": 8, "test": 8}
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == bidmc.subjects
    assert bidmc.summary()["splits"] == {"train": 37, "val": 8, "test": 8}


def test_bidmc_subject_1_has_ii_and_ppg_at_125_hz(bidmc):
    rec = bidmc.record(1)
    assert rec.leads == ("II", "PPG")
    assert rec.fs_hz == 125.0
    assert rec.signal.dtype == np.float32 and rec.signal.shape[0] == 2
    assert rec.duration_s == pytest.approx(480, abs=1)
    assert rec.metadata["subject"] == 1 and rec.metadata["split"] == "train"
    assert rec.metadata["age"] == 88.0 and rec.metadata["sex"] == "M"
    assert np.isfinite(rec.signal).all()


# Header orders: "RESP, PLETH, V, AVR, II" and "II, PLETH, RESP, V, AVR".
@pytest.mark.parametrize("subject", [1, 2])
def test_bidmc_columns_are_found_by_name(bidmc_root, subject):
    path = bidmc_root / "bidmc_csv" / f"bidmc_{subject:02d}_Signals.csv.gz"
    frame = pd.read_csv(path)
    frame.columns = [c.strip() for c in frame.columns]
    rec = read_bidmc_csv(path)
    np.testing.assert_allclose(rec.channel("II"), frame["II"].to_numpy(np.float32))
    np.testing.assert_allclose(rec.channel("PPG"), frame["PLETH"].to_numpy(np.float32))
    assert rec.n_samples == len(frame)
    via_read_record = read_record(path, fs_hz=125)
    np.testing.assert_array_equal(via_read_record.signal, rec.signal)


def test_bidmc_limb_leads_are_read_by_name_when_asked(bidmc_root):
    """Subject 1 carries AVR, subject 47 III besides II; chest leads (V, MCL) are never returned as limb leads."""
    for subject, lead, column in ((1, "aVR", "AVR"), (47, "III", "III")):
        path = bidmc_root / "bidmc_csv" / f"bidmc_{subject:02d}_Signals.csv.gz"
        frame = pd.read_csv(path)
        frame.columns = [c.strip() for c in frame.columns]
        rec = read_bidmc_csv(path, limb_leads=True)
        assert rec.leads == ("II", "PPG", lead) and rec.units == ("au",) * 3
        np.testing.assert_allclose(rec.channel(lead), frame[column].to_numpy(np.float32))
        np.testing.assert_allclose(rec.channel("II"), frame["II"].to_numpy(np.float32))
        assert read_bidmc_csv(path).leads == ("II", "PPG")


def test_bidmc_header_orders_really_differ(bidmc_root):
    """Guards the previous test: it only proves something if the two files order their columns differently."""
    files = [bidmc_root / "bidmc_csv" / f"bidmc_{s:02d}_Signals.csv.gz" for s in (1, 2)]
    order = [[c.strip() for c in pd.read_csv(f, nrows=0).columns] for f in files]
    assert order[0].index("II") != order[1].index("II")
