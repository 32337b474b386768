"""``synth bench fidelity|reconstruct|ppg2ecg|echo``: the evaluation protocol on the command line.

Each command first refuses an ``--out`` that is, lies inside or contains a folder it reads (its lock and staging
would land in the input, ``--force`` would replace it), then claims ``--out`` (lock, checks) before any data or
model is read; the report lands in it when complete.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synth import limits
from synth.cli import UsageError
from synth.cli.common import (
    BATCH,
    BOOT,
    DURATION_S,
    GUIDANCE,
    SAMPLES,
    SEED,
    STEPS,
    add_force,
    modality_guidance,
)

_BENCH_N = limits.arg(1, 100_000, int)


def _bench_common(args: argparse.Namespace) -> dict:
    from evaluation.bench import default_data_root

    return {"data_root": Path(args.data) if args.data else default_data_root(), "split": args.split, "n": args.n,
            "seed": args.seed, "out_dir": Path(args.out), "force": args.force,
            "cache_dir": None if args.cache_dir in ("", "none") else args.cache_dir, "batch_size": args.batch_size,
            "steps": args.steps, "n_boot": args.n_boot, "progress": not args.quiet}


def _claimed(args: argparse.Namespace):
    """The output claimed for the whole run (the bench writes into the same staging when it finishes)."""
    from synth.outputs import staged_folder

    return staged_folder(args.out, overwrite=args.force)


def cmd_fidelity(args: argparse.Namespace) -> int:
    from evaluation.bench import BASELINES_FIDELITY, check_inputs, run_fidelity

    common = _bench_common(args)
    check_inputs(args.generator, args.out, common["data_root"], allowed=BASELINES_FIDELITY)
    with _claimed(args):
        report = run_fidelity(args.generator, features=args.features, guidance_scale=args.guidance_scale,
                              modality_guidance=args.modality_guidance, **common)
    for name, g in report["generators"].items():
        fd = g["fd"]
        print(f"{name:<24} FD {fd['fd']['estimate']:.4g} [{fd['fd']['low']:.4g}, {fd['fd']['high']:.4g}]  floor "
              f"{fd['fd_floor']['estimate']:.4g} [{fd['fd_floor']['low']:.4g}, {fd['fd_floor']['high']:.4g}]  "
              f"ratio {fd['ratio']:.3g}")
    print(f"report written to {args.out}/report.md ({report['wall_s']:.0f} s)")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from evaluation.bench import BASELINES_RECONSTRUCT, check_inputs, run_reconstruct

    common = _bench_common(args)
    check_inputs(args.generator, args.out, common["data_root"], allowed=BASELINES_RECONSTRUCT)
    with _claimed(args):
        report = run_reconstruct(args.generator, leads=args.leads, samples=args.samples, **common)
    for name, g in report["generators"].items():
        m = g["mean"]
        print(f"{name:<24} mean over {len(g['per_lead'])} leads: r {m['pearson_r']:.3f}, RMSE {m['rmse_mv']:.4f} mV, "
              f"MAE {m['mae_mv']:.4f} mV")
    print(f"report written to {args.out}/report.md ({report['wall_s']:.0f} s)")
    return 0


def cmd_ppg2ecg(args: argparse.Namespace) -> int:
    from evaluation.ppg_bench import run_ppg2ecg

    data = args.data
    if data is None:
        shared = Path("..") / "shared" / "data" / "bidmc"
        if shared.is_dir():
            data = shared
        else:
            from synth.data.sample import sample_bidmc_root

            data = sample_bidmc_root()
    from synth.outputs import check_apart

    checkpoints = [("--generator", g) for g in args.generator if not g.startswith("baseline:")]
    check_apart(args.out, [("--data", data), *checkpoints])  # before the output is claimed beside it
    with _claimed(args):
        report = run_ppg2ecg(args.generator, data, out_dir=args.out, split=args.split, seed=args.seed,
                             n_boot=args.n_boot, steps=args.steps, samples=args.samples, force=args.force,
                             progress=not args.quiet, twelve_lead=args.twelve_lead,
                             calibration_s=args.calibration_s)
    for name, g in report["generators"].items():
        twelve = f"  12-lead limb r {g['twelve_lead_r']['estimate']:.3f}" if "twelve_lead_r" in g else ""
        print(f"{name:<28} r {g['pearson_r']['estimate']:.3f}  RMSE(z) {g['rmse_z']['estimate']:.3f}  "
              f"HR error {g['hr_error_bpm']['estimate']:.1f} bpm{twelve}")
    if "twelve_lead" in report:
        ref = report["twelve_lead"]["reference_from_recorded_ii"]["estimate"]
        print(f"{'(12 leads from recorded II)':<28} 12-lead limb r {ref:.3f}")
    print(f"report written to {args.out}/report.md ({report['wall_s']:.0f} s)")
    return 0


def cmd_utility(args: argparse.Namespace) -> int:
    from evaluation.bench import default_data_root
    from evaluation.utility import TrainBudget
    from evaluation.utility_bench import check_inputs, run_utility

    try:
        fractions = [float(f) for f in args.fractions.split(",")]
    except ValueError:
        raise UsageError(f"--fractions {args.fractions!r} is not a list of numbers", hint="e.g. 1,0.25,0.1") from None
    data_root = Path(args.data) if args.data else default_data_root()
    check_inputs(args.cohort, args.out, data_root)
    with _claimed(args):
        report = run_utility(args.cohort, data_root, out_dir=args.out,
                             split=args.split, fractions=fractions, label_kind=args.labels,
                             budget=TrainBudget(steps=args.steps, batch_size=args.batch_size), seed=args.seed,
                             n_boot=args.n_boot, rare=args.rare, filter_classifier=args.filter,
                             cache_dir=None if args.cache_dir in ("", "none") else args.cache_dir, force=args.force,
                             progress=not args.quiet)
    for name, row in report["rows"].items():
        gain = report["gains"].get(name)
        extra = f"  gain {gain['estimate']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}]" if gain else ""
        m = row["macro_auroc"]
        print(f"{name:<32} AUROC {m['estimate']:.3f} [{m['low']:.3f}, {m['high']:.3f}]{extra}")
    print(f"report written to {args.out}/report.md ({report['wall_s']:.0f} s)")
    return 0


def cmd_echo(args: argparse.Namespace) -> int:
    from evaluation.echo import check_inputs, print_summary, run_echo_bench
    from synth.echo.generate import DEFAULT_EF_GUIDANCE, DEFAULT_GUIDANCE

    guidance = DEFAULT_GUIDANCE if args.guidance_scale is None else args.guidance_scale
    ef_guidance = DEFAULT_EF_GUIDANCE if args.ef_guidance is None else args.ef_guidance
    cache_dir = None if args.cache_dir in ("", "none") else args.cache_dir
    check_inputs(args.model, args.data, args.encoder, args.out, cache_dir=cache_dir)
    with _claimed(args):
        report = run_echo_bench(args.model, args.data, args.encoder, args.out, split=args.split.upper(), n=args.n,
                                steps=args.steps, guidance_scale=guidance, ef_guidance=ef_guidance, seed=args.seed,
                                batch_size=args.batch_size, n_boot=args.n_boot, force=args.force,
                                cache_dir=cache_dir, progress=not args.quiet)
    print_summary(report)
    print(f"report written to {args.out}/report.md ({report['wall_s']:.0f} s)")
    return 0


def _common(p: argparse.ArgumentParser, *, n_boot: int = 200) -> None:
    p.add_argument("--out", required=True, help="output folder (must not exist unless --force)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--n-boot", type=BOOT, default=n_boot, help=f"bootstrap replicates (default {n_boot})")
    add_force(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_parsers(sub) -> None:
    bench = sub.add_parser("bench", help="score generators and baselines with the evaluation protocol")
    bsub = bench.add_subparsers(dest="bench_command", metavar="SUBCOMMAND", parser_class=type(bench))
    for name, helptext in (
        ("fidelity", "FD with its floor, precision/recall, memorisation and physiology per generator"),
        ("reconstruct", "per-lead MAE/RMSE/r of reconstructed leads from the given ones"),
    ):
        p = bsub.add_parser(name, help=helptext)
        p.add_argument("--generator", action="append", required=True, metavar="CHECKPOINT|baseline:NAME",
                       help="repeatable; baselines: " + ("real-train, ecgsyn, nearest, deepfake-ecg (the published "
                                                         "Pulse2Pulse generator; pip install 'synth[peers]'); "
                                                         "records:DIR scores a folder of anyone's records (WFDB, NPZ, "
                                                         "NPY, CSV, or a synth cohort; metadata.csv/conditions.csv "
                                                         "with record,labels,hr columns gives what they were asked)"
                                                         if name == "fidelity" else "linear"))
        if name == "reconstruct":
            p.add_argument("--leads", required=True, help="given leads, e.g. II,V1,V5 (or 3lead, 1lead:I)")
            p.add_argument("--samples", type=SAMPLES, default=1,
                           help="checkpoints: samples averaged per window (default 1; with --steps 1 the single "
                                "Euler step from noise is already the model's conditional-mean estimate)")
        else:
            p.add_argument("--guidance-scale", type=GUIDANCE, default=1.0,
                           help="classifier-free guidance for checkpoints (default 1 = none)")
            p.add_argument("--modality-guidance", type=modality_guidance, metavar="NAME=W[,NAME=W]",
                           help="per-modality guidance for every checkpoint, e.g. demographics=0.5 (as synth "
                                "generate); 'none' turns off what a model's config sets (default: each model's own)")
            p.add_argument("--features", help="feature-extractor folder (default checkpoints/ecg_classifier_ptbxl if "
                                              "present, else raw-signal PCA features)")
        p.add_argument("--data", help="PTB-XL folder (default ../shared/data/ptbxl if present, else the shipped sample)")
        p.add_argument("--split", default="test", choices=("test", "val"), help="records scored (default test)")
        p.add_argument("--n", type=_BENCH_N, default=500, help="records per set (default 500)")
        p.add_argument("--cache-dir", default=".cache/ptbxl", help="signal cache folder ('none' to disable)")
        p.add_argument("--batch-size", type=BATCH, default=64, help="checkpoint sampling batch size")
        p.add_argument("--steps", type=STEPS, help="sampler steps for checkpoints (default: the model's)")
        _common(p)
        p.set_defaults(func=cmd_fidelity if name == "fidelity" else cmd_reconstruct)

    p = bsub.add_parser("echo", help="ECG → echo: frame FD with floor, SSIM/PSNR, EF error, ED/ES timing, s/video")
    p.add_argument("--model", default="checkpoints/echo_maskgit", help="ECG → echo export (default: the shipped one)")
    p.add_argument("--data", default="runs/echo_sim", help="simulated EchoNet-layout folder (tools/make_echo_dataset.py)")
    p.add_argument("--encoder", default="checkpoints/echo_encoder", help="echo encoder folder (FD features, EF)")
    p.add_argument("--split", default="test", choices=("test", "val"), help="clips scored (default test)")
    p.add_argument("--n", type=_BENCH_N, default=100, help="clips scored (default 100)")
    p.add_argument("--steps", type=limits.arg(1, 18, int), help="decoding steps (default: the model's)")
    p.add_argument("--guidance-scale", type=GUIDANCE, help="default 1.25, what synth echo uses")
    p.add_argument("--ef-guidance", type=GUIDANCE, help="extra guidance on the EF asked (default: what synth echo uses)")
    p.add_argument("--batch-size", type=BATCH, default=8)
    p.add_argument("--cache-dir", default=".cache/echo",  # evaluation.echo.ECHO_CACHE
                   help="clip cache folder, one sub-folder per --data ('none' to disable; never inside --data)")
    _common(p)
    p.set_defaults(func=cmd_echo)

    p = bsub.add_parser("utility", help="train-on-synthetic / augmentation: classifiers trained fresh per row on "
                                        "real fractions, cohorts and both, scored on real records")
    p.add_argument("--cohort", action="append", required=True, metavar="[NAME=]DIR",
                   help="repeatable; a folder made by synth cohort (e.g. one with the training mix, one balanced)")
    p.add_argument("--data", help="PTB-XL folder (default ../shared/data/ptbxl if present, else the shipped sample)")
    p.add_argument("--split", default="test", choices=("test", "val"),
                   help="real records scored: val (fold 9) to choose, test (fold 10) to report once")
    p.add_argument("--fractions", default="1,0.25,0.1", help="shares of the real training records (default 1,0.25,0.1)")
    p.add_argument("--labels", default="superclasses", help="label kind the classifiers predict (default superclasses)")
    p.add_argument("--steps", type=STEPS, default=300, help="optimisation steps per classifier (default 300)")
    p.add_argument("--batch-size", type=BATCH, default=64)
    p.add_argument("--rare", type=limits.arg(0, 50, int), default=3, help="rarest labels reported per row (default 3)")
    p.add_argument("--filter", nargs="?", const="checkpoints/ecg_classifier_ptbxl", default=None, metavar="CLASSIFIER",
                   help="also AUG rows without the synthetic records whose requested labels this classifier (trained "
                        "on the training folds only; default the shipped one) does not recognise")
    p.add_argument("--cache-dir", default=".cache/ptbxl", help="signal cache folder ('none' to disable)")
    _common(p, n_boot=1000)
    p.set_defaults(func=cmd_utility)

    p = bsub.add_parser("ppg2ecg", help="PPG → ECG lead II on BIDMC's held-out subjects: r, RMSE, HR error")
    p.add_argument("--generator", action="append", required=True, metavar="CHECKPOINT|baseline:NAME",
                   help="repeatable; a PPG → ECG export folder, baseline:linear, or baseline:template "
                        "(with --calibration-s: the subject's own beat at PPG onsets minus its pulse arrival lag)")
    p.add_argument("--data", help="BIDMC folder (default ../shared/data/bidmc if present, else the shipped sample)")
    p.add_argument("--split", default="test", choices=("test", "val"), help="subjects scored (default test)")
    p.add_argument("--steps", type=STEPS, help="sampler steps for checkpoints (default: the model's)")
    p.add_argument("--samples", type=SAMPLES, default=1, help="samples averaged per window for checkpoints")
    p.add_argument("--twelve-lead", nargs="?", const="", default=None, metavar="CHECKPOINT",
                   help="also take each lead II to 12 leads (the shipped reconstruction model, or CHECKPOINT) and "
                        "score the limb leads the subjects have on record (aVR, III)")
    p.add_argument("--calibration-s", type=DURATION_S, default=0.0, metavar="SECONDS",
                   help="use each recording's first SECONDS of lead II as a calibration ECG (the subject's pulse "
                        "arrival offset, applied to every generator) and score only the windows after it")
    _common(p, n_boot=1000)
    p.set_defaults(func=cmd_ppg2ecg)
