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
