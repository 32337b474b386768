"""How a report → 12-lead checkpoint follows the heart rate asked of it, on validation records.

    python benchmarks/hr_response.py --checkpoint checkpoints/report2ecg --n 2000 --guidance-scale 2 \\
        --out benchmarks/results/hr_response_val

``n`` fold-9 records (seed-drawn) each give their English report, labels, age, sex and measured heart rate, as
``synth bench fidelity`` asks; the rate of the generated record is measured as the bench measures it. Written:
``report.json`` (every record's asked and drawn rate, the median drawn rate in equal-count bins of the asked one,
the error per rhythm statement) and ``response.png``. A response curve on the diagonal with a large mean error says
the error is spread, not bias that a mapping of the asked rate could remove.

``--out`` is a new folder, or with ``--force`` one synth wrote; never inside (or holding) the ``--checkpoint`` or
the ``--data`` it reads. It is checked before anything loads.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RHYTHMS = ("SR", "AFIB", "STACH", "SBRAD", "SARRH", "PACE", "SVARR", "AFLT", "BIGU", "TRIGU", "PSVT", "SVTAC")


def main(argv: list[str] | None = None) -> int:
    from synth.errors import exit_code_of

    return exit_code_of(Path(__file__).name, lambda: _main(argv))


def _main(argv: list[str] | None) -> None:
    import numpy as np

    from evaluation import bench
    from evaluation.physiology import heart_rate
    from synth.checkpoint import load_pretrained
    from synth.outputs import check_output_folder, staged_folder

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="report → 12-lead export folder")
    ap.add_argument("--data", default=None, help="PTB-XL folder (default ../shared/data/ptbxl, else the sample)")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--guidance-scale", type=float, default=2.0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bins", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", required=True, help="folder for report.json and response.png (must not exist)")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    out = Path(args.out)
    data_root = args.data or bench.default_data_root()
    inputs = [("--checkpoint", args.checkpoint), ("--data", data_root)]
    check_output_folder(out, overwrite=args.force, inputs=inputs)  # before anything loads
    model = load_pretrained(args.checkpoint).eval()
    _, scored, _ = bench._open(data_root, "val", args.n)
    signals = bench._load(scored, ".cache/ptbxl", True)
    index = np.sort(np.random.default_rng(args.seed).choice(len(scored), args.n, replace=False))
    cond = bench._conditions(scored, signals, index, True)
    spec = bench.parse_generator(args.checkpoint, allowed=bench.BASELINES_FIDELITY)
    x = bench._sample_checkpoint(model, lambda rows: bench._checkpoint_condition(model, cond, rows), len(index),
                                 bench._generator_seed(args.seed, spec), args.batch_size, args.steps, "generating",
                                 True, guidance_scale=args.guidance_scale)
    asked = bench._requested_hr(cond)
    drawn = np.array([heart_rate(r, bench.FS_HZ) for r in x])
    err = drawn - asked
    ok = np.isfinite(err)
    order = np.argsort(asked, kind="stable")
    bins = [g[ok[g]] for g in np.array_split(order, args.bins)]
    per_bin = [{"asked_median": float(np.median(asked[g])), "drawn_median": float(np.median(drawn[g])),
                "mae_bpm": float(np.mean(np.abs(err[g]))), "records": len(g)} for g in bins if len(g)]
    total = float(np.abs(err[ok]).sum())
    per_rhythm = {}
    for name in RHYTHMS:
        m = np.array([name in s for s in cond.statements]) & ok
        if m.any():
            per_rhythm[name] = {"records": int(m.sum()), "mae_bpm": float(np.abs(err[m]).mean()),
                                "share_of_error": float(np.abs(err[m]).sum() / total)}
    report = {
        "checkpoint": args.checkpoint, "split": "val", "n": args.n, "seed": args.seed,
        "guidance_scale": args.guidance_scale, "steps": args.steps, "measured": int(ok.sum()),
        "mae_bpm": float(np.abs(err[ok]).mean()), "median_abs_error_bpm": float(np.median(np.abs(err[ok]))),
        "p90_abs_error_bpm": float(np.percentile(np.abs(err[ok]), 90)), "bias_bpm": float(err[ok].mean()),
        "per_bin": per_bin, "per_rhythm": per_rhythm,
        "ecg_ids": [int(i) for i in cond.ecg_ids], "asked_bpm": asked.tolist(), "drawn_bpm": drawn.tolist(),
        "wall_s": time.perf_counter() - t0,
    }
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with staged_folder(out, overwrite=args.force, inputs=inputs) as stage:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        ax.scatter(asked, drawn, s=4, alpha=0.3, label="records")
        ax.plot([b["asked_median"] for b in per_bin], [b["drawn_median"] for b in per_bin], "o-", color="C1",
                label="median drawn rate per bin")
        ax.plot([30, 200], [30, 200], "k:", lw=1)
        ax.set(xlabel="asked heart rate (bpm)", ylabel="drawn heart rate (bpm)", xlim=(30, 200), ylim=(30, 200),
               title=f"{Path(args.checkpoint).name}, fold 9, n = {args.n}, guidance {args.guidance_scale:g}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(stage / "response.png", dpi=120)
        plt.close(fig)
        (stage / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"{ok.sum()} of {args.n} fold-9 records measured: MAE {report['mae_bpm']:.2f} bpm (median "
          f"{report['median_abs_error_bpm']:.2f}, bias {report['bias_bpm']:+.2f}); per rhythm: "
          + ", ".join(f"{k} {v['mae_bpm']:.1f} ({v['records']})" for k, v in per_rhythm.items()))


if __name__ == "__main__":
    raise SystemExit(main())
