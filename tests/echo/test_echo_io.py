"""Video files and the EchoNet-Dynamic layout: round trips, resampling, and clear errors on bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from synth.echo.echonet import EchoNet, VideoFolder
from synth.echo.video_io import read_video, resample_video, write_avi, write_mp4
from synth.errors import DataError, MissingFileError

from .conftest import moving_disc


def test_avi_round_trip_keeps_frames_and_rate(tmp_path):
    frames = moving_disc(frames=12, size=32)
    write_avi(frames, tmp_path / "a.avi", fps=25.0)
    clip = read_video(tmp_path / "a.avi")
    assert clip.video.shape == (1, 12, 32, 32) and clip.video.dtype == torch.float32
    assert clip.fps == pytest.approx(25.0)
    assert -1.0 <= float(clip.video.min()) and float(clip.video.max()) <= 1.0
    decoded = (clip.video[0].numpy() + 1) * 127.5
    assert np.abs(decoded - frames).mean() < 6.0  # MJPEG at best quality


def test_mp4_is_browser_h264_with_even_size(tmp_path):
    import av

    video = torch.from_numpy(moving_disc(frames=6, size=23)).float()[None] / 127.5 - 1  # odd size
    write_mp4(video, tmp_path / "v.mp4", fps=16.0)
    with av.open(str(tmp_path / "v.mp4")) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264"
        assert s.codec_context.pix_fmt == "yuv420p"
        assert (s.codec_context.width, s.codec_context.height) == (24, 24)
    clip = read_video(tmp_path / "v.mp4")
    assert clip.num_frames == 6 and clip.fps == pytest.approx(16.0)


def test_resample_time_is_linear_interpolation_and_space_resizes():
    video = torch.arange(5.0)[None, :, None, None].expand(1, 5, 4, 4) / 5  # frame f has value f / 5
    out = resample_video(video, fps=10.0, target_fps=20.0, num_frames=9, size=(8, 6))
    assert out.shape == (1, 9, 8, 6)
    assert torch.allclose(out[0, :, 0, 0], torch.arange(9.0) / 10, atol=1e-6)


def test_echonet_reader_reads_the_layout(echonet_dir):
    data = EchoNet(echonet_dir)
    assert len(data) == 4 and len(data.split("train")) == 2 and len(data.split("TEST")) == 1
    clip = data.clip(0)
    assert clip.video.shape == (1, 10, 24, 24)
    assert clip.fps == 50.0 and clip.metadata["EF"] == 55.0 and clip.metadata["Split"] == "TRAIN"
    assert data.clip(f"{data.names[1]}.avi").metadata["EF"] == 56.0  # FileName with or without .avi
    tracings = data.tracings()
    assert set(tracings["FileName"]) == set(data.names)


def test_corrupt_avi_names_the_file(echonet_dir):
    data = EchoNet(echonet_dir)
    path = echonet_dir / "Videos" / f"{data.names[0]}.avi"
    path.write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage" + bytes(200))
    with pytest.raises(DataError) as err:
        data.clip(0)
    assert str(path) in str(err.value) and "corrupt" in str(err.value)


def test_missing_video_of_a_filelist_row(echonet_dir):
    data = EchoNet(echonet_dir)
    name = data.names[2]
    (echonet_dir / "Videos" / f"{name}.avi").unlink()
    with pytest.raises(MissingFileError) as err:
        data.clip(name)
    assert name in str(err.value) and "FileList.csv" in str(err.value)


def test_filelist_problems_are_named(tmp_path, echonet_dir):
    with pytest.raises(DataError, match="FileList.csv is missing"):
        EchoNet(tmp_path)
    text = (echonet_dir / "FileList.csv").read_text().replace(",EF,", ",EjectionFraction,")
    (echonet_dir / "FileList.csv").write_text(text)
    with pytest.raises(DataError, match=r"lacks columns \['EF'\]"):
        EchoNet(echonet_dir)


def test_video_folder(tmp_path, echonet_dir):
    folder = tmp_path / "plain"
    shutil.copytree(echonet_dir / "Videos", folder)
    write_mp4(torch.zeros(1, 4, 8, 8), folder / "extra.mp4", fps=10.0)
    videos = VideoFolder(folder)
    assert len(videos) == 5 and videos[4].video.shape[1] == 4
    with pytest.raises(DataError, match="no video files"):
        VideoFolder(tmp_path / "plain" / ".." / "EchoNet-Dynamic")
