"""Rebuild the small real sample shipped in ``synth/assets/sample`` from the full shared datasets.

PTB-XL: 16 records per strat_fold (160), all with ecg_id <= 500 so that 500 Hz files exist; within a fold the
records are taken round-robin over the diagnostic superclasses so the demo and fresh-clone tests see every class.
500 Hz copies for the first 2 records of each fold. BIDMC: the first 120 s of subjects 1 (train), 38 (val) and
46 (test), in the original CSV layout. Files are copied unchanged (PTB-XL signals stay FLAC-compressed WFDB).

    python tools/make_sample.py ../shared/data synth/assets/sample
"""

from __future__ import annotations

import csv
import gzip
import shutil
import sys
from pathlib import Path

from synth.data.ptbxl import PTBXL, SUPERCLASSES

PER_FOLD, HR_PER_FOLD, BIDMC_SUBJECTS, BIDMC_SECONDS = 16, 2, (1, 38, 46), 120


def pick_ptbxl(ds: PTBXL) -> tuple[list[int], list[int]]:
    table = ds.all_records[(ds.all_records.index <= 500) & ds.all_records.has_100 & ds.all_records.has_500]
    chosen, hr = [], []
    for fold in range(1, 11):
        rows = table[table.strat_fold == fold]
        queues = {c: [i for i, s in zip(rows.index, rows.superclasses) if s and s[0] == c] for c in SUPERCLASSES}
        queues["none"] = [i for i, s in zip(rows.index, rows.superclasses) if not s]
        picked: list[int] = []
        while len(picked) < min(PER_FOLD, len(rows)) and any(queues.values()):
            for q in queues.values():
                if q and len(picked) < PER_FOLD:
                    picked.append(int(q.pop(0)))
        chosen += sorted(picked)
        hr += sorted(picked)[:HR_PER_FOLD]
    return sorted(chosen), sorted(hr)


def main(shared: Path, out: Path) -> None:
    src = shared / "ptbxl"
    ds = PTBXL(src)
    ids, hr_ids = pick_ptbxl(ds)
    dst = out / "ptbxl"
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in ("scp_statements.csv", "LICENSE.txt"):
        shutil.copy(src / name, dst / name)
    with open(src / "ptbxl_database.csv", newline="", encoding="utf-8") as fin, \
            open(dst / "ptbxl_database.csv", "w", newline="", encoding="utf-8") as fout:
        reader, writer = csv.reader(fin), csv.writer(fout)
        writer.writerow(next(reader))
        for row in reader:
            if int(row[0]) in ids:
                writer.writerow(row)
    for ecg_id in ids:
        row = ds.all_records.loc[ecg_id]
        for rel, wanted in ((row.filename_lr, True), (row.filename_hr, ecg_id in hr_ids)):
            if not wanted:
                continue
            for f in (src / rel).parent.glob(Path(rel).name + "*"):
                target = dst / Path(rel).parent / f.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, target)
    bsrc, bdst = shared / "bidmc", out / "bidmc"
    if bdst.exists():
        shutil.rmtree(bdst)
    (bdst / "bidmc_csv").mkdir(parents=True)
    shutil.copy(bsrc / "LICENSE", bdst / "LICENSE")
    for s in BIDMC_SUBJECTS:
        shutil.copy(bsrc / "bidmc_csv" / f"bidmc_{s:02d}_Fix.txt", bdst / "bidmc_csv")
        with gzip.open(bsrc / "bidmc_csv" / f"bidmc_{s:02d}_Signals.csv.gz", "rt") as fin, \
                gzip.open(bdst / "bidmc_csv" / f"bidmc_{s:02d}_Signals.csv.gz", "wt", compresslevel=9) as fout:
            for n, line in enumerate(fin):
                if n > BIDMC_SECONDS * 125:
                    break
                fout.write(line)
    print(f"PTB-XL: {len(ids)} records at 100 Hz, {len(hr_ids)} also at 500 Hz; BIDMC subjects {BIDMC_SUBJECTS}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
