"""PPG → ECG lead II: any PPG rate and length (at least one window), real ECG overlaid when the input has one."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from synth.cli import main
from synth.data.leads import LEADS_12
from synth.data.readers import read_record
from synth.data.record import Record
from synth.data.sample import sample_bidmc_root
from synth.errors import DataError
from synth.tasks import ppg_to_ecg, read_ppg
from synth.tasks.ppg2ecg import agreement

BIDMC_46 = next((sample_bidmc_root() / "bidmc_csv").glob("bidmc_46_Signals.csv*"))


class Invert:
    """A fake PPG model: the ECG is minus the PPG window (checks windows, rates and stitching, not quality)."""

    cfg = SimpleNamespace(signal=SimpleNamespace(channels=1, length=128, fs_hz=125.0))
    conditioning = SimpleNamespace(keys=frozenset({"ppg"}))

    def sample(self, cond, num_samples, *, steps=None, guidance_scale=1.0, generator=None):
        assert cond["ppg"].shape == (num_samples, 1, 128)
        return -cond["ppg"] + 0.0 * torch.randn(num_samples, 1, 1, generator=generator)


def ppg_record(fs_hz: float, duration_s: float) -> Record:
    t = np.arange(int(round(fs_hz * duration_s))) / fs_hz
    return Record(np.sin(2 * np.pi * 1.2 * t)[None], fs_hz, ("PPG",), ("au",), source="ppg.npy")


@pytest.mark.parametrize(("fs_hz", "duration_s"), [(125.0, 1.024), (125.0, 30.0), (250.0, 12.0), (64.0, 5.0)])
def test_any_rate_and_length_at_least_one_window(fs_hz, duration_s):
    rec = ppg_record(fs_hz, duration_s)
    out = ppg_to_ecg(Invert(), rec, progress=False).ecg
    assert out.leads == ("II",) and out.fs_hz == fs_hz and out.n_samples == rec.n_samples
    if fs_hz == 125.0:
        np.testing.assert_allclose(out.signal[0], -rec.signal[0], atol=1e-5)
    else:  # resampled to 125 Hz and back
        assert np.corrcoef(out.signal[0][5:-5], -rec.signal[0][5:-5])[0, 1] > 0.99


def test_too_short_flat_and_nan_ppg_are_refused():
    with pytest.raises(DataError, match=r"ppg.npy: PPG of 1.00 s is shorter than one model window \(give at least "
                                        r"1.024 s of PPG\)"):
        ppg_to_ecg(Invert(), ppg_record(125.0, 1.0))
    flat = Record(np.ones((1, 500)), 125.0, ("PPG",), source="flat.csv")
    with pytest.raises(DataError, match="flat"):
        ppg_to_ecg(Invert(), flat)
    x = ppg_record(125.0, 4.0).signal
    x[0, 3] = np.nan
    with pytest.raises(DataError, match="missing"):
        ppg_to_ecg(Invert(), Record(x, 125.0, ("PPG",)))


def test_read_ppg_from_bidmc_a_named_csv_column_and_npy(tmp_path):
    rec = read_ppg(BIDMC_46)
    assert rec.leads == ("II", "PPG") and rec.fs_hz == 125
    path = tmp_path / "watch.csv"
    path.write_text("t_ms,green\n" + "".join(f"{4 * i},{np.sin(i / 10):.4f}\n" for i in range(100)))
    col = read_ppg(path, column="GREEN", fs_hz=250)
    assert col.leads == ("PPG",) and col.fs_hz == 250 and col.n_samples == 100
    with pytest.raises(DataError, match="no column 'red'; columns are t_ms, green"):
        read_ppg(path, column="red", fs_hz=250)
    np.save(tmp_path / "p.npy", np.arange(50, dtype=np.float32))
    assert read_ppg(tmp_path / "p.npy", fs_hz=50).leads == ("PPG",)
    ecg_only = tmp_path / "ecg.csv"
    ecg_only.write_text("time_s,II\n0,1\n0.01,2\n0.02,3\n")
    with pytest.raises(DataError, match="record has no PPG channel; it has II"):
        read_ppg(ecg_only)


def test_read_ppg_from_wfdb(tmp_path):
    from synth.data.writers import write_record

    bidmc = read_ppg(BIDMC_46).crop(0, 10)
    write_record(bidmc, tmp_path / "subject46", "wfdb")
    rec = read_ppg(tmp_path / "subject46.hea")
    assert rec.leads == ("II", "PPG") and rec.fs_hz == 125 and rec.units == ("au", "au")
    np.testing.assert_allclose(rec.signal, bidmc.signal, atol=1e-3)


def test_agreement_of_a_signal_with_itself():
    ecg = read_record(BIDMC_46).crop(0, 20).channel("II")
    a = agreement(ecg, ecg * 3 + 1, 125.0)
    assert a["pearson_r"] == pytest.approx(1.0) and a["rmse_z"] == pytest.approx(0.0, abs=1e-6)
    assert a["hr_error_bpm"] < 1e-3 and 40 < a["hr_real_bpm"] < 160
    assert a["rpeak_error_ms_median"] == pytest.approx(0.0, abs=1e-6) and a["beats_matched"] == 1.0


def test_agreement_times_r_peaks_of_a_shifted_ecg():
    ecg = read_record(BIDMC_46).crop(0, 20).channel("II")
    shift = 5  # samples at 125 Hz = 40 ms
    a = agreement(np.roll(ecg, shift), ecg, 125.0)
    assert a["rpeak_error_ms_median"] == pytest.approx(40.0, abs=4.0)
    assert a["beats_matched"] > 0.9 and a["rpeak_error_ms_p90"] >= a["rpeak_error_ms_median"]
    flat = agreement(np.zeros_like(ecg) + np.linspace(0, 1e-3, ecg.size), ecg, 125.0)
    assert flat["beats_matched"] < 0.5


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_ppg2ecg_on_bidmc_with_samples(use_tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "p"
    code, _, err = run(["ppg2ecg", BIDMC_46, "--out", out, "--start", 10, "--duration", 12, "--samples", 2,
                        "--steps", 1], capsys)
    assert code == 0, err
    ecg = read_record(out / "ecg")
    assert ecg.leads == ("II",) and ecg.fs_hz == 125 and ecg.n_samples == 12 * 125
    assert read_record(out / "ecg_spread").signal.max() > 0 and (out / "ecg_ppg.png").exists()


def test_cli_ppg2ecg_on_a_csv_column_at_another_rate(use_tiny_checkpoints, tmp_path, capsys):
    path = tmp_path / "watch.csv"
    path.write_text("green\n" + "".join(f"{np.sin(i / 20):.4f}\n" for i in range(1000)))
    code, _, err = run(["ppg2ecg", path, "--ppg-column", "green", "--in-fs", 100, "--out", tmp_path / "o",
                        "--format", "csv"], capsys)
    assert code == 0, err
    ecg = read_record(tmp_path / "o" / "ecg.csv")
    assert ecg.fs_hz == 100 and ecg.n_samples == 1000


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--duration", 1], "PPG of 1.00 s is shorter than one model window (give at least 1.024 s of PPG)"),
     (["--samples", 0], "argument --samples: 0 is outside the range 1-64"), (["--ppg-column", "nope"], "no column 'nope'")],
)
def test_cli_ppg2ecg_bad_input_exits_2_and_writes_nothing(use_tiny_checkpoints, tmp_path, capsys, monkeypatch,
                                                          extra, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["ppg2ecg", BIDMC_46, "--out", "o", *extra], capsys)
    assert code == 2 and needle in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_ppg2ecg_refuses_nan_in_the_ppg(use_tiny_checkpoints, tmp_path, capsys):
    path = tmp_path / "gappy.csv"
    path.write_text("green\n" + "".join(f"{np.sin(i / 20):.4f}\n" if i != 300 else "nan\n" for i in range(1000)))
    code, _, err = run(["ppg2ecg", path, "--ppg-column", "green", "--in-fs", 100, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "gappy.csv" in err and "1 missing (NaN/inf)" in err and not (tmp_path / "o").exists()


def test_cli_ppg2ecg_refuses_an_existing_folder(use_tiny_checkpoints, tmp_path, capsys):
    (tmp_path / "o").mkdir()
    code, _, err = run(["ppg2ecg", BIDMC_46, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "already exists" in err


def test_cli_ppg2ecg_twelve_lead_chains_the_reconstruction(use_tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "p12"
    code, stdout, err = run(["ppg2ecg", BIDMC_46, "--out", out, "--start", 10, "--duration", 12, "--steps", 1,
                             "--twelve-lead"], capsys)
    assert code == 0, err
    ii, twelve = read_record(out / "ecg"), read_record(out / "ecg12")
    assert twelve.leads == LEADS_12 and twelve.fs_hz == ii.fs_hz and twelve.n_samples == ii.n_samples
    np.testing.assert_allclose(twelve.channel("II"), ii.channel("II"), atol=2e-3)  # lead II passed through
    assert "12 leads" in stdout and (out / "ecg12_overlay.png").exists()


def test_arrival_calibration_undoes_a_constant_lag():
    from synth.tasks.ppg2ecg import PPGToECG, arrival_offset_s, calibrate_arrival, shift_signal

    ecg = read_record(BIDMC_46).crop(0, 30).channel("II").astype(np.float64)
    late = shift_signal(ecg, 0.048, 125.0)  # 6 samples later, the edge held
    assert np.array_equal(late[6:], ecg[:-6]) and np.all(late[:6] == ecg[0])
    assert arrival_offset_s(late, ecg, 125.0) == pytest.approx(0.048, abs=1e-6)
    result = PPGToECG(ecg=Record(late[None].astype(np.float32), 125.0, ("II",), source="gen"),
                      samples=late[None, None].astype(np.float32), spread=np.zeros((1, late.size), np.float32))
    fixed, shift = calibrate_arrival(result, ecg, 10.0)  # measured on the first 10 s only
    assert shift == pytest.approx(-0.048, abs=1e-6) and fixed.ecg.metadata["arrival_calibration_s"] == 10.0
    assert agreement(fixed.ecg.signal[0, 1250:], ecg[1250:], 125.0)["pearson_r"] > 0.999
    assert np.array_equal(fixed.samples[0, 0], fixed.ecg.signal[0])
    with pytest.raises(DataError, match="fewer than 3 beats"):
        calibrate_arrival(PPGToECG(ecg=Record(np.zeros((1, late.size), np.float32), 125.0, ("II",)),
                                   samples=np.zeros((1, 1, late.size), np.float32),
                                   spread=np.zeros((1, late.size), np.float32)), ecg, 10.0)


def test_cli_ppg2ecg_calibrate_shifts_by_the_measured_lag_and_needs_lead_ii(use_tiny_checkpoints, tmp_path, capsys):
    code, stdout, err = run(["ppg2ecg", BIDMC_46, "--out", tmp_path / "c", "--duration", 30, "--steps", 1,
                             "--calibrate", 20], capsys)
    assert code == 0, err
    shift_ms = float(re.search(r"calibrated on the first 20 s of lead II: shifted ([+-]\d+) ms", stdout).group(1))
    code, _, err = run(["ppg2ecg", BIDMC_46, "--out", tmp_path / "u", "--duration", 30, "--steps", 1], capsys)
    assert code == 0, err
    plain, calibrated = read_record(tmp_path / "u" / "ecg").channel("II"), read_record(tmp_path / "c" / "ecg").channel("II")
    k = int(round(shift_ms / 8))  # 125 Hz: 8 ms a sample; the same draw, moved by the measured lag
    assert k != 0 and np.allclose(calibrated[abs(k):-abs(k)], np.roll(plain, k)[abs(k):-abs(k)], atol=2e-3)
    path = tmp_path / "watch.csv"
    path.write_text("green\n" + "".join(f"{np.sin(i / 20):.4f}\n" for i in range(1000)))
    code, _, err = run(["ppg2ecg", path, "--ppg-column", "green", "--in-fs", 100, "--out", tmp_path / "o",
                        "--calibrate", 5], capsys)
    assert code == 2 and "--calibrate needs an ECG lead II" in err and "watch.csv" in err
    assert not (tmp_path / "o").exists()


def test_calibrated_template_recovers_the_pulse_arrival_lag_and_the_beats(make_synthetic_record):
    """A PPG simulated 220 ms after each R-peak of a synthetic ECG whose rate varies: the lag comes back from the
    first 12 s, and the subject's beat drawn at every later onset minus that lag lands on the real R-peaks."""
    from synth.data.beats import detect_r_peaks
    from synth.data.pulse import simulate_ppg
    from synth.tasks.ppg2ecg import arrival_lag_s, calibrated_template

    fs = 125.0
    slow = make_synthetic_record(fs_hz=fs, duration_s=20.0, heart_rate_bpm=62.0).channel("II")
    fast = make_synthetic_record(fs_hz=fs, duration_s=20.0, heart_rate_bpm=84.0).channel("II")
    ecg = np.concatenate([slow, fast]).astype(np.float64)
    r = detect_r_peaks(ecg, fs)
    ppg = simulate_ppg(r, len(ecg), fs, np.random.default_rng(0), pat_s=0.22)
    out, lag = calibrated_template(ppg, ecg, fs, 12.0)
    assert lag == pytest.approx(0.22, abs=0.05), lag  # R-peak to the foot of the upstroke
    later = slice(int(12 * fs), None)
    a = agreement(out[later], ecg[later], fs)
    assert a["beats_matched"] > 0.9 and a["rpeak_error_ms_median"] < 20 and a["pearson_r"] > 0.6
    assert np.isnan(arrival_lag_s(np.array([10.0, 20.0]), r, fs))  # too few onsets
    with pytest.raises(DataError, match="fewer than 3 beats"):
        calibrated_template(ppg, np.zeros_like(ecg), fs, 12.0)
    with pytest.raises(DataError, match="does not fit"):
        calibrated_template(ppg, ecg, fs, 100.0)


def test_cli_ppg2ecg_template_needs_calibrate_and_follows_the_recorded_beats(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYNTH_CHECKPOINTS", str(tmp_path / "none"))  # no model is loaded, so none is needed
    code, _, err = run(["ppg2ecg", BIDMC_46, "--out", tmp_path / "n", "--template"], capsys)
    assert code == 2 and "--calibrate" in err and not (tmp_path / "n").exists()
    code, _, err = run(["ppg2ecg", BIDMC_46, "--out", tmp_path / "s", "--template", "--calibrate", 20,
                        "--samples", 2], capsys)
    assert code == 2 and "--samples" in err and not (tmp_path / "s").exists()
    code, stdout, err = run(["ppg2ecg", BIDMC_46, "--out", tmp_path / "t", "--duration", 60, "--template",
                             "--calibrate", 20], capsys)
    assert code == 0, err
    lag_ms = float(re.search(r"pulse arrival lag \((\d+) ms\)", stdout).group(1))
    assert 100 < lag_ms < 1000
    made = read_record(tmp_path / "t" / "ecg")
    assert made.metadata["method"] == "calibrated template"
    real = read_record(BIDMC_46).crop(0, 60).channel("II")
    a = agreement(made.channel("II")[2500:], real[2500:], 125.0)  # after the calibration stretch
    assert a["beats_matched"] > 0.8 and a["rpeak_error_ms_median"] < 30 and a["pearson_r"] > 0.3
    assert (tmp_path / "t" / "ecg_ppg.png").exists()


def test_beat_template_adapter_passes_the_signal_and_treats_nan_as_absent():
    from synth.conditioning.ppg import BeatTemplateAdapter
    from synth.conditioning.stack import ConditioningStack
    from synth.config import SignalConfig

    signal = SignalConfig(channels=1, length=32, fs_hz=125.0)
    adapter = BeatTemplateAdapter(BeatTemplateAdapter.Config(), dim=8, signal=signal)
    stack = ConditioningStack({"template": adapter}, 8).eval()
    x = torch.randn(3, 1, 32)
    x[1] = float("nan")  # no calibration ECG for this one
    c = stack({"template": x}, 3)
    torch.testing.assert_close(c.channels[[0, 2]], x[[0, 2]])
    assert torch.all(c.channels[1] == 0) and c.mask[:, 0].all()  # absent: zeroed, its null token
    torch.testing.assert_close(c.tokens[1, 0], stack.null_tokens[0] + stack.modality_embedding[0])
    assert torch.all(stack({}, 2).channels == 0)
    with pytest.raises(ValueError, match=r"\(B, 1, 32\)"):
        stack({"template": torch.zeros(2, 1, 31)}, 2)


def test_bidmc_windows_with_a_calibration_ecg_carry_the_template_after_it(make_synthetic_record):
    from synth.data.beats import detect_r_peaks
    from synth.data.pulse import simulate_ppg
    from synth.tasks.ppg2ecg import calibrated_template, template_channel
    from synth.training.tasks import PPGWindows

    fs = 125.0
    ecg = make_synthetic_record(fs_hz=fs, duration_s=40.0, heart_rate_bpm=70.0).channel("II").astype(np.float64)
    ppg = simulate_ppg(detect_r_peaks(ecg, fs), len(ecg), fs, np.random.default_rng(0), pat_s=0.3)
    rec = Record(np.stack([ecg, ppg]).astype(np.float32), fs, ("II", "PPG"), source="s1")
    flat = Record(np.stack([np.zeros_like(ecg), ppg]).astype(np.float32), fs, ("II", "PPG"), source="s2")
    plain = PPGWindows([rec], 500, 250)
    windows = PPGWindows([rec, flat], 500, 250, calibration_s=12.0)
    assert len(plain) == 1 + (len(ecg) - 500) // 250
    assert all(start >= 12 * fs for _, start in windows.index)  # inside the stretch the template is the answer
    x, cond = windows[0]
    assert set(cond) == {"ppg", "template"} and cond["template"].shape == (1, 500)
    assert np.corrcoef(x[0], cond["template"][0])[0, 1] > 0.6  # the subject's beats where the real ones are
    ii = ecg[: int(12 * fs)]
    scale = np.percentile(ii, 99.5) - np.percentile(ii, 0.5)
    drawn, _ = calibrated_template(ppg, ecg, fs, 12.0)
    np.testing.assert_allclose(template_channel(ppg, ecg, fs, 12.0) * scale, drawn, rtol=1e-4, atol=1e-6)
    assert np.isnan(windows[len(windows) - 1][1]["template"]).all()  # a flat calibration ECG: no template


def test_ppg_to_ecg_gives_the_template_to_a_model_that_reads_one_and_refuses_it_otherwise():
    class Copy(Invert):
        conditioning = SimpleNamespace(keys=frozenset({"ppg", "template"}))

        def sample(self, cond, num_samples, *, steps=None, guidance_scale=1.0, generator=None):
            assert cond["ppg"].shape == cond["template"].shape == (num_samples, 1, 128)
            return cond["template"]

    record = ppg_record(250.0, 12.0)
    template = np.cos(np.arange(record.n_samples) / 50.0).astype(np.float32)
    out = ppg_to_ecg(Copy(), record, template=template, progress=False)
    assert out.ecg.metadata["beat_template"] is True
    np.testing.assert_allclose(out.ecg.signal[0, 50:-50], template[50:-50], atol=0.02)  # resampled there and back
    with pytest.raises(DataError, match="takes no calibrated beat template"):
        ppg_to_ecg(Invert(), record, template=template, progress=False)
    with pytest.raises(DataError, match="samples"):
        ppg_to_ecg(Copy(), record, template=template[:-5], progress=False)


def test_a_residual_template_model_learns_the_difference_and_gets_the_template_back(make_synthetic_record):
    from synth.conditioning.ppg import BeatTemplateAdapter
    from synth.data.beats import detect_r_peaks
    from synth.data.pulse import simulate_ppg
    from synth.training.tasks import PPGWindows

    fs = 125.0
    ecg = make_synthetic_record(fs_hz=fs, duration_s=30.0, heart_rate_bpm=70.0).channel("II").astype(np.float64)
    ppg = simulate_ppg(detect_r_peaks(ecg, fs), len(ecg), fs, np.random.default_rng(0), pat_s=0.3)
    rec = Record(np.stack([ecg, ppg]).astype(np.float32), fs, ("II", "PPG"), source="s1")
    plain, res = PPGWindows([rec], 500, 250, calibration_s=12.0), PPGWindows([rec], 500, 250, calibration_s=12.0,
                                                                             residual=True)
    (x, cond), (d, _) = plain[0], res[0]
    np.testing.assert_allclose(d, x - cond["template"], atol=1e-6)
    with pytest.raises(DataError, match="calibration stretch"):
        PPGWindows([rec], 500, 250, residual=True)
    with pytest.raises(ValueError, match="p_drop: 0"):
        BeatTemplateAdapter.Config(residual=True, p_drop=0.1)

    class Zero(Invert):  # draws a zero difference: the output is the template itself
        conditioning = SimpleNamespace(keys=frozenset({"ppg", "template"}), adapters={"template": SimpleNamespace(
            keys=("template",), cfg=BeatTemplateAdapter.Config(residual=True, p_drop=0.0))})

        def sample(self, cond, num_samples, *, steps=None, guidance_scale=1.0, generator=None):
            return torch.zeros_like(cond["template"])

    record = ppg_record(125.0, 12.0)
    template = np.cos(np.arange(record.n_samples) / 50.0).astype(np.float32)
    np.testing.assert_allclose(ppg_to_ecg(Zero(), record, template=template, progress=False).ecg.signal[0], template,
                               atol=1e-5)
    with pytest.raises(DataError, match="needs a calibration ECG"):
        ppg_to_ecg(Zero(), record, progress=False)
