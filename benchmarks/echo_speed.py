"""Seconds per ECG → echo clip at batch 1, with and without the EF guidance term, in one run.

    python benchmarks/echo_speed.py --model checkpoints/echo_maskgit --data runs/echo_us --clips 8 --threads 1 \\
        --out benchmarks/results/echo_speed.json

Each setting samples the same ``--clips`` VAL clips (their ECG, EF and heart rate) one by one, twice, alternating
the settings so that a machine that slows down or speeds up during the run biases neither; the mean of the two
passes is reported.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    import torch

    from evaluation.echo import ECHO_CACHE, clip_cache_dir
    from synth.echo.dataset import EchoTensors
    from synth.echo.generate import DEFAULT_EF_GUIDANCE, DEFAULT_GUIDANCE, load_echo_model, sample_videos
    from synth.outputs import staged_files

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/echo_maskgit")
    ap.add_argument("--data", required=True, help="simulated echo dataset (tools/make_echo_dataset.py)")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True, help="JSON file to write (must not exist)")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; choose a new name")
    torch.set_num_threads(args.threads)
    model = load_echo_model(args.model)
    clips = EchoTensors(args.data, "VAL", size=model.autoencoder.process.height, limit=args.clips, progress=False,
                        cache_dir=clip_cache_dir(ECHO_CACHE, args.data))
    settings = sorted({0.0, float(DEFAULT_EF_GUIDANCE)})
    seconds: dict[float, list[float]] = {w: [] for w in settings}
    for _ in range(2):
        for w in settings:
            t0 = time.perf_counter()
            for i in range(len(clips)):
                cond = {"ecg": clips.ecg[i:i + 1], "ef": clips.ef[i:i + 1], "heart_rate": clips.heart_rate[i:i + 1]}
                sample_videos(model, cond, 1, guidance_scale=DEFAULT_GUIDANCE, ef_guidance=w,
                              generator=torch.Generator().manual_seed(i))
            seconds[w].append((time.perf_counter() - t0) / len(clips))
    result = {"model": args.model, "clips": len(clips), "threads": args.threads, "guidance_scale": DEFAULT_GUIDANCE,
              "seconds_per_video": {f"ef_guidance_{w:g}": sum(s) / len(s) for w, s in seconds.items()},
              "passes": {f"ef_guidance_{w:g}": s for w, s in seconds.items()}}
    with staged_files([out]) as stage:
        (stage / out.name).write_text(json.dumps(result, indent=1), encoding="utf-8")
    for w, s in seconds.items():
        print(f"EF guidance {w:g}: {sum(s) / len(s):.3f} s a video (batch 1, {args.threads} thread(s))")


if __name__ == "__main__":
    main()
