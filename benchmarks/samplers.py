"""Sampler speed on one small network: 64 ECGs of 12 x 1000 (10 s at 100 Hz), in one run.

DDPM with 1000 steps (the DiffuSETS setting) is the baseline; DDIM 50, DPM-Solver++ 20 (diffusion backbone) and
rectified-flow Euler 8 (flow backbone) use the same U-Net, built from the same seed so the weights are identical.
Weights are untrained: only time and memory are measured here, not quality. Each sampler runs in its own process
so that its peak memory is its own (peak RSS on CPU; peak allocated memory on CUDA).

    python benchmarks/samplers.py [--device cpu|cuda] [--n 64] [--out benchmarks/results/samplers.json [--force]]

``--out`` is a new file (checked before any sampler runs), or with ``--force`` one this script wrote; it lands by a
rename.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

NETWORK = {"name": "unet1d", "base_channels": 32, "channel_mults": [1, 2, 2], "num_res_blocks": 1,
           "attention_levels": [2], "num_heads": 4, "norm_groups": 8}
CONDITIONING = {"dim": 64, "adapters": {"labels": {"name": "labels", "num_labels": 5, "p_drop": 0.1}}}
SIGNAL = {"channels": 12, "length": 1000, "fs_hz": 100.0, "scale_mv": 0.5}
RUNS = [  # (label, backbone, sampler, steps)
    ("DDPM 1000", "diffusion", "ddpm", 1000),
    ("DDIM 50", "diffusion", "ddim", 50),
    ("DPM-Solver++ 20", "diffusion", "dpmsolver++", 20),
    ("flow Euler 8", "flow", "euler", 8),
]


def build(backbone: str, sampler: str):
    from synth.config import model_config_from_dict
    from synth.generative.base import build_model

    process = {"sampler": sampler}
    cfg = model_config_from_dict({"backbone": backbone, "signal": SIGNAL, "network": NETWORK,
                                  "conditioning": CONDITIONING, "process": process})
    torch.manual_seed(0)  # identical network weights for every run
    return build_model(cfg)


def run_one(label: str, n: int, device: str) -> dict:
    _, backbone, sampler, steps = next(r for r in RUNS if r[0] == label)
    model = build(backbone, sampler).to(device).eval()
    cond = {"labels": torch.tensor([[1.0, 0, 0, 0, 0]], device=device)}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    generator = torch.Generator(device=device).manual_seed(0)
    start = time.perf_counter()
    x = model.sample(cond, n, steps=steps, guidance_scale=1.0, generator=generator)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak_mib = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    assert x.shape == (n, 12, 1000) and torch.isfinite(x).all()
    return {"label": label, "backbone": backbone, "sampler": sampler, "steps": steps, "seconds": seconds,
            "ecg_per_s": n / seconds, "peak_mib": peak_mib, "rss_before_mib": rss_before / 1024,
            "params": sum(p.numel() for p in model.parameters())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--out", default=None, help="also write the results as JSON here (a new file)")
    parser.add_argument("--force", action="store_true", help="replace an --out file this script wrote (nothing else)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run a single sampler in this process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.n, args.device)))
        return 0
    # The JSON outputs of the evaluation commands: a new file, or with --force one synth wrote; by a rename.
    from evaluation.classifier import check_json_out, write_json_out
    from synth.errors import exit_code_of

    def run() -> None:
        if args.out:
            check_json_out(args.out, force=args.force)  # before the minutes of sampling
        results, hardware = _measure(args)
        if args.out:
            write_json_out(args.out, {"device": args.device, "hardware": hardware, "n": args.n, "results": results},
                           force=args.force)

    return exit_code_of(Path(__file__).name, run)


def _measure(args: argparse.Namespace) -> tuple[list[dict], str]:
    """Each sampler in its own process, with a table of the results; the results and the hardware."""
    hardware = torch.cuda.get_device_name() if args.device == "cuda" else (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"{args.n} ECGs of 12 x 1000 on {args.device} ({hardware})")
    results = []
    for label, *_ in RUNS:
        proc = subprocess.run([sys.executable, __file__, "--one", label, "--n", str(args.n), "--device", args.device],
                              capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"  {label:<16} {r['seconds']:8.2f} s  {r['ecg_per_s']:7.2f} ECG/s  peak {r['peak_mib']:7.0f} MiB",
              flush=True)
    base = results[0]["seconds"]
    print(f"network: unet1d, {results[0]['params'] / 1e6:.2f} M parameters")
    print("| sampler | network evaluations | time (s) | ECG/s | speed-up vs DDPM 1000 | peak memory (MiB) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        nfe = r["steps"]
        print(f"| {r['label']} | {nfe} | {r['seconds']:.2f} | {r['ecg_per_s']:.2f} | {base / r['seconds']:.0f}x "
              f"| {r['peak_mib']:.0f} |")
    return results, hardware


if __name__ == "__main__":
    raise SystemExit(main())
