"""Readers for single records. Every reader returns a :class:`Record` under the data contract.

Supported: WFDB (``.hea`` + ``.dat`` in any format wfdb reads, FLAC-compressed 508/516/524 included; PhysioNet
Challenge ``.hea`` + ``.mat``), the project's NPZ, plain CSV and NPY with a declared ``fs_hz`` and leads, and BIDMC
``*_Signals.csv(.gz)`` files (see :mod:`synth.data.bidmc`). :func:`read_record` picks by file name.

Every file is checked before a byte of it is read (:func:`check_input_file`): a regular file (a named pipe or a link
to a device would block or never end) within the limit of its kind in :mod:`synth.limits` (a WFDB header
:data:`~synth.limits.MAX_HEADER_BYTES`, a CSV :data:`~synth.limits.MAX_CSV_BYTES`, also once unpacked, binary
files :data:`~synth.limits.MAX_INPUT_BYTES`).
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
from pathlib import Path

import numpy as np

from synth.data.leads import canonical_lead, canonical_leads
from synth.data.record import Record
from synth.data.transforms import NanPolicy, handle_nan, resample_record
from synth.errors import DataError, MissingFileError

# Bytes per sample of WFDB storage formats whose size can be checked before decoding.
#: Bytes held per sample while wfdb reads a record: its int64 digital copy, the float32 physical one and the
#: transposed copy (measured 13.3 on a 24 h 12-lead record at 500 Hz: 6.9 GB for 520 M samples).
WFDB_READ_BYTES = 14.0
_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3, "311": 4 / 3, "24": 3, "32": 4}
_FLAC_FORMATS = {"508", "516", "524"}


def _to_mv(signal: np.ndarray, units: list[str], leads: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Convert ECG channels to mV (µV and V are scaled); other units are kept and reported as they are."""
    out_units = []
    for i, unit in enumerate(units):
        u = (unit or "mV").strip().replace("μ", "u").replace("µ", "u").lower()
        if u == "mv":
            out_units.append("mV")
        elif u == "uv":
            signal[i] /= 1000.0
            out_units.append("mV")
        elif u == "v":
            signal[i] *= 1000.0
            out_units.append("mV")
        else:
            out_units.append(unit)
    return signal, tuple(out_units)


def _finish(
    record: Record, *, fs_hz: float | None, target_fs_hz: float | None, nan_policy: NanPolicy
) -> Record:
    if fs_hz is not None and abs(record.fs_hz - fs_hz) > 1e-6:
        raise DataError(
            f"record is sampled at {record.fs_hz:g} Hz, but {fs_hz:g} Hz was requested",
            path=record.source,
            hint=f"ask for target_fs_hz={fs_hz:g} (CLI: --fs {fs_hz:g}) to resample it",
        )
    signal = handle_nan(record.signal, record.fs_hz, policy=nan_policy, leads=record.leads, source=record.source)
    record = Record(signal, record.fs_hz, record.leads, record.units, record.metadata, record.source)
    if target_fs_hz is not None and abs(record.fs_hz - target_fs_hz) > 1e-6:
        check_resample_memory(record, target_fs_hz)
        record = resample_record(record, target_fs_hz)
    return record


#: Bytes held per sample while resampling (scipy's polyphase filter works in float64): the float64 input copy per
#: input sample, and per output sample the filter's float64 output, the cropped copy and the float32 result.
RESAMPLE_BYTES_IN, RESAMPLE_BYTES_OUT = 8, 20


def check_resample_memory(record: Record, target_fs_hz: float) -> None:
    """Refuse, before it starts, resampling ``record`` to ``target_fs_hz`` when the working memory is above the
    limit (an hour at 100 Hz asked at 10 kHz holds about 9 GB)."""
    from synth.limits import MAX_MEMORY_BYTES, human_bytes

    channels, n_in = record.signal.shape
    n_out = n_in * target_fs_hz / record.fs_hz
    need = channels * (n_in * RESAMPLE_BYTES_IN + n_out * RESAMPLE_BYTES_OUT)
    if need > MAX_MEMORY_BYTES:
        raise DataError(f"resampling {record.duration_s:,.0f} s from {record.fs_hz:g} to {target_fs_hz:g} Hz needs "
                        f"about {human_bytes(need)} of memory, above the {human_bytes(MAX_MEMORY_BYTES)} limit",
                        path=record.source, hint="ask a lower rate, or a shorter stretch of the record")


_NOT_FILES = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
              (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_input_file(path: str | os.PathLike, *, limit: int, what: str = "file", hint: str | None = None) -> int:
    """The size of the input file ``path``, checked before a byte of it is read: a regular file (links followed; a
    named pipe, device or socket would block a read or never end, a folder is not a file) of at most ``limit``
    bytes (see :mod:`synth.limits`). :class:`MissingFileError` when it does not exist, else :class:`DataError`
    naming it (``what``: the kind of file, for the message; ``hint``: what to do about a file that is too large).
    """
    from synth.limits import human_bytes

    try:
        info = os.stat(path)
    except FileNotFoundError:  # a dangling link too
        raise MissingFileError(f"no such {what}", path=path) from None
    except OSError as err:  # a link loop, a name too long, a folder on the way that cannot be entered
        raise DataError(f"cannot open {what}: {err.strerror or err}", path=path) from None
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _NOT_FILES if test(info.st_mode)), "a special file")
        via = f" ({os.path.realpath(path)})" if os.path.islink(path) else ""
        raise DataError(f"{what} is {kind}{via}, not a regular file", path=path,
                        hint="give a file" if stat.S_ISDIR(info.st_mode) else
                        "copy the data into a regular file; synth does not read pipes, devices or sockets")
    if info.st_size > limit:
        raise DataError(f"{what} of {human_bytes(info.st_size)} is larger than the {human_bytes(limit)} synth reads",
                        path=path, hint=hint or "check that this is the file you meant")
    return info.st_size


def _check_wfdb_files(hea: Path) -> None:
    """The files of a WFDB record, before wfdb (or synth) reads them: the header (:func:`check_input_file`, at most
    :data:`~synth.limits.MAX_HEADER_BYTES`), then every signal file it names that is there (a missing one is
    reported by the read): a regular file of at most :data:`~synth.limits.MAX_INPUT_BYTES`; for a header that
    declares no length, wfdb reads the whole file, so what it holds must fit the memory limit as a declared
    length must (:func:`_check_record_line`)."""
    from synth.limits import MAX_HEADER_BYTES, MAX_INPUT_BYTES, MAX_MEMORY_BYTES, human_bytes

    check_input_file(hea, limit=MAX_HEADER_BYTES, what="WFDB header",
                     hint="a WFDB header is a few lines of text: check that this is the header you meant")
    try:
        text = hea.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise DataError(f"cannot read header: {err.strerror or err}", path=hea) from None
    fields = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not fields:
        return  # refused by the record line check
    length = None
    if len(fields[0]) > 3 and re.fullmatch(r"\d+", fields[0][3]):
        length = int(fields[0][3])
    per_file: dict[str, list[str]] = {}
    for line in fields[1:]:
        if len(line) >= 2:
            per_file.setdefault(line[0], []).append(line[1])
    for fname, fmts in per_file.items():
        dat = hea.parent / fname
        if fname.startswith("~") or not os.path.lexists(dat):
            continue
        size = check_input_file(dat, limit=MAX_INPUT_BYTES, what="WFDB signal file",
                                hint="split the record into shorter ones")
        fmt = re.match(r"\d*", fmts[0]).group()
        if length is None and fmt in _BYTES_PER_SAMPLE:
            held = size / (len(fmts) * _BYTES_PER_SAMPLE[fmt])  # samples per lead the file holds
            need = WFDB_READ_BYTES * held * max(1, len(fields) - 1)
            if need > MAX_MEMORY_BYTES:
                raise DataError(f"{fname} holds {held:,.0f} samples per lead ({human_bytes(need)} to read) and the "
                                "header declares no length", path=hea,
                                hint="split the record; synth reads records of up to "
                                     f"{human_bytes(MAX_MEMORY_BYTES)}")


def _header_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.suffix in (".hea", ".dat", ".mat"):
        p = p.with_suffix("")
    hea = p.with_name(p.name + ".hea")
    if not hea.exists():
        raise MissingFileError("no such file or WFDB record (no .hea header beside it)", path=path,
                               hint="give a WFDB record (with or without .hea), .mat, .npz, .csv or .npy")
    return hea


def read_wfdb(
    path: str | os.PathLike,
    *,
    fs_hz: float | None = None,
    target_fs_hz: float | None = None,
    nan_policy: NanPolicy = "reject",
    lead_map: dict[str, str] | None = None,
) -> Record:
    """Read a WFDB record (``path`` with or without ``.hea``), honouring each channel's gain, baseline and units.

    ECG channels come back in mV (µV and V headers are converted). ``fs_hz`` states the rate you expect (a
    mismatch is an error); ``target_fs_hz`` resamples. ``lead_map`` renames channels before they are matched to
    canonical lead names, for files with non-standard names.
    """
    import wfdb

    hea = _header_path(path)
    base = hea.with_suffix("")
    _check_wfdb_files(hea)
    lines = _signal_lines(hea)
    _check_record_line(hea, len(lines))
    if lines and all(f[0].endswith(".mat") for f in lines):
        record = _read_challenge_mat(hea, _read_header(hea))
    else:
        try:
            with np.errstate(all="ignore"):  # absurd gains give inf, refused below as missing samples
                rec = wfdb.rdrecord(str(base), physical=True, return_res=32)
        except Exception as err:
            # Diagnose only on failure, so the common path parses each header once (bulk loading speed).
            _check_dat_sizes(hea, _read_header(hea))
            raise DataError(f"cannot read WFDB signal data: {err}", path=hea,
                            hint="the .dat file may be truncated or not match its header") from err
        if not rec.n_sig or rec.p_signal is None:
            raise DataError("header declares no signals", path=hea)
        unnamed = [i + 1 for i, n in enumerate(rec.sig_name) if not (n or "").strip()]
        if unnamed:
            raise DataError(f"signal {unnamed[0]} of the header has no lead name", path=hea,
                            hint="the last field of each signal line names its lead, e.g. II")
        names = [(lead_map or {}).get(n.strip().strip(","), n) for n in rec.sig_name]
        leads = canonical_leads(names, source=str(hea))
        text_units = [_header_units(f) for f in lines] if len(lines) == rec.n_sig else []
        raw_units = [t or (w or "") for t, w in zip(text_units, rec.units)] if text_units else list(rec.units or [])
        signal, units = _to_mv(rec.p_signal.T.astype(np.float32), raw_units or [""] * rec.n_sig, leads)
        comments = list(rec.comments or [])
        meta = {**_comment_metadata(comments), "record_name": rec.record_name, "comments": comments}
        record = Record(signal, float(rec.fs), leads, units, meta, str(hea))
    return _finish(record, fs_hz=fs_hz, target_fs_hz=target_fs_hz, nan_policy=nan_policy)


def _signal_lines(hea: Path) -> list[list[str]]:
    """The whitespace-split signal lines of a header (cheap: no full parse)."""
    lines = [ln for ln in hea.read_text(encoding="utf-8", errors="replace").splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    return [ln.split() for ln in lines[1:]]


def _check_record_line(hea: Path, n_signal_lines: int) -> None:
    """The record line's rate and length, checked before wfdb reads them: wfdb takes a rate it cannot parse
    (``-100``, ``abc``) for its default of 250 Hz, and would allocate whatever length a header claims."""
    from synth.limits import MAX_MEMORY_BYTES, check_rate, human_bytes

    try:
        with open(hea, encoding="utf-8", errors="replace") as fh:
            record_line = next((ln for ln in fh if ln.strip() and not ln.lstrip().startswith("#")), "")
    except OSError as err:
        raise DataError(f"cannot read header: {err.strerror}", path=hea) from None
    fields = record_line.split()
    if len(fields) < 2:
        raise DataError("header has no record line (name, number of signals, rate, length)", path=hea)
    if len(fields) < 3:  # WFDB would assume 250 Hz: a guess synth does not make for the user
        raise DataError("the header gives no sampling rate", path=hea,
                        hint="add it to the record line: NAME NSIG RATE NSAMP, e.g. rec 12 500 5000")
    rate_text = fields[2].split("/")[0]
    try:
        rate = float(rate_text)
    except ValueError:
        raise DataError(f"header sampling rate {rate_text!r} is not a number", path=hea,
                        hint="the record line reads: NAME NSIG RATE NSAMP") from None
    check_rate(rate, path=str(hea), what="header sampling rate")
    if len(fields) > 3:
        try:
            length = int(fields[3])
        except ValueError:
            raise DataError(f"header sample count {fields[3]!r} is not a whole number", path=hea) from None
        if length < 0:
            raise DataError(f"header sample count {length} is negative", path=hea)
        need = WFDB_READ_BYTES * length * max(1, n_signal_lines)
        if need > MAX_MEMORY_BYTES:
            raise DataError(f"header declares {length:,} samples per lead ({human_bytes(need)} to read)", path=hea,
                            hint="split the record; synth reads records of up to "
                                 f"{human_bytes(MAX_MEMORY_BYTES)}")


def _header_units(fields: list[str]) -> str:
    """Units of one signal line (``gain(baseline)/units``), ``""`` when omitted.

    Read from the text because wfdb turns a non-ASCII ``μV`` into ``V``, silently scaling by 10^6.
    """
    return fields[2].split("/", 1)[1] if len(fields) > 2 and "/" in fields[2] else ""


def _comment_metadata(comments: list[str]) -> dict:
    """``key: value`` header comments (as :func:`write_wfdb` writes them) back into metadata, JSON values decoded;
    a key that is not a plain name is a JSON string (``"heart rate": 60``)."""
    meta: dict = {}
    for line in comments:
        if line.startswith('"'):
            try:
                key, end = json.JSONDecoder().raw_decode(line)
            except ValueError:
                continue
            sep, value = line[end:].lstrip()[:1], line[end:].lstrip()[1:]
            if sep != ":" or not isinstance(key, str):
                continue
        else:
            key, sep, value = line.partition(":")
            key = key.strip()
            if not sep or not key.isidentifier():
                continue
        try:
            meta[key] = json.loads(value.strip())
        except ValueError:
            meta[key] = value.strip()
    return meta


def _read_header(hea: Path):
    import wfdb

    try:
        header = wfdb.rdheader(str(hea.with_suffix("")))
    except Exception as err:  # wfdb raises bare ValueError/IndexError on malformed headers
        raise DataError(f"cannot parse WFDB header: {err}", path=hea) from err
    if not header.n_sig:
        raise DataError("header declares no signals", path=hea)
    return header


def _check_dat_sizes(hea: Path, header) -> None:
    """Explain a failed read: a missing data file, or a header whose sample count exceeds what the file holds."""
    per_file: dict[str, list[str]] = {}
    for fname, fmt in zip(header.file_name, header.fmt):
        per_file.setdefault(fname, []).append(str(fmt))
    for fname, fmts in per_file.items():
        dat = hea.parent / fname
        if not dat.exists():
            raise MissingFileError(f"signal file {fname} named in the header is missing", path=hea)
        if header.sig_len is None or fmts[0] in _FLAC_FORMATS or fmts[0] not in _BYTES_PER_SAMPLE:
            continue
        need = int(np.ceil(header.sig_len * len(fmts) * _BYTES_PER_SAMPLE[fmts[0]]))
        have = dat.stat().st_size
        if have < need:
            held = int(have / (len(fmts) * _BYTES_PER_SAMPLE[fmts[0]]))
            raise DataError(
                f"header says {header.sig_len} samples per lead but {fname} holds only {held} "
                f"({have} of {need} bytes): truncated file or wrong header",
                path=hea,
            )


def _read_challenge_mat(hea: Path, header) -> Record:
    """PhysioNet/CinC Challenge layout: a WFDB header pointing at a MATLAB ``.mat`` with the digital signal ``val``."""
    from scipy.io import loadmat

    from synth.limits import MAX_INPUT_BYTES

    mat = hea.parent / header.file_name[0]
    if not mat.exists():
        raise MissingFileError(f"signal file {mat.name} named in the header is missing", path=hea)
    check_input_file(mat, limit=MAX_INPUT_BYTES, what="MATLAB signal file")
    try:
        data = loadmat(str(mat))
    except Exception as err:
        raise DataError(f"cannot read MATLAB file: {err}", path=mat) from err
    if "val" not in data:
        raise DataError(f"MATLAB file has no 'val' array (keys: {sorted(k for k in data if not k.startswith('__'))})",
                        path=mat)
    val = np.asarray(data["val"], dtype=np.float64)
    if val.shape[0] != header.n_sig:
        if val.shape[1] == header.n_sig:
            val = val.T
        else:
            raise DataError(f"'val' has shape {val.shape} but the header declares {header.n_sig} signals", path=mat)
    if header.sig_len and val.shape[1] < header.sig_len:
        raise DataError(f"header says {header.sig_len} samples per lead but the .mat holds {val.shape[1]}", path=mat)
    gain = np.asarray([g or 200.0 for g in header.adc_gain], dtype=np.float64)[:, None]
    baseline = np.asarray(header.baseline if header.baseline else [0] * header.n_sig, dtype=np.float64)[:, None]
    signal = ((val - baseline) / gain).astype(np.float32)
    leads = canonical_leads(header.sig_name, source=str(hea))
    lines = _signal_lines(hea)
    raw_units = [_header_units(f) for f in lines] if len(lines) == header.n_sig else list(header.units or [])
    signal, units = _to_mv(signal, raw_units or [""] * header.n_sig, leads)
    meta = {"record_name": header.record_name, "comments": list(header.comments or [])}
    return Record(signal, float(header.fs), leads, units, meta, str(hea))


def read_npz(path: str | os.PathLike, **kwargs) -> Record:
    """Read the project's NPZ (``signal``, ``fs_hz``, ``leads``, ``units``, ``metadata`` as JSON)."""
    from synth.limits import MAX_INPUT_BYTES

    p = Path(path)
    if not p.exists():
        raise MissingFileError("no such file", path=p)
    check_input_file(p, limit=MAX_INPUT_BYTES, what="NPZ record", hint="split the record into shorter ones")
    import zipfile

    try:
        _check_npz_member_size(p)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"not a synth NPZ record ({err})", path=p,
                        hint="expected arrays signal, fs_hz, leads (written by synth data convert --to npz)") from None
    try:
        with np.load(p, allow_pickle=False) as z:
            signal = _real_array(z["signal"], "signal")
            fs = float(z["fs_hz"])
            leads = tuple(str(s) for s in np.atleast_1d(z["leads"]))
            units = tuple(str(s) for s in np.atleast_1d(z["units"])) if "units" in z else ()
            meta = json.loads(str(z["metadata"])) if "metadata" in z else {}
        if not isinstance(meta, dict):
            raise ValueError("metadata is not a JSON object")
    except (KeyError, ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"not a synth NPZ record ({detail})", path=p,
                        hint="expected arrays signal, fs_hz, leads (written by synth data convert --to npz)") from None
    leads = canonical_leads(leads, source=str(p))
    return _finish(Record(signal, fs, leads, units, meta, str(p)), **_finish_kwargs(kwargs))


_NPZ_MEMBERS = ("signal.npy", "fs_hz.npy", "leads.npy", "units.npy", "metadata.npy")


def _check_npz_member_size(path: Path) -> None:
    """Refuse an NPZ whose arrays (``signal``, and the small ones beside it: a metadata string may claim gigabytes
    too) declare more than synth reads into memory, before reading them."""
    import zipfile

    from synth.limits import MAX_MEMORY_BYTES, human_bytes

    total = 0.0
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():  # a missing array is reported by the caller
            if member not in _NPZ_MEMBERS:
                continue  # not read
            with zf.open(member) as fh:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(fh)
            size = float(np.prod(shape, dtype=np.float64)) * max(int(dtype.itemsize), 4)
            total += size
            if size > MAX_MEMORY_BYTES or total > MAX_MEMORY_BYTES:
                raise DataError(f"array {member[:-4]} of shape {tuple(shape)} is too large to read "
                                f"({human_bytes(size)}{'' if size > MAX_MEMORY_BYTES else ' with the arrays before it'})",
                                path=path)


def _finish_kwargs(kwargs: dict) -> dict:
    return {"fs_hz": kwargs.get("fs_hz"), "target_fs_hz": kwargs.get("target_fs_hz"),
            "nan_policy": kwargs.get("nan_policy", "reject")}


_UNIT_COLUMN = re.compile(r"(.+?)\s*\[(.+)\]")
_TIME_COLUMNS = {"time", "time_s", "t", "time [s]", "time[s]", "seconds"}


def read_csv(
    path: str | os.PathLike,
    *,
    fs_hz: float | None = None,
    leads: tuple[str, ...] | list[str] | None = None,
    units: str = "mV",
    target_fs_hz: float | None = None,
    nan_policy: NanPolicy = "reject",
) -> Record:
    """Read a CSV with one column per lead (a header row of lead names, or ``leads`` for a header-less file).

    The sampling rate is ``fs_hz`` or, failing that, inferred from a time column (``time_s``, ``Time [s]``).
    Values are taken to be in ``units`` (default mV; ``uV`` is converted).
    """
    import pandas as pd

    from synth.limits import MAX_CSV_BYTES

    p = Path(path)
    if not p.exists():
        raise MissingFileError("no such file", path=p)
    too_large = "split the record into shorter ones"
    if check_input_file(p, limit=MAX_CSV_BYTES, what="CSV file", hint=too_large) == 0:
        raise DataError("CSV file is empty", path=p, hint="expected a header of lead names and one row per sample")
    from synth.io_utils import read_text_lenient

    if p.name.endswith(".gz"):
        text = _read_gzip_text(p, MAX_CSV_BYTES, hint=too_large)
    else:
        text = read_text_lenient(p)
    try:
        header_row = None if leads is not None else 0
        frame = pd.read_csv(io.StringIO(text), header=header_row, comment="#")
    except pd.errors.EmptyDataError as err:
        raise DataError("CSV file is empty", path=p) from err
    except pd.errors.ParserError as err:
        raise DataError(f"cannot parse CSV: {err}", path=p) from err
    if frame.shape[0] == 0:
        raise DataError("CSV file has a header but no samples", path=p)
    frame.columns = [str(c).strip() for c in frame.columns]
    time_cols = [c for c in frame.columns if c.lower() in _TIME_COLUMNS]
    if time_cols:
        if fs_hz is None and len(frame) > 1:
            fs_hz = rate_from_time_column(frame[time_cols[0]], path=p)
        frame = frame.drop(columns=time_cols)
    if fs_hz is None:
        raise DataError("CSV has no time column and no sampling rate was given", path=p,
                        hint="pass fs_hz (CLI: --in-fs HZ)")
    names = list(leads) if leads is not None else list(frame.columns)
    if len(names) != frame.shape[1]:
        raise DataError(f"{len(names)} lead names given for {frame.shape[1]} columns", path=p)
    # A column may state its unit as "NAME [unit]" (write_csv does so for anything but mV).
    col_units = [m.group(2) if (m := _UNIT_COLUMN.fullmatch(str(n))) else units for n in names]
    names = [m.group(1) if (m := _UNIT_COLUMN.fullmatch(str(n))) else n for n in names]
    leads_c = canonical_leads(names, source=str(p))
    try:
        with np.errstate(over="ignore"):
            signal = frame.to_numpy(dtype=np.float32).T.copy()
    except (ValueError, TypeError) as err:
        raise DataError(f"non-numeric values in CSV: {str(err).splitlines()[0]}", path=p) from None
    signal, unit_t = _to_mv(signal, col_units, leads_c)
    record = Record(signal, float(fs_hz), leads_c, unit_t, {}, str(p))
    return _finish(record, fs_hz=None, target_fs_hz=target_fs_hz, nan_policy=nan_policy)


def _read_gzip_text(path: Path, limit: int, *, hint: str) -> str:
    """The text of a gzip-compressed file, decompressed up to ``limit`` bytes (a small file may unpack to any size),
    decoded as :func:`synth.io_utils.read_text_lenient` does: UTF-8, else Latin-1 with a warning."""
    import gzip
    import warnings
    import zlib

    from synth.limits import human_bytes

    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot decompress: {err}", path=path) from None
    if len(raw) > limit:
        raise DataError(f"CSV file unpacks to more than the {human_bytes(limit)} synth reads", path=path, hint=hint)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        warnings.warn(f"{path}: not valid UTF-8 (byte {err.start}); decoded as Latin-1. Re-encode the file as UTF-8 "
                      "to silence this.", stacklevel=3)
        return raw.decode("latin-1")


def _real_array(arr, what: str, *, convert: bool = True):
    """``arr`` as float32 if it holds real numbers (integers or floats), else ValueError naming its dtype."""
    dtype = getattr(arr, "dtype", None)
    if dtype is None or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise ValueError(f"{what} of {dtype if dtype is not None else type(arr).__name__} is not numeric")
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused later as a missing sample
        return np.asarray(arr, dtype=np.float32) if convert else arr


def rate_from_time_column(column, *, path: Path, median_of: int | None = None) -> float:
    """The sampling rate (Hz) of a time column in seconds (a pandas Series or array), checked: numeric, finite,
    increasing, and in :data:`synth.limits.FS_RANGE_HZ`. From the mean step over the whole span, or with
    ``median_of`` from the median of the first steps (files whose printed times drift, such as BIDMC's)."""
    from synth.limits import check_rate

    name = getattr(column, "name", "time")
    try:
        t = np.asarray(column, dtype=np.float64)
    except (ValueError, TypeError):
        raise DataError(f"time column {name!r} holds non-numeric values", path=path) from None
    if not np.isfinite(t).all():
        raise DataError(f"time column {name!r} holds missing or infinite values", path=path)
    steps = np.diff(t)
    if len(t) < 2 or np.median(steps) <= 0 or t[-1] <= t[0]:
        raise DataError(f"time column {name!r} is not increasing", path=path,
                        hint="the samples must be in time order, one per time step")
    if not median_of and not (steps > 0).all():  # (files with drifting printed times may repeat one)
        where = int(np.flatnonzero(steps <= 0)[0]) + 2
        raise DataError(f"time column {name!r} is not increasing (at data row {where})", path=path,
                        hint="the samples must be in time order, one per time step")
    if not median_of and len(t) >= 8:
        # One rate throughout: the mean step of each half agrees (printed times round each step, not the span).
        half = len(steps) // 2
        first, second = float(steps[:half].mean()), float(steps[half:].mean())
        if abs(first - second) > 0.01 * (first + second) / 2 or steps.max() > 3 * float(np.median(steps)):
            raise DataError(f"time column {name!r} does not have one sampling rate ({1 / first:.6g} Hz in the first "
                            f"half, {1 / second:.6g} Hz in the second, longest step {steps.max():.6g} s)", path=path,
                            hint="resample the record to one rate, or fill its gaps, before reading it")
    if median_of:
        rate = 1.0 / float(np.median(np.diff(t[: median_of + 1])))
    else:  # the mean step over the whole span: a single printed step (0.00277778 s at 360 Hz) is too coarse
        rate = (len(t) - 1) / (t[-1] - t[0])
        # Times printed to a few decimals shift the span by up to one printed unit (seen as step jitter): a whole
        # rate within that error is the rate (360 Hz printed in ms reads 359.98 Hz otherwise).
        tolerance = rate * float(steps.max() - steps.min()) / float(t[-1] - t[0])
        if abs(rate - round(rate)) <= tolerance:
            rate = float(round(rate))
    return check_rate(round(rate, 6), path=str(path), what="sampling rate from the time column")


def read_npy(
    path: str | os.PathLike,
    *,
    fs_hz: float | None = None,
    leads: tuple[str, ...] | list[str] | None = None,
    units: str = "mV",
    target_fs_hz: float | None = None,
    nan_policy: NanPolicy = "reject",
) -> Record:
    """Read a bare ``(C, T)`` or ``(T, C)`` array; ``fs_hz`` and ``leads`` must be declared."""
    from synth.limits import MAX_INPUT_BYTES

    p = Path(path)
    if not p.exists():
        raise MissingFileError("no such file", path=p)
    check_input_file(p, limit=MAX_INPUT_BYTES, what="NPY array", hint="split the record into shorter ones")
    if fs_hz is None or leads is None:
        raise DataError("a .npy file carries no sampling rate or lead names", path=p,
                        hint="pass fs_hz and leads (CLI: --in-fs HZ --in-leads I,II,...)")
    try:
        arr = np.load(p, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"cannot read array ({detail})", path=p, hint="expected a .npy of numbers") from None
    try:
        _real_array(arr, "array", convert=False)
    except ValueError as err:
        raise DataError(str(err), path=p, hint="expected a (C, T) or (T, C) array of numbers") from None
    from synth.limits import MAX_MEMORY_BYTES, human_bytes

    if arr.size * 4 > MAX_MEMORY_BYTES:
        raise DataError(f"array of shape {arr.shape} is too large to read ({human_bytes(arr.size * 4)})", path=p)
    leads_c = canonical_leads(list(leads), source=str(p))
    if arr.ndim == 1 and len(leads_c) == 1:
        arr = arr[None]
    if arr.ndim != 2 or len(leads_c) not in arr.shape:
        raise DataError(f"array of shape {arr.shape} does not fit {len(leads_c)} leads", path=p)
    if arr.shape[0] != len(leads_c):
        arr = arr.T
    signal, unit_t = _to_mv(_real_array(arr, "array"), [units] * len(leads_c), leads_c)
    return _finish(Record(signal, float(fs_hz), leads_c, unit_t, {}, str(p)), fs_hz=None,
                   target_fs_hz=target_fs_hz, nan_policy=nan_policy)


def record_format(path: str | os.PathLike) -> str:
    """The reader :func:`read_record` would use for ``path``: wfdb, npz, csv, npy, bidmc or bidmc_wfdb."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith(("_signals.csv", "_signals.csv.gz")) and name.startswith("bidmc"):
        return "bidmc"
    if re.fullmatch(r"bidmc\d+(\.hea)?", name):
        return "bidmc_wfdb"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".npy"):
        return "npy"
    return "wfdb"


def read_record(
    path: str | os.PathLike,
    *,
    fs_hz: float | None = None,
    leads: tuple[str, ...] | list[str] | None = None,
    target_fs_hz: float | None = None,
    nan_policy: NanPolicy = "reject",
    lead_map: dict[str, str] | None = None,
) -> Record:
    """Read any supported record, chosen by file name.

    Args:
        path: a WFDB record (with or without ``.hea``), ``.mat`` with its header, ``.npz``, ``.csv``, ``.npy`` or a
            BIDMC ``bidmc_NN_Signals.csv(.gz)``.
        fs_hz: for CSV/NPY the declared rate; for formats that store their own rate, the rate expected (mismatch
            raises :class:`DataError`).
        leads: lead names for header-less CSV and NPY.
        target_fs_hz: resample to this rate after reading.
        nan_policy: ``reject`` (default) or ``interpolate`` short gaps with a warning.
        lead_map: WFDB only: rename channels (``{"MLII": "II"}``) before matching canonical lead names.
    """
    kind = record_format(path)
    if kind == "bidmc":  # (read by synth.data.bidmc: its files are checked here)
        from synth.limits import MAX_CSV_BYTES

        if os.path.lexists(path):
            check_input_file(path, limit=MAX_CSV_BYTES, what="BIDMC signals file")
    if kind == "bidmc_wfdb":
        base = Path(path).with_suffix("") if Path(path).suffix == ".hea" else Path(path)
        hea = base.with_name(base.name + ".hea")
        if os.path.lexists(hea):
            _check_wfdb_files(hea)
    if kind == "csv":
        return read_csv(path, fs_hz=fs_hz, leads=leads, target_fs_hz=target_fs_hz, nan_policy=nan_policy)
    if kind == "npy":
        return read_npy(path, fs_hz=fs_hz, leads=leads, target_fs_hz=target_fs_hz, nan_policy=nan_policy)
    if kind == "npz":
        return read_npz(path, fs_hz=fs_hz, target_fs_hz=target_fs_hz, nan_policy=nan_policy)
    if kind == "bidmc":
        from synth.data.bidmc import read_bidmc_csv

        return _finish(read_bidmc_csv(path), fs_hz=fs_hz, target_fs_hz=target_fs_hz, nan_policy=nan_policy)
    if kind == "bidmc_wfdb":
        from synth.data.bidmc import read_bidmc_wfdb

        return _finish(read_bidmc_wfdb(path), fs_hz=fs_hz, target_fs_hz=target_fs_hz, nan_policy=nan_policy)
    return read_wfdb(path, fs_hz=fs_hz, target_fs_hz=target_fs_hz, nan_policy=nan_policy, lead_map=lead_map)


__all__ = ["read_record", "read_wfdb", "read_csv", "read_npy", "read_npz", "record_format", "canonical_lead"]
