"""Fixtures of the echo tests: tiny videos in the exact EchoNet-Dynamic layout, written by the tests themselves."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from synth.echo.video_io import write_avi

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "echo"


def moving_disc(frames: int = 10, size: int = 24, seed: int = 0) -> np.ndarray:
    """(F, H, W) uint8: a dark disc whose radius follows a cosine, on a noisy grey background."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size]
    out = np.empty((frames, size, size), dtype=np.uint8)
    for f in range(frames):
        r = size * (0.2 + 0.1 * np.cos(2 * np.pi * f / frames))
        img = np.where(np.hypot(xs - size / 2, ys - size / 2) < r, 20, 180) + rng.integers(0, 20, (size, size))
        out[f] = img.astype(np.uint8)
    return out


@pytest.fixture
def echonet_dir(tmp_path: Path) -> Path:
    """EchoNet-Dynamic layout: Videos/*.avi, FileList.csv (names without .avi), VolumeTracings.csv (with .avi)."""
    root = tmp_path / "EchoNet-Dynamic"
    (root / "Videos").mkdir(parents=True)
    rows = []
    for i, split in enumerate(["TRAIN", "TRAIN", "VAL", "TEST"]):
        name = f"0X{i:016X}"
        write_avi(moving_disc(seed=i), root / "Videos" / f"{name}.avi", fps=50.0)
        rows.append({"FileName": name, "EF": 55.0 + i, "ESV": 40.0, "EDV": 90.0, "FrameHeight": 24,
                     "FrameWidth": 24, "FPS": 50, "NumberOfFrames": 10, "Split": split})
    with open(root / "FileList.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(root / "VolumeTracings.csv", "w", newline="") as fh:
        fh.write("FileName,X1,Y1,X2,Y2,Frame\n")
        for r in rows:
            fh.write(f"{r['FileName']}.avi,12.0,4.0,12.0,20.0,0\n{r['FileName']}.avi,9.0,10.0,15.0,10.0,0\n")
    return root


@pytest.fixture
def tiny_echo_model():
    """An untrained tiny ECG → echo MaskGIT (8 frames of 16×16 over 8 codes)."""
    import synth.echo  # noqa: F401
    from synth.config import load_config
    from synth.generative.base import build_model

    torch.manual_seed(0)
    return build_model(load_config(CONFIGS / "maskgit_echo_tiny.yaml"))
