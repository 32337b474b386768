"""Does the ECG → echo prior use its conditions? Masked-token cross-entropy on VAL clips with the true conditions,
with the ECG and EF/HR of another clip, and with no condition at all (same masks, same seed).

    python benchmarks/echo_ecg_ablation.py --model checkpoints/echo_maskgit --data runs/echo_sim

A prior that ignores its ECG scores the same in all three rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.echo import ECHO_CACHE, clip_cache_dir  # noqa: E402
from synth.echo.dataset import EchoTensors  # noqa: E402
from synth.echo.generate import load_echo_model  # noqa: E402
from synth.generative.maskgit import mask_tokens  # noqa: E402


@torch.no_grad()
def masked_ce(model, ids: torch.Tensor, cond: dict, ratio: float, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    x_t, masked = mask_tokens(ids, torch.full((ids.shape[0],), ratio), model.mask_id, g)
    c = model.encode_condition(cond, ids.shape[0], train=False)
    logits = model.call_network(x_t, masked.float().mean(1), c)
    return float(F.cross_entropy(logits[masked], ids[masked]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="checkpoints/echo_maskgit")
    ap.add_argument("--data", default="runs/echo_sim")
    ap.add_argument("--n", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_echo_model(args.model)
    val = EchoTensors(args.data, "VAL", size=model.autoencoder.process.height, limit=args.n,
                      cache_dir=clip_cache_dir(ECHO_CACHE, args.data))
    ids = model.autoencoder.encode(val.video(slice(None)))
    true = {"ecg": val.ecg, "ef": val.ef, "heart_rate": val.heart_rate}
    other = {k: torch.roll(v, 1, 0) for k, v in true.items()}
    for ratio in (0.5, 0.9):
        row = {name: masked_ce(model, ids, cond, ratio, seed=0) for name, cond in
               (("true conditions", true), ("another clip's conditions", other), ("no condition", {}))}
        print(f"masked {ratio:.0%}: " + ", ".join(f"{k} CE {v:.4f}" for k, v in row.items()))


if __name__ == "__main__":
    main()
