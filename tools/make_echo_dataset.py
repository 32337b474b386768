"""Build the ECG-paired echo dataset: PTB-XL ECGs (train folds 1-8 → TRAIN, 9 → VAL, 10 → TEST) drive the phantom.

    python tools/make_echo_dataset.py --ptbxl ../shared/data/ptbxl --out data/echo_sim --train 1200 --val 150 --test 200

Records are drawn at random (seeded) from each fold group, one clip per record, starting at a random time inside
the 10 s ECG. Output: the EchoNet-Dynamic layout plus ECG/ (WFDB) and Timing.csv (see synth.echo.echonet): a new
folder, or with ``--force`` one synth wrote, never inside (or holding) ``--ptbxl``; checked before PTB-XL is read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth.data.ptbxl import PTBXL  # noqa: E402
from synth.echo.dataset import ClipSpec, build_dataset  # noqa: E402


def specs(ptbxl: PTBXL, counts: dict[str, int], duration_s: float, seed: int):
    rng = np.random.default_rng(seed)
    groups = {"TRAIN": ptbxl.split("train"), "VAL": ptbxl.split("val"), "TEST": ptbxl.split("test")}
    for split, view in groups.items():
        ids = view.ecg_ids
        chosen = rng.choice(ids, size=min(counts[split], len(ids)), replace=False)
        for ecg_id in chosen:
            record = ptbxl.record(int(ecg_id))
            start = float(rng.uniform(0.0, record.duration_s - duration_s))
            start = round(start * record.fs_hz) / record.fs_hz
            yield ClipSpec(record=record, split=split, start_s=start, name=f"SIM{int(ecg_id):05d}",
                           seed=int(rng.integers(2**31)))


def main(argv: list[str] | None = None) -> int:
    from synth.errors import exit_code_of

    return exit_code_of(Path(__file__).name, lambda: _main(argv))


def _main(argv: list[str] | None) -> None:
    from synth.outputs import check_output_folder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ptbxl", default="../shared/data/ptbxl")
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=1200)
    ap.add_argument("--val", type=int, default=150)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--fps", type=float, default=16.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--simulator", choices=("phantom", "ultrasound"), default="phantom",
                    help="the geometric phantom the shipped model was trained on, or the ultrasound simulator "
                         "(synth.echo.ultrasound)")
    ap.add_argument("--workers", type=int, default=1, help="processes simulating clips (same dataset for any number)")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    # build_dataset claims --out (staged_folder) but is not given --ptbxl: kept apart here, before PTB-XL is read
    check_output_folder(args.out, overwrite=args.force, inputs=[("--ptbxl", args.ptbxl)])
    ptbxl = PTBXL(args.ptbxl, 100)
    counts = {"TRAIN": args.train, "VAL": args.val, "TEST": args.test}
    build_dataset(args.out, specs(ptbxl, counts, args.frames / args.fps, args.seed), frames=args.frames,
                  fps=args.fps, overwrite=args.force, simulator=args.simulator, workers=args.workers)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
