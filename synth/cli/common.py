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


def check_memory(record, samples_per_window: int, *, allow_large: bool, model_fs_hz: float = 100.0,
                 channels: int = 12) -> None:
    """Refuse a windowed task whose working memory (the record at the model's rate, its overlapping windows and
    ``samples_per_window`` draws of each) is above the limit, before the model loads."""
    seconds = record.duration_s
    per_copy = seconds * model_fs_hz * channels * 4  # float32
    estimate = per_copy * (2 * samples_per_window + 4)  # windows overlap by half: two copies per draw
    limits.check_size(estimate, f"{seconds:,.0f} s of record with {samples_per_window} draw(s) per window",
                      allow_large=allow_large, memory=True, path=record.source)
