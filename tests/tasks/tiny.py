"""Tiny task models honouring the shipped checkpoints' contract (keys, channels, rate), exported with
``save_pretrained``: fast on CPU, untrained, for testing behaviour rather than quality."""

from __future__ import annotations

from pathlib import Path

import torch

from synth.checkpoint import save_pretrained
from synth.config import load_config, model_config_from_dict, model_config_to_dict
from synth.generative import build_model

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = REPO_ROOT / "configs" / "model"
ECHO_CONFIGS = CONFIGS.parent / "echo"


def _dit(channels: int, length: int, fs_hz: float, adapters: dict) -> dict:
    return {
        "backbone": "flow",
        "signal": {"channels": channels, "length": length, "fs_hz": fs_hz, "scale_mv": 0.5},
        "network": {"name": "dit1d", "patch_size": 8, "hidden_dim": 32, "depth": 1, "num_heads": 2},
        "conditioning": {"dim": 32, "adapters": adapters},
        "process": {"time_sampling": "logit_normal", "sampler": "euler", "default_steps": 2},
    }


def tiny_configs() -> dict[str, dict]:
    report = model_config_to_dict(load_config(CONFIGS / "diffusion_unet_tiny.yaml"))
    report["process"]["default_steps"] = 2
    return {
        "report2ecg": report,
        "reconstruct": _dit(12, 128, 100.0, {"leads": {"name": "leads", "patch_size": 32, "as_channels": True}}),
        "ppg2ecg": _dit(1, 128, 125.0, {"ppg": {"name": "ppg", "hidden_channels": 8, "downsample": 8}}),
        "upsample500": tiny_upsampler(),
    }


def tiny_upsampler() -> dict:
    """A 100 → 500 Hz upsampler with the shipped one's contract: 12-lead detail at 500 Hz, given the upsampled leads
    (on their own scale) as channels."""
    cfg = _dit(12, 160, 500.0, {"leads": {"name": "leads", "patch_size": 32, "as_channels": True, "scale_mv": 0.5,
                                          "p_drop": 0.0}})
    cfg["signal"]["scale_mv"] = 0.05
    return cfg


def save_tiny_checkpoints(root: Path, names=("report2ecg", "reconstruct", "ppg2ecg", "upsample500", "echo_maskgit")
                          ) -> Path:
    """Export the tiny models into ``root/<name>`` (the layout of ``checkpoints/``) and return ``root``; the echo
    model is the tests' tiny ECG → echo MaskGIT over an untrained tiny video tokenizer."""
    for name, cfg in tiny_configs().items():
        if name in names:
            torch.manual_seed(0)
            model = build_model(model_config_from_dict(cfg))
            with torch.no_grad():  # off the zero-initialised heads, so outputs depend on the inputs
                for p in model.parameters():
                    p.add_(0.05 * torch.randn_like(p))
            save_pretrained(model, root / name)
    if "echo_maskgit" in names:
        import synth.echo  # noqa: F401  (registers the video tokenizer and the echo adapters)

        torch.manual_seed(0)
        save_pretrained(build_model(load_config(ECHO_CONFIGS / "maskgit_echo_tiny.yaml")), root / "echo_maskgit")
    return root
