"""The ECG-derived cardiac phase: features per frame, the echo_phase adapter, and the token transformer's
per-frame condition channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synth.config import SignalConfig
from synth.echo.adapters import EchoParamsAdapter, EchoPhaseAdapter
from synth.echo.timing import PHASE_FEATURES, BeatTimes, phase_features, pseudo_ecg
from synth.generative.networks.token_transformer import TokenTransformer

ROW = {name: i for i, name in enumerate(PHASE_FEATURES)}


def test_phase_features_follow_the_beats():
    beats = BeatTimes(r_s=np.array([0.5, 1.5]), t_end_s=np.array([0.85, 1.85]), rr_s=np.array([1.0, 1.0]))
    t = np.array([0.0, 0.5, 0.7, 1.0, 1.49, 1.6, 2.6])
    f = phase_features(beats, t)
    assert f.shape == (len(PHASE_FEATURES), len(t))
    assert np.all(f[ROW["present"]] == 1)
    # Before the first beat the previous one is extrapolated one R-R earlier (R at -0.5 s, T-end at -0.15 s).
    np.testing.assert_allclose(f[ROW["since_r_s"]], [0.5, 0.0, 0.2, 0.5, 0.99, 0.1, 0.1], atol=1e-6)
    np.testing.assert_array_equal(f[ROW["systole"]], [0, 1, 1, 0, 0, 1, 1])
    np.testing.assert_allclose(f[ROW["systole_fraction"]][[1, 2]], [0.0, 0.2 / 0.35], atol=1e-6)
    np.testing.assert_allclose(f[ROW["diastole_fraction"]][[0, 3]], [0.15 / 0.65, 0.15 / 0.65], atol=1e-6)
    np.testing.assert_allclose(f[ROW["cos_cycle"]][1], 1.0, atol=1e-6)  # at an R-peak the cycle restarts
    assert np.all(phase_features(None, t) == 0)  # timing unknown


def test_phase_adapter_finds_the_r_peaks_of_an_ecg():
    signal = SignalConfig(channels=1, length=32, fs_hz=16.0)
    adapter = EchoPhaseAdapter(EchoPhaseAdapter.Config(), dim=8, signal=signal)
    r_s = np.array([0.25, 1.1, 1.9])
    ecg = torch.from_numpy(np.stack([pseudo_ecg(r_s, 2.0), pseudo_ecg(r_s + 0.3, 2.0)]))  # (2, 12, 200)
    out = adapter({"ecg": ecg})
    assert out.tokens.shape == (2, 1, 8) and out.channels.shape == (2, len(PHASE_FEATURES), 32)
    frames_s = np.arange(32) / 16.0
    for channels, peaks in zip(out.channels.numpy(), (r_s, r_s + 0.3)):
        assert np.all(channels[ROW["present"]] == 1)
        starts = frames_s[np.flatnonzero(np.diff(channels[ROW["since_r_s"]]) < 0) + 1]  # frames where a beat restarts
        np.testing.assert_allclose(starts, np.ceil(peaks[peaks < 2.0] * 16) / 16, atol=1.5 / 16)
    # No detectable beats (flat ECG): all zeros, including the "present" row.
    flat = adapter({"ecg": torch.zeros(1, 12, 200)})
    assert float(flat.channels.abs().max()) == 0.0


def test_params_adapter_channels_say_what_is_given():
    signal = SignalConfig(channels=1, length=8, fs_hz=4.0)
    adapter = EchoParamsAdapter(EchoParamsAdapter.Config(as_channels=True), dim=8, signal=signal)
    out = adapter({"ef": torch.tensor([50.0, float("nan")]), "heart_rate": torch.tensor([60.0, 90.0])})
    assert out.channels.shape == (2, 4, 8)
    np.testing.assert_allclose(out.channels[:, :, 0].numpy(), [[0.5, 1, 0.3, 1], [0.0, 0, 0.45, 1]], atol=1e-6)


def test_params_adapter_maps_the_asked_ef_at_sampling_only():
    import importlib.util

    signal = SignalConfig(channels=1, length=8, fs_hz=4.0)
    knots = EchoParamsAdapter.Config(as_channels=True, ef_asked=[30.0, 50.0, 70.0], ef_given=[20.0, 50.0, 80.0])
    mapped = EchoParamsAdapter(knots, dim=8, signal=signal)
    plain = EchoParamsAdapter(EchoParamsAdapter.Config(as_channels=True), dim=8, signal=signal)
    plain.load_state_dict(mapped.state_dict())
    asked = torch.tensor([25.0, 40.0, 60.0, 75.0, float("nan")])
    given = mapped.given_ef(asked)
    np.testing.assert_allclose(given[:4].numpy(), [20.0, 35.0, 65.0, 80.0])  # held at the end knots
    assert torch.isnan(given[4])
    hr = torch.full((5,), 70.0)
    mapped.eval(), plain.eval()
    a, b = mapped({"ef": asked, "heart_rate": hr}), plain({"ef": given, "heart_rate": hr})
    torch.testing.assert_close(a.tokens, b.tokens)
    torch.testing.assert_close(a.channels, b.channels)
    mapped.train(), plain.train()  # training sees the true EF
    torch.testing.assert_close(mapped({"ef": asked, "heart_rate": hr}).tokens, plain({"ef": asked, "heart_rate": hr}).tokens)
    with pytest.raises(ValueError, match="ascending"):
        EchoParamsAdapter.Config(ef_asked=[30.0, 30.0], ef_given=[20.0, 50.0])
    with pytest.raises(ValueError, match="together"):
        EchoParamsAdapter.Config(ef_asked=[30.0, 40.0])
    spec = importlib.util.spec_from_file_location(
        "echo_ef_response", Path(__file__).resolve().parents[2] / "benchmarks" / "echo_ef_response.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Given 20/40/60/80 the model draws 35/45/44/62 (a dip: noise): ask 35 for 20, 45 for 40, 62 for 80.
    assert module.inverse_knots([20, 40, 60, 80], [35, 45, 44, 62]) == ([35.0, 45.0, 62.0], [20.0, 40.0, 80.0])


def test_frame_channels_reach_only_the_tokens_of_their_time_step():
    cfg = TokenTransformer.Config(hidden_dim=16, depth=1, num_heads=2, time_tokens=2, channel_frames=4)
    net = TokenTransformer(cfg, in_channels=5, out_channels=4, cond_dim=16, cond_channels=3)
    h = torch.zeros(1, 8, 16)  # 2 time steps × 4 tokens, time-major
    channels = torch.zeros(1, 3, 8)
    base = net.add_frame_channels(h, channels)
    channels[:, :, 5] = 1.0  # a frame of the second time step
    moved = (net.add_frame_channels(h, channels) - base).abs().sum(-1)[0]  # (8,)
    assert torch.all(moved[:4] == 0) and torch.all(moved[4:] > 0)
    with pytest.raises(ValueError, match="condition channels"):
        net.add_frame_channels(h, torch.zeros(1, 3, 6))
    with pytest.raises(ValueError, match="time_tokens"):
        TokenTransformer(TokenTransformer.Config(hidden_dim=16, depth=1, num_heads=2), in_channels=5,
                         out_channels=4, cond_dim=16, cond_channels=3)
