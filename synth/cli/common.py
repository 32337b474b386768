"""Options and helpers shared by the command groups: checked number types, record reading, output options."""

from __future__ import annotations

import argparse
from pathlib import Path

from synth import limits
from synth.limits import arg

# Argument types: every number is finite and in its documented range (synth.limits) when it is parsed.
STEPS = arg(*limits.STEPS_RANGE, int)
GUIDANCE = arg(*limits.GUIDANCE_RANGE)
SEED = arg(*limits.SEED_RANGE, int)
BATCH = arg(*limits.BATCH_RANGE, int)
SAMPLES = arg(*limits.SAMPLES_RANGE, int)
RECORDS = arg(*limits.RECORDS_RANGE, int)
AGE = arg(*limits.AGE_RANGE)
HEART_RATE = arg(*limits.HEART_RATE_RANGE)
EF = arg(*limits.EF_RANGE)
FRAMES = arg(*limits.FRAMES_RANGE, int)
BOOT = arg(*limits.BOOT_RANGE, int)
PLOT = arg(*limits.PLOT_RANGE, int)
RATE = arg(*limits.FS_RANGE_HZ)
START_S = arg(0.0, None)
DURATION_S = arg(0.0, None, lo_open=True)


def modality_guidance(text: str) -> dict[str, float]:
    """An argparse ``type=`` for per-modality guidance: ``NAME=W[,NAME=W...]`` (each ``W`` in the guidance
    range) or ``none`` (no per-modality terms, not even a model's configured ones)."""
    if text.strip().lower() == "none":
        return {}
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not NAME=WEIGHT (e.g. demographics=0.5, or none)")
        if name in weights:
            raise argparse.ArgumentTypeError(f"{name!r} given twice")
        weights[name] = GUIDANCE(value.strip())
    return weights


def add_read_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in-fs", type=RATE, help="sampling rate of a CSV/NPY input that does not store one (Hz)")
    p.add_argument("--in-leads", help="lead names of a header-less CSV or NPY input, e.g. I,II,V1")
    p.add_argument("--nan", choices=("reject", "interpolate"), default="reject",
                   help="missing samples: refuse the record (default) or fill gaps up to 0.1 s with a warning")


def add_allow_large(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-large", action="store_true",
                   help=f"lift the size limits ({limits.human_bytes(limits.MAX_OUTPUT_BYTES)} of output, "
                        f"{limits.human_bytes(limits.MAX_MEMORY_BYTES)} of working memory, estimated before work)")


def add_force(p: argparse.ArgumentParser, what: str = "output folder") -> None:
    p.add_argument("--force", action="store_true",
                   help=f"replace an existing {what}, if synth wrote it (never anything else); also discard "
                        "what an unfinished run with other settings left for it")


def read_input(args: argparse.Namespace, path: Path):
    """The record at ``path`` read with the command's ``--in-fs``, ``--in-leads``, ``--fs`` and ``--nan``."""
    from synth.data.leads import parse_lead_set
    from synth.data.readers import read_record

    in_leads = parse_lead_set(args.in_leads) if getattr(args, "in_leads", None) else None
    return read_record(path, fs_hz=getattr(args, "in_fs", None), leads=in_leads, target_fs_hz=getattr(args, "fs", None),
                       nan_policy=getattr(args, "nan", "reject"))


#: Working memory of the windowed tasks (``reconstruct``, ``ppg2ecg``), for :func:`windowed_memory`. Calibrated on
#: peak RSS (``/usr/bin/time -v`` and a ``/proc`` poller per phase; shipped checkpoints, CPU): a 12-lead record at
#: 10 kHz, 120 s (``reconstruct --leads II``: 1243 MB with K = 1 draw, WFDB; 1915 MB with K = 4; 865-869 MB with
#: K = 1 as CSV or NPZ; 600 s with K = 2 as CSV: 4135 MB), 2 h at 100 Hz with K = 2 (1109 MB) and a 10 kHz 120 s
#: PPG through ``ppg2ecg --samples 2 --twelve-lead`` (1341 MB); the estimate is 9-23 % above each. A "copy" is one
#: float32 ``(channels, samples)`` array: ``channels`` the task's output channels (12 leads, or lead II),
#: ``samples`` at the input's rate (in) or the model's (model).
#:
#: The interpreter, torch and a loaded model with a batch of windows (measured 433 MB).
TASK_BASE_BYTES = 512 * 1024**2
#: Copies (in) per draw while the draws are resampled back to the input's rate and the limb leads are projected:
#: resample_poly's float64 output and its cropped float64 copy, the projection's two float64 copies, the float32
#: draws and their std (measured 6.5-6.9).
DRAW_COPIES = 7
#: Copies (model) per draw while the windows are sampled and stitched: the window stack, the batch outputs, their
#: concatenation and the float64 crossfade (measured about 5 per draw plus 7).
WINDOW_COPIES = 6
#: Copies (in) the writer makes on top of the draws, mean, spread and truth held (WFDB: float64 scaling, rounding,
#: clipping, int16 and its transpose; measured 5.5-9).
WRITE_COPIES = {"wfdb": 9, "npz": 1, "csv": 2}


def windowed_memory(n_samples: int, fs_hz: float, model_fs_hz: float, draws: int, *, channels: int,
                    fmt: str = "wfdb") -> float:
    """Peak working memory (bytes, without :data:`TASK_BASE_BYTES`) of one windowed stage drawing ``draws`` times
    ``channels`` channels for ``n_samples`` samples at ``fs_hz`` (the input's rate, at which the draws are written)
    through a model at ``model_fs_hz``: the largest of its three phases (sampling at the model's rate, resampling
    the draws back to the input's rate, writing)."""
    copy_in = 4.0 * channels * n_samples
    copy_model = copy_in * model_fs_hz / fs_hz
    sampling = copy_in + copy_model * (WINDOW_COPIES * draws + 7)
    resampling = copy_in * (1 + DRAW_COPIES * draws) + copy_model * 3 * draws
    writing = copy_in * (4 + 3 * draws + WRITE_COPIES.get(fmt, max(WRITE_COPIES.values())))
    return max(sampling, resampling, writing)


def check_memory(record, draws: int, *, allow_large: bool, stages=((12, 100.0),), fmt: str = "wfdb") -> float:
    """Refuse a windowed task whose working memory is above the limit, before the model loads: ``draws`` draws
    per window of each stage in ``stages`` (``(output channels, model rate in Hz)``, e.g. ``((1, 125.0), (12,
    100.0))`` for ``ppg2ecg --twelve-lead``), held at the record's own rate and length (:func:`windowed_memory`).
    Returns the estimate (bytes)."""
    n, fs = int(record.n_samples), float(record.fs_hz)
    estimate = TASK_BASE_BYTES + sum(windowed_memory(n, fs, float(model_fs), draws, channels=int(channels), fmt=fmt)
                                     for channels, model_fs in stages)
    channels = sum(int(c) for c, _ in stages)
    limits.check_size(estimate, f"{record.duration_s:,.0f} s at {fs:g} Hz ({n:,} samples) with {draws} "
                      f"draw{'s' if draws != 1 else ''} per window of {channels} channel{'s' if channels != 1 else ''}",
                      allow_large=allow_large, memory=True, path=record.source)
    return estimate
