"""Conformance over every registered backbone, on the tiny presets in configs/model/*_tiny.yaml."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from synth import registry
from synth.checkpoint import load_pretrained, save_pretrained
from synth.config import load_config

from .conftest import TINY_PRESETS, make_cond, make_model, make_signal, perturb

IDS = [p.stem for p in TINY_PRESETS]


def test_every_registered_backbone_network_and_sampler_has_a_tiny_preset():
    cfgs = [load_config(p) for p in TINY_PRESETS]
    registered = registry.list_registered()
    assert {c.backbone for c in cfgs} == set(registered["backbone"])
    assert {c.network.name for c in cfgs} == set(registered["network"])
    assert {a.name for c in cfgs for a in c.conditioning.adapters.values()} == set(registered["adapter"])


@pytest.mark.parametrize("path", TINY_PRESETS, ids=IDS)
def test_loss_is_finite_and_reaches_every_trainable_parameter(path):
    model = make_model(path)
    perturb(model)
    model.train()
    torch.manual_seed(3)
    out = model.loss(make_signal(model, 8), make_cond(model, 8))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.metrics and all(isinstance(v, float) for v in out.metrics.values())
    out.loss.backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    no_grad = [n for n, p in trainable.items() if p.grad is None or not torch.any(p.grad != 0)]
    assert not no_grad, f"no gradient reaches {no_grad}"
    assert all(torch.isfinite(p.grad).all() for p in trainable.values())


@pytest.mark.parametrize("path", TINY_PRESETS, ids=IDS)
def test_sample_shape_dtype_and_seed(path):
    model = make_model(path)
    cond = make_cond(model, 3)
    a = model.sample(cond, 3, guidance_scale=2.0, generator=torch.Generator().manual_seed(0))
    b = model.sample(cond, 3, guidance_scale=2.0, generator=torch.Generator().manual_seed(0))
    c = model.sample(cond, 3, guidance_scale=2.0, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, model.cfg.signal.channels, model.cfg.signal.length)
    assert a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert model.training  # sample() restores the mode it found


@pytest.mark.parametrize("path", TINY_PRESETS, ids=IDS)
def test_batch_of_one_condition_is_broadcast(path):
    model = make_model(path)
    one = make_cond(model, 1)
    many = {k: (v * 3 if isinstance(v, list) else v.expand(3, *v.shape[1:])) for k, v in one.items()}
    a = model.sample(one, 3, generator=torch.Generator().manual_seed(0))
    b = model.sample(many, 3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("path", TINY_PRESETS, ids=IDS)
def test_export_then_load_gives_identical_outputs(path, tmp_path):
    model = make_model(path)
    perturb(model)
    folder = save_pretrained(model, tmp_path / "export")
    assert sorted(f.name for f in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind
    assert json.loads((folder / "config.json").read_text())["model"]["backbone"] == model.cfg.backbone
    keys = set(load_file(folder / "model.safetensors"))
    assert keys == set(model.state_dict()) and not any(k.startswith(("module.", "_orig_mod.")) for k in keys)

    loaded = load_pretrained(folder)
    assert type(loaded) is type(model) and loaded.cfg == model.cfg
    cond = make_cond(model, 2)
    a = model.sample(cond, 2, guidance_scale=1.5, generator=torch.Generator().manual_seed(5))
    b = loaded.sample(cond, 2, guidance_scale=1.5, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    model.eval()
    x = make_signal(model, 2)
    torch.manual_seed(9)
    la = model.loss(x, cond).loss
    torch.manual_seed(9)
    lb = loaded.loss(x, cond).loss
    assert torch.equal(la, lb)


@pytest.mark.parametrize("path", TINY_PRESETS, ids=IDS)
def test_guidance_scale_one_is_the_conditional_output(path):
    model = make_model(path)
    perturb(model)
    cond = make_cond(model, 2)
    plain = model.sample(cond, 2, guidance_scale=1.0, generator=torch.Generator().manual_seed(0))
    if (
        not model.conditioning.num_modalities
    ):  # unconditional: both branches are the same, guidance is a no-op
        guided = model.sample(cond, 2, guidance_scale=3.0, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(plain, guided, atol=1e-5)
        return
    with torch.no_grad():  # the unconditional branch must not matter at scale 1 ...
        model.conditioning.null_tokens.add_(torch.randn_like(model.conditioning.null_tokens))
    again = model.sample(cond, 2, guidance_scale=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(plain, again)
    guided = model.sample(cond, 2, guidance_scale=3.0, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(plain, guided)  # ... and must matter at scale 3
