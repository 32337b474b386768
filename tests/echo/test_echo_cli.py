"""``synth echo`` end to end on a shipped ECG with a tiny model, and its errors."""

from __future__ import annotations

import pytest

from synth.checkpoint import save_pretrained
from synth.cli import main
from synth.data.sample import sample_ptbxl_root
from synth.echo.video_io import read_video

RECORD = sample_ptbxl_root() / "records100" / "00000" / "00001_lr.hea"


@pytest.fixture
def tiny_export(tiny_echo_model, tmp_path):
    return save_pretrained(tiny_echo_model, tmp_path / "model")


def test_synth_echo_writes_mp4_and_filmstrip(tiny_export, tmp_path, capsys):
    out = tmp_path / "echo.mp4"
    args = ["echo", "--ecg", str(RECORD), "--out", str(out), "--model", str(tiny_export), "--frames", "12",
            "--ef", "45", "--seed", "3"]
    assert main(args) == 0
    clip = read_video(out)
    assert clip.video.shape == (1, 12, 112, 112) and clip.fps == pytest.approx(4.0)
    assert out.with_suffix(".png").stat().st_size > 5000
    assert main([*args, "--force"]) == 0
    # Same seed, same frames; the H.264 bitstream itself was seen to vary slightly between runs in one process.
    assert (read_video(out).video - clip.video).abs().mean() < 0.01
    assert "wrote" in capsys.readouterr().out


def test_synth_echo_errors_name_the_problem(tiny_export, tmp_path, capsys):
    out = tmp_path / "e.mp4"
    assert main(["echo", "--ecg", str(tmp_path / "none.hea"), "--out", str(out), "--model", str(tiny_export)]) == 2
    assert "none" in capsys.readouterr().err
    assert main(["echo", "--ecg", str(RECORD), "--out", str(out), "--model", str(tmp_path / "nomodel")]) == 2
    assert "no echo model here" in capsys.readouterr().err
    assert main(["echo", "--ecg", str(RECORD), "--out", str(out), "--model", str(tiny_export), "--frames", "64"]) == 2
    assert "need" in capsys.readouterr().err and not out.exists()
    out.write_bytes(b"x")
    assert main(["echo", "--ecg", str(RECORD), "--out", str(out), "--model", str(tiny_export)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_shipped_checkpoint_generates_from_a_shipped_ecg(tmp_path):
    from synth.echo.generate import DEFAULT_MODEL_NAME
    from synth.tasks.common import checkpoints_root

    shipped = checkpoints_root() / DEFAULT_MODEL_NAME
    if not (shipped / "config.json").is_file():
        pytest.skip(f"{shipped} is not in this checkout")
    out = tmp_path / "shipped.mp4"
    assert main(["echo", "--ecg", str(RECORD), "--out", str(out), "--ef", "35", "--seed", "0"]) == 0
    clip = read_video(out)
    assert clip.video.shape == (1, 160, 112, 112) and clip.fps == pytest.approx(16.0)  # the whole 10 s ECG
    assert float(clip.video.std()) > 0.05  # an image, not a flat field


def test_synth_echo_default_model_follows_synth_checkpoints(tiny_echo_model, tmp_path, capsys, monkeypatch):
    """Without --model, `synth echo` takes echo_maskgit from $SYNTH_CHECKPOINTS like the other task commands."""
    root = tmp_path / "ck"
    save_pretrained(tiny_echo_model, root / "echo_maskgit")
    monkeypatch.setenv("SYNTH_CHECKPOINTS", str(root))
    out = tmp_path / "env.mp4"
    assert main(["echo", "--ecg", str(RECORD), "--out", str(out)]) == 0
    assert read_video(out).video.shape[1] == 40  # the whole 10 s ECG at the tiny model's 4 fps
    monkeypatch.setenv("SYNTH_CHECKPOINTS", str(tmp_path / "empty"))
    assert main(["echo", "--ecg", str(RECORD), "--out", str(tmp_path / "none.mp4")]) == 2
    assert str(tmp_path / "empty" / "echo_maskgit") in capsys.readouterr().err


def test_a_long_clip_continues_each_window_from_the_last_without_a_cut(tiny_echo_model):
    """Window k is decoded around the codes it shares with window k - 1 (they are kept as they were) and the two
    are crossfaded over those frames; the clip covers the asked frames."""
    import torch

    from synth.data.readers import read_record
    from synth.echo.generate import ecg_condition, join_frames, layout, sample_continuous, window_starts

    lay = layout(tiny_echo_model)
    f_tok = lay.frames // tiny_echo_model.network.time_tokens
    starts = window_starts(20, lay, f_tok)
    assert starts == [0, 4, 8, 12] and join_frames(starts, lay)[:5] == [4, 5, 6, 7, 8]
    record = read_record(RECORD)
    seen = []
    original = tiny_echo_model.sample_codes

    def spy(*args, **kwargs):
        codes = original(*args, **kwargs)
        seen.append((kwargs.get("known"), codes))
        return codes

    tiny_echo_model.sample_codes = spy
    try:
        clip = sample_continuous(tiny_echo_model, ecg_condition(record, lay, starts=starts), starts, lay, ef=None,
                                 heart_rate=None, generator=torch.Generator().manual_seed(0))
    finally:
        del tiny_echo_model.sample_codes
    assert clip.shape[2] == starts[-1] + lay.frames and torch.isfinite(clip).all()
    assert seen[0][0] is None
    per_step = tiny_echo_model.process_shape[0] // tiny_echo_model.network.time_tokens
    for (known, codes), (_, before) in zip(seen[1:], seen[:-1]):
        shared = known != tiny_echo_model.mask_id
        assert shared.sum() == per_step  # one token step in common for this 2-step model
        assert torch.equal(codes[:, :per_step], before[:, -per_step:])  # continued, not redrawn


def test_join_change_is_one_for_steady_motion_and_large_at_a_cut():
    import torch

    from evaluation.echo import join_change

    t = torch.arange(40, dtype=torch.float32)
    steady = torch.sin(t / 3)[:, None, None].expand(40, 8, 8) * 0.5
    assert abs(join_change(steady, [10, 20])["ratio"] - 1.0) < 0.5
    cut = steady.clone()
    cut[20:] += 0.8
    assert join_change(cut, [20])["ratio"] > 5


def test_ef_guidance_guides_the_ef_modality_only_when_an_ef_is_asked(tiny_echo_model):
    """``ef_guidance`` becomes a per-modality guidance term on the adapter that reads ``ef``; an EF left open (NaN)
    or a weight of 0 adds none, and the term reaches the sampler."""
    import torch

    from synth.echo.generate import ef_guidance_terms, sample_videos

    name = next(n for n, a in tiny_echo_model.conditioning.adapters.items() if "ef" in a.keys)
    ecg = 0.3 * torch.randn(2, 12, tiny_echo_model.conditioning.adapters["ecg"].cfg.length)
    asked = {"ecg": ecg, "ef": torch.tensor([40.0, 60.0]), "heart_rate": torch.tensor([70.0, 80.0])}
    assert ef_guidance_terms(tiny_echo_model, 1.5, asked) == {name: 1.5}
    assert ef_guidance_terms(tiny_echo_model, 0.0, asked) is None
    assert ef_guidance_terms(tiny_echo_model, 1.5, {**asked, "ef": torch.tensor([40.0, float("nan")])}) is None
    seen = []
    original = tiny_echo_model.sample

    def spy(*args, **kwargs):
        seen.append(kwargs.get("modality_guidance"))
        return original(*args, **kwargs)

    tiny_echo_model.sample = spy
    try:
        video = sample_videos(tiny_echo_model, asked, 2, guidance_scale=1.25, ef_guidance=1.0,
                              generator=torch.Generator().manual_seed(0))
    finally:
        del tiny_echo_model.sample
    assert seen == [{name: 1.0}] and torch.isfinite(video).all()


def test_synth_echo_does_not_write_into_the_model_folder(tiny_export, tmp_path, capsys):
    before = sorted(p.name for p in tiny_export.iterdir())
    out = tiny_export / "clip.mp4"
    assert main(["echo", "--ecg", str(RECORD), "--out", str(out), "--model", str(tiny_export)]) == 2
    assert "lies inside this run's input folder (--model)" in capsys.readouterr().err
    assert sorted(p.name for p in tiny_export.iterdir()) == before
