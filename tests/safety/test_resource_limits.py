"""Size limits of the long-record commands: ``reconstruct``, ``ppg2ecg`` and ``echo`` estimate the memory and the
output of a run at the input's own rate and length (and number of draws, channels, frames) and refuse one above
:data:`synth.limits.MAX_MEMORY_BYTES` / :data:`~synth.limits.MAX_OUTPUT_BYTES` with one line, exit 2, before any
model loads and with nothing written; ``--allow-large`` lets it through. Long inputs here are long in samples, not
in bytes held: a high rate and a single channel make the estimate large while the file stays a few MB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synth import limits
from synth.cli import main
from synth.data.leads import LEADS_12
from synth.data.record import Record
from synth.data.sample import sample_ptbxl_root
from synth.data.writers import write_record

RECORD_10S = sample_ptbxl_root() / "records100" / "00000" / "00001_lr.hea"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, *needles: str) -> None:
    """Exit 2 with one line ``synth: error: ...`` holding each of ``needles``."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synth: error: "), err
    for needle in needles:
        assert needle in lines[0], err


@pytest.fixture
def no_model_loads(monkeypatch):
    """Any model load fails the test: the refusals come before it."""
    import synth.checkpoint
    import synth.echo.generate
    import synth.tasks.common

    def boom(*args, **kwargs):
        pytest.fail("a model was loaded before the size check")

    monkeypatch.setattr(synth.tasks.common, "load_task_model", boom)
    monkeypatch.setattr(synth.echo.generate, "load_echo_model", boom)
    monkeypatch.setattr(synth.checkpoint, "load_pretrained", boom)


def lead_ii(tmp: Path, fs_hz: float, seconds: float, name: str = "long") -> Path:
    """A WFDB record of lead II alone (``tmp/name.hea``): ``seconds`` at ``fs_hz``."""
    t = np.arange(int(round(fs_hz * seconds)), dtype=np.float64) / fs_hz
    write_record(Record((0.8 * np.sin(2 * np.pi * 1.2 * t)).astype(np.float32)[None], fs_hz, ("II",)), tmp / name,
                 "wfdb")
    return tmp / f"{name}.hea"


def ppg_npy(tmp: Path, fs_hz: float, seconds: float, name: str = "ppg") -> Path:
    t = np.arange(int(round(fs_hz * seconds)), dtype=np.float64) / fs_hz
    x = np.sin(2 * np.pi * 1.2 * t) + 0.3 * np.sin(2 * np.pi * 2.4 * t + 1.0)
    np.save(tmp / f"{name}.npy", x.astype(np.float32)[None])
    return tmp / f"{name}.npy"


def twelve_lead(tmp: Path, fs_hz: float, seconds: float, name: str = "ecg") -> Path:
    t = np.arange(int(round(fs_hz * seconds)), dtype=np.float64) / fs_hz
    sig = np.stack([0.5 * np.sin(2 * np.pi * 1.2 * t + i) for i in range(12)]).astype(np.float32)
    write_record(Record(sig, fs_hz, LEADS_12), tmp / name, "wfdb")
    return tmp / f"{name}.hea"


# -- memory, at the input's rate --------------------------------------------------------------------------------------
def test_reconstruct_refuses_a_long_high_rate_record_before_the_model_loads(use_tiny_checkpoints, no_model_loads,
                                                                           tmp_path, capsys):
    """150 s at 10 kHz with 8 draws: every draw is resampled back to 10 kHz (12 leads, float64 working copies),
    about 4.7 GB, where the old estimate at 100 Hz said 28 MB."""
    src = lead_ii(tmp_path, 10_000.0, 150.0)
    before = sorted(tmp_path.iterdir())
    code, _, err = run(["reconstruct", src, "--leads", "II", "--out", tmp_path / "out", "--samples", 8], capsys)
    assert_refused(code, err, "long.hea", "10000 Hz", "8 draws", "GB of memory", "above the 4.0 GB limit",
                   "--allow-large")
    assert sorted(tmp_path.iterdir()) == before  # no output, no staging, no lock


def test_ppg2ecg_twelve_lead_refuses_a_long_high_rate_ppg_before_the_model_loads(use_tiny_checkpoints,
                                                                                 no_model_loads, tmp_path, capsys):
    """--twelve-lead holds 12 leads of every draw at the PPG's rate (10 kHz here), not 2 x lead II at 100 Hz."""
    src = ppg_npy(tmp_path, 10_000.0, 150.0)
    before = sorted(tmp_path.iterdir())
    code, _, err = run(["ppg2ecg", src, "--in-fs", 10_000, "--out", tmp_path / "out", "--samples", 8,
                        "--twelve-lead"], capsys)
    assert_refused(code, err, "ppg.npy", "10000 Hz", "GB of memory", "above the")
    assert sorted(tmp_path.iterdir()) == before


def test_the_memory_estimate_follows_rate_length_draws_and_channels():
    """Ten times the rate is (about) ten times the memory; so are ten times the draws; a model rate above the
    input's adds the windows at that rate; --twelve-lead adds twelve channels."""
    from synth.cli.common import TASK_BASE_BYTES, check_memory, windowed_memory

    base = windowed_memory(100_000, 1000.0, 100.0, 1, channels=12)
    assert windowed_memory(1_000_000, 10_000.0, 100.0, 1, channels=12) == pytest.approx(10 * base, rel=0.01)
    assert windowed_memory(100_000, 1000.0, 100.0, 10, channels=12) > 4 * base
    assert windowed_memory(100_000, 1000.0, 100.0, 1, channels=1) == pytest.approx(base / 12)
    assert windowed_memory(100_000, 10.0, 100.0, 1, channels=12) > 5 * base  # windows at 10x the input's rate
    rec = Record(np.zeros((1, 100_000), np.float32), 1000.0, ("PPG",))
    one = check_memory(rec, 2, allow_large=False, stages=[(1, 125.0)])
    both = check_memory(rec, 2, allow_large=False, stages=[(1, 125.0), (12, 100.0)])
    assert both - TASK_BASE_BYTES > 12 * (one - TASK_BASE_BYTES)


# -- output ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["reconstruct", "ppg2ecg"])
def test_an_output_above_the_limit_is_refused_before_the_model_loads(command, use_tiny_checkpoints, no_model_loads,
                                                                     tmp_path, capsys, monkeypatch):
    """The records written (mean, spread, 12 leads with --twelve-lead, CSV at 10 bytes a value) are counted."""
    monkeypatch.setattr(limits, "MAX_OUTPUT_BYTES", 2 * 1024**2)
    out = tmp_path / "out"
    if command == "reconstruct":  # 12 leads x 60,000 samples x 2 B (WFDB) x 2 (mean and spread): 2.9 MB
        argv = ["reconstruct", lead_ii(tmp_path, 1000.0, 60.0), "--leads", "II", "--samples", 2]
    else:  # 13 channels x 60,000 samples x 10 B (CSV): 7.8 MB
        argv = ["ppg2ecg", ppg_npy(tmp_path, 1000.0, 60.0), "--in-fs", 1000, "--twelve-lead", "--format", "csv"]
    before = sorted(tmp_path.iterdir())
    code, _, err = run([*argv, "--out", out], capsys)
    assert_refused(code, err, str(out), "MB of output", "above the 2.0 MB limit")
    assert sorted(tmp_path.iterdir()) == before


# -- --allow-large -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["reconstruct", "ppg2ecg"])
def test_allow_large_lets_a_run_above_the_limits_through(command, use_tiny_checkpoints, tmp_path, capsys,
                                                         monkeypatch):
    monkeypatch.setattr(limits, "MAX_MEMORY_BYTES", 1024**2)
    monkeypatch.setattr(limits, "MAX_OUTPUT_BYTES", 1024**2)
    if command == "reconstruct":
        argv = ["reconstruct", RECORD_10S, "--leads", "II", "--samples", 2, "--steps", 1]
    else:
        argv = ["ppg2ecg", ppg_npy(tmp_path, 125.0, 10.0), "--in-fs", 125, "--samples", 2, "--steps", 1,
                "--twelve-lead"]
    code, _, err = run([*argv, "--out", tmp_path / "refused"], capsys)
    assert_refused(code, err, "of memory", "above the 1.0 MB limit")
    assert not (tmp_path / "refused").exists()
    code, _, err = run([*argv, "--out", tmp_path / "out", "--allow-large"], capsys)
    assert code == 0, err
    assert any(p.suffix == ".hea" for p in (tmp_path / "out").iterdir())


# -- echo --------------------------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_export(tiny_checkpoints) -> Path:
    """The tests' tiny ECG -> echo export (4 fps, windows of 8 frames)."""
    return tiny_checkpoints / "echo_maskgit"


@pytest.fixture
def tiny_echo_model(tiny_export):
    from synth.echo.generate import load_echo_model

    return load_echo_model(tiny_export)


def test_echo_refuses_a_whole_long_ecg_before_the_model_loads(tiny_export, tmp_path, capsys, monkeypatch):
    """No --frames makes a clip of the whole ECG: two hours at the tiny model's 4 fps are 28,800 frames of
    112x112 (about 7 GB while the MP4 is encoded); --frames asks for less."""
    src = twelve_lead(tmp_path, 10.0, 7200.0)
    out = tmp_path / "clips" / "echo.mp4"
    out.parent.mkdir()
    import synth.echo.generate

    real_load = synth.echo.generate.load_echo_model
    loads = []

    def load(*args, **kwargs):
        if not loads:  # fail at once rather than make the 28,800 frames
            pytest.fail("the echo model was loaded before the size check")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(synth.echo.generate, "load_echo_model", load)
    code, _, err = run(["echo", "--ecg", src, "--out", out, "--model", tiny_export], capsys)
    assert_refused(code, err, "ecg.hea", "28,800 frames", "GB of memory", "above the 4.0 GB limit")
    assert list(out.parent.iterdir()) == []
    loads.append("--frames 12")
    code, _, err = run(["echo", "--ecg", src, "--out", out, "--model", tiny_export, "--frames", 12, "--quiet"],
                       capsys)
    assert code == 0, err
    assert out.is_file() and out.with_suffix(".png").is_file()


def test_echo_refuses_an_mp4_above_the_output_limit(tiny_export, no_model_loads, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(limits, "MAX_OUTPUT_BYTES", 100_000)
    out = tmp_path / "echo.mp4"
    code, _, err = run(["echo", "--ecg", RECORD_10S, "--out", out, "--model", tiny_export], capsys)
    assert_refused(code, err, str(out), "40 frames", "of output")
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_echo_allow_large_and_a_progress_bar_over_the_windows(tiny_export, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(limits, "MAX_MEMORY_BYTES", 1024**2)
    argv = ["echo", "--ecg", RECORD_10S, "--model", tiny_export]
    code, _, err = run([*argv, "--out", tmp_path / "no.mp4"], capsys)
    assert_refused(code, err, "00001_lr", "of memory", "above the 1.0 MB limit")
    code, _, err = run([*argv, "--out", tmp_path / "yes.mp4", "--allow-large"], capsys)
    assert code == 0, err
    assert "echo" in err and "window" in err  # the bar: 40 frames of the tiny model are 9 windows
    code, _, err = run([*argv, "--out", tmp_path / "quiet.mp4", "--allow-large", "--quiet"], capsys)
    assert code == 0 and "window" not in err, err


def _sample_continuous_as_before(model, ecg, starts, lay, *, generator):
    """``synth.echo.generate.sample_continuous`` before the frames were collected and joined once: the whole clip
    concatenated again after every window (quadratic in the clip's length). Kept to check the output is unchanged."""
    from synth.echo.generate import ef_guidance_terms

    tokenizer = model.autoencoder
    f_tok = lay.frames // model.network.time_tokens
    per_step = model.process_shape[0] // model.network.time_tokens
    nan = float("nan")
    clip, previous = None, None
    for k, start in enumerate(starts):
        cond = {"ecg": ecg[k : k + 1], "ef": torch.tensor([nan]), "heart_rate": torch.tensor([nan])}
        known = None
        if previous is not None and starts[k - 1] + lay.frames > start:
            shared = (starts[k - 1] + lay.frames - start) // f_tok
            known = torch.full_like(previous, model.mask_id)
            known[:, : shared * per_step] = previous[:, previous.shape[1] - shared * per_step :]
        codes = model.sample_codes(cond, 1, steps=None, guidance_scale=1.0,
                                   modality_guidance=ef_guidance_terms(model, 0.0, cond), generator=generator,
                                   known=known)
        video = tokenizer.decode(codes)
        if clip is None:
            clip = video
        elif starts[k - 1] + lay.frames <= start:
            clip = torch.cat([clip, video], dim=2)
        else:
            overlap = starts[k - 1] + lay.frames - start
            ramp = ((torch.arange(overlap, dtype=video.dtype) + 0.5) / overlap).view(1, 1, -1, 1, 1)
            blended = clip[:, :, -overlap:] * (1 - ramp) + video[:, :, :overlap] * ramp
            clip = torch.cat([clip[:, :, :-overlap], blended, video[:, :, overlap:]], dim=2)
        previous = codes
    return clip


@pytest.mark.parametrize("starts", [[0], [0, 4, 8, 12, 16, 20, 24, 28, 32], [0, 4, 12, 16, 20], [0, 8, 16]],
                         ids=["one-window", "overlapping", "mixed", "side-by-side"])
def test_echo_clip_is_unchanged_by_the_single_join_and_the_progress_bar(tiny_echo_model, starts, capsys):
    from synth.data.readers import read_record
    from synth.echo.generate import ecg_condition, layout, sample_continuous

    lay = layout(tiny_echo_model)
    ecg = ecg_condition(read_record(RECORD_10S), lay, starts=starts)
    with torch.no_grad():
        before = _sample_continuous_as_before(tiny_echo_model, ecg, starts, lay,
                                              generator=torch.Generator().manual_seed(3))
        capsys.readouterr()
        now = sample_continuous(tiny_echo_model, ecg, starts, lay, ef=None, heart_rate=None,
                                generator=torch.Generator().manual_seed(3), progress="echo")
    err = capsys.readouterr().err
    assert now.shape == before.shape == (1, 1, starts[-1] + lay.frames, *before.shape[-2:])
    assert torch.equal(now, before)  # bit for bit
    assert (f"{len(starts)}/{len(starts)}" in err) == (len(starts) > 1), err  # a bar, unless one window


# -- ppg2ecg --twelve-lead --steps -------------------------------------------------------------------------------------
def test_ppg2ecg_twelve_lead_gives_steps_to_the_reconstruction(use_tiny_checkpoints, tmp_path, capsys, monkeypatch):
    import importlib

    module = importlib.import_module("synth.tasks.reconstruct")  # synth.tasks.reconstruct is also the function
    real = module.reconstruct
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("steps"))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "reconstruct", spy)
    code, _, err = run(["ppg2ecg", ppg_npy(tmp_path, 125.0, 10.0), "--in-fs", 125, "--out", tmp_path / "out",
                        "--steps", 3, "--twelve-lead"], capsys)
    assert code == 0, err
    assert seen == [3]
