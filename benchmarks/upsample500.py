"""100 → 500 Hz: the learned upsampler vs a polyphase filter, on PTB-XL records present at both rates, and on
generated records (see :mod:`evaluation.upsample_bench` for the metrics).

Every method starts from the record's 100 Hz version and is scored against its 500 Hz recording; the generated part
takes report → 12-lead records (100 Hz, conditions of the split's records) to 500 Hz both ways and compares their
spectra with the split's real 500 Hz records. Choices (steps) are made with ``--split val``; ``test`` is scored once.

    python benchmarks/upsample500.py --split val --steps 1 --steps 8 --out runs/bench_upsample_val

``--out`` is a new folder, or with ``--force`` one synth wrote; never inside (or holding) the ``--data``,
``--upsampler`` or ``--generator`` the run reads. It is checked before anything loads.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from synth.errors import exit_code_of

    return exit_code_of(Path(__file__).name, lambda: _main(argv))


def _main(argv: list[str] | None) -> None:
    from evaluation.bootstrap import record_interval
    from evaluation.report import _ci, _plt
    from evaluation.upsample_bench import BANDS, high_frequency_share, mean_spectrum, record_metrics
    from synth.checkpoint import load_pretrained
    from synth.data.ptbxl import PTBXL, at_both_rates
    from synth.data.transforms import resample
    from synth.io_utils import atomic_write_text
    from synth.outputs import check_output_folder, staged_folder
    from synth.tasks import Prompt, generate
    from synth.tasks.common import checkpoints_root, fit_length
    from synth.tasks.plots import plot_qrs_closeup
    from synth.tasks.upsample import upsample

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/ptbxl")
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--upsampler", default=str(checkpoints_root() / "upsample500"))
    p.add_argument("--generator", default=str(checkpoints_root() / "report2ecg"))
    p.add_argument("--steps", type=int, action="append", help="upsampler steps to score (repeatable; default 1, 8)")
    p.add_argument("--n-generated", type=int, default=64, help="generated records for the spectrum check (0: none)")
    p.add_argument("--guidance-scale", type=float, default=2.0)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    steps_list = args.steps or [1, 8]
    out = Path(args.out)
    inputs = [("--data", args.data), ("--upsampler", args.upsampler),
              *([("--generator", args.generator)] if args.n_generated > 0 else [])]
    check_output_folder(out, overwrite=args.force, inputs=inputs)  # before anything loads

    started = time.perf_counter()
    low, high = at_both_rates(args.data, args.split)
    ids = low.ecg_ids
    x500 = np.nan_to_num(high.load_signals(progress=True)).astype(np.float32)
    x100 = np.nan_to_num(low.load_signals(progress=True)).astype(np.float32)
    print(f"{args.split}: {len(ids)} records at both rates")

    model = load_pretrained(args.upsampler)
    outputs = {"polyphase": fit_length(resample(x100, 100, 500), x500.shape[-1])}
    timings = {"polyphase": 0.0}
    for steps in steps_list:
        t0 = time.perf_counter()
        outputs[f"learned, {steps} step{'s' if steps > 1 else ''}"] = upsample(model, x100, 100, steps=steps,
                                                                             seed=args.seed, progress=True)
        timings[f"learned, {steps} step{'s' if steps > 1 else ''}"] = time.perf_counter() - t0

    def mean(v):
        return float(np.mean(v))

    def median(v):
        return float(np.median(v))

    scored = {}
    for name, y in outputs.items():
        m = record_metrics(y, x500)
        scored[name] = {k: record_interval(v, median if k.startswith("power ratio") else mean, args.n_boot,
                                           args.seed) for k, v in m.items()}
        scored[name]["seconds_per_record"] = timings[name] / len(ids)

    generated = None
    if args.n_generated > 0:
        gen = load_pretrained(args.generator)
        rng = np.random.default_rng(args.seed)
        conditions = PTBXL(args.data, 100).split(args.split)  # every record of the split, not only those at 500 Hz
        rows = conditions.table.iloc[rng.choice(len(conditions), args.n_generated, replace=False)]
        records = []
        for k, (_, row) in enumerate(rows.iterrows()):
            prompt = Prompt(report=str(row["report"]) or None, labels=list(row["superclasses"]), n=1,
                            seed=args.seed + k)
            records.append(generate(gen, prompt, guidance_scale=args.guidance_scale)[0])
        g100 = np.concatenate(records)
        g_out = {"polyphase": resample(g100, 100, 500)}
        for steps in steps_list:
            g_out[f"learned, {steps} step{'s' if steps > 1 else ''}"] = upsample(model, g100, 100, steps=steps,
                                                                               seed=args.seed, progress=True)
        share = {"real 500 Hz": high_frequency_share(x500)}
        share.update({f"generated, {k}": high_frequency_share(v) for k, v in g_out.items()})
        generated = {"n": args.n_generated, "guidance_scale": args.guidance_scale,
                     "share_above_50hz": {k: record_interval(v, median, args.n_boot, args.seed)
                                          for k, v in share.items()}}

    with staged_folder(out, overwrite=args.force, inputs=inputs) as stage:
        plt = _plt()
        fig, axes = plt.subplots(1, 2 if generated else 1, figsize=(13 if generated else 7, 4.5), squeeze=False)
        ax = axes[0, 0]
        f, p_true = mean_spectrum(x500)
        ax.semilogy(f, p_true, color="black", lw=2, label="500 Hz recording")
        for name, y in outputs.items():
            ax.semilogy(*mean_spectrum(y), lw=1.2, label=name)
        ax.set(xlabel="frequency (Hz)", ylabel="power (mV²/Hz, 12 leads)", xlim=(0, 250), ylim=(1e-9, None),
               title=f"PTB-XL {args.split}: from the 100 Hz version")
        ax.legend()
        if generated:
            ax = axes[0, 1]
            ax.semilogy(f, p_true, color="black", lw=2, label="real 500 Hz records")
            for name, y in g_out.items():
                ax.semilogy(*mean_spectrum(y), lw=1.2, label=f"generated, {name}")
            ax.set(xlabel="frequency (Hz)", xlim=(0, 250), ylim=(1e-9, None),
                   title=f"{args.n_generated} generated records")
            ax.legend()
        fig.tight_layout()
        fig.savefig(stage / "spectra.png", dpi=110)
        plt.close(fig)

        # one QRS complex up close: the recording, the 100 Hz samples, each method (first record, lead II)
        plot_qrs_closeup(x100[0, 1], 100.0, {name: y[0, 1] for name, y in outputs.items()}, 500.0,
                         stage / "qrs_closeup.png", truth=x500[0, 1], title=f"ecg_id {ids[0]}, lead II")

        report = {"split": args.split, "records": len(ids), "ecg_ids": ids, "upsampler": args.upsampler,
                  "n_boot": args.n_boot, "seed": args.seed, "methods": scored, "generated": generated,
                  "wall_s": time.perf_counter() - started}
        (stage / "report.json").write_text(json.dumps(report, indent=1))
        lines = [f"# 100 → 500 Hz on PTB-XL {args.split} ({len(ids)} records at both rates)", "",
                 f"Upsampler `{args.upsampler}`; 95 % bootstrap intervals over records ({args.n_boot} replicates); "
                 f"wall time {report['wall_s']:.0f} s.", "",
                 "| method | RMSE (mV) | power ratio " + " | power ratio ".join(BANDS) +
                 " | log-spectral distance (dB) | QRS amplitude ratio | s / record |",
                 "|---|---|" + "---|" * len(BANDS) + "---|---|---|"]
        for name, s in scored.items():
            ratios = " | ".join(_ci(s[f"power ratio {b}"]) for b in BANDS)
            lines.append(f"| {name} | {_ci(s['rmse'])} | {ratios} | {_ci(s['lsd_db'])} | "
                         f"{_ci(s['qrs_amplitude_ratio'])} | {s['seconds_per_record']:.3f} |")
        lines += ["", "Power ratio: median over records of the output's band power over the recording's (1 = as much "
                  "detail as the recording). QRS amplitude ratio: peak-to-peak per lead over the recording's, mean over "
                  "leads.", ""]
        if generated:
            lines += [f"## Generated records ({generated['n']}, guidance {generated['guidance_scale']:g})", "",
                      "| records | share of power above 50 Hz (median) |", "|---|---|"]
            lines += [f"| {k} | {_ci(v, 3)} |" for k, v in generated["share_above_50hz"].items()]
            lines.append("")
        lines += ["Plots: `spectra.png`, `qrs_closeup.png`.", ""]
        atomic_write_text(stage / "report.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
