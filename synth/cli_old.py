"""The ``synth`` command line.

User errors (:class:`synth.errors.SynthError`) print one line, ``synth: error: FILE: problem (what to do)``, and
exit with status 2, without a traceback. Each command is a function taking the parsed arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from synth import __version__
from synth.errors import DataError, OutputExistsError, SynthError
from synth.io_utils import staged_folder

EXIT_USER_ERROR = 2


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


def cmd_data_info(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.is_dir():
        summary = _open_dataset(path, args.fs or 100).summary()
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            _print_dataset_summary(summary)
        return 0
    record = _read(args, path)
    s = _record_summary(record)
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
    for key, value in s["metadata"].items():
        print(f"  {key:<13} {value}")
    return 0


# -- reading with CLI options ------------------------------------------------------------------------------------
def _read(args: argparse.Namespace, path: Path):
    from synth.data.leads import parse_lead_set
    from synth.data.readers import read_record

    in_leads = parse_lead_set(args.in_leads) if getattr(args, "in_leads", None) else None
    return read_record(path, fs_hz=getattr(args, "in_fs", None), leads=in_leads, target_fs_hz=getattr(args, "fs", None),
                       nan_policy=getattr(args, "nan", "reject"))


def cmd_data_plot(args: argparse.Namespace) -> int:
    from synth.data.plot import plot_record

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise DataError("plots are written as PNG", path=out, hint="give --out a name ending in .png")
    if out.exists() and not args.force:
        raise OutputExistsError("output already exists", path=out, hint="choose another name or pass --force")
    record = _read(args, Path(args.record)).crop(args.start, args.duration)
    overlay = None
    if args.overlay:
        from synth.data.transforms import resample_record

        overlay = _read(args, Path(args.overlay))
        if overlay.fs_hz != record.fs_hz:  # drawn on one time axis: bring the overlay to the record's rate
            overlay = resample_record(overlay, record.fs_hz)
        overlay = overlay.crop(args.start, args.duration)
    plot_record(record, out, overlay=overlay, labels=(args.label, args.overlay_label))
    print(f"wrote {out}")
    return 0


def cmd_data_convert(args: argparse.Namespace) -> int:
    from synth.data.leads import parse_lead_set
    from synth.data.writers import write_record

    record = _read(args, Path(args.input))
    if args.leads:
        record = record.select(list(parse_lead_set(args.leads)))
    written = write_record(record, Path(args.output), args.to, overwrite=args.force)
    for f in written:
        print(f"wrote {f}")
    return 0


# -- demo ----------------------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from synth.demo import run_demo

    out = Path(args.out)
    start = time.perf_counter()
    with staged_folder(out, overwrite=args.overwrite) as staging:
        run_demo(staging, seed=args.seed)
    print(f"demo written to {out}/ in {time.perf_counter() - start:.1f} s (see {out}/summary.md)")
    return 0


# -- models --------------------------------------------------------------------------------------------------------
def cmd_registry(args: argparse.Namespace) -> int:
    from synth.registry import list_registered

    for kind, names in list_registered().items():
        print(f"{kind + 's':<10} {', '.join(names) if names else '(none)'}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from synth.training.trainer import train_from_config

    export = train_from_config(args.config, args.overrides)
    print(f"exported {export}")
    return 0


def _prompt_from_args(args: argparse.Namespace):
    from synth.tasks.generate import Prompt, parse_labels

    prompt = Prompt(report=args.report, labels=parse_labels(args.labels), age=args.age, sex=args.sex, hr=args.hr,
                    n=args.n, seed=args.seed)
    prompt.check()
    return prompt


def _write_generated(args: argparse.Namespace, prompts: list, checkpoint: str | None, *, name: str, prefix: str,
                     fs_hz: float | None = None) -> int:
    """Load the model, check every prompt against it, and write all records into a staged ``--out``."""
    from synth.tasks.common import load_task_model
    from synth.tasks.generate import write_generated

    out = Path(args.out)
    if out.exists() and not args.force:  # refused before the model is loaded
        raise OutputExistsError("output folder already exists", path=out, hint="choose another --out or pass --force")
    model, folder = load_task_model(checkpoint, name)
    upsampler, up_folder = None, ""
    if fs_hz is not None and float(fs_hz) != float(model.cfg.signal.fs_hz) and args.upsampler != "polyphase":
        from synth.tasks.upsample import UPSAMPLER_NAME

        upsampler, up_folder = load_task_model(args.upsampler, UPSAMPLER_NAME, required_keys=("leads",))
    with staged_folder(out, overwrite=args.force) as staging:
        rows = write_generated(model, prompts, staging, checkpoint=str(folder), steps=args.steps,
                               guidance_scale=args.guidance_scale, batch_size=args.batch_size, fs_hz=fs_hz,
                               upsampler=upsampler, upsampler_checkpoint=str(up_folder),
                               upsample_steps=getattr(args, "upsample_steps", None),
                               fmt=args.format, plot=args.plot, prefix=prefix)
    print(f"wrote {len(rows)} records to {out}/ (metadata.csv lists prompt, seed and checkpoint of each)")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    return _write_generated(args, [_prompt_from_args(args)], args.checkpoint, name="sample", prefix="sample")


# -- tasks ---------------------------------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    from synth.tasks.generate import read_prompts

    if args.fs is not None and not args.fs > 0:
        raise DataError(f"--fs must be positive, got {args.fs}")
    if args.prompts:
        given = [o for o, v in (("--report", args.report), ("--labels", args.labels), ("--age", args.age),
                                ("--sex", args.sex), ("--hr", args.hr)) if v is not None]
        if given:
            raise DataError(f"--prompts and {', '.join(given)} both given",
                            hint="put the attributes in the prompts file's columns")
        if args.n < 1:
            raise DataError(f"--n must be at least 1, got {args.n}")
        prompts = read_prompts(args.prompts, default_n=args.n, default_seed=args.seed)
    else:
        prompts = [_prompt_from_args(args)]
    return _write_generated(args, prompts, args.checkpoint, name="report2ecg", prefix="ecg", fs_hz=args.fs)


def _task_output(args: argparse.Namespace) -> Path:
    """The ``--out`` folder of a task command, refused before any work if it exists (without --force) or if
    ``--samples`` is below 1."""
    out = Path(args.out)
    if out.exists() and not args.force:
        raise OutputExistsError("output folder already exists", path=out, hint="choose another --out or pass --force")
    if args.samples < 1:
        raise DataError(f"--samples must be at least 1, got {args.samples}")
    return out


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from synth.data.leads import parse_lead_set
    from synth.tasks.common import load_task_model
    from synth.tasks.reconstruct import check_leads, reconstruct, write_reconstruction

    out = _task_output(args)
    record = _read(args, Path(args.input))
    given = check_leads(record, parse_lead_set(args.leads))  # before the model is loaded
    model, folder = load_task_model(args.checkpoint, "reconstruct", required_keys=("leads", "lead_mask"))
    result = reconstruct(model, record, given, num_samples=args.samples, steps=args.steps, seed=args.seed)
    with staged_folder(out, overwrite=args.force) as staging:
        written = write_reconstruction(result, record, staging, fmt=args.format, checkpoint=str(folder))
    print(f"reconstructed 12 leads from {', '.join(given)}: {len(written)} files in {out}/ (leads.csv per lead)")
    return 0


def cmd_ppg2ecg(args: argparse.Namespace) -> int:
    from synth.data.leads import parse_lead_set
    from synth.tasks.common import load_task_model
    from synth.tasks.ppg2ecg import ppg_to_ecg, read_ppg, write_ppg2ecg

    out = _task_output(args)
    record = read_ppg(args.input, column=args.ppg_column, fs_hz=args.in_fs,
                      leads=parse_lead_set(args.in_leads) if args.in_leads else None, nan_policy=args.nan)
    if args.start or args.duration:
        record = record.crop(args.start, args.duration)
    model, folder = load_task_model(args.checkpoint, "ppg2ecg", required_keys=("ppg",))
    twelve = None
    if args.twelve_lead:  # load before the work, so a missing checkpoint fails first
        twelve = load_task_model(args.reconstruct_checkpoint, "reconstruct", required_keys=("leads", "lead_mask"))
    result = ppg_to_ecg(model, record, num_samples=args.samples, steps=args.steps, seed=args.seed)
    with staged_folder(out, overwrite=args.force) as staging:
        written = write_ppg2ecg(result, record, staging, fmt=args.format, checkpoint=str(folder))
        if twelve is not None:
            from synth.tasks.ppg2ecg import twelve_lead_from
            from synth.tasks.reconstruct import write_reconstruction

            lead_ii, recon = twelve_lead_from(result, twelve[0], num_samples=args.samples, seed=args.seed)
            written += write_reconstruction(recon, lead_ii, staging, fmt=args.format, name="ecg12",
                                            checkpoint=str(twelve[1]))
    what = "ECG lead II and all 12 leads" if twelve is not None else "ECG lead II"
    print(f"generated {what} from {record.duration_s:.1f} s of PPG: {len(written)} files in {out}/")
    return 0


# -- bench ---------------------------------------------------------------------------------------------------------
def _bench_common(args: argparse.Namespace) -> dict:
    from evaluation.bench import default_data_root

    return {"data_root": Path(args.data) if args.data else default_data_root(), "split": args.split, "n": args.n,
            "seed": args.seed, "out_dir": Path(args.out), "force": args.force,
            "cache_dir": None if args.cache_dir in ("", "none") else args.cache_dir, "batch_size": args.batch_size,
            "steps": args.steps, "n_boot": args.n_boot, "progress": not args.quiet}


def cmd_bench_fidelity(args: argparse.Namespace) -> int:
    from evaluation.bench import run_fidelity

    report = run_fidelity(args.generator, features=args.features, guidance_scale=args.guidance_scale,
                          **_bench_common(args))
    for name, g in report["generators"].items():
        fd = g["fd"]
        print(f"{name:<24} FD {fd['fd']['estimate']:.4g} [{fd['fd']['low']:.4g}, {fd['fd']['high']:.4g}]  floor "
              f"{fd['fd_floor']['estimate']:.4g} [{fd['fd_floor']['low']:.4g}, {fd['fd_floor']['high']:.4g}]  "
              f"ratio {fd['ratio']:.3g}")
    print(f"report written to {args.out}/report.md ({report['wall_s']:.0f} s)")
    return 0


def cmd_bench_reconstruct(args: argparse.Namespace) -> int:
    from evaluation.bench import run_reconstruct

    if args.samples < 1:
        raise DataError(f"--samples must be at least 1, got {args.samples}")
    report = run_reconstruct(args.generator, leads=args.leads, samples=args.samples, **_bench_common(args))
    for name, g in report["generators"].items():
        m = g["mean"]
        print(f"{name:<24} mean over {len(g['per_lead'])} leads: r {m['pearson_r']:.3f}, RMSE {m['rmse_mv']:.4f} mV, "
              f"MAE {m['mae_mv']:.4f} mV")
    print(f"report written to {args.out}/report.md ({report['wall_s']:.0f} s)")
    return 0


def cmd_echo(args: argparse.Namespace) -> int:
    from synth.echo.generate import DEFAULT_GUIDANCE, generate_echo

    guidance = DEFAULT_GUIDANCE if args.guidance_scale is None else args.guidance_scale
    result = generate_echo(_read(args, Path(args.ecg)), args.out, model_dir=args.model, ef=args.ef,
                           heart_rate=args.heart_rate, frames=args.frames, start_s=args.start, seed=args.seed,
                           steps=args.steps, guidance_scale=guidance, overwrite=args.force)
    print(f"wrote {result['video']} ({result['frames']} frames at {result['fps']:g} fps) and {result['filmstrip']} "
          f"in {result['total_seconds']:.1f} s")
    return 0


def cmd_bench_ppg2ecg(args: argparse.Namespace) -> int:
    from evaluation.ppg_bench import run_ppg2ecg

    data = args.data
    if data is None:
        shared = Path("..") / "shared" / "data" / "bidmc"
        if shared.is_dir():
            data = shared
        else:
            from synth.data.sample import sample_bidmc_root

            data = sample_bidmc_root()
    if args.samples < 1:
        raise DataError(f"--samples must be at least 1, got {args.samples}")
    report = run_ppg2ecg(args.generator, data, out_dir=args.out, split=args.split, seed=args.seed,
                         n_boot=args.n_boot, steps=args.steps, samples=args.samples, force=args.force,
                         progress=not args.quiet, twelve_lead=args.twelve_lead)
    for name, g in report["generators"].items():
        twelve = f"  12-lead limb r {g['twelve_lead_r']['estimate']:.3f}" if "twelve_lead_r" in g else ""
        print(f"{name:<28} r {g['pearson_r']['estimate']:.3f}  RMSE(z) {g['rmse_z']['estimate']:.3f}  "
              f"HR error {g['hr_error_bpm']['estimate']:.1f} bpm{twelve}")
    if "twelve_lead" in report:
        ref = report["twelve_lead"]["reference_from_recorded_ii"]["estimate"]
        print(f"{'(12 leads from recorded II)':<28} 12-lead limb r {ref:.3f}")
    print(f"report written to {args.out}/report.md ({report['wall_s']:.0f} s)")
    return 0


def cmd_bench_echo(args: argparse.Namespace) -> int:
    from evaluation.echo import print_summary, run_echo_bench
    from synth.echo.generate import DEFAULT_GUIDANCE

    guidance = DEFAULT_GUIDANCE if args.guidance_scale is None else args.guidance_scale
    report = run_echo_bench(args.model, args.data, args.encoder, args.out, split=args.split.upper(), n=args.n,
                            steps=args.steps, guidance_scale=guidance, seed=args.seed,
                            batch_size=args.batch_size, n_boot=args.n_boot, force=args.force, progress=not args.quiet)
    print_summary(report)
    print(f"report written to {args.out}/report.md ({report['wall_s']:.0f} s)")
    return 0


# -- parser --------------------------------------------------------------------------------------------------------
def _add_read_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in-fs", type=float, help="sampling rate of a CSV/NPY input that does not store one (Hz)")
    p.add_argument("--in-leads", help="lead names of a header-less CSV or NPY input, e.g. I,II,V1")
    p.add_argument("--nan", choices=("reject", "interpolate"), default="reject",
                   help="missing samples: refuse the record (default) or fill gaps up to 0.1 s with a warning")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synth", description="Realistic synthetic cardiac signals.")
    parser.add_argument("--version", action="version", version=f"synth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    data = sub.add_parser("data", help="inspect, plot and convert records and datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    p = dsub.add_parser("info", help="describe a record or a dataset folder (PTB-XL, BIDMC, MIMIC-IV-ECG)")
    p.add_argument("path")
    p.add_argument("--fs", type=float, help="PTB-XL: which rate's records to count (100 or 500); record: resample")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_read_options(p)
    p.set_defaults(func=cmd_data_info)

    p = dsub.add_parser("plot", help="plot a record on ECG paper (12-lead layout, strips, or PPG + ECG) to PNG")
    p.add_argument("record")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--overlay", help="a second record drawn over the first (e.g. generated vs real)")
    p.add_argument("--label", default="record", help="legend label of RECORD when overlaying")
    p.add_argument("--overlay-label", default="overlay", help="legend label of the overlay")
    p.add_argument("--start", type=float, default=0.0, help="start of the window to plot (s)")
    p.add_argument("--duration", type=float, default=10.0, help="length of the window to plot (s)")
    p.add_argument("--fs", type=float, help="resample before plotting (Hz)")
    p.add_argument("--force", action="store_true", help="overwrite an existing PNG")
    _add_read_options(p)
    p.set_defaults(func=cmd_data_plot)

    p = dsub.add_parser("convert", help="convert a record between WFDB, NPZ and CSV, optionally resampling")
    p.add_argument("input")
    p.add_argument("output", help="output path (WFDB: record name without extension)")
    p.add_argument("--to", choices=("wfdb", "npz", "csv"), required=True)
    p.add_argument("--fs", type=float, help="resample to this rate (Hz)")
    p.add_argument("--leads", help="keep only these leads, e.g. II,V1,V5 or 3lead")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    _add_read_options(p)
    p.set_defaults(func=cmd_data_convert)

    p = sub.add_parser("registry", help="list the registered backbones, networks, conditioning adapters and samplers")
    p.set_defaults(func=cmd_registry)

    p = sub.add_parser("train", help="train (or resume, when OUT_DIR holds a checkpoint) from a training YAML")
    p.add_argument("config", help="training YAML, e.g. configs/train/tiny.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted-key overrides, e.g. steps=1000 out_dir=runs/x data.cache_dir=.cache")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="generate records from an exported model folder")
    p.add_argument("checkpoint", help="export folder (config.json + model.safetensors)")
    p.add_argument("--out", required=True, help="output folder (must not exist unless --force)")
    p.add_argument("--n", type=int, default=8, help="number of records (default 8)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--guidance-scale", type=float, default=1.0, help="classifier-free guidance (1 = none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--report", help="free-text report, for models conditioned on text")
    p.add_argument("--labels", help="comma-separated label names, e.g. NORM or MI,STTC")
    p.add_argument("--age", type=float, help="years")
    p.add_argument("--sex", choices=("M", "F"))
    p.add_argument("--hr", type=float, help="heart rate (bpm)")
    p.add_argument("--format", choices=("wfdb", "npz", "csv"), default="wfdb")
    p.add_argument("--plot", type=int, default=1, metavar="K", help="plot the first K records (default 1; 0 = none)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("generate", help="report / labels / age / sex / HR → 12-lead ECG records (report2ecg)")
    p.add_argument("--report", help="free-text report, English or German (at most 2000 characters)")
    p.add_argument("--labels", help="comma-separated superclasses: NORM, MI, STTC, CD, HYP")
    p.add_argument("--age", type=float, help="years")
    p.add_argument("--sex", choices=("M", "F"))
    p.add_argument("--hr", type=float, help="heart rate (bpm)")
    p.add_argument("--prompts", metavar="FILE.csv",
                   help="batch form: one prompt per row, columns report, labels, age, sex, hr, n, seed (all optional; "
                        "n defaults to --n, seed to --seed + 100000 x row index)")
    p.add_argument("--n", type=int, default=8, help="records per prompt (default 8)")
    p.add_argument("--out", required=True, help="output folder (must not exist unless --force)")
    p.add_argument("--checkpoint", help="export folder (default: the shipped checkpoints/report2ecg)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--guidance-scale", type=float, default=1.0, help="classifier-free guidance (1 = none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--fs", type=float, help="output rate in Hz, e.g. 500: the model generates at its own rate "
                                            "(100 Hz) and the learned upsampler (or --upsampler polyphase) takes "
                                            "the records to 500 Hz (metadata.csv says which); default: the "
                                            "model's rate")
    p.add_argument("--upsampler", help="with --fs: an upsampler export folder (default: the shipped "
                                       "checkpoints/upsample500), or 'polyphase' for a resampling filter")
    p.add_argument("--upsample-steps", type=int, help="upsampler sampler steps (default: the upsampler's)")
    p.add_argument("--format", choices=("wfdb", "npz", "csv"), default="wfdb")
    p.add_argument("--plot", type=int, default=1, metavar="K", help="plot the first K records (default 1; 0 = none)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("reconstruct", help="any subset of leads of a record → all 12 leads")
    p.add_argument("input", help="record: WFDB, CSV, NPZ, NPY (any rate and length)")
    p.add_argument("--leads", required=True, help="the leads to reconstruct from, e.g. II,V1,V5 (or 3lead, 1lead:II)")
    p.add_argument("--out", required=True, help="output folder (must not exist unless --force)")
    p.add_argument("--samples", type=int, default=1, metavar="K",
                   help="draws per window; K > 1 writes the mean, its per-sample spread and an uncertainty plot")
    p.add_argument("--checkpoint", help="export folder (default: the shipped checkpoints/reconstruct)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("wfdb", "npz", "csv"), default="wfdb")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    _add_read_options(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("ppg2ecg", help="PPG (BIDMC CSV/WFDB, or any CSV/NPY with its rate) → ECG lead II")
    p.add_argument("input", help="record with a PPG/PLETH channel, or a CSV/NPY (declare the rate with --in-fs)")
    p.add_argument("--out", required=True, help="output folder (must not exist unless --force)")
    p.add_argument("--ppg-column", help="name of the PPG column of a CSV whose headers are not lead names")
    p.add_argument("--twelve-lead", action="store_true",
                   help="also reconstruct all 12 leads from the generated lead II (the reconstruct checkpoint); "
                        "amplitudes stay on the PPG model's relative scale")
    p.add_argument("--reconstruct-checkpoint", help="with --twelve-lead: reconstruction export (default: shipped)")
    p.add_argument("--start", type=float, default=0.0, help="start of the segment used (s)")
    p.add_argument("--duration", type=float, help="length of the segment used (s; default: to the end)")
    p.add_argument("--samples", type=int, default=1, metavar="K", help="draws per window; K > 1 also writes the spread")
    p.add_argument("--checkpoint", help="export folder (default: the shipped checkpoints/ppg2ecg)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("wfdb", "npz", "csv"), default="wfdb")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    _add_read_options(p)
    p.set_defaults(func=cmd_ppg2ecg)

    p = sub.add_parser("echo", help="ECG record → echocardiogram video (H.264 MP4 + PNG filmstrip with the ECG)")
    p.add_argument("--ecg", required=True, help="12-lead ECG record (WFDB .hea, NPZ, CSV, ...)")
    p.add_argument("--out", required=True, help="output .mp4 (the filmstrip is written beside it as .png)")
    p.add_argument("--model", help="ECG → echo export folder (default: checkpoints/echo_maskgit, or under "
                   "$SYNTH_CHECKPOINTS)")
    p.add_argument("--ef", type=float, help="requested ejection fraction in percent (default: left to the model)")
    p.add_argument("--heart-rate", type=float, help="heart rate in bpm (default: measured from the ECG)")
    p.add_argument("--frames", type=int, help="frames to write (default: one clip, 32 frames at 16 fps)")
    p.add_argument("--start", type=float, default=0.0, help="ECG time of the first frame, in seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="MaskGIT decoding steps (default: the model's, at most 18)")
    p.add_argument("--guidance-scale", type=float,
                   help="classifier-free guidance on the logits (default 2, chosen on the VAL clips)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    _add_read_options(p)
    p.set_defaults(func=cmd_echo)

    p = sub.add_parser("demo", help="run the offline demo on the shipped sample into a folder")
    p.add_argument("--out", default="synth-demo", help="output folder (default: ./synth-demo)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="score generators and baselines with the evaluation protocol")
    bsub = bench.add_subparsers(dest="bench_command", metavar="SUBCOMMAND")
    for name, helptext in (
        ("fidelity", "FD with its floor, precision/recall, memorisation and physiology per generator"),
        ("reconstruct", "per-lead MAE/RMSE/r of reconstructed leads from the given ones"),
    ):
        p = bsub.add_parser(name, help=helptext)
        p.add_argument("--generator", action="append", required=True, metavar="CHECKPOINT|baseline:NAME",
                       help="repeatable; baselines: " + ("real-train, ecgsyn, nearest" if name == "fidelity" else "linear"))
        if name == "reconstruct":
            p.add_argument("--leads", required=True, help="given leads, e.g. II,V1,V5 (or 3lead, 1lead:I)")
            p.add_argument("--samples", type=int, default=1,
                           help="checkpoints: samples averaged per window (default 1; with --steps 1 the single "
                                "Euler step from noise is already the model's conditional-mean estimate)")
        else:
            p.add_argument("--guidance-scale", type=float, default=1.0,
                           help="classifier-free guidance for checkpoints (default 1 = none)")
            p.add_argument("--features", help="feature-extractor folder (default checkpoints/ecg_classifier_ptbxl if "
                                              "present, else raw-signal PCA features)")
        p.add_argument("--data", help="PTB-XL folder (default ../shared/data/ptbxl if present, else the shipped sample)")
        p.add_argument("--split", default="test", choices=("test", "val"), help="records scored (default test)")
        p.add_argument("--n", type=int, default=500, help="records per set (default 500)")
        p.add_argument("--out", required=True, help="output folder (must not exist unless --force)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates (default 200)")
        p.add_argument("--cache-dir", default=".cache/ptbxl", help="signal cache folder ('none' to disable)")
        p.add_argument("--batch-size", type=int, default=64, help="checkpoint sampling batch size")
        p.add_argument("--steps", type=int, help="sampler steps for checkpoints (default: the model's)")
        p.add_argument("--force", action="store_true", help="replace an existing output folder")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.set_defaults(func=cmd_bench_fidelity if name == "fidelity" else cmd_bench_reconstruct)
    p = bsub.add_parser("echo", help="ECG → echo: frame FD with floor, SSIM/PSNR, EF error, ED/ES timing, s/video")
    p.add_argument("--model", default="checkpoints/echo_maskgit", help="ECG → echo export (default: the shipped one)")
    p.add_argument("--data", default="runs/echo_sim", help="simulated EchoNet-layout folder (tools/make_echo_dataset.py)")
    p.add_argument("--encoder", default="checkpoints/echo_encoder", help="echo encoder folder (FD features, EF)")
    p.add_argument("--split", default="test", choices=("test", "val"), help="clips scored (default test)")
    p.add_argument("--n", type=int, default=100, help="clips scored (default 100)")
    p.add_argument("--out", required=True, help="output folder (must not exist unless --force)")
    p.add_argument("--steps", type=int, help="decoding steps (default: the model's)")
    p.add_argument("--guidance-scale", type=float, help="default 2, what synth echo uses")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates (default 200)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_bench_echo)

    p = bsub.add_parser("ppg2ecg", help="PPG → ECG lead II on BIDMC's held-out subjects: r, RMSE, HR error")
    p.add_argument("--generator", action="append", required=True, metavar="CHECKPOINT|baseline:linear",
                   help="repeatable; a PPG → ECG export folder or baseline:linear")
    p.add_argument("--data", help="BIDMC folder (default ../shared/data/bidmc if present, else the shipped sample)")
    p.add_argument("--split", default="test", choices=("test", "val"), help="subjects scored (default test)")
    p.add_argument("--out", required=True, help="output folder (must not exist unless --force)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (default 1000)")
    p.add_argument("--steps", type=int, help="sampler steps for checkpoints (default: the model's)")
    p.add_argument("--samples", type=int, default=1, help="samples averaged per window for checkpoints")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--twelve-lead", nargs="?", const="", default=None, metavar="CHECKPOINT",
                   help="also take each lead II to 12 leads (the shipped reconstruction model, or CHECKPOINT) and "
                        "score the limb leads the subjects have on record (aVR, III)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_bench_ppg2ecg)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"synth: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        (parser if args.command is None else parser._subparsers._group_actions[0].choices[args.command]).print_help()
        return EXIT_USER_ERROR
    warnings.showwarning = _show_warning
    try:
        return int(args.func(args) or 0)
    except SynthError as err:
        print(f"synth: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("synth: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
