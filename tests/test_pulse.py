"""PPG pulse onsets, cardiac-phase channels and the PPG simulated from an ECG's R-peaks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth.data.pulse import phase_channels, pulse_onsets, simulate_ppg

FS = 125.0


def test_onsets_are_found_a_pulse_arrival_time_after_each_r_peak():
    r = np.arange(0.6, 30.0, 0.85) * FS
    rng = np.random.default_rng(0)
    ppg = simulate_ppg(r, int(30 * FS), FS, rng, pat_s=0.30)
    onsets = pulse_onsets(ppg, FS)
    k = np.searchsorted(r, onsets) - 1
    delay = (onsets[k >= 0] - r[k[k >= 0]]) / FS
    assert len(onsets) >= len(r) - 2  # every beat, bar the edges
    assert np.median(delay) == pytest.approx(0.30 + 0.0, abs=0.03)  # the foot is the arrival, give or take
    assert np.std(delay) < 0.02  # 8 ms of simulated jitter plus the detector's own


def test_onsets_survive_baseline_wander_scaling_and_clipping():
    r = np.arange(0.5, 20.0, 0.7) * FS
    ppg = simulate_ppg(r, int(20 * FS), FS, np.random.default_rng(1), pat_s=0.25)
    t = np.arange(len(ppg)) / FS
    hard = np.clip(ppg * 300 + 40 * np.sin(2 * np.pi * 0.1 * t), -np.inf, np.percentile(ppg * 300, 97))
    a, b = pulse_onsets(ppg, FS), pulse_onsets(hard, FS)
    assert abs(len(a) - len(b)) <= 1
    pairs = np.abs(b[:, None] - a[None, :]).min(axis=1) / FS
    assert np.median(pairs) < 0.02
    assert len(pulse_onsets(np.zeros(500), FS)) == 0 and len(pulse_onsets(np.ones(50), FS)) == 0


def test_phase_channels_cycle_between_references():
    refs = np.array([100.0, 200.0, 300.0])
    ch = phase_channels(refs, 400, FS)
    assert ch.shape == (3, 400) and ch.dtype == np.float32
    np.testing.assert_allclose(ch[1, [100, 200, 300]], 1.0, atol=1e-6)  # phase 0 at each reference: cos = 1
    np.testing.assert_allclose(ch[0, 150], 0.0, atol=1e-6)  # half-way: phase 1/2
    assert ch[2, 199] == pytest.approx(99 / FS) and ch[2, 200] == 0.0  # time since the last reference
    np.testing.assert_allclose(ch[1, 0], 1.0, atol=1e-6)  # extrapolated with the first period before it
    assert not phase_channels(np.array([10.0]), 50, FS).any()  # one beat: no phase


def test_the_ppg_adapter_gives_phase_channels_in_register_with_the_pulse():
    from synth.conditioning.ppg import PPGAdapter
    from synth.config import SignalConfig

    signal = SignalConfig(channels=1, length=500, fs_hz=FS)
    cfg = PPGAdapter.Config(as_channels=True, phase_channels=True, delay_s=0.25, hidden_channels=8)
    adapter = PPGAdapter(cfg, dim=16, signal=signal)
    r = np.arange(0.3, 4.0, 0.8) * FS
    ppg = simulate_ppg(r, 500, FS, np.random.default_rng(2), pat_s=0.25)
    out = adapter({"ppg": torch.from_numpy(ppg)[None, None]})
    assert adapter.num_channels == 4 and out.channels.shape == (1, 4, 500)
    cos = out.channels[0, 2].numpy()
    for rp in r[1:-1].astype(int):  # the reference (onset − delay) falls on the R-peaks
        window = cos[max(0, rp - 6) : rp + 7]
        assert window.max() > 0.97


def test_simulated_ppg_windows_pair_lead_ii_with_its_own_pulse(make_synthetic_record):
    from synth.training.tasks import SimulatedPPGWindows

    records = np.stack([make_synthetic_record(duration_s=10.0, heart_rate_bpm=hr).channel("II") for hr in (60, 90)])
    data = SimulatedPPGWindows(records, 100.0, 500, 250, delay_s=0.4, seed=3)
    assert len(data) == 2 * 4 and data.sample_shape == (1, 500)
    x, cond = data[5]
    again = data[5]
    assert x.shape == (1, 500) and cond["ppg"].shape == (1, 500)
    np.testing.assert_array_equal(cond["ppg"], again[1]["ppg"])  # an item depends on its index alone
    onsets = pulse_onsets(data.ppg(1), FS)
    rate = 60 * FS / np.median(np.diff(onsets))
    assert rate == pytest.approx(90, abs=3)  # the pulse follows its record's heart


def test_pretraining_on_simulated_ppg_runs_from_its_recipe(tmp_path, monkeypatch):
    from pathlib import Path

    from synth.checkpoint import load_pretrained
    from synth.data.sample import sample_ptbxl_root
    from synth.training.trainer import train_from_config

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    export = train_from_config("configs/task/ppg2ecg_sim.yaml", [
        f"data.root={sample_ptbxl_root()}", "data.cache_dir=null", f"out_dir={tmp_path / 'run'}", "steps=2",
        "batch_size=4", "val_every=2", "val_batches=1", "ckpt_every=2", "progress=false"])
    model = load_pretrained(export)
    ppg = torch.from_numpy(simulate_ppg(np.arange(0.3, 4, 0.8) * FS, 500, FS, np.random.default_rng(0)))[None, None]
    assert model.sample({"ppg": ppg}, 1, steps=1).shape == (1, 1, 500)
