"""Conformance of the echo parts on tiny configs: the core protocol, export → load, seeds."""

from __future__ import annotations

import torch

import synth.echo  # noqa: F401
from synth import registry
from synth.checkpoint import load_pretrained, save_pretrained
from synth.config import load_config
from synth.generative.base import build_model

from .conftest import CONFIGS


def _cond(batch: int) -> dict:
    return {"ecg": torch.randn(batch, 12, 200) * 0.3, "ef": torch.full((batch,), 55.0),
            "heart_rate": torch.full((batch,), 70.0)}


def test_parts_are_registered():
    names = registry.list_registered()
    assert "video_vq_autoencoder" in names["network"] and "video_vqvae" in names["backbone"]
    assert "echo_params" in names["adapter"] and "ecg" in names["adapter"]


def test_tokenizer_loss_gradients_and_round_trip_shapes():
    torch.manual_seed(0)
    model = build_model(load_config(CONFIGS / "video_vqvae_tiny.yaml"))
    x = torch.rand(3, 1, 8, 16, 16) * 2 - 1
    out = model.loss(x, {})
    out.loss.backward()
    assert torch.isfinite(out.loss) and "perplexity" in out.metrics
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and n.startswith("network.")]
    assert all(dict(model.named_parameters())[n].grad is not None for n in trainable)
    codes = model.encode(x)
    assert codes.shape == (3, 8) and codes.dtype == torch.long and int(codes.max()) < 16
    assert model.decode(codes).shape == (3, 1, 8, 16, 16)


def test_maskgit_over_video_codes_loss_and_sample(tiny_echo_model):
    model = tiny_echo_model
    x = torch.rand(4, 1, 8, 16, 16) * 2 - 1
    model.conditioning.p_drop = dict.fromkeys(model.conditioning.p_drop, 0.0)  # every adapter in the graph
    out = model.loss(x, _cond(4))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    grads = [p.grad is not None for n, p in model.named_parameters() if p.requires_grad]
    assert all(grads)
    video = model.sample(_cond(1), 2, steps=3, generator=torch.Generator().manual_seed(0))
    assert video.shape == (2, 1, 8, 16, 16) and video.dtype == torch.float32
    assert float(video.abs().max()) <= 1.0
    # EF and heart rate alone (no ECG), the EchoNet-Dynamic recipe, and guidance.
    video = model.sample({"ef": torch.tensor([40.0]), "heart_rate": torch.tensor([80.0])}, 1, steps=2,
                         guidance_scale=2.0, generator=torch.Generator().manual_seed(0))
    assert video.shape == (1, 1, 8, 16, 16)


def test_export_load_same_output_and_same_seed(tiny_echo_model, tmp_path):
    model = tiny_echo_model.eval()
    save_pretrained(model, tmp_path / "m")
    loaded = load_pretrained(tmp_path / "m")
    cond = _cond(1)
    a = model.sample(cond, 2, steps=3, generator=torch.Generator().manual_seed(7))
    b = loaded.sample(cond, 2, steps=3, generator=torch.Generator().manual_seed(7))
    c = loaded.sample(cond, 2, steps=3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert (tmp_path / "m" / "autoencoder" / "model.safetensors").is_file()
    assert a.shape == c.shape
