"""ECG → echo video: the ``synth echo`` pipeline around a trained model (core ``maskgit`` over a ``video_vqvae``).

:func:`load_echo_model` loads an export (registering the echo parts first); :func:`ecg_condition` cuts the ECG
windows the model was trained on (12 leads at 100 Hz, one window per clip); :func:`sample_videos` runs the core
MaskGIT sampler; :func:`generate_echo` chains windows for longer videos and writes the MP4 and the filmstrip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from synth.data.leads import LEADS_12
from synth.data.record import Record
from synth.errors import DataError, MissingFileError

#: The shipped model's folder name under ``checkpoints/`` (or ``$SYNTH_CHECKPOINTS``); trained on simulator clips.
DEFAULT_MODEL_NAME = "echo_maskgit"
#: Output frame size (EchoNet-Dynamic's).
OUTPUT_SIZE = 112
#: Classifier-free guidance of ``synth echo``: 2 was chosen over 1 on the VAL clips with the shipped prior (frame FD
#: 1.33 vs 2.43, end-diastole timing 60 vs 63 ms, end-systole 48 vs 55 ms; EF error 13.0 vs 10.4 points).
DEFAULT_GUIDANCE = 2.0


def load_echo_model(folder: str | os.PathLike | None = None):
    """A trained ECG → echo export: a ``maskgit`` whose ``autoencoder`` is a ``video_vqvae``; ``folder`` None is the
    shipped one, found like the task checkpoints (:func:`synth.tasks.common.checkpoint_path`)."""
    import synth.echo  # noqa: F401  (registers video_vqvae and echo_params before the config is read)
    from synth.checkpoint import load_pretrained
    from synth.tasks.common import checkpoint_path

    folder = checkpoint_path(DEFAULT_MODEL_NAME) if folder is None else Path(folder)
    if not (folder / "config.json").is_file():
        raise MissingFileError("no echo model here (config.json missing)", path=folder,
                               hint="pass --model with a folder exported by benchmarks/train_echo.py prior")
    model = load_pretrained(folder)
    if getattr(model, "autoencoder", None) is None or not hasattr(model.autoencoder, "video_shape"):
        raise DataError("this export is not an ECG → echo model (no video tokenizer under it)", path=folder)
    return model


@dataclass(frozen=True)
class ClipLayout:
    frames: int
    fps: float
    ecg_fs_hz: float
    ecg_samples: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def layout(model) -> ClipLayout:
    sig = model.cfg.signal
    ecg = model.conditioning.adapters["ecg"]
    return ClipLayout(frames=sig.length, fps=sig.fs_hz, ecg_fs_hz=100.0, ecg_samples=ecg.length)


def ecg_condition(record: Record, lay: ClipLayout, *, start_s: float = 0.0, windows: int = 1) -> Tensor:
    """(windows, 12, T) mV: consecutive ECG windows of one clip each, from ``start_s``, resampled to 100 Hz."""
    from synth.data.transforms import resample_record

    missing = [lead for lead in LEADS_12 if lead not in record.leads]
    if missing:
        raise DataError(f"the ECG lacks leads {missing}; the echo model reads all 12", path=record.source,
                        hint="give a 12-lead record")
    rec = record if record.fs_hz == lay.ecg_fs_hz else resample_record(record, lay.ecg_fs_hz)
    x = rec.signal[[rec.leads.index(lead) for lead in LEADS_12]]
    if not np.isfinite(x).all():
        raise DataError("the ECG contains NaN or inf samples", path=record.source)
    a = int(round(start_s * lay.ecg_fs_hz))
    need = a + windows * lay.ecg_samples
    if a < 0 or need > x.shape[1]:
        raise DataError(f"{windows} clip(s) of {lay.duration_s:g} s from {start_s:g} s need {need / lay.ecg_fs_hz:.2f} s "
                        f"of ECG; the record has {x.shape[1] / lay.ecg_fs_hz:.2f} s", path=record.source,
                        hint="use fewer --frames or an earlier --start")
    w = x[:, a:need].reshape(12, windows, lay.ecg_samples)
    return torch.from_numpy(np.ascontiguousarray(w.transpose(1, 0, 2))).float()


def sample_videos(model, cond: dict, num_samples: int, *, steps: int | None = None, guidance_scale: float = 1.0,
                  generator: torch.Generator | None = None) -> Tensor:
    """(num_samples, 1, F, S, S) in [-1, 1] at the model's resolution."""
    return model.sample(cond, num_samples, steps=steps, guidance_scale=guidance_scale, generator=generator)


def upsample(videos: Tensor, size: int = OUTPUT_SIZE) -> Tensor:
    """(N, C, F, S, S) → (N, C, F, size, size), bilinear per frame."""
    n = videos.shape[0]
    flat = rearrange(videos.float(), "n c f h w -> (n f) c h w")
    up = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False)
    return rearrange(up, "(n f) c h w -> n c f h w", n=n).clamp(-1, 1)


def generate_echo(record: Record, out: str | os.PathLike, *, model_dir: str | os.PathLike | None = None,
                  ef: float | None = None, heart_rate: float | None = None, frames: int | None = None,
                  start_s: float = 0.0, seed: int = 0, steps: int | None = None,
                  guidance_scale: float = DEFAULT_GUIDANCE,
                  filmstrip: bool = True, overwrite: bool = False) -> dict:
    """Write an H.264 MP4 (112×112) of the echo the model generates for ``record`` and a PNG filmstrip beside it
    (``<out stem>.png``). ``frames`` beyond one clip chain consecutive ECG windows, each sampled on its own (a
    visible cut may occur between clips). Returns a summary dict (paths, seconds, frames, fps)."""
    import time

    from synth.outputs import staged_files

    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise DataError("the output must be an .mp4 file", path=out)
    if frames is not None and frames < 1:
        raise DataError(f"--frames must be >= 1, got {frames}")
    strip = out.with_suffix(".png")
    t0 = time.time()
    # The MP4 and its filmstrip land together (synth.outputs): the PNG first, so an MP4 never lacks its strip.
    with staged_files([strip, out] if filmstrip else [out], overwrite=overwrite) as staging:
        summary = _generate_into(record, staging / out.name, staging / strip.name if filmstrip else None,
                                 model_dir=model_dir, ef=ef, heart_rate=heart_rate, frames=frames, start_s=start_s,
                                 seed=seed, steps=steps, guidance_scale=guidance_scale)
    summary.update(video=str(out), filmstrip=str(strip) if filmstrip else None, total_seconds=time.time() - t0)
    return summary


def _generate_into(record: Record, out: Path, strip: Path | None, *, model_dir, ef, heart_rate, frames, start_s,
                   seed, steps, guidance_scale) -> dict:
    import time

    from synth.echo.filmstrip import write_filmstrip
    from synth.echo.video_io import write_mp4

    model = load_echo_model(model_dir)
    lay = layout(model)
    frames = frames or lay.frames
    windows = -(-frames // lay.frames)
    ecg = ecg_condition(record, lay, start_s=start_s, windows=windows)
    if heart_rate is None:
        from synth.echo.timing import beat_times

        try:
            heart_rate = beat_times(rearrange(ecg, "n l t -> l (n t)").numpy(), lay.ecg_fs_hz).heart_rate_bpm
        except DataError:
            heart_rate = None  # fewer than two beats in the window: leave heart rate to the ECG tokens
    nan = float("nan")
    cond = {"ecg": ecg, "ef": torch.full((windows,), nan if ef is None else float(ef)),
            "heart_rate": torch.full((windows,), nan if heart_rate is None else float(heart_rate))}
    generator = torch.Generator().manual_seed(seed)
    t1 = time.time()
    video = sample_videos(model, cond, windows, steps=steps, guidance_scale=guidance_scale, generator=generator)
    if not bool(torch.isfinite(video).all()):
        from synth.tasks.common import NonFiniteOutputError

        raise NonFiniteOutputError("the model produced NaN/inf frames; nothing was written",
                                   path=model_dir or DEFAULT_MODEL_NAME, hint="the checkpoint may be damaged")
    video = upsample(video)  # (W, 1, F, 112, 112)
    video = rearrange(video, "n c f h w -> c (n f) h w")[:, :frames]  # (1, frames, 112, 112)
    sample_s = time.time() - t1
    write_mp4(video, out, lay.fps, overwrite=True)
    ecg_shown = rearrange(ecg, "n l t -> l (n t)")[:, : int(round(frames / lay.fps * lay.ecg_fs_hz))]
    if strip is not None:
        write_filmstrip(video, lay.fps, ecg_shown.numpy(), lay.ecg_fs_hz, strip,
                        title=f"synth echo: {Path(record.source or 'ECG').name}, seed {seed}"
                              + (f", EF {ef:g}%" if ef is not None else ""))
    return {"frames": frames, "fps": lay.fps, "sample_seconds": sample_s, "heart_rate_bpm": heart_rate, "ef": ef}
