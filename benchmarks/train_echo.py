"""Train the echo models on the simulated dataset (tools/make_echo_dataset.py), one stage at a time, on CPU.

    python benchmarks/train_echo.py tokenizer --data runs/echo_sim            # configs/echo/train_video_vqvae.yaml
    python benchmarks/train_echo.py prior --data runs/echo_sim                # configs/echo/train_maskgit_echo.yaml
    python benchmarks/train_echo.py encoder --data runs/echo_sim --out checkpoints/echo_encoder

Tokenizer and prior go through the one trainer (synth.training, EMA, resume: run the same command again);
extra ``key=value`` arguments override the training YAML. The encoder (the EF regressor whose features score
FD) is an evaluation model with its own short loop in evaluation/echo.py. Clips are loaded once into
the clip cache under ``.cache/echo`` (shared with ``synth bench echo``) at the model resolution. Uses one thread (torch.set_num_threads(1)) unless --threads says more.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import synth.echo  # noqa: E402,F401  (registers the video tokenizer and the echo_params adapter)
from evaluation.echo import ECHO_CACHE, clip_cache_dir  # noqa: E402
from synth.echo.dataset import EchoTensors  # noqa: E402

CONFIGS = {"tokenizer": "configs/echo/train_video_vqvae.yaml", "prior": "configs/echo/train_maskgit_echo.yaml"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=("tokenizer", "prior", "encoder"))
    ap.add_argument("--data", default="runs/echo_sim")
    ap.add_argument("--config", help="training YAML (default per stage)")
    ap.add_argument("--out", default="checkpoints/echo_encoder", help="encoder export folder")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=1500, help="encoder steps")
    ap.add_argument("overrides", nargs="*", help="key=value overrides of the training YAML")
    args = ap.parse_intermixed_args()
    torch.set_num_threads(args.threads)
    cache = clip_cache_dir(ECHO_CACHE, args.data)  # shared with synth bench echo, never inside --data
    with_cond = args.stage != "tokenizer"
    train = EchoTensors(args.data, "TRAIN", size=args.size, progress=True, cache_dir=cache, with_cond=with_cond)
    val = EchoTensors(args.data, "VAL", size=args.size, progress=True, cache_dir=cache, with_cond=with_cond)
    start = time.time()
    if args.stage == "encoder":
        from evaluation.echo import train_echo_encoder

        train_echo_encoder(train, val, args.out, steps=args.steps)
    else:
        from synth.training.trainer import train_from_config

        out = train_from_config(args.config or CONFIGS[args.stage], args.overrides, datasets=(train, val),
                                on_sample=lambda model, step, out_dir: None)
        print(f"exported {out}")
    print(f"{args.stage}: {time.time() - start:.0f} s wall on {args.threads} thread(s)")


if __name__ == "__main__":
    main()
