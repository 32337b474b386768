"""PTB-XL (Wagner et al., PhysioNet 2022) as a dataset: metadata, labels, folds and signals.

Layout: ``ptbxl_database.csv`` + ``scp_statements.csv`` + ``records100/`` and/or ``records500/`` (WFDB, plain or
FLAC-compressed). Folds are patient-disjoint: ``strat_fold`` 1-8 train, 9 validation, 10 test.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from synth.data.leads import LEADS_12
from synth.data.readers import read_wfdb
from synth.data.record import Record
from synth.errors import DataError, MissingFileError
from synth.io_utils import read_text_lenient

Split = Literal["train", "val", "test"]
SPLIT_FOLDS: dict[str, tuple[int, ...]] = {"train": (1, 2, 3, 4, 5, 6, 7, 8), "val": (9,), "test": (10,)}
SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
#: The 23 diagnostic subclasses of ``scp_statements.csv`` (``diagnostic_subclass``), by superclass.
SUBCLASSES: tuple[str, ...] = (
    "NORM", "AMI", "IMI", "LMI", "PMI", "ISCA", "ISCI", "ISC_", "NST_", "STTC", "CLBBB", "CRBBB", "ILBBB", "IRBBB",
    "IVCD", "LAFB/LPFB", "WPW", "_AVB", "LAO/LAE", "LVH", "RAO/RAE", "RVH", "SEHYP",
)  # fmt: skip
#: The 12 rhythm statements (``rhythm == 1``).
RHYTHMS: tuple[str, ...] = (
    "SR", "AFIB", "STACH", "SARRH", "SBRAD", "PACE", "SVARR", "BIGU", "AFLT", "SVTAC", "PSVT", "TRIGU",
)  # fmt: skip
#: Fixed class lists of the label kinds (the others list the classes present, sorted).
_FIXED_CLASSES: dict[str, tuple[str, ...]] = {"superclasses": SUPERCLASSES, "subclasses": SUBCLASSES,
                                              "rhythm": RHYTHMS}
#: PTB-XL stores ages above 89 as 300 (de-identification); we report them as 90.
AGE_CAP = 90.0


def fold_split(fold: int) -> str:
    for name, folds in SPLIT_FOLDS.items():
        if fold in folds:
            return name
    raise DataError(f"strat_fold {fold} is not in 1-10")


def _parse_codes(text: str, ecg_id: int, path: Path) -> dict[str, float]:
    try:
        codes = ast.literal_eval(text) if isinstance(text, str) and text.strip() else {}
    except (ValueError, SyntaxError) as err:
        raise DataError(f"ecg_id {ecg_id}: scp_codes {text!r} is not a literal dict", path=path) from err
    if not isinstance(codes, dict):
        raise DataError(f"ecg_id {ecg_id}: scp_codes must be a dict, got {type(codes).__name__}", path=path)
    return {str(k): float(v) for k, v in codes.items()}


class PTBXL:
    """The PTB-XL records present under ``root`` at ``fs_hz`` (100 or 500 Hz).

    ``table`` has one row per record with at least: ``ecg_id, patient_id, age, sex, report, scp_codes (dict),
    superclasses, subclasses, rhythm, form (lists of codes), strat_fold, split, has_100, has_500``.
    Indexing (``ds[i]``) and iteration give :class:`Record` objects in canonical lead order, in mV.
    """

    def __init__(self, root: str | os.PathLike, fs_hz: int = 100, *, _table=None, _statements=None):
        import pandas as pd

        self.root = Path(root)
        if fs_hz not in (100, 500):
            raise DataError(f"PTB-XL is stored at 100 or 500 Hz, not {fs_hz}", hint="use --fs to resample after reading")
        self.fs_hz = int(fs_hz)
        if _table is not None:
            self.table, self.statements = _table, _statements
            return
        if not self.root.is_dir():
            raise MissingFileError("no such folder", path=self.root)
        db, scp = self.root / "ptbxl_database.csv", self.root / "scp_statements.csv"
        if not db.exists():
            raise DataError("not a PTB-XL folder: ptbxl_database.csv is missing", path=self.root,
                            hint="point at the folder that holds ptbxl_database.csv, scp_statements.csv and records100/")
        if not scp.exists():
            raise DataError("PTB-XL folder without scp_statements.csv (needed for label aggregation)", path=self.root)
        table = pd.read_csv(io.StringIO(read_text_lenient(db)))
        required = {"ecg_id", "patient_id", "age", "sex", "report", "scp_codes", "strat_fold", "filename_lr", "filename_hr"}
        missing = required - set(table.columns)
        if missing:
            raise DataError(f"ptbxl_database.csv lacks columns {sorted(missing)}", path=db)
        if table.empty:
            raise DataError("ptbxl_database.csv has no records", path=db)
        statements = pd.read_csv(io.StringIO(read_text_lenient(scp)), index_col=0)
        self.statements = statements
        table = table.set_index("ecg_id", drop=False).sort_index()
        table["scp_codes"] = [_parse_codes(t, i, db) for i, t in zip(table["ecg_id"], table["scp_codes"])]
        diag = statements[statements.get("diagnostic", 0) == 1]
        sup, sub = diag["diagnostic_class"].to_dict(), diag["diagnostic_subclass"].to_dict()
        rhythm = set(statements.index[statements.get("rhythm", 0) == 1])
        form = set(statements.index[statements.get("form", 0) == 1])
        table["superclasses"] = [sorted({sup[c] for c in codes if c in sup}) for codes in table["scp_codes"]]
        table["subclasses"] = [sorted({sub[c] for c in codes if c in sub}) for codes in table["scp_codes"]]
        table["rhythm"] = [sorted(c for c in codes if c in rhythm) for codes in table["scp_codes"]]
        table["form"] = [sorted(c for c in codes if c in form) for codes in table["scp_codes"]]
        table["strat_fold"] = table["strat_fold"].astype(int)
        table["split"] = [fold_split(f) for f in table["strat_fold"]]
        table["age_over_89"] = table["age"] >= 300
        table.loc[table["age_over_89"], "age"] = AGE_CAP
        table["sex"] = table["sex"].map({0: "M", 1: "F"})
        table["report"] = table["report"].fillna("").astype(str)
        table["has_100"] = [(self.root / f"{p}.hea").exists() for p in table["filename_lr"]]
        table["has_500"] = [(self.root / f"{p}.hea").exists() for p in table["filename_hr"]]
        present = table["has_100"] if self.fs_hz == 100 else table["has_500"]
        self.all_records = table  # every row of the CSV, with availability flags
        self.table = table[present]
        if self.table.empty:
            raise DataError(f"no record files at {self.fs_hz} Hz under this folder", path=self.root,
                            hint=f"expected records{self.fs_hz}/.../*.hea as named in ptbxl_database.csv")

    # -- views -------------------------------------------------------------------------------------------------
    def _view(self, table) -> PTBXL:
        view = PTBXL(self.root, self.fs_hz, _table=table, _statements=self.statements)
        full = getattr(self, "all_records", table)
        view.all_records = full[full.index.isin(table.index)]  # a view's summary describes the view
        return view

    def split(self, name: Split | str) -> PTBXL:
        """Records of one split: ``train`` (folds 1-8), ``val`` (9), ``test`` (10)."""
        if name not in SPLIT_FOLDS:
            raise DataError(f"unknown split {name!r}; choose train, val or test")
        return self._view(self.table[self.table["split"] == name])

    def folds(self, folds: Sequence[int]) -> PTBXL:
        return self._view(self.table[self.table["strat_fold"].isin(list(folds))])

    def subset(self, ecg_ids: Sequence[int]) -> PTBXL:
        return self._view(self.table.loc[list(ecg_ids)])

    # -- records -----------------------------------------------------------------------------------------------
    @property
    def ecg_ids(self) -> list[int]:
        return [int(i) for i in self.table.index]

    def __len__(self) -> int:
        return len(self.table)

    def path_of(self, ecg_id: int) -> Path:
        row = self.table.loc[ecg_id]
        return self.root / (row["filename_lr"] if self.fs_hz == 100 else row["filename_hr"])

    def metadata(self, ecg_id: int) -> dict:
        row = self.table.loc[ecg_id]
        age = None if row["age"] != row["age"] else float(row["age"])
        return {
            "dataset": "ptbxl", "ecg_id": int(ecg_id), "patient_id": int(row["patient_id"]), "age": age,
            "age_over_89": bool(row["age_over_89"]), "sex": row["sex"] if isinstance(row["sex"], str) else None,
            "report": row["report"], "scp_codes": dict(row["scp_codes"]), "superclasses": list(row["superclasses"]),
            "subclasses": list(row["subclasses"]), "rhythm": list(row["rhythm"]), "form": list(row["form"]),
            "strat_fold": int(row["strat_fold"]), "split": row["split"],
        }  # fmt: skip

    def record(self, ecg_id: int) -> Record:
        """One record, 12 leads in canonical order, mV, with its metadata."""
        if ecg_id not in self.table.index:
            raise DataError(f"ecg_id {ecg_id} is not among the {len(self)} records at {self.fs_hz} Hz", path=self.root)
        rec = read_wfdb(self.path_of(ecg_id), fs_hz=self.fs_hz).select(list(LEADS_12))
        rec.metadata.update(self.metadata(ecg_id))
        return rec

    def __getitem__(self, index: int) -> Record:
        return self.record(self.ecg_ids[index])

    def __iter__(self):
        for ecg_id in self.ecg_ids:
            yield self.record(ecg_id)

    # -- labels ------------------------------------------------------------------------------------------------
    def label_counts(self, kind: Literal["superclasses", "subclasses", "rhythm", "form"] = "superclasses") -> dict[str, int]:
        counts = Counter(c for labels in self.table[kind] for c in labels)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def multi_hot(self, kind: str = "superclasses", classes: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
        """``(N, K)`` float32 multi-hot labels in record order and the class names.

        ``kind``: ``superclasses``, ``subclasses``, ``rhythm``, ``form``, or several joined by ``+``
        (``superclasses+subclasses+rhythm``: one column per distinct name, a record has a name if any of the kinds
        gives it; the subclasses ``NORM`` and ``STTC`` share the superclass columns of the same name). Default
        classes: the fixed lists (:data:`SUPERCLASSES`, :data:`SUBCLASSES`, :data:`RHYTHMS`), for ``form`` the
        statements present, sorted.
        """
        kinds = [k.strip() for k in kind.split("+")]
        unknown = [k for k in kinds if k not in ("superclasses", "subclasses", "rhythm", "form")]
        if unknown:
            raise DataError(f"unknown label kind {unknown[0]!r}",
                            hint="use superclasses, subclasses, rhythm, form or several joined by +")
        if classes is None:
            found = [c for k in kinds for c in (_FIXED_CLASSES.get(k) or sorted(self.label_counts(k)))]
            classes = list(dict.fromkeys(found))
        classes = list(classes)
        col = {c: k for k, c in enumerate(classes)}
        out = np.zeros((len(self), len(classes)), dtype=np.float32)
        for k in kinds:
            for i, labels in enumerate(self.table[k]):
                for c in labels:
                    if c in col:
                        out[i, col[c]] = 1.0
        return out, classes

    def english_reports(self) -> dict[int, str]:
        """``{ecg_id: English report}`` composed from each record's SCP statements (see :func:`english_report`)."""
        return {int(i): english_report(codes, self.statements) for i, codes in zip(self.table.index, self.table["scp_codes"])}

    def summary(self) -> dict:
        allr = getattr(self, "all_records", self.table)
        return {
            "dataset": "PTB-XL", "root": str(self.root), "records": int(len(allr)),
            "records_100hz": int(allr["has_100"].sum()), "records_500hz": int(allr["has_500"].sum()),
            "records_500hz_ecg_ids": _ranges([int(i) for i in allr.index[allr["has_500"]]]),
            "patients": int(allr["patient_id"].nunique()), "leads": list(LEADS_12),
            "duration_s": 10.0, "folds": {int(k): int(v) for k, v in sorted(Counter(allr["strat_fold"]).items())},
            "splits": {k: int(v) for k, v in Counter(allr["split"]).items()},
            "superclasses": dict(Counter(c for labels in allr["superclasses"] for c in labels).most_common()),
            "no_superclass": int(sum(1 for labels in allr["superclasses"] if not labels)),
        }  # fmt: skip

    # -- bulk --------------------------------------------------------------------------------------------------
    def load_signals(
        self, *, cache_dir: str | os.PathLike | None = None, workers: int | None = None, progress: bool = True
    ) -> np.ndarray:
        """All records as one ``(N, 12, T)`` float32 array in mV, in ``ecg_ids`` order.

        Reads WFDB in ``workers`` processes (default: all cores). With ``cache_dir`` the array is stored once as an
        ``.npy`` keyed by the folder, rate and record list, and later calls return it memory-mapped (read-only)
        in well under a second. The cache file is written under a temporary name and renamed when complete.
        """
        paths = [str(self.path_of(i)) for i in self.ecg_ids]
        cache = None
        if cache_dir is not None:
            key = hashlib.sha1(f"{self.root.resolve()}|{self.fs_hz}|{','.join(map(str, self.ecg_ids))}".encode()).hexdigest()[:16]
            cache = Path(cache_dir) / f"ptbxl-{self.fs_hz}hz-{len(paths)}-{key}.npy"
            if cache.exists():
                arr = np.load(cache, mmap_mode="r")
                if arr.shape[0] == len(paths):
                    return arr
        n_t = 10 * self.fs_hz
        workers = workers or os.cpu_count() or 1
        chunks = [paths[i : i + 64] for i in range(0, len(paths), 64)]
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc=f"PTB-XL {self.fs_hz} Hz", unit="rec", disable=not progress)
        if cache is not None:
            from synth.io_utils import atomic_path

            with atomic_path(cache) as tmp:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(paths), 12, n_t))
                self._fill(out, chunks, workers, bar)
                out.flush()
                del out
            bar.close()
            return np.load(cache, mmap_mode="r")
        out = np.empty((len(paths), 12, n_t), dtype=np.float32)
        self._fill(out, chunks, workers, bar)
        bar.close()
        return out

    def heart_rates(self, *, cache_dir: str | os.PathLike | None = None, progress: bool = False) -> np.ndarray:
        """``(N,)`` heart rate (bpm) measured on each record's R-peaks, NaN where none were found; kept beside the
        signal cache (same key) when ``cache_dir`` is given, so it is measured once."""
        from synth.training.tasks import measured_heart_rates

        cache = None
        if cache_dir is not None:
            key = hashlib.sha1(f"{self.root.resolve()}|{self.fs_hz}|{','.join(map(str, self.ecg_ids))}".encode()).hexdigest()[:16]
            cache = Path(cache_dir) / f"ptbxl-hr-{self.fs_hz}hz-{len(self.ecg_ids)}-{key}.npy"
            if cache.exists():
                hr = np.load(cache)
                if hr.shape == (len(self.ecg_ids),):
                    return hr
        hr = measured_heart_rates(self.load_signals(cache_dir=cache_dir, progress=progress), self.fs_hz,
                                  progress=progress)
        if cache is not None:
            from synth.io_utils import atomic_path

            cache.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
                np.save(fh, hr)
        return hr

    def _fill(self, out: np.ndarray, chunks: list[list[str]], workers: int, bar) -> None:
        start = 0
        if workers <= 1:
            results = map(_read_chunk, chunks, [self.fs_hz] * len(chunks))
            for block in results:
                out[start : start + len(block)] = block
                start += len(block)
                bar.update(len(block))
            return
        from synth.io_utils import die_with_parent

        with ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            for block in pool.map(_read_chunk, chunks, [self.fs_hz] * len(chunks)):
                out[start : start + len(block)] = block
                start += len(block)
                bar.update(len(block))


def at_both_rates(root: str | os.PathLike, split: Split | str) -> tuple[PTBXL, PTBXL]:
    """The records of ``split`` present at 100 Hz and at 500 Hz: ``(100 Hz view, 500 Hz view)``, the same ecg_ids in
    the same order (possibly none: check ``len``)."""
    high, low = PTBXL(root, fs_hz=500).split(split), PTBXL(root, fs_hz=100)
    present = set(low.ecg_ids)
    ids = [i for i in high.ecg_ids if i in present]
    return low.subset(ids), high.subset(ids)


def english_report(scp_codes: dict[str, float], statements) -> str:
    """An English report composed from SCP statements and their likelihoods, e.g. ``"sinus rhythm, left
    ventricular hypertrophy, possible anteroseptal myocardial infarction"``.

    PTB-XL's own reports are mostly German free text; this gives every record an English twin in the words of
    ``scp_statements.csv``. Order: rhythm statements, then diagnostic, then form statements, each by decreasing
    likelihood. Likelihood (0-100, PTB-XL's confidence of a diagnostic statement) becomes a qualifier: >= 80 or 0
    (not stated, as for rhythm and form) plain, 50-79 ``probable``, below 50 ``possible``.
    """
    desc = statements["description"].to_dict() if "description" in statements else {}
    rhythm = set(statements.index[statements.get("rhythm", 0) == 1]) if len(statements) else set()
    diagnostic = set(statements.index[statements.get("diagnostic", 0) == 1]) if len(statements) else set()

    def group(code: str) -> int:
        return 0 if code in rhythm else 1 if code in diagnostic else 2

    parts = []
    for code, lik in sorted(scp_codes.items(), key=lambda kv: (group(kv[0]), -float(kv[1] or 0), kv[0])):
        text = str(desc.get(code, "")).strip() or code
        lik = float(lik or 0)
        qualifier = "" if lik >= 80 or lik == 0 else "probable " if lik >= 50 else "possible "
        phrase = qualifier + text.replace("(former EDIS)", "").strip()
        if phrase not in parts:
            parts.append(phrase)
    return ", ".join(parts)


def _read_chunk(paths: list[str], fs_hz: int) -> np.ndarray:
    return np.stack([read_wfdb(p, fs_hz=fs_hz).select(list(LEADS_12)).signal for p in paths])


def _ranges(ids: list[int]) -> str:
    """Compact ``1-500, 731`` form of a sorted id list."""
    if not ids:
        return ""
    parts, start, prev = [], ids[0], ids[0]
    for i in ids[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(f"{start}-{prev}" if start != prev else f"{start}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)
