"""Writers: WFDB (format 16, explicit gain), NPZ with metadata, CSV.

Every writer writes under a temporary name and renames on success, so an interrupted run never leaves a half file.
For WFDB the ``.dat`` is renamed into place before the ``.hea``: a header never points at data that is not there.

Text that comes from the input (metadata keys and values, units, lead names) never reaches a file as a control
character: a line break there would forge lines of a header or columns of a CSV, and synth could not read back
what it wrote. Metadata goes into a WFDB header as JSON (keys that are not plain names quoted), units and lead
names into a CSV header as quoted cells with control characters replaced by spaces; a unit WFDB cannot hold (one
word of letters, digits and ``_ ^ - ? % /``) is refused naming its lead. What is written reads back the same.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np

from synth.data.record import Record
from synth.errors import DataError, OutputExistsError
from synth.io_utils import atomic_path
from synth.outputs import DAT_SEAL, WRITER

Format = Literal["wfdb", "npz", "csv"]
FORMATS: tuple[str, ...] = ("wfdb", "npz", "csv")

#: WFDB's "invalid sample" code for format 16; NaN is written as this.
WFDB_INVALID = -32768
_INT16_MAX = 32767


#: Control characters (C0, DEL, C1) and the Unicode line and paragraph separators: ``str.splitlines`` (which wfdb
#: and synth use to read a header) breaks a line at every one of them, so no writer copies them into a file.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: A unit as wfdb reads it back from a signal line (its ``rx_signal``); anything else shifts the fields after it.
_WFDB_UNIT = re.compile(r"[\w^\-?%/]+")


def _plain_text(text: str) -> str:
    """``text`` with every control character (line breaks, tabs, NUL, C1 codes) replaced by a space."""
    return _CONTROLS.sub(" ", str(text))


def _wfdb_unit(unit: str, lead: str, source: str | None = None) -> str:
    if not unit:
        return "mV"
    if not _WFDB_UNIT.fullmatch(unit):
        raise DataError(f"unit {unit!r} of lead {lead} cannot be written to a WFDB header", path=source,
                        hint="WFDB units are one word of letters, digits and _ ^ - ? % /; convert --to npz or csv, "
                             "which keep any unit")
    return unit


def _check_lead_names(record: Record) -> None:
    """Lead names are canonical when read; one put in a :class:`Record` by hand may hold what no header can."""
    for lead in record.leads:
        if not lead or lead != lead.strip() or _CONTROLS.search(lead) or "," in lead:
            raise DataError(f"lead name {lead!r} cannot be written", path=record.source,
                            hint="use the canonical lead names (synth.data.leads)")


def _comment_key(key) -> str:
    """A metadata key as a header comment writes it: a plain name as it is, anything else (spaces, ``:``, line
    breaks, ``synth-dat-sha256``) as a JSON string, which never holds a control character or starts a line of
    synth's own (:func:`synth.data.readers._comment_metadata` reads both back)."""
    key = str(key)
    return key if key.isascii() and key.isidentifier() else json.dumps(key, ensure_ascii=True)


def _metadata_comments(record: Record) -> list[str]:
    """``key: JSON value`` comment lines of ``record.metadata`` (but ``comments``, the header's own), ASCII only;
    :class:`DataError` when they would make a header larger than synth reads back."""
    from synth.limits import MAX_HEADER_BYTES, human_bytes

    lines = [f"{_comment_key(k)}: {json.dumps(v, ensure_ascii=True, default=str)}"
             for k, v in sorted(record.metadata.items(), key=lambda kv: str(kv[0])) if k != "comments"]
    size = sum(len(line) + 3 for line in lines)
    if size > MAX_HEADER_BYTES // 2:  # the other half is room for the signal lines
        largest = max(lines, key=len).split(": ", 1)[0]
        raise DataError(f"metadata of {human_bytes(size)} (the largest: {largest[:60]}) is too large for a WFDB "
                        f"header, which synth reads up to {human_bytes(MAX_HEADER_BYTES)}", path=record.source,
                        hint="write npz (--to npz), which keeps any metadata, or drop the large entry")
    return lines


def wfdb_gains(signal: np.ndarray, *, default_gain: float = 1000.0) -> np.ndarray:
    """Per-channel ADC gain (units per mV): ``default_gain`` (1 µV steps, as PTB-XL) unless the channel's largest
    amplitude would overflow int16, in which case the gain is lowered just enough to fit."""
    # Only finite samples count: NaN and inf are written as invalid samples, and an inf peak made the gain 0.
    magnitude = np.where(np.isfinite(signal), np.abs(signal), 0.0)
    peak = magnitude.max(axis=-1) if signal.size else np.zeros(signal.shape[0])
    gains = np.full(signal.shape[0], default_gain, dtype=np.float64)
    too_big = peak * default_gain > _INT16_MAX - 1
    gains[too_big] = np.floor((_INT16_MAX - 1) / peak[too_big] * 1000.0) / 1000.0
    return gains


def output_paths(path: Path, fmt: str) -> list[Path]:
    """The files a record written to ``path`` in ``fmt`` consists of (WFDB: the ``.dat`` first, then the ``.hea``,
    the order they are moved into place in, so a header never points at missing data)."""
    if fmt == "wfdb":
        base = path.with_suffix("") if path.suffix in (".hea", ".dat") else path
        return [base.with_name(base.name + ".dat"), base.with_name(base.name + ".hea")]
    return [path]


def write_record(record: Record, path: str | os.PathLike, fmt: Format | None = None, *, overwrite: bool = False) -> list[Path]:
    """Write ``record`` to ``path`` in ``fmt`` (default: from the suffix, ``wfdb`` when there is none).

    Returns the files written. Refuses to overwrite unless ``overwrite=True``.
    """
    p = Path(path)
    fmt = fmt or {".npz": "npz", ".csv": "csv"}.get(p.suffix.lower(), "wfdb")
    if fmt not in FORMATS:
        raise DataError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not overwrite:
        for out in output_paths(p, fmt):
            if out.exists():
                raise OutputExistsError("output already exists", path=out, hint="choose another name or pass --force")
    if fmt == "wfdb":
        return write_wfdb(record, p)
    if fmt == "npz":
        return [write_npz(record, p)]
    return [write_csv(record, p)]


def check_record_name(path: Path) -> str:
    """The WFDB record name of ``path`` (``.hea``/``.dat`` stripped); :class:`DataError` if wfdb cannot write it."""
    base = path.with_suffix("") if path.suffix in (".hea", ".dat") else path
    if not re.fullmatch(r"[-\w]+", base.name):  # wfdb's own rule; it would fail later with a bare Exception
        raise DataError(f"WFDB record name {base.name!r} may hold only letters, digits, '-' and '_' (no dots)",
                        path=base, hint="rename the output, or give a .npz/.csv suffix for another format")
    return base.name


def write_wfdb(record: Record, path: str | os.PathLike, *, default_gain: float = 1000.0) -> list[Path]:
    """Write a WFDB record (``NAME.hea`` + ``NAME.dat``, format 16, one explicit gain per channel, baseline 0).

    Values are quantised to ``1 / gain`` (1 µV at the default gain); NaN becomes WFDB's invalid sample.
    Metadata goes into the header as ``# key: value`` comment lines.
    """
    import wfdb

    p = Path(path)
    base = p.with_suffix("") if p.suffix in (".hea", ".dat") else p
    name = check_record_name(base)
    _check_lead_names(record)
    units = [_wfdb_unit(u, lead, record.source) for u, lead in zip(record.units, record.leads)]
    gains = wfdb_gains(record.signal, default_gain=default_gain)
    digital = np.round(record.signal.astype(np.float64) * gains[:, None])
    digital = np.where(np.isfinite(record.signal), digital, WFDB_INVALID)
    digital = np.clip(digital, -_INT16_MAX, _INT16_MAX).astype(np.int16)
    digital[~np.isfinite(record.signal)] = WFDB_INVALID
    # The first comment marks the file as synth's (what --force may replace); "key: value" lines carry metadata.
    comments = [WRITER, *_metadata_comments(record)]
    base.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=base.parent))
    try:
        try:
            wfdb.wrsamp(
                name, fs=record.fs_hz, units=units, sig_name=list(record.leads),
                d_signal=digital.T.copy(), fmt=["16"] * len(record.leads), adc_gain=gains.tolist(),
                baseline=[0] * len(record.leads), comments=comments, write_dir=str(tmpdir),
            )  # fmt: skip
        except OSError as err:
            if err.errno is not None:
                raise
            # NumPy's tofile reports a short write ("N requested and M written") without an errno: a full disk.
            raise OSError(errno.ENOSPC, f"could not write the whole record ({err})", str(base)) from None
        _seal_dat(tmpdir / f"{name}.hea", tmpdir / f"{name}.dat")
        hea, dat = base.with_name(name + ".hea"), base.with_name(name + ".dat")
        os.replace(tmpdir / f"{name}.dat", dat)
        os.replace(tmpdir / f"{name}.hea", hea)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return [hea, dat]


def _seal_dat(hea: Path, dat: Path) -> None:
    """Append the ``.dat``'s SHA-256 to its header, so that a ``.dat`` counts as synth's only while unchanged."""
    import hashlib

    digest = hashlib.sha256(dat.read_bytes()).hexdigest()
    with open(hea, "a", encoding="utf-8") as fh:
        fh.write(f"# {DAT_SEAL}: {digest}\n")


def write_npz(record: Record, path: str | os.PathLike) -> Path:
    """Write ``signal`` (float32), ``fs_hz``, ``leads``, ``units`` and ``metadata`` (JSON) to an ``.npz``."""
    p = Path(path)
    with atomic_path(p) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh, signal=record.signal.astype(np.float32), fs_hz=np.float64(record.fs_hz),
            leads=np.array(record.leads, dtype=str), units=np.array(record.units, dtype=str),
            metadata=np.array(json.dumps(record.metadata, ensure_ascii=False, default=str)), writer=np.array(WRITER),
        )  # fmt: skip
    return p


def write_csv(record: Record, path: str | os.PathLike) -> Path:
    """Write ``time_s`` plus one column per lead (6 significant digits: finer than 1 µV below 10 mV), after a
    first comment line ``# synth VERSION`` (NumPy's loadtxt skips it; pandas needs ``comment="#"``).

    Units other than mV travel in the column name (``PPG [au]``), with control characters replaced by spaces; a
    name holding a comma, quote or ``#`` is quoted as CSV quotes it, so :func:`~synth.data.readers.read_csv` reads
    every column back as written."""
    p = Path(path)
    _check_lead_names(record)
    t = np.arange(record.n_samples) / record.fs_hz
    data = np.column_stack([t, record.signal.T])
    # Units other than mV travel in the column name ("PPG [au]"), which read_csv understands; no unit means mV.
    units = [_plain_text(u).strip() or "mV" for u in record.units]
    names = ["time_s", *(n if u == "mV" else f"{n} [{u}]" for n, u in zip(record.leads, units))]
    # Quoted where a comma, a quote or a "#" (a comment to pandas outside quotes) would split or cut the name.
    header = ",".join('"' + n.replace('"', '""') + '"' if re.search('[,"#]', n) else n for n in names)
    with atomic_path(p) as tmp:
        fmt = ["%.9g"] + ["%.6g"] * record.signal.shape[0]
        np.savetxt(tmp, data, delimiter=",", header=f"# {WRITER}\n{header}", comments="", fmt=fmt)
    return p
