"""``synth data info|plot|convert`` and ``synth demo``."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from synth import limits
from synth.cli.common import RATE, SEED, START_S, add_allow_large, add_force, add_read_options, read_input
from synth.errors import DataError

#: Bytes per sample and channel of each output format, for the size estimate (CSV: about 10 characters).
_BYTES_PER_SAMPLE = {"wfdb": 2, "npz": 4, "csv": 10}


# -- data info ---------------------------------------------------------------------------------------------------
def _dataset_kind(path: Path) -> str | None:
    if (path / "ptbxl_database.csv").exists() or (path / "records100").is_dir() or (path / "records500").is_dir():
        return "ptbxl"
    if (path / "record_list.csv").exists():
        return "mimic"
    if (path / "bidmc_csv").is_dir() or any(path.glob("bidmc*_Signals.csv*")) or any(path.glob("bidmc[0-9]*.hea")):
        return "bidmc"
    return None


def _open_dataset(path: Path, fs_hz: int = 100):
    kind = _dataset_kind(path)
    if kind == "ptbxl":
        from synth.data.ptbxl import PTBXL

        return PTBXL(path, fs_hz=fs_hz)
    if kind == "bidmc":
        from synth.data.bidmc import BIDMC

        return BIDMC(path)
    if kind == "mimic":
        from synth.data.mimic import MIMICIVECG

        return MIMICIVECG(path)
    raise DataError("folder is not a dataset synth recognises", path=path,
                    hint="expected PTB-XL (ptbxl_database.csv), BIDMC (bidmc_csv/) or MIMIC-IV-ECG (record_list.csv)")


def _format_counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _print_dataset_summary(s: dict) -> None:
    print(f"{s['dataset']} at {s['root']}")
    if s["dataset"] == "PTB-XL":
        print(f"  records       {s['records']} (100 Hz: {s['records_100hz']}; 500 Hz: {s['records_500hz']})")
        if s["records_500hz"] and s["records_500hz"] < s["records"]:
            print(f"  500 Hz ids    {s['records_500hz_ecg_ids']}")
        print(f"  patients      {s['patients']}")
        print(f"  leads         {len(s['leads'])}: {' '.join(s['leads'])}")
        print(f"  duration      {s['duration_s']:g} s per record")
        folds = " ".join(f"{k}:{v}" for k, v in s["folds"].items())
        print(f"  folds         {folds}")
        sp = s["splits"]
        print(f"  splits        train (1-8) {sp.get('train', 0)}, val (9) {sp.get('val', 0)}, test (10) {sp.get('test', 0)}")
        print(f"  superclasses  {_format_counts(s['superclasses'])}; none {s['no_superclass']}")
    elif s["dataset"] == "BIDMC":
        print(f"  subjects      {s['subjects']} ({s['layout']} layout)")
        print(f"  channels      {', '.join(s['channels'])} in {', '.join(s['units'])} at {s['fs_hz']:g} Hz")
        print(f"  duration      {s['duration_s_first_subject']:g} s (first subject)")
        print(f"  splits        {_format_counts(s['splits'])} (by subject)")
    else:
        for key, value in s.items():
            if key not in ("dataset", "root"):
                print(f"  {key:<13} {value}")


def _record_summary(record) -> dict:
    import numpy as np

    sig = record.signal
    return {
        "source": record.source, "leads": list(record.leads), "units": list(record.units), "fs_hz": record.fs_hz,
        "samples": record.n_samples, "duration_s": round(record.duration_s, 3),
        "range": {lead: [round(float(np.nanmin(sig[i])), 3), round(float(np.nanmax(sig[i])), 3)]
                  for i, lead in enumerate(record.leads)},
        "metadata": {k: v for k, v in record.metadata.items() if k != "comments"},
    }  # fmt: skip


def cmd_info(args: argparse.Namespace) -> int:
    path = Path(args.path)
    from synth.data.cohort import is_cohort

    if is_cohort(path):
        return _cohort_info(path, args.json)
    if path.is_dir():
        fs = int(args.fs or 100)
        if fs not in (100, 500) or (args.fs and args.fs != fs):
            raise DataError(f"--fs {args.fs:g}: a dataset folder is counted at 100 or 500 Hz", path=path)
        summary = _open_dataset(path, fs).summary()
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            _print_dataset_summary(summary)
        return 0
    s = _record_summary(read_input(args, path))
    if args.json:
        print(json.dumps(s, indent=2, default=str))
        return 0
    print(f"record {s['source']}")
    print(f"  leads         {len(s['leads'])}: {' '.join(s['leads'])}")
    print(f"  fs            {s['fs_hz']:g} Hz, {s['samples']} samples ({s['duration_s']:g} s)")
    print(f"  units         {', '.join(sorted(set(s['units'])))}")
    lo = min(v[0] for v in s["range"].values())
    hi = max(v[1] for v in s["range"].values())
    print(f"  range         {lo:g} .. {hi:g}")
    for key, value in s["metadata"].items():  # a file's own text: shown on one line, without terminal controls
        print(f"  {_printable(key):<13} {_printable(value)}")
    return 0


def _printable(value) -> str:
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", str(value))


def _cohort_info(path: Path, as_json: bool) -> int:
    from synth.data.cohort import Cohort

    s = Cohort(path).summary()
    if as_json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"synthetic cohort at {s['path']} (model {s['model']})")
    print(f"  records       {s['records']:,} in {s['shards']} shards, {len(s['leads'])} leads x {s['samples']} samples "
          f"at {s['fs_hz']:g} Hz")
    print(f"  labels        {_format_counts(s['labels'])}; none {s['no_label']}")
    print(f"  sex           {_format_counts(s['sex'])}")
    for name, unit in (("age", "years"), ("hr", "bpm")):
        if name in s:
            h = s[name]
            print(f"  {name:<13} mean {h['mean']:.1f} {unit} ({h['min']:g}-{h['max']:g}), given for {h['n']:,}")
            top = max(h["histogram"].values()) or 1
            for bin_, count in h["histogram"].items():
                print(f"    {bin_:>9} {'#' * round(40 * count / top):<40} {count:,}")
    return 0


def _convert_cohort(args: argparse.Namespace, path: Path) -> int:
    """Every record of a cohort (or ``--records A:B``) as one file each in the folder ``args.output``."""
    from synth.data.cohort import Cohort
    from synth.data.leads import LEADS_12
    from synth.data.record import Record
    from synth.data.writers import write_record
    from synth.outputs import staged_folder
    from synth.tasks.common import record_suffix

    cohort = Cohort(path)
    lo, _, hi = (args.records or ":").partition(":")
    try:
        chosen = range(len(cohort))[slice(int(lo) if lo else None, int(hi) if hi else None)]
    except ValueError:
        raise DataError(f"--records {args.records!r} is not A:B", hint="e.g. --records 0:100") from None
    limits.check_size(len(chosen) * 12 * cohort.summary()["samples"] * _BYTES_PER_SAMPLE[args.to],
                      f"{len(chosen):,} records", allow_large=args.allow_large, path=args.output)
    from tqdm.auto import tqdm

    fs_hz = float(cohort.meta.get("fs_hz", 100.0))
    with staged_folder(args.output, overwrite=args.force, inputs=[path]) as stage:
        for i in tqdm(chosen, desc=f"cohort to {args.to}", unit="rec", disable=len(chosen) < 100):
            x, cond = cohort[i]
            meta = {k: (v.item() if hasattr(v, "item") else v) for k, v in cond.items() if k != "labels"}
            meta["labels"] = ",".join(cohort.label_lists[i])
            rec = Record(x, fs_hz, LEADS_12, metadata=meta)
            write_record(rec, stage / f"{cond['record']}{record_suffix(args.to)}", args.to)
    print(f"wrote {len(chosen):,} records to {args.output}/")
    return 0


# -- data plot / convert -------------------------------------------------------------------------------------------
def cmd_plot(args: argparse.Namespace) -> int:
    from synth.data.plot import plot_record
    from synth.outputs import staged_files

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise DataError("plots are written as PNG", path=out, hint="give --out a name ending in .png")
    from synth.data.readers import check_resample_memory
    from synth.data.transforms import resample_record

    def stretch(path: Path, fs_hz: float | None):
        """The plotted stretch of ``path``, cut before it is resampled to ``fs_hz`` (not the whole record)."""
        part = read_input(argparse.Namespace(**{**vars(args), "fs": None}), path).crop(args.start, args.duration)
        if fs_hz is not None and part.fs_hz != fs_hz:
            check_resample_memory(part, fs_hz)
            part = resample_record(part, fs_hz)
        return part

    record = stretch(Path(args.record), args.fs)
    overlay = None
    if args.overlay:  # drawn on one time axis: brought to the record's rate
        overlay = stretch(Path(args.overlay), record.fs_hz)
    with staged_files([out], overwrite=args.force, inputs=[args.record, *([args.overlay] if args.overlay else [])]
                      ) as staging:
        plot_record(record, staging / out.name, overlay=overlay, labels=(args.label, args.overlay_label))
    print(f"wrote {out}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from synth.data.cohort import is_cohort
    from synth.data.leads import parse_lead_set
    from synth.data.writers import check_record_name, output_paths, write_record
    from synth.outputs import staged_files

    if is_cohort(args.input):
        return _convert_cohort(args, Path(args.input))
    out = Path(args.output)
    if args.to == "wfdb":
        check_record_name(out)
    record = read_input(args, Path(args.input))
    if args.leads:
        record = record.select(list(parse_lead_set(args.leads)))
    limits.check_size(record.signal.size * _BYTES_PER_SAMPLE[args.to], f"{args.to} output of {record.duration_s:,.0f} s",
                      allow_large=args.allow_large, path=str(out))
    files = output_paths(out, args.to)
    with staged_files(files, overwrite=args.force, inputs=[args.input, *_wfdb_data_files(Path(args.input))]
                      ) as staging:
        write_record(record, staging / out.name, args.to, overwrite=True)
    for f in sorted(files):
        print(f"wrote {f}")
    return 0


def _wfdb_data_files(path: Path) -> list[Path]:
    """The signal files a WFDB header names (beside it), so that no output replaces the data its input reads; none
    for other formats or a header that does not parse (the reader has refused it by then)."""
    hea = path if path.suffix.lower() == ".hea" else path.with_suffix(".hea") if not path.suffix else None
    if hea is None or not hea.is_file():
        return []
    try:
        import wfdb

        names = wfdb.rdheader(str(hea.with_suffix(""))).file_name or []
    except Exception:  # noqa: BLE001 - a header wfdb cannot parse has been refused by the reader already
        return []
    return [hea.parent / name for name in dict.fromkeys(names) if name]


# -- demo ----------------------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from synth.demo import run_demo
    from synth.outputs import staged_folder

    out = Path(args.out)
    start = time.perf_counter()
    with staged_folder(out, overwrite=args.overwrite) as staging:
        run_demo(staging, seed=args.seed)
    print(f"demo written to {out}/ in {time.perf_counter() - start:.1f} s (see {out}/summary.md)")
    return 0


def add_parsers(sub) -> None:
    data = sub.add_parser("data", help="inspect, plot and convert records and datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=type(data))

    p = dsub.add_parser("info", help="describe a record, a dataset folder (PTB-XL, BIDMC, MIMIC-IV-ECG) or a "
                                     "synthetic cohort")
    p.add_argument("path")
    p.add_argument("--fs", type=RATE, help="PTB-XL: which rate's records to count (100 or 500); record: resample")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_read_options(p)
    p.set_defaults(func=cmd_info)

    p = dsub.add_parser("plot", help="plot a record on ECG paper (12-lead layout, strips, or PPG + ECG) to PNG")
    p.add_argument("record")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--overlay", help="a second record drawn over the first (e.g. generated vs real)")
    p.add_argument("--label", default="record", help="legend label of RECORD when overlaying")
    p.add_argument("--overlay-label", default="overlay", help="legend label of the overlay")
    p.add_argument("--start", type=START_S, default=0.0, help="start of the window to plot (s)")
    p.add_argument("--duration", type=limits.arg(0.0, limits.PLOT_SECONDS_MAX, lo_open=True), default=10.0,
                   help=f"length of the window to plot (s, at most {limits.PLOT_SECONDS_MAX:g})")
    p.add_argument("--fs", type=RATE, help="resample before plotting (Hz)")
    add_force(p, "PNG")
    add_read_options(p)
    p.set_defaults(func=cmd_plot)

    p = dsub.add_parser("convert", help="convert a record between WFDB, NPZ and CSV, optionally resampling")
    p.add_argument("input")
    p.add_argument("output", help="output path (WFDB: record name without extension)")
    p.add_argument("--to", choices=("wfdb", "npz", "csv"), required=True)
    p.add_argument("--fs", type=RATE, help="resample to this rate (Hz)")
    p.add_argument("--leads", help="keep only these leads, e.g. II,V1,V5 or 3lead")
    p.add_argument("--records", help="a cohort folder as INPUT: which records, A:B (default all); OUTPUT is then "
                                     "a folder with one file per record")
    add_force(p, "output files")
    add_allow_large(p)
    add_read_options(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("demo", help="run the offline demo on the shipped sample into a folder")
    p.add_argument("--out", default="synth-demo", help="output folder (default: ./synth-demo)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo folder (one synth wrote)")
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(func=cmd_demo)

