"""What synth accepts: the documented range of every number a user gives, and the size limits of a run.

Everything here is checked before a model loads or a large array is allocated, so bad input costs a moment and
a one-line error, never minutes of work or gigabytes of memory. The README's "Safety and errors" section lists
the same ranges. ``--allow-large`` lifts the two size limits (:data:`MAX_OUTPUT_BYTES`, :data:`MAX_MEMORY_BYTES`),
nothing else.
"""

from __future__ import annotations

import argparse
import math

from synth.errors import DataError

#: Sampling rates synth reads and writes (Hz): below, a record is not an ECG/PPG recording; above, a typo.
FS_RANGE_HZ = (10.0, 10_000.0)
#: Largest output a command writes without ``--allow-large`` (estimated before the work starts).
MAX_OUTPUT_BYTES = 2 * 1024**3
#: Largest working memory a command allocates without ``--allow-large`` (estimated before the work starts).
MAX_MEMORY_BYTES = 4 * 1024**3
#: Rough working memory of one sampled value in a network pass (activations of a small U-Net), in float32 values,
#: for the batch estimates of generate and cohort.
ACTIVATION_FACTOR = 64
#: Largest binary input file synth reads (an NPY, NPZ, WFDB ``.dat`` or ``.mat``): what fits the memory limit. Input
#: files are checked (a regular file, within its limit) before a byte is read; ``--allow-large`` does not lift
#: these, as it lifts no limit on reads.
MAX_INPUT_BYTES = MAX_MEMORY_BYTES
#: Largest CSV record synth reads: its text, decoded, parsed and converted takes about eight times its size.
MAX_CSV_BYTES = MAX_MEMORY_BYTES // 8
#: Largest WFDB header: a few lines of text (PTB-XL's are under 2 KB; synth writes its metadata there).
MAX_HEADER_BYTES = 1024**2
#: Largest prompts file (``synth generate --prompts``): a million short prompts, or 30,000 of the longest.
MAX_PROMPTS_BYTES = 64 * 1024**2
#: Seeds: what every generator in numpy and torch accepts, with room for the per-row and per-chunk offsets.
SEED_RANGE = (0, 2**32 - 1)
STEPS_RANGE = (1, 1000)
GUIDANCE_RANGE = (0.0, 50.0)
BATCH_RANGE = (1, 4096)
SAMPLES_RANGE = (1, 64)
RECORDS_RANGE = (1, 100_000_000)
AGE_RANGE = (0.0, 120.0)
HEART_RATE_RANGE = (20.0, 300.0)
EF_RANGE = (5.0, 95.0)
FRAMES_RANGE = (1, 3600)
BOOT_RANGE = (1, 100_000)
PLOT_RANGE = (0, 1000)
#: Longest window ``synth data plot`` draws (s): ECG paper beyond a minute is unreadable and slow to render.
PLOT_SECONDS_MAX = 600.0


class SizeLimitError(DataError):
    """A run whose estimated output or memory is above the limit (lifted by ``--allow-large``)."""


def _number(text: str, kind: type) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if kind is int:
        if value != int(value) or "e" in text.lower() and abs(value) > 2**53:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
        try:
            return int(text)
        except ValueError:
            return int(value)
    return value


def arg(lo: float | None, hi: float | None, kind: type = float, *, lo_open: bool = False):
    """An argparse ``type=``: a finite ``kind`` in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); None = unbounded."""

    def parse(text: str):
        value = _number(text, kind)
        low_ok = lo is None or (value > lo if lo_open else value >= lo)
        if not low_ok or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{text} is outside {describe(lo, hi, lo_open=lo_open)}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


def describe(lo: float | None, hi: float | None, *, lo_open: bool = False) -> str:
    def fmt(v):
        if isinstance(v, int):
            return f"{v:,}"  # exactly: a float would round bounds such as 2^63 - 1
        return f"{v:,.0f}" if float(v).is_integer() else f"{v:g}"

    if lo is None:
        return f"the range up to {fmt(hi)}"
    if hi is None:
        return f"the range {'> ' if lo_open else '>= '}{fmt(lo)}"
    return f"the range {fmt(lo)}-{fmt(hi)}" + (f" (above {fmt(lo)})" if lo_open else "")


def check_range(name: str, value, lo: float | None, hi: float | None, *, path: str | None = None,
                lo_open: bool = False) -> None:
    """:class:`DataError` unless ``value`` is finite and in range (for values that do not come from argparse)."""
    try:
        ok = math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if ok:
        ok = (lo is None or (value > lo if lo_open else value >= lo)) and (hi is None or value <= hi)
    if not ok:
        raise DataError(f"{name} {value!r} is outside {describe(lo, hi, lo_open=lo_open)}", path=path)


def check_rate(fs_hz, *, path: str | None = None, what: str = "sampling rate",
               hint: str = "check the header or time column; declare the rate with --in-fs") -> float:
    """A sampling rate in :data:`FS_RANGE_HZ`, else :class:`DataError` naming ``path``."""
    try:
        value = float(fs_hz)
    except (TypeError, ValueError):
        raise DataError(f"{what} {fs_hz!r} is not a number", path=path) from None
    lo, hi = FS_RANGE_HZ
    if not (math.isfinite(value) and lo <= value <= hi):
        shown = f"{value:.6g}" if math.isfinite(value) or math.isnan(value) else repr(fs_hz)
        raise DataError(f"{what} {shown} Hz is outside the range synth reads ({lo:g}-{hi:,.0f} Hz)", path=path,
                        hint=hint)
    return value


def check_size(nbytes: float, what: str, *, allow_large: bool, memory: bool = False, path: str | None = None) -> None:
    """Refuse an estimated ``nbytes`` above the output (or memory) limit unless ``allow_large``."""
    limit = MAX_MEMORY_BYTES if memory else MAX_OUTPUT_BYTES
    if nbytes > limit and not allow_large:
        kind = "memory" if memory else "output"
        raise SizeLimitError(f"{what} needs about {human_bytes(nbytes)} of {kind}, above the {human_bytes(limit)} "
                             "limit", path=path, hint="pass --allow-large if you mean it, or ask for less")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"
