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
#: Classifier-free guidance of ``synth echo``: 1.25, chosen among 1, 1.25, 1.5 and 2 on 100 VAL clips with the shipped
#: 112×112 prior: EF error 8.8 / 9.5 / 11.3 / 14.6 points, frame FD 23.1 / 12.2 / 11.9 / 10.2, end-diastole timing
#: 58 / 56 / 56 / 46 ms; 1.25 keeps nearly the lowest EF error at about half the FD of no guidance.
DEFAULT_GUIDANCE = 1.25
#: Extra guidance on the EF (and heart rate) asked, on top of ``DEFAULT_GUIDANCE`` (``ef_guidance`` of
#: :func:`sample_videos`; 0 = none): 1, chosen among 0.5, 1 and 2 on 100 VAL clips (EF error of the unmapped prior
#: 7.9 / 7.4 / 7.4 points against 8.6 without, frame FD 5.9 / 6.7 / 10.6 against 8.0). The shipped model's EF
#: mapping (``ef_asked`` / ``ef_given``) was fitted at these two settings, and holds for them only.
DEFAULT_EF_GUIDANCE = 1.0


def _export_folder(folder: str | os.PathLike | None) -> Path:
    """The echo export ``folder`` (None: the shipped one), refused when it holds no ``config.json``."""
    from synth.tasks.common import checkpoint_path

    folder = checkpoint_path(DEFAULT_MODEL_NAME) if folder is None else Path(folder)
    if not (folder / "config.json").is_file():
        raise MissingFileError("no echo model here (config.json missing)", path=folder,
                               hint="pass --model with a folder exported by benchmarks/train_echo.py prior")
    return folder


def load_echo_model(folder: str | os.PathLike | None = None):
    """A trained ECG → echo export: a ``maskgit`` whose ``autoencoder`` is a ``video_vqvae``; ``folder`` None is the
    shipped one, found like the task checkpoints (:func:`synth.tasks.common.checkpoint_path`)."""
    import synth.echo  # noqa: F401  (registers video_vqvae and echo_params before the config is read)
    from synth.checkpoint import load_pretrained

    folder = _export_folder(folder)
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


#: Time steps of tokens a window shares with the one before it when a clip runs longer than one window (2 × 4
#: frames = 0.5 s at 16 fps): the later window is decoded around the earlier one's last codes, so it continues it.
OVERLAP_TOKENS = 2


def window_starts(frames: int, lay: ClipLayout, frames_per_token: int, *, available: int | None = None) -> list[int]:
    """Start frames of the windows that cover ``frames`` frames, each sharing :data:`OVERLAP_TOKENS` token time
    steps with the one before (fewer for a model with few; none for one with a single time step); with
    ``available`` (frames the ECG covers) the last window is moved back to end within it (its overlap then grows
    by whole token steps)."""
    tokens = lay.frames // frames_per_token
    overlap = min(OVERLAP_TOKENS, tokens - 1) * frames_per_token
    step = lay.frames - overlap
    starts = [0]
    while starts[-1] + lay.frames < frames:
        starts.append(starts[-1] + step)
    if available is not None and starts[-1] + lay.frames > available and len(starts) > 1:
        last = (available - lay.frames) // frames_per_token * frames_per_token
        starts[-1] = max(last, starts[-2] + step if overlap == 0 else starts[-2] + frames_per_token)
    return starts


def ecg_condition(record: Record, lay: ClipLayout, *, start_s: float = 0.0, windows: int = 1,
                  starts: list[int] | None = None) -> Tensor:
    """(windows, 12, T) mV: ECG windows of one clip each, resampled to 100 Hz, from ``start_s``: consecutive, or
    at the frame offsets ``starts`` (overlapping windows of a continuous clip)."""
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
    offsets = [k * lay.ecg_samples for k in range(windows)] if starts is None else \
        [int(round(s / lay.fps * lay.ecg_fs_hz)) for s in starts]
    need = a + offsets[-1] + lay.ecg_samples
    if a < 0 or need > x.shape[1]:
        raise DataError(f"{len(offsets)} clip window(s) from {start_s:g} s need {need / lay.ecg_fs_hz:.2f} s "
                        f"of ECG; the record has {x.shape[1] / lay.ecg_fs_hz:.2f} s", path=record.source,
                        hint="use fewer --frames or an earlier --start")
    w = np.stack([x[:, a + o : a + o + lay.ecg_samples] for o in offsets])  # (windows, 12, T)
    return torch.from_numpy(np.ascontiguousarray(w)).float()


def ef_guidance_terms(model, ef_guidance: float, cond: dict) -> dict[str, float] | None:
    """``modality_guidance`` for :meth:`~synth.generative.base.GenerativeModel.sample`: ``ef_guidance`` on the
    model's EF modality (the adapter reading ``ef``), when an EF is asked of every clip of ``cond``; None
    otherwise (``ef_guidance`` 0, no EF modality, or an EF left open)."""
    if not ef_guidance:
        return None
    name = next((n for n, a in model.conditioning.adapters.items() if "ef" in a.keys), None)
    ef = cond.get("ef")
    if name is None or ef is None or not bool(torch.isfinite(torch.as_tensor(ef, dtype=torch.float32)).all()):
        return None
    return {name: float(ef_guidance)}


def sample_videos(model, cond: dict, num_samples: int, *, steps: int | None = None, guidance_scale: float = 1.0,
                  ef_guidance: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """(num_samples, 1, F, S, S) in [-1, 1] at the model's resolution; ``ef_guidance`` guides the EF asked further
    (:func:`ef_guidance_terms`)."""
    return model.sample(cond, num_samples, steps=steps, guidance_scale=guidance_scale,
                        modality_guidance=ef_guidance_terms(model, ef_guidance, cond), generator=generator)


def sample_continuous(model, ecg: Tensor, starts: list[int], lay: ClipLayout, *, ef: float | None,
                      heart_rate: float | None, steps: int | None = None, guidance_scale: float = 1.0,
                      ef_guidance: float = 0.0, generator: torch.Generator | None = None,
                      progress: str | None = None) -> Tensor:
    """One continuous clip (1, C, F, S, S) in [-1, 1] from overlapping windows: window ``k`` (ECG ``ecg[k]``,
    starting at frame ``starts[k]``) is decoded around the codes of the frames it shares with window ``k - 1``
    (token continuation); over those shared frames the two decodings are crossfaded (the decoder sees each window
    alone, so the frames at a window's edge differ a little from the same codes decoded mid-window).

    Finished frames are collected and joined once at the end (time and memory linear in the clip's length);
    ``progress`` labels a tqdm bar over the windows (None, or a single window: no bar)."""
    from tqdm.auto import tqdm

    tokenizer = model.autoencoder
    f_tok = lay.frames // model.network.time_tokens  # frames per token time step
    per_step = model.process_shape[0] // model.network.time_tokens  # tokens per time step
    nan = float("nan")
    done: list[Tensor] = []  # frames no later window reaches, in order
    tail, previous = None, None  # the last window's frames (blended with the one before where they overlap)
    with tqdm(total=len(starts), desc=progress, unit="window", disable=progress is None or len(starts) < 2) as bar:
        for k, start in enumerate(starts):
            cond = {"ecg": ecg[k : k + 1], "ef": torch.tensor([nan if ef is None else float(ef)]),
                    "heart_rate": torch.tensor([nan if heart_rate is None else float(heart_rate)])}
            known = None
            if previous is not None and starts[k - 1] + lay.frames > start:
                shared = (starts[k - 1] + lay.frames - start) // f_tok  # token time steps in common
                known = torch.full_like(previous, model.mask_id)
                known[:, : shared * per_step] = previous[:, previous.shape[1] - shared * per_step :]
            codes = model.sample_codes(cond, 1, steps=steps, guidance_scale=guidance_scale,
                                       modality_guidance=ef_guidance_terms(model, ef_guidance, cond),
                                       generator=generator, known=known)
            video = tokenizer.decode(codes)  # (1, C, F, S, S)
            if tail is None:
                tail = video
            elif starts[k - 1] + lay.frames <= start:  # no frames shared: side by side
                done.append(tail)
                tail = video
            else:
                overlap = starts[k - 1] + lay.frames - start
                if overlap > tail.shape[2]:  # reaches before the last window (not with window_starts' starts)
                    tail, done = torch.cat([*done, tail], dim=2), []
                ramp = ((torch.arange(overlap, dtype=video.dtype) + 0.5) / overlap).view(1, 1, -1, 1, 1)  # rising
                blended = tail[:, :, -overlap:] * (1 - ramp) + video[:, :, :overlap] * ramp
                done.append(tail[:, :, :-overlap])
                tail = torch.cat([blended, video[:, :, overlap:]], dim=2)
            previous = codes
            bar.update(1)
    return torch.cat([*done, tail], dim=2) if done else tail


def join_frames(starts: list[int], lay: ClipLayout) -> list[int]:
    """Output frames of the joins of a continuous clip: every frame of the overlaps, where one window hands over
    to the next."""
    return [f for k in range(1, len(starts)) for f in range(starts[k], starts[k - 1] + lay.frames + 1)]


def upsample(videos: Tensor, size: int = OUTPUT_SIZE) -> Tensor:
    """(N, C, F, S, S) → (N, C, F, size, size), bilinear per frame."""
    n = videos.shape[0]
    flat = rearrange(videos.float(), "n c f h w -> (n f) c h w")
    up = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False)
    return rearrange(up, "(n f) c h w -> n c f h w", n=n).clamp(-1, 1)


#: Working memory of :func:`generate_echo` per output frame, in float32 112×112 frames: the decoded clip, its
#: upsampled copy and, while the MP4 and the filmstrip are encoded, ``to_uint8``'s float temporaries and the RGB
#: frames. Calibrated on peak RSS (``/usr/bin/time -v``, shipped model, CPU): 719 MB for 960 frames (60 s of
#: ECG), 1243 MB for 3840 (240 s; 1288 MB when the clip was concatenated again after every window): 4 copies per
#: frame above a 430 MB base; 5 copies and :data:`ECHO_BASE_BYTES` put the estimate 4-16 % above both.
ECHO_FRAME_COPIES = 5
#: The interpreter, torch and the loaded echo model.
ECHO_BASE_BYTES = 512 * 1024**2
#: MP4 bytes per frame for the output estimate: a raw yuv420p 112×112 frame, above what H.264 at crf 18 stores
#: (measured 0.65-0.7 KB a frame).
MP4_FRAME_BYTES = OUTPUT_SIZE * OUTPUT_SIZE * 3 // 2
#: The PNG filmstrip (16 frames and the ECG under them: about 0.2 MB).
FILMSTRIP_BYTES = 300_000


def clip_estimate(record: Record, model_dir: str | os.PathLike | None = None, *, frames: int | None = None,
                  start_s: float = 0.0) -> dict:
    """What :func:`generate_echo` would make, from the export's ``config.json`` alone (no weights loaded):
    ``frames`` (default: the whole ECG from ``start_s``), ``fps``, and the working ``memory`` and ``output``
    bytes."""
    from synth.checkpoint import read_config

    folder = _export_folder(model_dir)
    signal = read_config(folder).get("model", {}).get("signal", {})
    fps, window = signal.get("fs_hz"), signal.get("length")
    if (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not np.isfinite(fps) or fps <= 0
            or isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise DataError(f"the echo model's frame rate / clip length (model.signal.fs_hz, length) is {fps!r} / "
                        f"{window!r}", path=folder / "config.json",
                        hint="this export's config is damaged: use the checkpoint as it was saved")
    available = int((record.duration_s - start_s) * fps + 1e-6)  # frames the ECG covers from --start
    n = max(window, available) if frames is None else int(frames)
    frame = OUTPUT_SIZE * OUTPUT_SIZE * 4  # float32
    # The ECG is resampled to the model's 100 Hz in float64 (twice: the windows, the filmstrip's trace).
    ecg = 8.0 * record.signal.size + 16.0 * len(LEADS_12) * max(record.duration_s, 0.0) * 100.0
    return {"frames": n, "fps": float(fps), "memory": ECHO_BASE_BYTES + (n + window) * frame * ECHO_FRAME_COPIES + ecg,
            "output": n * MP4_FRAME_BYTES + FILMSTRIP_BYTES}


def check_clip_size(record: Record, out: str | os.PathLike, model_dir: str | os.PathLike | None = None, *,
                    frames: int | None = None, start_s: float = 0.0, allow_large: bool = False) -> dict:
    """Refuse a clip whose working memory or MP4 is above the limits (:mod:`synth.limits`) unless ``allow_large``,
    before the model loads; returns :func:`clip_estimate`."""
    from synth import limits

    est = clip_estimate(record, model_dir, frames=frames, start_s=start_s)
    what = f"a clip of {est['frames']:,} frames ({est['frames'] / est['fps']:,.0f} s at {est['fps']:g} fps)"
    limits.check_size(est["memory"], what, allow_large=allow_large, memory=True, path=record.source)
    limits.check_size(est["output"], what, allow_large=allow_large, path=str(out))
    return est


def generate_echo(record: Record, out: str | os.PathLike, *, model_dir: str | os.PathLike | None = None,
                  ef: float | None = None, heart_rate: float | None = None, frames: int | None = None,
                  start_s: float = 0.0, seed: int = 0, steps: int | None = None,
                  guidance_scale: float = DEFAULT_GUIDANCE, ef_guidance: float = DEFAULT_EF_GUIDANCE,
                  filmstrip: bool = True, overwrite: bool = False, inputs=(), allow_large: bool = False,
                  progress: bool = False) -> dict:
    """Write an H.264 MP4 (112×112) of the echo the model generates for ``record`` and a PNG filmstrip beside it
    (``<out stem>.png``). ``frames`` (default: the whole ECG from ``start_s``) beyond one window are made of
    overlapping windows, each decoded around the codes it shares with the one before (:func:`sample_continuous`),
    so the clip runs on without cuts. Returns a summary dict (paths, seconds, frames, fps, windows, joins).
    ``inputs`` (what the caller read: the ECG file, the model folder) may not be, or hold, the output. A clip whose
    estimated memory or MP4 is above the limits (:func:`check_clip_size`) is refused before the model loads unless
    ``allow_large``; ``progress`` shows a bar over the windows."""
    import time

    from synth.outputs import staged_files

    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise DataError("the output must be an .mp4 file", path=out)
    if frames is not None and frames < 1:
        raise DataError(f"--frames must be >= 1, got {frames}")
    check_clip_size(record, out, model_dir, frames=frames, start_s=start_s, allow_large=allow_large)
    strip = out.with_suffix(".png")
    t0 = time.time()
    # The MP4 and its filmstrip land together (synth.outputs): the PNG first, so an MP4 never lacks its strip.
    with staged_files([strip, out] if filmstrip else [out], overwrite=overwrite,
                      inputs=[*inputs, ("--model", model_dir)]) as staging:
        summary = _generate_into(record, staging / out.name, staging / strip.name if filmstrip else None,
                                 model_dir=model_dir, ef=ef, heart_rate=heart_rate, frames=frames, start_s=start_s,
                                 seed=seed, steps=steps, guidance_scale=guidance_scale, ef_guidance=ef_guidance,
                                 progress=progress)
    summary.update(video=str(out), filmstrip=str(strip) if filmstrip else None, total_seconds=time.time() - t0)
    return summary


def _generate_into(record: Record, out: Path, strip: Path | None, *, model_dir, ef, heart_rate, frames, start_s,
                   seed, steps, guidance_scale, ef_guidance, progress=False) -> dict:
    import time

    from synth.echo.filmstrip import write_filmstrip
    from synth.echo.video_io import write_mp4

    model = load_echo_model(model_dir)
    lay = layout(model)
    f_tok = lay.frames // max(1, model.network.time_tokens)
    available = int((record.duration_s - start_s) * lay.fps + 1e-6)  # frames the ECG covers from --start
    whole = frames is None
    if whole:  # the whole ECG, as far as whole windows reach
        frames = max(lay.frames, available)
    starts = window_starts(frames, lay, f_tok, available=available if whole else None)
    frames = min(frames, starts[-1] + lay.frames)
    ecg = ecg_condition(record, lay, start_s=start_s, starts=starts)
    shown = _record_ecg(record, lay, start_s, frames)  # (12, T) the ECG under the clip, for the filmstrip
    if heart_rate is None:
        from synth.echo.timing import beat_times

        try:
            heart_rate = beat_times(shown, lay.ecg_fs_hz).heart_rate_bpm
        except DataError:
            heart_rate = None  # fewer than two beats in the window: leave heart rate to the ECG tokens
    generator = torch.Generator().manual_seed(seed)
    t1 = time.time()
    video = sample_continuous(model, ecg, starts, lay, ef=ef, heart_rate=heart_rate, steps=steps,
                              guidance_scale=guidance_scale, ef_guidance=ef_guidance, generator=generator,
                              progress="echo" if progress else None)
    if not bool(torch.isfinite(video).all()):
        from synth.tasks.common import NonFiniteOutputError

        raise NonFiniteOutputError("the model produced NaN/inf frames; nothing was written",
                                   path=model_dir or DEFAULT_MODEL_NAME, hint="the checkpoint may be damaged")
    video = upsample(video)[0, :, :frames]  # (1, frames, 112, 112)
    sample_s = time.time() - t1
    write_mp4(video, out, lay.fps, overwrite=True)
    ecg_shown = torch.from_numpy(shown)
    if strip is not None:
        write_filmstrip(video, lay.fps, ecg_shown.numpy(), lay.ecg_fs_hz, strip,
                        title=f"synth echo: {Path(record.source or 'ECG').name}, seed {seed}"
                              + (f", EF {ef:g}%" if ef is not None else ""))
    joins = [j for j in join_frames(starts, lay) if j < frames]
    return {"frames": frames, "fps": lay.fps, "sample_seconds": sample_s, "heart_rate_bpm": heart_rate, "ef": ef,
            "windows": len(starts), "joins": joins}


def _record_ecg(record: Record, lay: ClipLayout, start_s: float, frames: int) -> np.ndarray:
    """(12, T) mV at the ECG rate the model reads, from ``start_s`` for ``frames`` frames."""
    from synth.data.transforms import resample_record

    rec = record if record.fs_hz == lay.ecg_fs_hz else resample_record(record, lay.ecg_fs_hz)
    x = rec.signal[[rec.leads.index(lead) for lead in LEADS_12]]
    a = int(round(start_s * lay.ecg_fs_hz))
    return np.ascontiguousarray(x[:, a : a + int(round(frames / lay.fps * lay.ecg_fs_hz))])
