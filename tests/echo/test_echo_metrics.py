"""Echo metrics against closed forms and the simulator's own ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.echo import EchoEncoder, EncoderConfig, extrema_times, lv_area_curve, ssim_psnr, timing_errors
from synth.echo.simulator import PhantomParams, simulate


def test_extrema_of_a_cosine_curve():
    fps = 20.0
    t = np.arange(60) / fps
    curve = 100 + 10 * np.cos(2 * np.pi * (t - 0.5))  # maxima at 0.5, 1.5, 2.5 s; minima at 1.0, 2.0 s
    assert np.allclose(extrema_times(curve, fps, kind="max"), [0.5, 1.5, 2.5], atol=0.02)
    assert np.allclose(extrema_times(curve, fps, kind="min"), [1.0, 2.0], atol=0.02)


def test_timing_errors_signed_ms_and_misses():
    errors, misses = timing_errors(np.array([0.52, 1.45]), np.array([0.5, 1.5, 2.4]), duration_s=3.0)
    assert errors == pytest.approx([20.0, -50.0]) and misses == 1


def test_ssim_psnr_identity_and_noise():
    x = torch.rand(2, 1, 4, 32, 32) * 2 - 1
    ssim, psnr = ssim_psnr(x, x)
    assert np.allclose(ssim, 1.0, atol=1e-5) and np.all(psnr > 60)
    noisy = (x + 0.2 * torch.randn_like(x)).clamp(-1, 1)
    ssim_n, psnr_n = ssim_psnr(noisy, x)
    assert np.all(ssim_n < 0.95) and np.all(psnr_n < psnr)


def test_video_area_curve_tracks_the_simulated_lv(synthetic_record):
    clip = simulate(synthetic_record.signal, 100.0, frames=32, fps=16.0, params=PhantomParams(ef=0.6), seed=1)
    video = torch.from_numpy(clip.video)[None] * 2 - 1
    measured = lv_area_curve(video)
    assert np.corrcoef(measured, clip.lv_area_px)[0, 1] > 0.8


def test_encoder_shapes():
    enc = EchoEncoder(EncoderConfig(size=32, feature_dim=16))
    x = torch.rand(2, 1, 8, 48, 48) * 2 - 1
    assert enc(x).shape == (2,) and enc.frame_features(x).shape == (2, 8, 16)


def test_bench_echo_end_to_end_on_tiny_parts(tmp_path, tiny_echo_model, make_synthetic_record):
    """Simulated data → encoder training → synth bench echo with a tiny untrained prior: every figure is written."""
    import json

    from evaluation.echo import load_echo_encoder, run_echo_bench, train_echo_encoder
    from synth.checkpoint import save_pretrained
    from synth.echo.dataset import ClipSpec, EchoTensors, build_dataset

    specs = [ClipSpec(make_synthetic_record(heart_rate_bpm=55 + 7 * i), split, 0.3 * i, f"SIM{i:03d}", i)
             for i, split in enumerate(["TRAIN"] * 4 + ["VAL"] * 2 + ["TEST"] * 3)]
    root = build_dataset(tmp_path / "sim", specs, frames=8, fps=4.0, progress=False)
    train, val = EchoTensors(root, "TRAIN", size=16), EchoTensors(root, "VAL", size=16)
    train_echo_encoder(train, val, tmp_path / "enc", steps=2, batch_size=2, eval_every=1)
    assert load_echo_encoder(tmp_path / "enc").cfg.size == 16
    model_dir = save_pretrained(tiny_echo_model, tmp_path / "model")
    report = run_echo_bench(model_dir, root, tmp_path / "enc", tmp_path / "bench", n=3, steps=2, batch_size=2,
                            n_boot=5, progress=False)
    saved = json.loads((tmp_path / "bench" / "report.json").read_text())
    assert saved["clips"] == 3 and report["frame_fd"]["fd"]["estimate"] >= 0
    assert 0 < saved["ssim"]["tokenizer_reconstruction"]["estimate"] <= 1
    assert saved["seconds_per_video"]["batch1"] > 0
    assert "ED vs R-peak" in (tmp_path / "bench" / "report.md").read_text()
    for name in ("pixels_16x16", "random_cnn"):  # the generic feature spaces, each with its floor
        assert saved["frame_fd_generic"][name]["fd"]["estimate"] >= 0 and "fd_floor" in saved["frame_fd_generic"][name]
    assert saved["motion"]["real"]["mean_change"] > 0


def test_generic_frame_features_are_fixed_and_tell_textures_apart():
    import torch

    from evaluation.echo import motion_statistics, pixel_features, random_cnn_features
    from evaluation.frechet import frechet_distance

    gen = torch.Generator().manual_seed(0)
    smooth = torch.randn(40, 1, 6, 32, 32, generator=gen).cumsum(-1).cumsum(-2) * 0.01
    speckle = torch.randn(40, 1, 6, 32, 32, generator=gen) * 0.3
    assert pixel_features(smooth).shape == (240, 256)
    a, b = random_cnn_features(smooth), random_cnn_features(smooth)
    assert a.shape == (240, 64) and (a == b).all()  # the same random weights on every call
    same = frechet_distance(random_cnn_features(speckle[:20]), random_cnn_features(speckle[20:]))
    other = frechet_distance(random_cnn_features(speckle), random_cnn_features(smooth))
    assert other > 10 * same
    still = motion_statistics(smooth[:, :, :1].expand(-1, -1, 6, -1, -1))
    assert still["mean_change"] == 0 and motion_statistics(speckle)["mean_change"] > 0.1
