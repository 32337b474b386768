"""Report → 12-lead records per second on this machine, every generator in one run, for the same conditions.

    python benchmarks/report2ecg_speed.py --threads 2 --n 512 \\
        --generator checkpoints/report2ecg:16:2 --generator checkpoints/report2ecg_fast:2 \\
        --generator baseline:deepfake-ecg --out benchmarks/results/report2ecg_speed.json

``--generator PATH:STEPS[:GUIDANCE]`` (a report → 12-lead export; guidance 1 for a model with guidance distilled
into it) or ``baseline:deepfake-ecg`` (unconditional, its own generator network). The conditions are those of
``--n`` fold-9 records (English report, labels, age, sex, measured heart rate), as ``synth bench fidelity`` gives
them; each report is encoded inside the timed call, as ``synth generate`` does. Timed: from conditions to
``(n, 12, 1000)`` float32 mV in memory (the lead laws applied), in batches of ``--batch-size``, after one untimed
warm-up batch; not timed: loading the model and writing files. Network evaluations per record = steps × (2 with
classifier-free guidance, else 1).

``--out`` is a new file, or with ``--force`` a JSON this script wrote (a ``writer`` entry); never inside or equal to
a checkpoint folder or the ``--data`` it reads. It is checked before any data or model loads and lands by a rename.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path


def parse(spec: str) -> tuple[str, int | None, float]:
    if spec.startswith("baseline:"):
        return spec, None, 1.0
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise SystemExit(f"--generator {spec}: use PATH:STEPS[:GUIDANCE] or baseline:deepfake-ecg")
    return parts[0], int(parts[1]), float(parts[2]) if len(parts) == 3 else 1.0


def sample(model, cond, n: int, args, steps: int, guidance: float, desc: str):
    from evaluation import bench

    return bench._sample_checkpoint(model, lambda rows: bench._checkpoint_condition(model, cond, rows), n, args.seed,
                                    args.batch_size, steps, desc, True, guidance)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", action="append", required=True)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=None, help="PTB-XL folder (default ../shared/data/ptbxl, else the sample)")
    ap.add_argument("--cache-dir", default=".cache/ptbxl")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="JSON report (a new file)")
    ap.add_argument("--force", action="store_true", help="replace an --out file this script wrote (nothing else)")
    args = ap.parse_args(argv)
    from synth.errors import exit_code_of

    return exit_code_of(Path(__file__).name, lambda: _measure(args))


def check_out(args: argparse.Namespace, data_root: Path) -> None:
    """Refuse, before any data or model loads, an ``--out`` inside (or equal to) a checkpoint or ``--data`` it
    reads, or one that exists (unless ``--force`` and this script wrote it)."""
    from evaluation.classifier import check_json_out
    from synth.outputs import check_apart

    inputs = [("--generator", parse(spec)[0]) for spec in args.generator if not spec.startswith("baseline:")]
    check_apart(args.out, [*inputs, ("--data", data_root)])
    check_json_out(args.out, force=args.force)


def _measure(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from evaluation import baselines, bench
    from evaluation.classifier import write_json_out

    data_root = Path(args.data) if args.data else bench.default_data_root()
    check_out(args, data_root)
    torch.set_num_threads(args.threads)
    _, scored, _ = bench._open(data_root, "val", args.n, minimum=1)
    scored_x = bench._load(scored, args.cache_dir, True)
    index = np.sort(np.random.default_rng(args.seed).choice(len(scored), args.n, replace=len(scored) < args.n))
    cond = bench._conditions(scored, scored_x, index, True)
    rows = []
    for spec in args.generator:
        path, steps, guidance = parse(spec)
        if path == "baseline:deepfake-ecg":
            baselines.deepfake_ecg_baseline(args.batch_size, bench.FS_HZ, seed=args.seed, progress=False)  # warm-up
            t0 = time.perf_counter()
            x = baselines.deepfake_ecg_baseline(args.n, bench.FS_HZ, seed=args.seed, progress=True)
            seconds, nfe = time.perf_counter() - t0, 1
        else:
            model = bench._load_model(bench.parse_generator(path, allowed=bench.BASELINES_FIDELITY))
            # warm-up: the first calls allocate and load the text encoder
            sample(model, cond, min(args.batch_size, args.n), args, steps, guidance, f"{path} (warm-up)")
            t0 = time.perf_counter()
            x = sample(model, cond, args.n, args, steps, guidance, f"{path} {steps} steps")
            seconds = time.perf_counter() - t0
            nfe = steps * (1 if guidance == 1.0 else 2)
        assert x.shape[:2] == (args.n, 12) and np.isfinite(x).all()
        rows.append({"generator": spec, "steps": steps, "guidance_scale": guidance, "nfe_per_record": nfe,
                     "records": args.n, "seconds": round(seconds, 2), "records_per_s": round(args.n / seconds, 2)})
        print(f"{spec}: {args.n} records in {seconds:.1f} s = {args.n / seconds:.1f} ECG/s ({nfe} NFE each)",
              flush=True)
    report = {"threads": args.threads, "batch_size": args.batch_size, "n": args.n, "split": "val",
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
              "load_average_at_end": os.getloadavg()[0], "rows": rows}
    write_json_out(args.out, report, force=args.force)
    print(f"report in {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
