"""A toy generator that follows the protocol, a toy dataset, and a script entry point for the kill/resume test.

``ToyDenoiser.loss`` adds Gaussian noise and applies dropout, so an exact resume must restore the RNG states, and it
records the ``index`` field of every batch it sees, so tests can check the data order.

Run as a script (``python toy.py OUT_DIR STEPS SLEEP_S``), it trains the toy model with :func:`toy_config` and
prints ``resumed_from=<checkpoint or None>``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from synth.training.config import TrainConfig


@dataclass
class ToyLossOutput:
    loss: Tensor
    logs: dict[str, float] = field(default_factory=dict)


class ToyDenoiser(nn.Module):
    """x (B, C, T) → conv net → reconstruction of x from ``x + noise_std · ε`` (MSE, mean over the batch)."""

    def __init__(self, channels: int = 4, hidden: int = 16, *, noise_std: float = 0.3, dropout: float = 0.1,
                 sleep_s: float = 0.0):
        super().__init__()
        self.noise_std, self.sleep_s = noise_std, sleep_s
        self.net = nn.Sequential(nn.Conv1d(channels, hidden, 5, padding=2), nn.SiLU(), nn.Dropout(dropout),
                                 nn.Conv1d(hidden, channels, 5, padding=2))
        self.seen: list[int] = []

    def loss(self, x: Tensor, cond: dict) -> ToyLossOutput:
        if self.training and "index" in cond:
            self.seen.extend(int(i) for i in cond["index"])
        if self.sleep_s:
            time.sleep(self.sleep_s)
        pred = self.net(x + self.noise_std * torch.randn_like(x))  # (B, C, T)
        loss = F.mse_loss(pred, x)
        return ToyLossOutput(loss, {"mse": float(loss.detach())})

    def sample(self, cond: dict, num_samples: int, *, steps: int | None = None, guidance_scale: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        with torch.no_grad():
            return self.net(torch.randn(num_samples, self.net[0].in_channels, 32, generator=generator))

    def config_dict(self) -> dict:
        return {"toy": "ToyDenoiser", "channels": self.net[0].in_channels}

    def frozen_submodels(self) -> dict:
        return {}


class ToySignals(Dataset):
    """``n`` sums of sines (C, T) with seeded random frequencies/phases; cond = ``{"index": i}``."""

    def __init__(self, n: int = 40, channels: int = 4, length: int = 32, seed: int = 0):
        rng = np.random.default_rng(seed)
        t = np.arange(length) / length
        freq = rng.uniform(1, 4, size=(n, channels, 1))
        phase = rng.uniform(0, 2 * np.pi, size=(n, channels, 1))
        self.x = np.sin(2 * np.pi * freq * t + phase).astype(np.float32)  # (n, C, T)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[np.ndarray, dict]:
        return self.x[i], {"index": i}


def toy_config(out_dir: Path | str, **overrides) -> TrainConfig:
    base = dict(out_dir=str(out_dir), steps=20, batch_size=8, grad_accum=1, lr=3e-3, warmup_steps=3,
                weight_decay=0.01, clip_norm=1.0, ema_decay=0.9, mixed_precision="no", log_every=1, val_every=0,
                sample_every=0, ckpt_every=5, keep_last=2, seed=0, num_workers=0, progress=False)
    base.update(overrides)
    return TrainConfig(**base)


def make_toy(seed: int = 0, **kwargs) -> ToyDenoiser:
    torch.manual_seed(seed)
    return ToyDenoiser(**kwargs)


if __name__ == "__main__":
    from synth.training import Trainer

    out, steps, sleep_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    trainer = Trainer(make_toy(sleep_s=sleep_s), toy_config(out, steps=steps), ToySignals())
    print(f"resumed_from={trainer.resumed_from}", flush=True)
    trainer.fit()
