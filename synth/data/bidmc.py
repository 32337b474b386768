"""BIDMC PPG and Respiration (Pimentel et al., IEEE TBME 2016): paired PPG and ECG lead II at 125 Hz.

Two layouts are read: PhysioNet's CSV release (``bidmc_csv/bidmc_NN_Signals.csv(.gz)`` + ``_Fix.txt``) and its WFDB
release (``bidmcNN.hea`` + ``.dat``). Columns and channels are found by name: their order differs by record.
Amplitudes in the CSV release are scaled to about 0-1, so both channels are arbitrary units (``au``); normalise
per window. Split by subject, never by window.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from synth.data.record import Record
from synth.errors import DataError, MissingFileError

FS_HZ = 125.0
#: Subject-wise split (EVALUATION.md): 1-37 train, 38-45 validation, 46-53 test.
SPLITS: dict[str, range] = {"train": range(1, 38), "val": range(38, 46), "test": range(46, 54)}
_CSV_RE = re.compile(r"bidmc_(\d+)_Signals\.csv(\.gz)?$", re.IGNORECASE)
_WFDB_RE = re.compile(r"bidmc(\d+)\.hea$", re.IGNORECASE)


def subject_split(subject: int) -> str:
    for name, subjects in SPLITS.items():
        if subject in subjects:
            return name
    raise DataError(f"BIDMC subject {subject} is outside 1-53")


def _read_fix(path: Path) -> dict:
    """Age, gender and location from ``bidmc_NN_Fix.txt`` (missing file: empty dict)."""
    meta: dict = {}
    if not path.exists():
        return meta
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "age":
            meta["age"] = float(value) if value.replace(".", "", 1).isdigit() else None
        elif key == "gender":
            meta["sex"] = value[:1].upper() or None
        elif key == "location":
            meta["location"] = value
    return meta


#: Limb leads besides II that some BIDMC subjects carry (``V`` and ``MCL`` are chest leads of unknown position).
EXTRA_LIMB_LEADS: tuple[str, ...] = ("I", "III", "aVR", "aVL", "aVF")


def _extra_limb_columns(names: list[str]) -> list[tuple[int, str]]:
    """``(column index, canonical lead)`` of the limb leads in ``names`` other than II, in canonical order."""
    upper = [n.strip().strip(",").strip().upper() for n in names]
    return [(upper.index(lead.upper()), lead) for lead in EXTRA_LIMB_LEADS if lead.upper() in upper]


def read_bidmc_csv(path: str | os.PathLike, *, limb_leads: bool = False) -> Record:
    """One subject from the CSV release: channels ``("II", "PPG")`` in arbitrary units at 125 Hz; with
    ``limb_leads`` also the other limb leads the subject has (:data:`EXTRA_LIMB_LEADS`), after ``PPG``."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise MissingFileError("no such file", path=p)
    try:
        frame = pd.read_csv(p)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, EOFError, OSError) as err:
        raise DataError(f"cannot read BIDMC CSV: {err}", path=p) from err
    frame.columns = [c.strip() for c in frame.columns]
    missing = [c for c in ("II", "PLETH") if c not in frame.columns]
    if missing or frame.empty:
        raise DataError(f"BIDMC signals file lacks columns {missing or 'rows'}; it has {list(frame.columns)}", path=p)
    fs = FS_HZ
    if "Time [s]" in frame.columns and len(frame) > 1:
        from synth.data.readers import rate_from_time_column

        fs = rate_from_time_column(frame["Time [s]"], path=p, median_of=1000)
    extra = _extra_limb_columns(list(frame.columns)) if limb_leads else []
    columns = ["II", "PLETH", *[frame.columns[i] for i, _ in extra]]
    try:
        signal = frame[columns].to_numpy(dtype=np.float32).T.copy()
    except (ValueError, TypeError):
        raise DataError(f"non-numeric values in the {', '.join(columns)} columns", path=p) from None
    leads = ("II", "PPG", *[lead for _, lead in extra])
    match = _CSV_RE.search(p.name)
    subject = int(match.group(1)) if match else None
    meta = {"dataset": "bidmc", "subject": subject}
    if subject is not None:
        meta["split"] = subject_split(subject)
        meta.update(_read_fix(p.with_name(f"bidmc_{match.group(1)}_Fix.txt")))
    return Record(signal, fs, leads, ("au",) * len(leads), meta, str(p))


def read_bidmc_wfdb(path: str | os.PathLike, *, limb_leads: bool = False) -> Record:
    """One subject from the WFDB release (channel names there carry trailing commas, e.g. ``PLETH,``); ``limb_leads``
    as in :func:`read_bidmc_csv`."""
    import wfdb

    p = Path(path)
    base = p.with_suffix("") if p.suffix == ".hea" else p
    if not base.with_name(base.name + ".hea").exists():
        raise MissingFileError("no such WFDB record", path=base.with_name(base.name + ".hea"))
    try:
        rec = wfdb.rdrecord(str(base))
    except Exception as err:
        raise DataError(f"cannot read WFDB record: {err}", path=base) from err
    names = [n.strip().strip(",").strip().upper() for n in rec.sig_name]
    missing = [c for c in ("II", "PLETH") if c not in names]
    if missing:
        raise DataError(f"BIDMC record lacks channels {missing}; it has {names}", path=base)
    extra = _extra_limb_columns(names) if limb_leads else []
    signal = rec.p_signal[:, [names.index("II"), names.index("PLETH"), *[i for i, _ in extra]]].T.astype(np.float32)
    leads = ("II", "PPG", *[lead for _, lead in extra])
    match = re.search(r"bidmc(\d+)$", base.name, re.IGNORECASE)
    subject = int(match.group(1)) if match else None
    meta = {"dataset": "bidmc", "subject": subject}
    if subject is not None:
        meta["split"] = subject_split(subject)
    return Record(signal, float(rec.fs), leads, ("au",) * len(leads), meta, str(base))


class BIDMC:
    """The BIDMC subjects found under ``root`` (CSV release preferred when both layouts are present)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingFileError("no such folder", path=self.root)
        self._files: dict[int, Path] = {}
        for folder in (self.root, self.root / "bidmc_csv"):
            for f in sorted(folder.glob("bidmc*")):
                m = _CSV_RE.search(f.name) or _WFDB_RE.search(f.name)
                if m and int(m.group(1)) not in self._files:
                    self._files[int(m.group(1))] = f
        if not self._files:
            raise DataError("no BIDMC records found (bidmc_NN_Signals.csv[.gz] or bidmcNN.hea)", path=self.root,
                            hint="point at the BIDMC folder or its bidmc_csv/ sub-folder")

    @property
    def subjects(self) -> list[int]:
        return sorted(self._files)

    def split(self, name: str) -> list[int]:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; choose train, val or test")
        return [s for s in self.subjects if s in SPLITS[name]]

    def record(self, subject: int, *, limb_leads: bool = False) -> Record:
        """Channels ``II`` and ``PPG``; with ``limb_leads`` also the subject's other limb leads (e.g. ``aVR``)."""
        if subject not in self._files:
            raise DataError(f"subject {subject} not found; available: {self.subjects}", path=self.root)
        f = self._files[subject]
        reader = read_bidmc_wfdb if f.suffix == ".hea" else read_bidmc_csv
        return reader(f, limb_leads=limb_leads)

    def __len__(self) -> int:
        return len(self._files)

    def __iter__(self):
        for s in self.subjects:
            yield self.record(s)

    def summary(self) -> dict:
        layout = "wfdb" if all(f.suffix == ".hea" for f in self._files.values()) else "csv"
        first = self.record(self.subjects[0])
        return {
            "dataset": "BIDMC", "root": str(self.root), "layout": layout, "subjects": len(self._files),
            "channels": list(first.leads), "units": list(first.units), "fs_hz": first.fs_hz,
            "duration_s_first_subject": round(first.duration_s, 2),
            "splits": {k: len(self.split(k)) for k in SPLITS},
        }  # fmt: skip
