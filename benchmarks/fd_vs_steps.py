"""FD against the number of network evaluations of a report → 12-lead checkpoint, to choose its default steps.

    python benchmarks/fd_vs_steps.py --generator checkpoints/report2ecg --split val --n 300 \\
        --steps 1 2 4 8 16 32 64 --guidance-scale 2 --out benchmarks/results/fd_vs_steps_val

The same ``n`` conditions of ``split`` (English report, labels, age, sex, measured heart rate of real records) are
generated at every step count with the same per-chunk seeds; FD in the shipped classifier's feature space against
those real records, beside its floor (``n`` fresh training records), with bootstrap intervals; plus the
superclass condition consistency, heart-rate error and seconds per ECG on this machine. Network evaluations per
record = steps × the sampler's evaluations per step (Euler 1, Heun 2; ``--sampler``) × (2 with classifier-free
guidance, else 1). The rule the project uses (issue #13): the
default is the fewest evaluations whose FD lies within 10 % of the FD at 64 evaluations (at the most evaluations
when 64 was not run); choose on fold 9 (``--split val``), then report fold 10 once. ``--render REPORT.json``
rewrites the tables of an earlier run without generating again.

``--out`` is a new folder, or with ``--force`` one synth wrote; never inside (or holding) the generator, the
classifier, the ``--data`` or the ``--render`` report it reads. It is checked before anything loads.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from synth.errors import exit_code_of

    return exit_code_of(Path(__file__).name, lambda: _main(argv))


def _main(argv: list[str] | None) -> None:
    import numpy as np

    from evaluation import bench
    from evaluation.frechet import fd_with_floor
    from evaluation.physiology import physiology_report
    from synth import registry
    from synth.outputs import check_output_folder
    from synth.tasks.common import checkpoints_root

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", help="report → 12-lead export folder")
    ap.add_argument("--render", metavar="REPORT_JSON", help="rewrite the report of an earlier run (no generation)")
    ap.add_argument("--data", default=None, help="PTB-XL folder (default ../shared/data/ptbxl, else the sample)")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    ap.add_argument("--guidance-scale", type=float, default=2.0)
    ap.add_argument("--sampler", default=None, help="a flow sampler (euler, heun; default: the model's own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--cache-dir", default=".cache/ptbxl")
    ap.add_argument("--out", required=True)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    if args.render:
        inputs = [("--render", args.render)]
        check_output_folder(args.out, overwrite=args.force, inputs=inputs)
        report = json.loads(Path(args.render).read_text(encoding="utf-8"))
        write(report, args.out, args.force, inputs)
        return
    if not args.generator:
        ap.error("--generator is required (or --render REPORT_JSON)")
    started = time.perf_counter()
    data_root = Path(args.data) if args.data else bench.default_data_root()
    inputs = [("--generator", args.generator), ("--data", data_root),
              ("classifier", checkpoints_root() / bench.CLASSIFIER_NAME)]
    check_output_folder(args.out, overwrite=args.force, inputs=inputs)  # before anything loads
    ds, scored, train = bench._open(data_root, args.split, args.n, minimum=bench.K_NN + 2)
    rng = np.random.default_rng(args.seed)
    scored_x, train_x = bench._load(scored, args.cache_dir, True), bench._load(train, args.cache_dir, True)
    index = np.sort(rng.choice(len(scored), args.n, replace=False))
    cond = bench._conditions(scored, scored_x, index, True)
    floor_x = np.asarray(train_x[np.sort(rng.permutation(len(train))[: args.n])], dtype=np.float32)
    featurize = bench.load_feature_extractor(checkpoints_root() / bench.CLASSIFIER_NAME)
    f_test, f_floor = featurize(cond.signals), featurize(floor_x)
    spec = bench.parse_generator(args.generator, allowed=bench.BASELINES_FIDELITY)
    model = bench._load_model(spec)
    sampler = args.sampler or model.process.sampler
    per_step = registry.get("sampler", sampler).nfe_per_step
    rows = []
    for steps in args.steps:
        t0 = time.perf_counter()
        x = bench._sample_checkpoint(model, lambda r: bench._checkpoint_condition(model, cond, r), args.n,
                                     bench._generator_seed(args.seed, spec), args.batch_size, steps,
                                     f"{steps} {sampler} steps", True, args.guidance_scale, sampler=args.sampler)
        seconds = time.perf_counter() - t0
        fd = fd_with_floor(featurize(x), f_test, f_floor, n=args.n, n_boot=args.n_boot, seed=args.seed)
        cc = bench._condition_consistency(featurize, x, cond, n_boot=args.n_boot, seed=args.seed)
        phys = physiology_report(x, bench.FS_HZ, requested_hr_bpm=bench._requested_hr(cond)).as_dict()
        nfe = steps * per_step * (1 if args.guidance_scale == 1.0 else 2)
        rows.append({"steps": steps, "nfe": nfe, "fd": fd.as_dict()["fd"], "fd_floor": fd.as_dict()["fd_floor"],
                     "condition_consistency": cc["macro_auroc"] if cc else None,
                     "hr_mae_bpm": phys.get("heart_rate_mae_bpm"), "seconds_per_ecg": seconds / args.n})
        print(f"{steps:>3} steps ({nfe:>3} NFE): FD {rows[-1]['fd']['estimate']:.2f} "
              f"[{rows[-1]['fd']['low']:.2f}, {rows[-1]['fd']['high']:.2f}], {seconds / args.n:.3f} s/ECG", flush=True)
    report = {"generator": args.generator, "split": args.split, "n": args.n, "guidance_scale": args.guidance_scale,
              "sampler": sampler, "seed": args.seed, "rows": rows, "wall_s": time.perf_counter() - started}
    write(report, args.out, args.force, inputs)


def choose(rows: list[dict]) -> tuple[dict, str]:
    """The default by the project's rule, and the rule in words."""
    reference = next((r for r in rows if r["nfe"] == 64), None)
    rule = "fewest NFE with FD within 10 % of the FD at 64 NFE"
    if reference is None:
        reference, rule = max(rows, key=lambda r: r["nfe"]), "fewest NFE with FD within 10 % of the FD at the most NFE"
    within = [r for r in rows if r["fd"]["estimate"] <= 1.10 * reference["fd"]["estimate"]]
    return min(within, key=lambda r: r["nfe"]), rule


def write(report: dict, out: str, force: bool, inputs=()) -> None:
    """``report.json`` and ``report.md`` into the new folder ``out`` (apart from the run's ``inputs``)."""
    from synth.outputs import staged_folder

    chosen, report["rule"] = choose(report["rows"])
    report["chosen_steps"] = chosen["steps"]
    lines = [f"# FD vs network evaluations: `{report['generator']}` on PTB-XL {report['split']} (n = {report['n']}, "
             f"guidance {report['guidance_scale']:g}, {report.get('sampler', 'euler')} sampler)", "",
             "| steps | NFE | FD [95 % CI] | floor | consistency (macro AUROC) | HR MAE (bpm) | s/ECG (this CPU) |",
             "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        cc = r["condition_consistency"]
        lines.append(f"| {r['steps']} | {r['nfe']} | {r['fd']['estimate']:.2f} [{r['fd']['low']:.2f}, "
                     f"{r['fd']['high']:.2f}] | {r['fd_floor']['estimate']:.2f} | "
                     f"{'' if cc is None else format(cc['estimate'], '.3f')} | {r['hr_mae_bpm']:.1f} | "
                     f"{r['seconds_per_ecg']:.3f} |")
    lines += ["", f"Rule: {report['rule']} → **{chosen['steps']} steps** ({chosen['nfe']} NFE)."]
    with staged_folder(out, overwrite=force, inputs=inputs) as stage:
        (stage / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        (stage / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"chosen: {chosen['steps']} steps; report in {out}/report.md ({report['wall_s']:.0f} s)")


if __name__ == "__main__":
    raise SystemExit(main())
