"""The ECG-paired phantom: determinism, timing that follows the ECG, EF, and the EchoNet layout it writes."""

from __future__ import annotations

import numpy as np
import pytest

from synth.echo.echonet import EchoNet
from synth.echo.simulator import PhantomParams, simulate
from synth.echo.timing import beat_times
from synth.errors import DataError


def test_same_seed_same_video(synthetic_record):
    a = simulate(synthetic_record.signal, 100.0, frames=8, fps=16.0, seed=4)
    b = simulate(synthetic_record.signal, 100.0, frames=8, fps=16.0, seed=4)
    c = simulate(synthetic_record.signal, 100.0, frames=8, fps=16.0, seed=5)
    assert a.video.shape == (8, 112, 112) and a.video.dtype == np.float32
    assert np.array_equal(a.video, b.video) and not np.array_equal(a.video, c.video)


def test_lv_is_largest_at_r_peaks_and_smallest_at_t_ends(synthetic_record):
    clip = simulate(synthetic_record.signal, 100.0, start_s=1.0, frames=64, fps=32.0,
                    params=PhantomParams(ef=0.6), seed=0)
    beats = beat_times(synthetic_record.signal, 100.0)
    assert beats.heart_rate_bpm == pytest.approx(72.0, abs=1.0)
    for r in clip.r_s[(clip.r_s > 0.1) & (clip.r_s < 1.9)]:
        window = np.abs(np.arange(64) / 32.0 - r) < 0.3
        peak = np.flatnonzero(window)[clip.lv_volume_ml[window].argmax()] / 32.0
        assert abs(peak - r) <= 1 / 32.0 + 1e-9
    # Ejection fraction from the simulated volumes is the one asked for.
    assert 1 - clip.lv_volume_ml.min() / clip.lv_volume_ml.max() == pytest.approx(0.6, abs=0.02)
    # The cavity area shrinks in systole too (what the video-based metric measures).
    assert clip.lv_area_px.min() < 0.8 * clip.lv_area_px.max()


def test_clip_must_fit_in_the_ecg(synthetic_record):
    with pytest.raises(DataError, match="does not fit"):
        simulate(synthetic_record.signal, 100.0, start_s=9.5, frames=32, fps=16.0)


def test_build_dataset_writes_the_echonet_layout(tmp_path, make_synthetic_record):
    from synth.data.readers import read_wfdb
    from synth.echo.dataset import ClipSpec, EchoTensors, build_dataset

    specs = [ClipSpec(make_synthetic_record(heart_rate_bpm=60 + 10 * i), split, 0.5 * i, f"SIM{i:03d}", i)
             for i, split in enumerate(["TRAIN", "TRAIN", "VAL", "TEST"])]
    root = build_dataset(tmp_path / "sim", specs, frames=8, fps=8.0, progress=False)
    data = EchoNet(root)
    assert len(data) == 4 and set(data.table["Split"]) == {"TRAIN", "VAL", "TEST"}
    clip = data.clip("SIM001")
    assert clip.video.shape == (1, 8, 112, 112) and clip.fps == 8.0
    ecg = read_wfdb(root / "ECG" / "SIM001.hea")
    assert ecg.signal.shape == (12, 100) and ecg.fs_hz == 100.0
    assert np.allclose(ecg.signal, specs[1].record.signal[:, 50:150], atol=2e-3)  # the clip's own window
    assert set(data.tracings()["Frame"].groupby(data.tracings()["FileName"]).nunique()) <= {1, 2}
    tensors = EchoTensors(root, "TRAIN", size=32)
    video, cond = tensors[0]
    assert video.shape == (1, 8, 32, 32) and cond["ecg"].shape == (12, 100)
    assert float(cond["ef"]) == pytest.approx(float(data.table.loc["SIM000", "EF"]))
    assert len(tensors.r_s[0]) >= 2


def test_build_dataset_is_the_same_with_several_worker_processes(tmp_path, make_synthetic_record):
    from synth.echo.dataset import ClipSpec, build_dataset

    specs = [ClipSpec(make_synthetic_record(heart_rate_bpm=60 + 10 * i), "TRAIN", 0.5 * i, f"SIM{i:03d}", i)
             for i in range(3)]
    # Specs as a generator, as tools/make_echo_dataset.py gives them: every clip is written under its own spec
    # (walking one generator twice paired each clip with the next spec's ECG and dropped every other one).
    one = build_dataset(tmp_path / "one", (s for s in specs), frames=8, fps=8.0, progress=False)
    two = build_dataset(tmp_path / "two", (s for s in specs), frames=8, fps=8.0, progress=False, workers=2)
    assert list(EchoNet(one).table.index) == ["SIM000", "SIM001", "SIM002"]
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file() and p.name != ".synth-output.json")
    assert files == sorted(p.relative_to(two) for p in two.rglob("*")
                           if p.is_file() and p.name != ".synth-output.json") and len(files) > 6  # the mark: a time
    for f in files:
        assert (one / f).read_bytes() == (two / f).read_bytes(), f


@pytest.mark.shared_data
def test_real_ptbxl_ecg_drives_the_phantom(ptbxl_root):
    from synth.data.ptbxl import PTBXL

    record = PTBXL(ptbxl_root, 100).split("train")[0]
    clip = simulate(record.signal, record.fs_hz, frames=32, fps=16.0, seed=0)
    assert clip.video.shape == (32, 112, 112)
    assert len(clip.ed_frames) >= 1 and np.isfinite(clip.lv_area_px).all()


def test_pseudo_ecg_puts_r_peaks_and_t_ends_where_asked():
    from synth.echo.timing import pseudo_ecg

    r = np.array([0.3, 1.1, 1.9])
    x = pseudo_ecg(r, 2.5, t_end_s=r + 0.35, fs_hz=100.0)
    assert x.shape == (12, 250)
    times = beat_times(x, 100.0)
    assert np.allclose(times.r_s, r, atol=0.02)
    assert np.allclose(times.t_end_s, r + 0.35, atol=0.06)
