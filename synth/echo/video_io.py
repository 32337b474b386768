"""Video files ⇄ tensors through PyAV: the data contract of the echo modality is fixed here.

A clip is ``(C, F, H, W)`` float32 in [-1, 1] (grey: C = 1; colour files are converted to grey, as echo is) at a
declared ``fps``. Readers decode every frame (AVI, MP4, anything FFmpeg reads) and refuse unreadable files with a
:class:`~synth.errors.DataError` naming the file. Writers encode under a temporary name and rename on success:

- :func:`write_mp4`: H.264, ``yuv420p``, even width and height, ``+faststart``, the settings every browser plays;
- :func:`write_avi`: MJPEG in AVI, the container EchoNet-Dynamic ships (used by the simulator).

:func:`resample_video` changes the frame rate (linear interpolation between the nearest frames) and the frame size
(bilinear, antialiased when shrinking): pure tensor functions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from synth.errors import DataError, MissingFileError
from synth.io_utils import atomic_path
from synth.outputs import WRITER


@dataclass
class Clip:
    """video (C, F, H, W) float32 in [-1, 1]; fps: frames per second; metadata: facts about the clip."""

    video: Tensor
    fps: float
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        if self.video.ndim != 4:
            raise DataError(f"video must be (C, F, H, W), got shape {tuple(self.video.shape)}", path=self.source)
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise DataError(f"frame rate must be positive, got {self.fps}", path=self.source)

    @property
    def num_frames(self) -> int:
        return int(self.video.shape[1])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


def to_unit(frames_u8: np.ndarray) -> Tensor:
    """(F, H, W) uint8 grey → (1, F, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(frames_u8.astype(np.float32) / 127.5 - 1.0)[None]


def to_uint8(video: Tensor) -> np.ndarray:
    """(C, F, H, W) in [-1, 1] → (F, H, W) uint8 grey (channels averaged)."""
    grey = video.detach().float().mean(0).clamp(-1, 1)
    return ((grey + 1.0) * 127.5).round().to(torch.uint8).cpu().numpy()


def read_video(path: str | os.PathLike, *, max_frames: int | None = None) -> Clip:
    """Decode a video file to a grey :class:`Clip` in [-1, 1].

    Metadata: ``codec``, ``container``, ``width``, ``height`` as stored. Raises :class:`MissingFileError` for a missing
    file and :class:`DataError` for one FFmpeg cannot decode or that holds no frames.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise MissingFileError("video file not found", path=path)
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError("no video stream in the file", path=path)
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate or stream.guessed_rate
            fps = float(rate) if rate else float("nan")
            meta = {"codec": stream.codec_context.name, "container": container.format.name,
                    "width": stream.codec_context.width, "height": stream.codec_context.height}
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="gray"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except DataError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as err:
        raise DataError(f"cannot decode the video ({type(err).__name__}: {err})",
                        hint="the file is corrupt or not a video; re-export it as AVI or MP4") from None
    if not frames:
        raise DataError("the video holds no decodable frames", path=path, hint="the file is corrupt or empty")
    if not np.isfinite(fps) or fps <= 0:
        raise DataError("the video does not declare a frame rate", path=path)
    return Clip(to_unit(np.stack(frames)), fps, meta, source=str(path))


def resample_video(video: Tensor, fps: float, *, target_fps: float | None = None, num_frames: int | None = None,
                   size: tuple[int, int] | None = None) -> Tensor:
    """video (C, F, H, W) at ``fps`` → (C, F', H', W') at ``target_fps`` and ``size`` = (H', W').

    Time: frame j of the output shows time j / target_fps, linearly interpolated between the two input frames
    around it (clamped at the ends); ``num_frames`` fixes F' (default: as many as the input duration covers).
    Space: bilinear, antialiased when shrinking.
    """
    c, f, h, w = video.shape
    out = video.float()
    if target_fps is not None or num_frames is not None:
        target_fps = target_fps or fps
        count = num_frames or max(1, int(np.floor(f / fps * target_fps + 1e-6)))
        pos = torch.arange(count, dtype=torch.float64) * fps / target_fps  # (F',) fractional input index
        lo = pos.floor().long().clamp(0, f - 1)
        hi = (lo + 1).clamp(max=f - 1)
        frac = (pos - lo.double()).clamp(0, 1).float()[None, :, None, None]  # (1, F', 1, 1)
        out = out[:, lo] * (1 - frac) + out[:, hi] * frac  # (C, F', H, W)
    if size is not None and tuple(size) != (h, w):
        shrink = size[0] < h or size[1] < w
        out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)
    return out.clamp(-1, 1)


def _even(n: int) -> int:
    return n + (n % 2)


def write_mp4(video: Tensor | np.ndarray, path: str | os.PathLike, fps: float, *, crf: int = 18,
              overwrite: bool = True) -> Path:
    """(C, F, H, W) in [-1, 1] (or (F, H, W[, 3]) uint8) → an H.264 ``yuv420p`` MP4 that plays in browsers.

    Odd sizes are padded by one black row/column (H.264 4:2:0 needs even sizes).
    """
    import av

    frames = to_uint8(video) if isinstance(video, Tensor) else np.asarray(video, dtype=np.uint8)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)  # (F, H, W, 3)
    f, h, w, _ = frames.shape
    padded = np.zeros((f, _even(h), _even(w), 3), dtype=np.uint8)
    padded[:, :h, :w] = frames
    rate = round(float(fps) * 1000)
    with atomic_path(path, overwrite=overwrite) as tmp:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            container.metadata["comment"] = WRITER  # what --force may replace (synth.outputs)
            stream = container.add_stream("libx264", rate=_fraction(rate, 1000))
            stream.width, stream.height, stream.pix_fmt = padded.shape[2], padded.shape[1], "yuv420p"
            # One encoder thread: x264's frame threads made the same frames encode differently between runs.
            stream.options = {"crf": str(crf), "preset": "medium", "profile": "high", "threads": "1"}
            stream.codec_context.thread_count = 1
            for frame in padded:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return Path(path)


def write_avi(video: Tensor | np.ndarray, path: str | os.PathLike, fps: float, *, quality: int = 2,
              overwrite: bool = True) -> Path:
    """(C, F, H, W) in [-1, 1] (or (F, H, W) uint8) → MJPEG AVI, as EchoNet-Dynamic stores its videos.

    ``quality``: MJPEG qscale, 2 (best) to 31.
    """
    import av

    frames = to_uint8(video) if isinstance(video, Tensor) else np.asarray(video, dtype=np.uint8)
    f, h, w = frames.shape
    with atomic_path(path, overwrite=overwrite) as tmp:
        with av.open(str(tmp), mode="w", format="avi") as container:
            stream = container.add_stream("mjpeg", rate=_fraction(round(float(fps) * 1000), 1000))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuvj420p"
            stream.codec_context.qmin = stream.codec_context.qmax = quality
            for frame in frames:
                vf = av.VideoFrame.from_ndarray(np.repeat(frame[..., None], 3, axis=-1), format="rgb24")
                for packet in stream.encode(vf):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return Path(path)


def _fraction(num: int, den: int):
    from fractions import Fraction

    return Fraction(num, den)
