"""``synth bench ppg2ecg`` on the shipped BIDMC sample (subject 1 train, 38 val, 46 test), and its linear baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation.ppg_bench import LinearPPGBaseline
from synth.cli import main
from synth.data.sample import sample_bidmc_root


def test_linear_baseline_recovers_a_known_fir_map():
    rng = np.random.default_rng(0)
    ppg = rng.standard_normal(4000)
    z = (ppg - ppg.mean()) / ppg.std()
    ecg = 0.7 * np.roll(z, -5) - 0.3 * np.roll(z, 3)  # ECG[t] = 0.7 PPG[t+5] - 0.3 PPG[t-3]
    model = LinearPPGBaseline(half=8, ridge=1e-8).fit([(ppg, ecg)])
    pred = model.predict(ppg)
    inner = slice(20, -20)  # away from the wrap-around of np.roll
    r = np.corrcoef(pred[inner], ecg[inner])[0, 1]
    assert r > 0.99
    assert model.weights[8 + 5] == pytest.approx(0.7 / np.std(ecg), rel=0.05)


def test_bench_ppg2ecg_writes_a_report(tmp_path):
    out = tmp_path / "ppg"
    code = main(["bench", "ppg2ecg", "--generator", "baseline:linear", "--data", str(sample_bidmc_root()),
                 "--out", str(out), "--n-boot", "20", "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["subjects"] == [46] and report["windows"] == 15  # 120 s in 8 s windows
    g = report["generators"]["baseline:linear"]
    assert -1 <= g["pearson_r"]["estimate"] <= 1 and g["rmse_z"]["estimate"] > 0
    assert (out / "overlay.png").stat().st_size > 10_000 and "| baseline:linear |" in (out / "report.md").read_text()
    assert main(["bench", "ppg2ecg", "--generator", "baseline:linear", "--data", str(sample_bidmc_root()),
                 "--out", str(out), "--quiet"]) == 2  # exists, no --force
    assert main(["bench", "ppg2ecg", "--generator", "baseline:template", "--data", str(sample_bidmc_root()),
                 "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert not (tmp_path / "x").exists()


def test_bench_ppg2ecg_twelve_lead_scores_the_recorded_limb_leads(tmp_path, capsys):
    """Subject 46 of the sample has aVR on record: the 12 leads from its own lead II must find it (the reference, r
    well above 0), and those from the linear baseline's smooth lead II (no QRS complexes) must do worse."""
    out = tmp_path / "ppg12"
    code = main(["bench", "ppg2ecg", "--generator", "baseline:linear", "--data", str(sample_bidmc_root()),
                 "--out", str(out), "--n-boot", "20", "--quiet", "--twelve-lead"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    t = report["twelve_lead"]
    assert t["leads"] == {"46": ["aVR"]} and t["checkpoint"].endswith("reconstruct")
    assert t["reference_from_recorded_ii"]["estimate"] > 0.8
    limb_r = report["generators"]["baseline:linear"]["twelve_lead_r"]["estimate"]
    assert -1 <= limb_r <= 1 and limb_r < t["reference_from_recorded_ii"]["estimate"]
    assert "## 12 leads from the generated lead II" in (out / "report.md").read_text()
    assert "12-lead limb r" in capsys.readouterr().out


def test_rpeak_timing_measures_the_shift_of_each_beat(make_synthetic_record):
    from synth.data.beats import rpeak_timing

    fs = 125.0
    lead = make_synthetic_record(fs_hz=fs, duration_s=20.0).channel("II")
    shifted = np.roll(lead, 5)  # 40 ms late
    dt, beats = rpeak_timing(shifted, lead, fs)
    assert beats >= 20 and len(dt) >= beats - 1  # every beat found again (the first may fall off the edge)
    assert abs(np.median(dt) - 40.0) < 4.0
    early, _ = rpeak_timing(np.roll(lead, -5), lead, fs, signed=True)  # generated 40 ms early: a negative lag
    assert abs(np.median(early) + 40.0) < 4.0
    far, _ = rpeak_timing(np.roll(lead, 25), lead, fs)  # 200 ms: beyond the 150 ms tolerance
    assert len(far) == 0
    flat, n = rpeak_timing(np.zeros_like(lead), lead, fs)
    assert len(flat) == 0 and n == beats


def test_bench_ppg2ecg_template_needs_and_uses_the_calibration_stretch(tmp_path):
    out = tmp_path / "tmpl"
    code = main(["bench", "ppg2ecg", "--generator", "baseline:template", "--generator", "baseline:linear",
                 "--data", str(sample_bidmc_root()), "--calibration-s", "32", "--out", str(out), "--n-boot", "20",
                 "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["windows"] == 11  # 120 s in 8 s windows, the 4 touched by the 32 s stretch left out
    g = report["generators"]["baseline:template"]
    assert "median lag" in g["how"] and g["beats_matched"]["estimate"] > 0.8
    assert -1 <= g["pearson_r"]["estimate"] <= 1


def test_bench_and_cli_give_a_template_model_the_calibration_beat(tmp_path, capsys):
    """A PPG model that reads a beat template gets the subject's own, from the calibration stretch, in the bench and
    from ``synth ppg2ecg --calibrate``; without one the residual model is refused."""
    import torch
    from tasks.tiny import _dit

    from synth.checkpoint import save_pretrained
    from synth.config import model_config_from_dict
    from synth.data.readers import read_record
    from synth.generative import build_model

    cfg = _dit(1, 128, 125.0, {"ppg": {"name": "ppg", "hidden_channels": 8, "downsample": 8},
                               "template": {"name": "beat_template", "residual": True, "p_drop": 0.0}})
    torch.manual_seed(0)
    save_pretrained(build_model(model_config_from_dict(cfg)), tmp_path / "tmodel")
    out = tmp_path / "bench"
    assert main(["bench", "ppg2ecg", "--generator", str(tmp_path / "tmodel"), "--data", str(sample_bidmc_root()),
                 "--calibration-s", "32", "--out", str(out), "--n-boot", "20", "--quiet"]) == 0
    g = json.loads((out / "report.json").read_text())["generators"][str(tmp_path / "tmodel")]
    assert "beat template from the calibration stretch" in g["how"]
    assert g["beats_matched"]["estimate"] > 0.5  # an untrained difference, drawn around the subject's own beats
    bidmc = next((sample_bidmc_root() / "bidmc_csv").glob("bidmc_46_Signals.csv*"))
    assert main(["ppg2ecg", str(bidmc), "--checkpoint", str(tmp_path / "tmodel"), "--duration", "60",
                 "--calibrate", "20", "--out", str(tmp_path / "cli")]) == 0
    assert read_record(tmp_path / "cli" / "ecg").metadata["beat_template"] is True
    capsys.readouterr()
    assert main(["ppg2ecg", str(bidmc), "--checkpoint", str(tmp_path / "tmodel"), "--duration", "60",
                 "--out", str(tmp_path / "none")]) == 2
    assert "needs a calibration ECG" in capsys.readouterr().err and not (tmp_path / "none").exists()
