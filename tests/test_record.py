"""The Record data contract, and the shared-data fixture's skip/fail rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synth.data.leads import LEADS_12
from synth.data.record import Record
from synth.errors import DataError


def test_record_normalises_signal_to_float32_ct():
    rec = Record(np.arange(5, dtype=np.int64), 250, ["II"])
    assert rec.signal.shape == (1, 5) and rec.signal.dtype == np.float32 and rec.signal.flags.c_contiguous
    assert rec.leads == ("II",) and rec.units == ("mV",) and rec.fs_hz == 250.0
    assert rec.n_samples == 5 and rec.duration_s == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"signal": np.zeros((1, 2, 3)), "leads": ("I",)}, "must be (C, T)"),
        ({"signal": np.zeros((2, 3)), "leads": ("I",)}, "1 lead names for 2 signal rows"),
        ({"signal": np.zeros((2, 3)), "leads": ("I", "I")}, "duplicate"),
        ({"signal": np.zeros((2, 3)), "leads": ("I", "II"), "units": ("mV",)}, "1 units for 2 leads"),
        ({"signal": np.zeros((1, 3)), "leads": ("I",), "fs_hz": 0}, "outside the range synth reads"),
        ({"signal": np.zeros((1, 3)), "leads": ("I",), "fs_hz": float("nan")}, "outside the range synth reads"),
        ({"signal": np.zeros((1, 3)), "leads": ("I",), "fs_hz": 1e9}, r"10-10,000 Hz"),
    ],
)
def test_record_refuses_contract_violations(kwargs, needle):
    kwargs = {"fs_hz": 100, **kwargs}
    with pytest.raises(DataError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        Record(source="x.npz", **kwargs)


def test_select_and_canonical_order(synthetic_record):
    picked = synthetic_record.select(["V5", "avl", "II"])
    assert picked.leads == ("V5", "aVL", "II")
    np.testing.assert_array_equal(picked.signal[1], synthetic_record.signal[LEADS_12.index("aVL")])
    assert picked.canonical_order().leads == ("II", "aVL", "V5")
    with pytest.raises(DataError) as exc:
        Record(synthetic_record.signal[:2], 100, ("I", "II"), source="two.csv").select(["V1"])
    assert "V1" in str(exc.value) and "two.csv" in str(exc.value)
    mixed = Record(np.zeros((3, 4)), 125, ("PPG", "V1", "I"), ("au", "mV", "mV"))
    assert mixed.canonical_order().leads == ("I", "V1", "PPG")
    assert mixed.canonical_order().units == ("mV", "mV", "au") and mixed.ecg_leads == ("V1", "I")


def test_crop_keeps_offset(synthetic_record):
    part = synthetic_record.crop(2.0, 3.0)
    assert part.n_samples == 300 and part.metadata["offset_s"] == 2.0
    np.testing.assert_array_equal(part.signal, synthetic_record.signal[:, 200:500])
    assert part.crop(1.0).metadata["offset_s"] == 3.0
    with pytest.raises(DataError, match="outside the record"):
        synthetic_record.crop(10.0)


def test_synthetic_record_obeys_the_limb_lead_laws(make_synthetic_record):
    rec = make_synthetic_record(fs_hz=250, duration_s=4)
    lead = {n: rec.channel(n) for n in LEADS_12}
    assert rec.signal.shape == (12, 1000)
    np.testing.assert_allclose(lead["III"], lead["II"] - lead["I"], atol=1e-6)
    np.testing.assert_allclose(lead["aVR"] + lead["aVL"] + lead["aVF"], 0, atol=1e-6)
    again = make_synthetic_record(fs_hz=250, duration_s=4)
    np.testing.assert_array_equal(again.signal, rec.signal)  # deterministic


# -- the shared_data fixture, run in a separate pytest session with our conftest -----------------------------

USES_SHARED_DATA = """
def test_ptbxl(ptbxl_root):
    assert (ptbxl_root / "ptbxl_database.csv").exists()
"""


@pytest.fixture
def isolated(pytester, monkeypatch):
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_uses_shared=USES_SHARED_DATA)
    monkeypatch.delenv("CI", raising=False)
    return pytester


def test_missing_shared_data_skips_locally(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_SHARED_DATA", str(tmp_path / "absent"))
    result = isolated.runpytest_inprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs ../shared/data (PTB-XL subset and BIDMC, as CI has); absent here*"])


def test_missing_shared_data_fails_on_ci(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_SHARED_DATA", str(tmp_path / "absent"))
    monkeypatch.setenv("CI", "true")
    result = isolated.runpytest_inprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*CI must provide the shared data*"])


def test_shared_data_folder_from_the_environment(isolated, tmp_path, monkeypatch):
    (tmp_path / "ptbxl").mkdir()
    (tmp_path / "ptbxl" / "ptbxl_database.csv").write_text("ecg_id\n")
    monkeypatch.setenv("SYNTH_SHARED_DATA", str(tmp_path))
    isolated.runpytest_inprocess().assert_outcomes(passed=1)


def test_select_does_not_share_metadata(synthetic_record):
    rec = Record(synthetic_record.signal, 100, synthetic_record.leads, metadata={"report": "a"})
    sub = rec.select(["II"])
    sub.metadata["report"] = "b"
    assert rec.metadata["report"] == "a"


def test_ptbxl_split_summary_describes_the_split():
    from synth.data.ptbxl import PTBXL
    from synth.data.sample import sample_ptbxl_root

    ds = PTBXL(sample_ptbxl_root())
    test = ds.split("test").summary()
    assert test["records"] == len(ds.split("test")) and set(test["folds"]) == {10}
    assert ds.summary()["records"] == len(ds)
