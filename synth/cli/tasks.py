"""``synth generate|sample|reconstruct|ppg2ecg|echo``: the tasks users come for.

Each command checks its arguments, inputs and output before any model loads, claims its output (lock, staging:
:mod:`synth.outputs`), and only then does the slow work.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from synth import limits
from synth.cli.common import (
    AGE,
    BATCH,
    DURATION_S,
    EF,
    FRAMES,
    GUIDANCE,
    HEART_RATE,
    PLOT,
    RATE,
    RECORDS,
    SAMPLES,
    SEED,
    START_S,
    STEPS,
    add_allow_large,
    add_force,
    add_read_options,
    check_memory,
    modality_guidance,
    read_input,
)
from synth.errors import DataError

#: Bytes per sample and channel on disk, by format (CSV: about 10 characters), and a PNG plot.
_BYTES_PER_SAMPLE = {"wfdb": 2, "npz": 4, "csv": 10}
_PLOT_BYTES = 300_000


@contextlib.contextmanager
def _model_named(folder: Path):
    """Name the checkpoint in a non-finite-output error (the sampler does not know where its model came from)."""
    from synth.tasks.common import NonFiniteOutputError

    try:
        yield
    except NonFiniteOutputError as err:
        err.path = str(folder)
        raise


# -- generate / sample -----------------------------------------------------------------------------------------------
def _prompt_from_args(args: argparse.Namespace):
    from synth.tasks.generate import Prompt, parse_labels

    prompt = Prompt(report=args.report, labels=parse_labels(args.labels), age=args.age, sex=args.sex, hr=args.hr,
                    n=args.n, seed=args.seed)
    prompt.check()
    return prompt


def _task_folder(checkpoint: str | None, name: str) -> Path:
    from synth.tasks.common import checkpoint_path

    return Path(checkpoint) if checkpoint is not None else checkpoint_path(name)


def _write_generated(args: argparse.Namespace, prompts: list, checkpoint: str | None, *, name: str, prefix: str,
                     fs_hz: float | None = None) -> int:
    """Check the prompts against the checkpoint's config and the size of the output, claim ``--out`` (resuming a
    killed run with the same settings), load the model and write every record."""
    from synth.checkpoint import checkpoint_digest
    from synth.outputs import staged_folder
    from synth.tasks.common import checkpoint_signal, load_task_model
    from synth.tasks.generate import (
        REPORT_GUIDANCE,
        check_modality_guidance,
        check_prompt,
        condition_spec,
        given_keys,
        guidance_for,
        write_generated,
    )

    folder = _task_folder(checkpoint, name)
    keys, classes = condition_spec(folder)
    args.guidance_scale = guidance_for(folder, args.guidance_scale, REPORT_GUIDANCE if name == "report2ecg" else 1.0)
    for i, prompt in enumerate(prompts):
        where = f"{args.prompts} row {i + 2}" if getattr(args, "prompts", None) else None
        check_prompt(prompt, keys, classes, source=where)
    check_modality_guidance(folder, args.modality_guidance, [given_keys(p) for p in prompts])
    # The records are written at the model's rate unless --fs asks another: a rate no reader takes is refused now,
    # naming the checkpoint, not after the sampling.
    model_fs, length = checkpoint_signal(folder)
    out_fs = model_fs if fs_hz is None else float(fs_hz)
    total = sum(p.n for p in prompts)
    samples = 12 * length * out_fs / model_fs
    limits.check_size(total * samples * _BYTES_PER_SAMPLE[args.format] + min(args.plot, total) * _PLOT_BYTES,
                      f"{total:,} records", allow_large=args.allow_large, path=args.out)
    limits.check_size(args.batch_size * samples * 4 * limits.ACTIVATION_FACTOR, f"--batch-size {args.batch_size}",
                      allow_large=args.allow_large, memory=True)
    up_folder = None
    if fs_hz is not None and out_fs != model_fs and args.upsampler != "polyphase":
        from synth.tasks.upsample import UPSAMPLER_NAME

        up_folder = _task_folder(args.upsampler, UPSAMPLER_NAME)
    spec = {"prompts": [asdict(p) for p in prompts], "checkpoint": checkpoint_digest(folder),
            "upsampler": checkpoint_digest(up_folder) if up_folder else args.upsampler if fs_hz else None,
            "steps": args.steps, "guidance_scale": args.guidance_scale,
            "modality_guidance": args.modality_guidance, "batch_size": args.batch_size, "fs_hz": fs_hz,
            "upsample_steps": getattr(args, "upsample_steps", None), "format": args.format,
            "plot": args.plot, "prefix": prefix}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
    inputs = [p for p in (getattr(args, "prompts", None), folder, up_folder) if p is not None]
    with staged_folder(args.out, overwrite=args.force, resume_key=key, inputs=inputs,
                       marker={"checkpoint": str(folder), "checkpoint_sha256": spec["checkpoint"]}) as staging:
        model, _ = load_task_model(folder, name)
        upsampler = None
        if up_folder is not None:
            upsampler, _ = load_task_model(up_folder, "upsample500", required_keys=("leads",))
        with _model_named(folder):
            rows = write_generated(model, prompts, staging, checkpoint=str(folder), steps=args.steps,
                                   guidance_scale=args.guidance_scale, modality_guidance=args.modality_guidance,
                                   batch_size=args.batch_size, fs_hz=fs_hz,
                                   upsampler=upsampler, upsampler_checkpoint=str(up_folder or ""),
                                   upsample_steps=getattr(args, "upsample_steps", None), fmt=args.format,
                                   plot=args.plot, prefix=prefix)
    print(f"wrote {len(rows)} record{'s' if len(rows) != 1 else ''} to {args.out}/ (metadata.csv lists prompt, seed "
          "and checkpoint of each)")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    return _write_generated(args, [_prompt_from_args(args)], args.checkpoint, name="sample", prefix="sample")


def cmd_generate(args: argparse.Namespace) -> int:
    from synth.tasks.generate import read_prompts

    if args.prompts:
        given = [o for o, v in (("--report", args.report), ("--labels", args.labels), ("--age", args.age),
                                ("--sex", args.sex), ("--hr", args.hr)) if v is not None]
        if given:
            raise DataError(f"--prompts and {', '.join(given)} both given",
                            hint="put the attributes in the prompts file's columns")
        prompts = read_prompts(args.prompts, default_n=args.n, default_seed=args.seed)
    else:
        prompts = [_prompt_from_args(args)]
    return _write_generated(args, prompts, args.checkpoint, name="report2ecg", prefix="ecg", fs_hz=args.fs)


# -- reconstruct / ppg2ecg -------------------------------------------------------------------------------------------
def _check_record_output(args: argparse.Namespace, record, parts: list[tuple[int, int]]) -> None:
    """Refuse an output above the limit before any work: ``parts`` lists ``(channels, records)`` written at the
    input's rate and length (the mean, and its spread with more than one draw), each with a plot (an uncertainty
    plot with the spread)."""
    files = sum(n for _, n in parts)
    nbytes = sum(channels * n for channels, n in parts) * record.n_samples * _BYTES_PER_SAMPLE[args.format]
    limits.check_size(nbytes + files * _PLOT_BYTES, f"{files} {args.format} record{'s' if files != 1 else ''} of "
                      f"{record.duration_s:,.0f} s at {record.fs_hz:g} Hz", allow_large=args.allow_large,
                      path=args.out)


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from synth.data.leads import parse_lead_set
    from synth.outputs import staged_folder
    from synth.tasks.common import checkpoint_signal, load_task_model
    from synth.tasks.reconstruct import check_leads, reconstruct, write_reconstruction

    record = read_input(args, Path(args.input))
    given = check_leads(record, parse_lead_set(args.leads))
    folder = _task_folder(args.checkpoint, "reconstruct")
    model_fs, _ = checkpoint_signal(folder)  # a damaged rate is refused now, naming the checkpoint, not run at
    check_memory(record, args.samples, allow_large=args.allow_large, stages=[(12, model_fs)], fmt=args.format)
    _check_record_output(args, record, [(12, 1 + (args.samples > 1))])
    with staged_folder(args.out, overwrite=args.force, inputs=[args.input, folder]) as staging:
        model, folder = load_task_model(folder, "reconstruct", required_keys=("leads", "lead_mask"))
        with _model_named(folder):
            result = reconstruct(model, record, given, num_samples=args.samples, steps=args.steps, seed=args.seed)
        written = write_reconstruction(result, record, staging, fmt=args.format, checkpoint=str(folder))
    print(f"reconstructed 12 leads from {', '.join(given)}: {len(written)} files in {args.out}/ (leads.csv per lead)")
    return 0


def cmd_ppg2ecg(args: argparse.Namespace) -> int:
    from synth.data.leads import parse_lead_set
    from synth.outputs import staged_folder
    from synth.tasks.common import checkpoint_signal, load_task_model
    from synth.tasks.ppg2ecg import ppg_to_ecg, read_ppg, write_ppg2ecg

    record = read_ppg(args.input, column=args.ppg_column, fs_hz=args.in_fs,
                      leads=parse_lead_set(args.in_leads) if args.in_leads else None, nan_policy=args.nan)
    if args.start or args.duration:
        record = record.crop(args.start, args.duration)
    if args.calibrate is not None:  # checked before the model loads
        if "II" not in record.leads:
            raise DataError("--calibrate needs an ECG lead II recorded with the PPG; the input has "
                            f"{', '.join(record.leads)}", path=args.input, hint="drop --calibrate")
        if args.calibrate > record.duration_s:
            raise DataError(f"--calibrate {args.calibrate:g} s is longer than the {record.duration_s:.1f} s input",
                            path=args.input)
    if args.template and args.calibrate is None:
        raise DataError("--template draws the subject's own beat from a calibration ECG", path=args.input,
                        hint="add --calibrate SECONDS (the input's lead II over its first SECONDS)")
    if args.template and args.samples > 1:
        raise DataError("--template draws one deterministic ECG", hint="drop --samples")
    folder = None if args.template else _task_folder(args.checkpoint, "ppg2ecg")
    twelve_folder = _task_folder(args.reconstruct_checkpoint, "reconstruct") if args.twelve_lead else None
    # A damaged rate is refused now, naming the checkpoint; the rates give the memory estimate (the draws are held
    # at the PPG's own rate and length: lead II, then with --twelve-lead 12 leads).
    stages = [(1, checkpoint_signal(folder)[0] if folder is not None else record.fs_hz)]
    if twelve_folder is not None:
        stages.append((12, checkpoint_signal(twelve_folder)[0]))
    check_memory(record, args.samples, allow_large=args.allow_large, stages=stages, fmt=args.format)
    _check_record_output(args, record, [(channels, 1 + (args.samples > 1)) for channels, _ in stages])
    inputs = [p for p in (args.input, folder, twelve_folder) if p is not None]
    with staged_folder(args.out, overwrite=args.force, inputs=inputs) as staging:
        twelve = None
        if twelve_folder is not None:  # loaded before the work, so a bad checkpoint fails first
            twelve = load_task_model(twelve_folder, "reconstruct", required_keys=("leads", "lead_mask"))
        shift = lag = None
        if args.template:
            from synth.tasks.ppg2ecg import template_to_ecg

            result, lag = template_to_ecg(record, args.calibrate)
            folder = "calibrated template"
        else:
            from synth.tasks.ppg2ecg import reads_template, template_channel

            model, folder = load_task_model(folder, "ppg2ecg", required_keys=("ppg",))
            template = None
            if args.calibrate is not None and reads_template(model):  # a model that takes the subject's beat
                template = template_channel(record.channel("PPG"), record.channel("II"), record.fs_hz,
                                            args.calibrate)
            with _model_named(folder):
                result = ppg_to_ecg(model, record, num_samples=args.samples, steps=args.steps, seed=args.seed,
                                    template=template)
        if args.calibrate is not None and not args.template:
            from synth.tasks.ppg2ecg import calibrate_arrival

            result, shift = calibrate_arrival(result, record.channel("II"), args.calibrate)
        written = write_ppg2ecg(result, record, staging, fmt=args.format, checkpoint=str(folder))
        if twelve is not None:
            from synth.tasks.ppg2ecg import twelve_lead_from
            from synth.tasks.reconstruct import write_reconstruction

            with _model_named(twelve[1]):
                lead_ii, recon = twelve_lead_from(result, twelve[0], num_samples=args.samples, seed=args.seed,
                                                  steps=args.steps)
            written += write_reconstruction(recon, lead_ii, staging, fmt=args.format, name="ecg12",
                                            checkpoint=str(twelve[1]))
    what = "ECG lead II and all 12 leads" if twelve_folder is not None else "ECG lead II"
    print(f"generated {what} from {record.duration_s:.1f} s of PPG: {len(written)} files in {args.out}/")
    if shift is not None:
        print(f"pulse arrival calibrated on the first {args.calibrate:g} s of lead II: shifted {1000 * shift:+.0f} ms")
    if lag is not None:
        print(f"calibrated template: the subject's median beat and pulse arrival lag ({1000 * lag:.0f} ms) from the "
              f"first {args.calibrate:g} s of lead II, drawn at every PPG pulse onset")
    return 0


# -- cohort ------------------------------------------------------------------------------------------------------------
def cmd_cohort(args: argparse.Namespace) -> int:
    from synth.tasks.cohort import build_cohort, load_spec

    spec = load_spec(args.spec, args.overrides)
    meta = build_cohort(spec, args.out, force=args.force, allow_large=args.allow_large, progress=not args.quiet)
    if meta:
        rate = meta["timing"]["records_per_s"]
        print(f"cohort of {meta['records']:,} records in {meta['shards']} shards written to {args.out}/ "
              f"({meta['timing']['records_this_run']:,} made in this run" + (f", {rate} records/s)" if rate else ")"))
    return 0


# -- echo --------------------------------------------------------------------------------------------------------------
def cmd_echo(args: argparse.Namespace) -> int:
    from synth.echo.generate import DEFAULT_EF_GUIDANCE, DEFAULT_GUIDANCE, generate_echo

    guidance = DEFAULT_GUIDANCE if args.guidance_scale is None else args.guidance_scale
    ef_guidance = DEFAULT_EF_GUIDANCE if args.ef_guidance is None else args.ef_guidance
    record = read_input(args, Path(args.ecg))
    result = generate_echo(record, args.out, model_dir=args.model, ef=args.ef, heart_rate=args.heart_rate,
                           frames=args.frames, start_s=args.start, seed=args.seed, steps=args.steps,
                           guidance_scale=guidance, ef_guidance=ef_guidance, overwrite=args.force,
                           inputs=[("--ecg", args.ecg)], allow_large=args.allow_large, progress=not args.quiet)
    print(f"wrote {result['video']} ({result['frames']} frames at {result['fps']:g} fps) and {result['filmstrip']} "
          f"in {result['total_seconds']:.1f} s")
    return 0


# -- parsers -----------------------------------------------------------------------------------------------------------
def _sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=STEPS, help="sampler steps (default: the model's)")
    p.add_argument("--guidance-scale", type=GUIDANCE,
                   help="classifier-free guidance (1 = none; default: 2 for generate, chosen on PTB-XL fold 9, 1 "
                        "for sample and for a model with guidance distilled into it)")
    p.add_argument("--modality-guidance", type=modality_guidance, metavar="NAME=W[,NAME=W]",
                   help="extra guidance towards single conditions on top of --guidance-scale, e.g. "
                        "demographics=0.5 (the model's modality names); 'none' turns off what the model's config "
                        "sets (default: the config's conditioning.guidance, for the conditions a prompt gives)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--batch-size", type=BATCH, default=64)


def _prompt_options(p: argparse.ArgumentParser, labels_help: str) -> None:
    p.add_argument("--labels", help=labels_help)
    p.add_argument("--age", type=AGE, help="years")
    p.add_argument("--sex", choices=("M", "F"))
    p.add_argument("--hr", type=HEART_RATE, help="heart rate (bpm)")


def _record_output_options(p: argparse.ArgumentParser, *, plot: bool = False) -> None:
    p.add_argument("--format", choices=("wfdb", "npz", "csv"), default="wfdb")
    if plot:
        p.add_argument("--plot", type=PLOT, default=1, metavar="K", help="plot the first K records (default 1; 0 = none)")
    add_force(p)
    add_allow_large(p)


def add_parsers(sub) -> None:
    p = sub.add_parser("sample", help="generate records from an exported model folder")
    p.add_argument("checkpoint", help="export folder (config.json + model.safetensors)")
    p.add_argument("--out", required=True, help="output folder (must not exist unless --force)")
    p.add_argument("--n", type=RECORDS, default=8, help="number of records (default 8)")
    _sampling_options(p)
    p.add_argument("--report", help="free-text report, for models conditioned on text")
    _prompt_options(p, "comma-separated label names, e.g. NORM or MI,STTC")
    _record_output_options(p, plot=True)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("generate", help="report / labels / age / sex / HR → 12-lead ECG records (report2ecg)")
    p.add_argument("--report", help="free-text report, English or German (at most 2000 characters)")
    _prompt_options(p, "comma-separated PTB-XL labels the model knows (superclasses NORM, MI, STTC, CD, HYP; "
                       "models with more also subclasses and rhythms such as AFIB)")
    p.add_argument("--prompts", metavar="FILE.csv",
                   help="batch form: one prompt per row, columns report, labels, age, sex, hr, n, seed (all optional; "
                        "n defaults to --n, seed to --seed + 100000 x row index)")
    p.add_argument("--n", type=RECORDS, default=8, help="records per prompt (default 8)")
    p.add_argument("--out", required=True, help="output folder (must not exist unless --force)")
    p.add_argument("--checkpoint", help="export folder (default: the shipped checkpoints/report2ecg)")
    _sampling_options(p)
    p.add_argument("--fs", type=RATE, help="output rate in Hz, e.g. 500: the model generates at its own rate "
                                           "(100 Hz) and the learned upsampler (or --upsampler polyphase) takes "
                                           "the records to 500 Hz (metadata.csv says which); default: the "
                                           "model's rate")
    p.add_argument("--upsampler", help="with --fs: an upsampler export folder (default: the shipped "
                                       "checkpoints/upsample500), or 'polyphase' for a resampling filter")
    p.add_argument("--upsample-steps", type=STEPS, help="upsampler sampler steps (default: the upsampler's)")
    _record_output_options(p, plot=True)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("reconstruct", help="any subset of leads of a record → all 12 leads")
    p.add_argument("input", help="record: WFDB, CSV, NPZ, NPY (any rate and length)")
    p.add_argument("--leads", required=True, help="the leads to reconstruct from, e.g. II,V1,V5 (or 3lead, 1lead:II)")
    p.add_argument("--out", required=True, help="output folder (must not exist unless --force)")
    p.add_argument("--samples", type=SAMPLES, default=1, metavar="K",
                   help="draws per window; K > 1 writes the mean, its per-sample spread and an uncertainty plot")
    p.add_argument("--checkpoint", help="export folder (default: the shipped checkpoints/reconstruct)")
    p.add_argument("--steps", type=STEPS, help="sampler steps (default: the model's)")
    p.add_argument("--seed", type=SEED, default=0)
    _record_output_options(p)
    add_read_options(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("ppg2ecg", help="PPG (BIDMC CSV/WFDB, or any CSV/NPY with its rate) → ECG lead II")
    p.add_argument("input", help="record with a PPG/PLETH channel, or a CSV/NPY (declare the rate with --in-fs)")
    p.add_argument("--out", required=True, help="output folder (must not exist unless --force)")
    p.add_argument("--ppg-column", help="name of the PPG column of a CSV whose headers are not lead names")
    p.add_argument("--twelve-lead", action="store_true",
                   help="also reconstruct all 12 leads from the generated lead II (the reconstruct checkpoint); "
                        "amplitudes stay on the PPG model's relative scale")
    p.add_argument("--reconstruct-checkpoint", help="with --twelve-lead: reconstruction export (default: shipped)")
    p.add_argument("--start", type=START_S, default=0.0, help="start of the segment used (s, from the beginning)")
    p.add_argument("--duration", type=DURATION_S, help="length of the segment used (s; default: to the end)")
    p.add_argument("--samples", type=SAMPLES, default=1, metavar="K",
                   help="draws per window; K > 1 also writes the spread")
    p.add_argument("--checkpoint", help="export folder (default: the shipped checkpoints/ppg2ecg)")
    p.add_argument("--steps", type=STEPS, help="sampler steps of the PPG model and, with --twelve-lead, of the "
                                               "reconstruction too (default: each model's)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--calibrate", type=DURATION_S, metavar="SECONDS",
                   help="the input also holds lead II for (at least) its first SECONDS, recorded with the PPG: "
                        "shift the generated ECG by this subject's pulse arrival offset measured there (and give "
                        "a model that reads one the subject's beat template from that stretch)")
    p.add_argument("--template", action="store_true",
                   help="with --calibrate: no model; draw the subject's median beat from the calibration stretch at "
                        "every PPG pulse onset minus the pulse arrival lag measured there")
    _record_output_options(p)
    add_read_options(p)
    p.set_defaults(func=cmd_ppg2ecg)

    p = sub.add_parser("cohort", help="a synthetic cohort from a spec: sharded, resumable (run it again), "
                                      "several processes under accelerate launch / torchrun")
    p.add_argument("spec", help="cohort spec YAML, e.g. configs/cohort/default.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. size=20000 labels.mix=balanced seed=3")
    p.add_argument("--out", required=True, help="cohort folder (made when every shard is done; until then the "
                                                "shards are in .NAME.synth-staging beside it)")
    add_force(p, "cohort folder")
    add_allow_large(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_cohort)

    p = sub.add_parser("echo", help="ECG record → echocardiogram video (H.264 MP4 + PNG filmstrip with the ECG)")
    p.add_argument("--ecg", required=True, help="12-lead ECG record (WFDB .hea, NPZ, CSV, ...)")
    p.add_argument("--out", required=True, help="output .mp4 (the filmstrip is written beside it as .png)")
    p.add_argument("--model", help="ECG → echo export folder (default: checkpoints/echo_maskgit, or under "
                   "$SYNTH_CHECKPOINTS)")
    p.add_argument("--ef", type=EF, help="requested ejection fraction in percent (default: left to the model)")
    p.add_argument("--heart-rate", type=HEART_RATE, help="heart rate in bpm (default: measured from the ECG)")
    p.add_argument("--frames", type=FRAMES, help="frames to write (default: the whole ECG from --start, at 16 fps; "
                                                    "a clip above the size limits needs --allow-large)")
    p.add_argument("--start", type=START_S, default=0.0, help="ECG time of the first frame, in seconds")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--steps", type=limits.arg(1, 18, int), help="MaskGIT decoding steps (default: the model's)")
    p.add_argument("--guidance-scale", type=GUIDANCE,
                   help="classifier-free guidance on the logits (default 1.25, chosen on the VAL clips)")
    p.add_argument("--ef-guidance", type=GUIDANCE,
                   help="extra guidance on the --ef asked, on top of --guidance-scale (default: the one chosen on "
                        "the VAL clips, with which the shipped model's EF mapping was fitted; 0 = none)")
    add_force(p, "MP4 and PNG")
    add_allow_large(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_read_options(p)
    p.set_defaults(func=cmd_echo)
