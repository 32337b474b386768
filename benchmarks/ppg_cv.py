"""Subject-grouped cross-validation of PPG → ECG over every BIDMC subject (issue #15).

    python benchmarks/ppg_cv.py --config configs/task/ppg2ecg_phase.yaml --folds 6 --steps 600 \
        --work runs/ppg_cv --out benchmarks/results/ppg_cv

The fixed split (train 1-37, validation 38-45, test 46-53) stays the headline. For comparison with published
figures, which are often leave-one-subject-out, this trains the same recipe once per fold with that fold's subjects
held out (subjects in order, dealt round-robin into ``--folds`` groups; leave-one-subject-out is ``--folds 53``),
fine-tuning from the recipe's ``init_from`` (the PTB-XL pretraining, which never saw BIDMC), and scores the held-out
subjects with ``synth bench ppg2ecg``'s metrics beside the ridge FIR map fitted on the same training subjects. No
choice is made on the held-out subjects: every fold trains a fixed number of steps and exports its last EMA
weights (the held-out subjects give the logged validation loss only). Per-subject figures from all folds are then
pooled, with bootstrap intervals over subjects.

Each fold resumes where it stopped (its training checkpoints, then its score); rerun the same command after an
interruption. ``--steps`` below the recipe's own is a CPU compromise, stated in the report.

``--out`` is a new folder, or with ``--force`` one synth wrote; never inside (or holding) the ``--data``, the
``--config`` or the ``--work`` folder the run reads. It is checked before anything loads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def folds_of(subjects: list[int], k: int) -> list[list[int]]:
    """``subjects`` (sorted) dealt round-robin into ``k`` held-out groups."""
    if not 2 <= k <= len(subjects):
        raise ValueError(f"--folds must be between 2 and the number of subjects ({len(subjects)}), got {k}")
    ordered = sorted(subjects)
    return [ordered[i::k] for i in range(k)]


def _over_subjects(values: np.ndarray, stat, n_boot: int, seed: int) -> dict:
    """``stat`` of the per-subject values with its bootstrap interval over subjects."""
    from evaluation.bootstrap import record_interval

    values = values[np.isfinite(values)]
    return {**record_interval(values, stat, n_boot, seed), "subjects": int(len(values))}


def main(argv: list[str] | None = None) -> int:
    from synth.errors import exit_code_of

    return exit_code_of(Path(__file__).name, lambda: _main(argv))


def _main(argv: list[str] | None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/task/ppg2ecg_phase.yaml", help="the training recipe (bidmc_ppg)")
    ap.add_argument("--data", default="../shared/data/bidmc")
    ap.add_argument("--folds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=None, help="training steps per fold (default the recipe's)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="further overrides of the recipe (repeatable), e.g. batch_size=16")
    ap.add_argument("--sampler-steps", type=int, default=None, help="Euler steps when scoring (default the model's)")
    ap.add_argument("--work", default="runs/ppg_cv", help="per-fold training runs and scores (resumable)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)

    from evaluation.ppg_bench import run_ppg2ecg
    from synth.data.bidmc import BIDMC
    from synth.outputs import check_output_folder, staged_folder
    from synth.training.config import load_train_config
    from synth.training.trainer import train_from_config

    started = time.perf_counter()
    out = Path(args.out)
    inputs = [("--data", args.data), ("--config", args.config), ("--work", args.work)]
    check_output_folder(out, overwrite=args.force, inputs=inputs)  # before anything loads
    bidmc = BIDMC(args.data)
    groups = folds_of(bidmc.subjects, args.folds)
    recipe = load_train_config(args.config, args.set)
    steps = args.steps or recipe.steps
    work = Path(args.work)
    fold_reports = []
    for k, held in enumerate(groups):
        fold = work / f"fold{k:02d}"
        others = [s for s in bidmc.subjects if s not in held]
        print(f"fold {k + 1}/{len(groups)}: held out {held}", flush=True)
        model_dir = train_from_config(args.config, [
            *args.set, f"out_dir={fold / 'train'}", f"steps={steps}", f"data.root={args.data}", f"seed={args.seed}",
            f"data.train_subjects={others}", f"data.val_subjects={held}"])
        scored = fold / "score"
        if not (scored / "report.json").is_file():
            run_ppg2ecg([str(model_dir), "baseline:linear"], args.data, out_dir=scored, split=f"cv-fold{k}",
                        seed=args.seed, n_boot=200, subjects=held, train_subjects=others, force=True,
                        steps=args.sampler_steps)
        fold_reports.append(json.loads((scored / "report.json").read_text(encoding="utf-8")))

    per_subject: dict[str, dict[str, dict[int, float]]] = {"model": {}, "baseline:linear": {}}
    keys = {"r": "per_subject_r", "rpeak_ms": "per_subject_rpeak_error_ms", "hr_bpm": "per_subject_hr_error_bpm"}
    for rep in fold_reports:
        for text, g in rep["generators"].items():
            name = "baseline:linear" if text == "baseline:linear" else "model"
            for metric, key in keys.items():
                for s, v in g.get(key, {}).items():
                    per_subject[name].setdefault(metric, {})[int(s)] = float(v)
    summary: dict = {"config": args.config, "overrides": args.set, "folds": [list(map(int, g)) for g in groups], "steps_per_fold": steps,
                     "recipe_steps": recipe.steps, "seed": args.seed, "n_boot": args.n_boot, "generators": {}}
    for name, metrics in per_subject.items():
        entry = {"per_subject": {m: {int(s): v for s, v in sorted(d.items())} for m, d in metrics.items()}}
        for metric, by in metrics.items():
            values = np.array([by[s] for s in sorted(by)], dtype=float)
            stat = np.median if metric == "rpeak_ms" else np.mean
            entry[metric] = _over_subjects(values, lambda v, f=stat: float(f(v)), args.n_boot, args.seed)
        summary["generators"][name] = entry
    r_model = per_subject["model"].get("r", {})
    r_lin = per_subject["baseline:linear"].get("r", {})
    common = sorted(set(r_model) & set(r_lin))
    diff = np.array([r_model[s] - r_lin[s] for s in common])
    summary["paired_r_difference"] = (_over_subjects(diff, lambda v: float(np.mean(v)), args.n_boot, args.seed)
                                      if len(diff) else None)
    summary["wall_s"] = time.perf_counter() - started

    def ci(d: dict | None, fmt: str = ".3f") -> str:
        return "" if not d else f"{d['estimate']:{fmt}} [{d['low']:{fmt}}, {d['high']:{fmt}}]"

    lines = [f"# PPG → ECG, subject-grouped cross-validation ({len(groups)} folds over {len(bidmc.subjects)} "
             "BIDMC subjects)", "",
             f"Recipe `{args.config}`, {steps} training steps per fold (the recipe's own: {recipe.steps}), "
             "fine-tuned from its `init_from`; the last EMA weights of each fold are scored on its held-out "
             "subjects beside the ridge FIR map fitted on the same training subjects. Per-subject means (r, HR "
             "error) and medians (R-peak timing), pooled over all folds; 95 % bootstrap intervals over subjects.",
             "", "| | r (mean over subjects) | median R-peak error (ms) | HR error (bpm) |", "|---|---|---|---|"]
    for name, g in summary["generators"].items():
        lines.append(f"| {name} | {ci(g.get('r'))} | {ci(g.get('rpeak_ms'), '.0f')} | {ci(g.get('hr_bpm'), '.1f')} |")
    if summary["paired_r_difference"]:
        lines += ["", f"Paired r difference (model − linear) over {len(common)} subjects: "
                      f"{ci(summary['paired_r_difference'])}."]
    lines += ["", "Folds (held-out subjects): " + "; ".join(", ".join(map(str, g)) for g in groups) + "."]
    with staged_folder(out, overwrite=args.force, inputs=inputs) as stage:
        (stage / "report.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        (stage / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        _plot(per_subject, stage / "per_subject_r.png")
    print("\n".join(lines))


def _plot(per_subject: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    subjects = sorted(set(per_subject["model"].get("r", {})) | set(per_subject["baseline:linear"].get("r", {})))
    fig, ax = plt.subplots(figsize=(12, 3.2))
    x = np.arange(len(subjects))
    for off, (name, colour) in zip((-0.2, 0.2), (("model", "tab:red"), ("baseline:linear", "tab:grey"))):
        by = per_subject[name].get("r", {})
        ax.bar(x + off, [by.get(s, np.nan) for s in subjects], width=0.4, color=colour, label=name)
    ax.set_xticks(x, [str(s) for s in subjects], fontsize=7)
    ax.set_xlabel("BIDMC subject (held out in its fold)")
    ax.set_ylabel("waveform r")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
