"""Any subset of leads → 12: windows at the model's rate, output at the input's, given leads untouched."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from synth.cli import main
from synth.data.leads import LEADS_12
from synth.data.readers import read_record
from synth.data.record import Record
from synth.data.sample import sample_ptbxl_root
from synth.data.writers import write_record
from synth.errors import DataError
from synth.tasks import reconstruct

SAMPLE_RECORD = sample_ptbxl_root() / "records100" / "00000" / "00001_lr"


class LeadEcho:
    """A fake reconstruction model: every lead becomes the mean of the given leads, plus one constant per draw."""

    def __init__(self, length=64, fs_hz=100.0, noise=1.0):
        self.noise = noise
        self.cfg = SimpleNamespace(signal=SimpleNamespace(channels=12, length=length, fs_hz=fs_hz))
        self.conditioning = SimpleNamespace(keys=frozenset({"leads", "lead_mask"}))
        self.calls = []

    def sample(self, cond, num_samples, *, steps=None, guidance_scale=1.0, generator=None):
        leads, mask = cond["leads"], cond["lead_mask"]  # (B, 12, W), (B, 12)
        assert leads.shape == (num_samples, 12, self.cfg.signal.length)
        self.calls.append(mask[0].clone())
        mean = (leads * mask[..., None]).sum(1, keepdim=True) / mask.sum(1)[:, None, None]  # (B, 1, W)
        offset = self.noise * torch.randn(num_samples, 1, 1, generator=generator)
        return (mean + offset).expand(-1, 12, -1).clone()


@pytest.mark.parametrize(("fs_hz", "duration_s"), [(100.0, 0.3), (100.0, 10.0), (500.0, 4.0), (250.0, 1.0)])
def test_output_at_input_rate_and_length_with_given_leads_copied(make_synthetic_record, fs_hz, duration_s):
    record = make_synthetic_record(fs_hz=fs_hz, duration_s=duration_s)
    model = LeadEcho(noise=0.0)
    result = reconstruct(model, record, ["V5", "II", "V1"], num_samples=1, seed=0, progress=False)
    assert result.given == ("II", "V1", "V5")
    out = result.mean
    assert out.leads == LEADS_12 and out.fs_hz == fs_hz and out.n_samples == record.n_samples
    for lead in result.given:
        np.testing.assert_array_equal(out.channel(lead), record.channel(lead))
    assert torch.equal(model.calls[0], torch.tensor([n in result.given for n in LEADS_12]))
    # The fake returns the given leads' mean: stitched (and resampled there and back), the hidden leads are it.
    expect = record.select(["II", "V1", "V5"]).signal.mean(axis=0)
    if fs_hz == 100.0:
        np.testing.assert_allclose(out.channel("V3"), expect, atol=1e-5)
    else:  # through 100 Hz: what is above 50 Hz is gone
        assert np.corrcoef(out.channel("V3"), expect)[0, 1] > 0.9


def test_samples_give_a_spread_and_are_deterministic(synthetic_record):
    model = LeadEcho()
    a = reconstruct(model, synthetic_record, ["II"], num_samples=4, seed=3, progress=False)
    b = reconstruct(model, synthetic_record, ["II"], num_samples=4, seed=3, progress=False)
    c = reconstruct(model, synthetic_record, ["II"], num_samples=4, seed=4, progress=False)
    assert a.samples.shape == (4, 12, synthetic_record.n_samples)
    np.testing.assert_array_equal(a.mean.signal, b.mean.signal)
    assert not np.allclose(a.mean.signal, c.mean.signal)
    np.testing.assert_allclose(a.mean.signal, a.samples.mean(axis=0), atol=1e-6)
    assert (a.spread[LEADS_12.index("II")] == 0).all() and (a.spread[LEADS_12.index("V2")] > 0).all()


def test_missing_leads_nan_and_nothing_to_do_are_refused(synthetic_record):
    three = synthetic_record.select(["I", "II", "V2"])
    three.source = "x.hea"
    with pytest.raises(DataError, match=r"x.hea: record has no lead\(s\) V1, V5; it has I, II, V2"):
        reconstruct(LeadEcho(), three, ["II", "V1", "V5"])
    bad = synthetic_record.signal.copy()
    bad[1, 10] = np.nan
    with pytest.raises(DataError, match="1 missing"):
        reconstruct(LeadEcho(), Record(bad, 100, LEADS_12), ["II"])
    with pytest.raises(DataError, match="nothing to reconstruct"):
        reconstruct(LeadEcho(), synthetic_record, LEADS_12)
    with pytest.raises(DataError, match="--samples must be at least 1"):
        reconstruct(LeadEcho(), synthetic_record, ["II"], num_samples=0)


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_reconstruct_with_samples_writes_record_spread_table_and_plots(use_tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "rec"
    code, stdout, err = run(["reconstruct", SAMPLE_RECORD, "--leads", "3lead", "--out", out, "--samples", 2,
                             "--steps", 1], capsys)
    assert code == 0, err
    rec, truth = read_record(out / "reconstructed"), read_record(SAMPLE_RECORD)
    assert rec.leads == LEADS_12 and rec.n_samples == truth.n_samples and rec.metadata["given_leads"] == "II,V1,V5"
    np.testing.assert_allclose(rec.channel("V1"), truth.channel("V1"), atol=1e-3)  # WFDB keeps 1 µV steps
    spread = read_record(out / "reconstructed_spread")
    assert spread.channel("V1").max() == 0 and spread.channel("V3").max() > 0
    rows = {r["lead"]: r for r in csv.DictReader(open(out / "leads.csv"))}
    assert rows["II"]["given"] == "True" and rows["II"]["rmse_mv"] == "" and float(rows["V3"]["rmse_mv"]) > 0
    assert {"reconstructed_overlay.png", "reconstructed_uncertainty.png"} <= {p.name for p in out.glob("*.png")}


def test_cli_reconstruct_csv_at_another_rate_without_truth(use_tiny_checkpoints, tmp_path, capsys, synthetic_record):
    src = tmp_path / "two.csv"
    write_record(synthetic_record.select(["I", "II"]), src, "csv")
    out = tmp_path / "rec"
    code, _, err = run(["reconstruct", src, "--leads", "1lead:I", "--out", out, "--format", "npz"], capsys)
    assert code == 0, err
    rec = read_record(out / "reconstructed.npz")
    assert rec.fs_hz == 100 and rec.n_samples == synthetic_record.n_samples
    assert (out / "reconstructed_overlay.png").exists() and not (out / "reconstructed_spread.npz").exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--leads", "II,V1,V5"], "record has no lead(s) V1, V5; it has I, II"), (["--leads", "II,XYZ"], "XYZ"),
     (["--leads", "II", "--samples", 0], "argument --samples: 0 is outside the range 1-64"), (["--leads", "PPG"], "PPG cannot be given")],
)
def test_cli_reconstruct_bad_input_exits_2_and_writes_nothing(use_tiny_checkpoints, tmp_path, capsys, monkeypatch,
                                                              synthetic_record, extra, needle):
    monkeypatch.chdir(tmp_path)
    write_record(synthetic_record.select(["I", "II"]), tmp_path / "in.csv", "csv")
    code, _, err = run(["reconstruct", "in.csv", "--out", "o", *extra], capsys)
    assert code == 2 and needle in err
    assert "in.csv" in err or needle in ("XYZ", "argument --samples: 0 is outside the range 1-64")  # problems of the input name it
    assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_cli_reconstruct_refuses_nan_and_an_existing_folder(use_tiny_checkpoints, tmp_path, capsys, synthetic_record):
    sig = synthetic_record.signal.copy()
    sig[1, 5:8] = np.nan
    write_record(Record(sig, 100, LEADS_12), tmp_path / "nan.npz", "npz")
    code, _, err = run(["reconstruct", tmp_path / "nan.npz", "--leads", "II", "--out", tmp_path / "o"], capsys)
    assert code == 2 and "nan.npz" in err and "missing (NaN/inf)" in err and not (tmp_path / "o").exists()
    (tmp_path / "o").mkdir()
    code, _, err = run(["reconstruct", SAMPLE_RECORD, "--leads", "II", "--out", tmp_path / "o"], capsys)
    assert code == 2 and "already exists" in err and list((tmp_path / "o").iterdir()) == []
