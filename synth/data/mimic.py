"""MIMIC-IV-ECG (Gow et al., PhysioNet 2023) layout: 10 s 12-lead records at 500 Hz with machine reports.

``record_list.csv`` (``subject_id, study_id, file_name, ecg_time, path``) lists the WFDB records under ``files/``;
``machine_measurements.csv`` holds ``report_0`` ... ``report_17`` per study, joined here into one report text.
Leads are stored as I, II, III, aVR, aVF, aVL, V1-V6 (aVF before aVL): they are mapped by name.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from synth.data.leads import LEADS_12
from synth.data.readers import read_wfdb
from synth.data.record import Record
from synth.errors import DataError, MissingFileError
from synth.io_utils import read_text_lenient


class MIMICIVECG:
    def __init__(self, root: str | os.PathLike):
        import pandas as pd

        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingFileError("no such folder", path=self.root)
        rl = self.root / "record_list.csv"
        if not rl.exists():
            raise DataError("not a MIMIC-IV-ECG folder: record_list.csv is missing", path=self.root)
        records = pd.read_csv(io.StringIO(read_text_lenient(rl)))
        need = {"subject_id", "study_id", "path"}
        if not need <= set(records.columns):
            raise DataError(f"record_list.csv lacks columns {sorted(need - set(records.columns))}", path=rl)
        mm = self.root / "machine_measurements.csv"
        reports: dict[int, str] = {}
        if mm.exists():
            meas = pd.read_csv(io.StringIO(read_text_lenient(mm)), low_memory=False)
            cols = sorted((c for c in meas.columns if c.startswith("report_")), key=lambda c: int(c.split("_")[1]))
            for study, row in zip(meas["study_id"], meas[cols].itertuples(index=False)):
                parts = [str(v).strip() for v in row if isinstance(v, str) and v.strip()]
                reports[int(study)] = "; ".join(parts)
        records["report"] = [reports.get(int(s), "") for s in records["study_id"]]
        self.table = records.set_index("study_id", drop=False)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def study_ids(self) -> list[int]:
        return [int(s) for s in self.table.index]

    def record(self, study_id: int) -> Record:
        if study_id not in self.table.index:
            raise DataError(f"study_id {study_id} is not in record_list.csv", path=self.root)
        row = self.table.loc[study_id]
        rec = read_wfdb(self.root / row["path"]).select(list(LEADS_12))
        rec.metadata.update({"dataset": "mimic-iv-ecg", "subject_id": int(row["subject_id"]),
                             "study_id": int(study_id), "report": row["report"]})
        return rec

    def __getitem__(self, index: int) -> Record:
        return self.record(self.study_ids[index])

    def summary(self) -> dict:
        first = self.record(self.study_ids[0])
        return {"dataset": "MIMIC-IV-ECG", "root": str(self.root), "records": len(self),
                "subjects": int(self.table["subject_id"].nunique()), "leads": list(first.leads),
                "fs_hz": first.fs_hz, "with_report": int((self.table["report"] != "").sum())}
