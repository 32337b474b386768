"""Conformance over every registered backbone, on the tiny presets in configs/model/*_tiny.yaml.

Generators (``generates = True``) are held to the sampling rules; autoencoders and tokenizers to
``encode``/``decode``; frozen sub-models (the autoencoder under a latent model) must stay frozen and travel
as sub-folders of the export.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from synth import registry
from synth.checkpoint import load_pretrained, save_pretrained
from synth.config import ConfigError, load_config, model_config_from_dict, model_config_to_dict
from synth.generative.base import NotAGeneratorError
from synth.generative.guidance import GuidanceError

from .conftest import (
    AUTOENCODER_PRESETS,
    GENERATOR_PRESETS,
    TINY_PRESETS,
    make_cond,
    make_model,
    make_signal,
    perturb,
)

IDS = [p.stem for p in TINY_PRESETS]
GEN_IDS = [p.stem for p in GENERATOR_PRESETS]
AE_IDS = [p.stem for p in AUTOENCODER_PRESETS]


def _signal_parts(kind: str) -> set[str]:
    """Registered names of ``kind`` outside ``synth.echo``: the video parts take (B, C, F, H, W) clips, not the
    (B, C, T) signals of these presets, and have their own conformance tests in tests/echo."""
    return {n for n in registry.list_registered()[kind]
            if not registry.get(kind, n).__module__.startswith("synth.echo")}


def test_every_registered_backbone_network_and_sampler_has_a_tiny_preset():
    cfgs = [load_config(p) for p in TINY_PRESETS]
    assert {c.backbone for c in cfgs} == _signal_parts("backbone")
    assert {c.network.name for c in cfgs} == _signal_parts("network")
    assert {a.name for c in cfgs for a in c.conditioning.adapters.values()} == _signal_parts("adapter")


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
    # Frozen parts: no gradient, and eval mode kept while the model trains.
    for name, sub in model.frozen_submodels().items():
        assert not sub.training, f"{name} left eval mode"
        assert all(not p.requires_grad and p.grad is None for p in sub.parameters()), f"{name} is not frozen"
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    no_grad = [n for n, p in trainable.items() if p.grad is None or not torch.any(p.grad != 0)]
    assert not no_grad, f"no gradient reaches {no_grad}"
    assert all(torch.isfinite(p.grad).all() for p in trainable.values())


@pytest.mark.parametrize("path", GENERATOR_PRESETS, ids=GEN_IDS)
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


@pytest.mark.parametrize("path", GENERATOR_PRESETS, ids=GEN_IDS)
def test_modality_guidance(path):
    """A per-modality guidance term changes the sample (weight 0 changes nothing); a modality the model lacks, or
    one the condition does not give, is refused before sampling."""
    model = make_model(path)
    if not model.conditioning.adapters:
        pytest.skip("unconditional preset: no modality to guide")
    perturb(model)
    cond = make_cond(model, 3)
    name, adapter = next(iter(model.conditioning.adapters.items()))

    def draw(c, **kw):
        return model.sample(c, 3, guidance_scale=1.5, generator=torch.Generator().manual_seed(0), **kw)

    plain = draw(cond)
    assert torch.equal(draw(cond, modality_guidance={name: 0.0}), plain)
    more = draw(cond, modality_guidance={name: 2.0})
    assert torch.isfinite(more).all() and not torch.allclose(more, plain)
    with pytest.raises(GuidanceError, match="no modality 'nope'"):
        draw(cond, modality_guidance={"nope": 1.0})
    without = {k: v for k, v in cond.items() if k not in adapter.keys}
    with pytest.raises(GuidanceError, match="guided but not given"):
        draw(without, modality_guidance={name: 1.0})


@pytest.mark.parametrize("path", GENERATOR_PRESETS, ids=GEN_IDS)
def test_config_guidance_is_the_default_modality_guidance(path):
    """``conditioning.guidance`` in the config is what ``sample`` guides by default, for the modalities given;
    ``modality_guidance={}`` turns it off, and it survives the config round trip (config.json)."""
    cfg = load_config(path)
    if not cfg.conditioning.adapters:
        pytest.skip("unconditional preset: no modality to guide")
    name = next(iter(cfg.conditioning.adapters))
    cfg.conditioning.guidance = {name: 2.0}
    torch.manual_seed(0)
    model = registry.get("backbone", cfg.backbone).from_config(cfg)
    perturb(model)
    cond = make_cond(model, 3)
    keys = model.conditioning.adapters[name].keys

    def draw(c, **kw):
        return model.sample(c, 3, guidance_scale=1.5, generator=torch.Generator().manual_seed(0), **kw)

    default = draw(cond)
    assert torch.equal(default, draw(cond, modality_guidance={name: 2.0}))
    assert not torch.allclose(default, draw(cond, modality_guidance={}))
    without = {k: v for k, v in cond.items() if k not in keys}
    assert torch.equal(draw(without), draw(without, modality_guidance={}))  # not given: nothing to guide
    assert model_config_from_dict(model_config_to_dict(cfg)).conditioning.guidance == {name: 2.0}
    bad = model_config_to_dict(cfg)
    bad["conditioning"]["guidance"] = {"nope": 1.0}
    with pytest.raises(ConfigError, match="no adapter 'nope'"):
        model_config_from_dict(bad)


@pytest.mark.parametrize("path", GENERATOR_PRESETS, ids=GEN_IDS)
def test_batch_of_one_condition_is_broadcast(path):
    model = make_model(path)
    one = make_cond(model, 1)
    many = {k: (v * 3 if isinstance(v, list) else v.expand(3, *v.shape[1:])) for k, v in one.items()}
    a = model.sample(one, 3, generator=torch.Generator().manual_seed(0))
    b = model.sample(many, 3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(a, b, atol=1e-6)


def _outputs(model, x, cond):
    """What must survive an export: samples for a generator, the encode → decode round trip for a tokenizer."""
    if model.generates:
        return model.sample(cond, 2, guidance_scale=1.5, generator=torch.Generator().manual_seed(5))
    return model.decode(model.encode(x))


@pytest.mark.parametrize("path", TINY_PRESETS, ids=IDS)
def test_export_then_load_gives_identical_outputs(path, tmp_path):
    model = make_model(path)
    perturb(model)
    subs = model.frozen_submodels()
    folder = save_pretrained(model, tmp_path / "export")
    assert sorted(f.name for f in folder.iterdir()) == sorted(["config.json", "model.safetensors", *subs])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind
    meta = json.loads((folder / "config.json").read_text())
    assert meta["model"]["backbone"] == model.cfg.backbone and meta["submodels"] == sorted(subs)
    keys = set(load_file(folder / "model.safetensors"))
    own = {k for k in model.state_dict() if not k.startswith(tuple(f"{n}." for n in subs))}
    assert keys == own and not any(k.startswith(("module.", "_orig_mod.")) for k in keys)
    for name, sub in subs.items():  # each frozen part is a complete export of its own
        assert set(load_file(folder / name / "model.safetensors")) == set(sub.state_dict())

    loaded = load_pretrained(folder)
    assert type(loaded) is type(model) and loaded.cfg == model.cfg
    assert sorted(loaded.frozen_submodels()) == sorted(subs)
    for name, sub in loaded.frozen_submodels().items():
        assert not any(p.requires_grad for p in sub.parameters())
        original = subs[name].state_dict()
        assert all(torch.equal(t, original[k]) for k, t in sub.state_dict().items())
    cond = make_cond(model, 2)
    x = make_signal(model, 2)
    assert torch.equal(_outputs(model, x, cond), _outputs(loaded, x, cond))
    model.eval()
    torch.manual_seed(9)
    la = model.loss(x, cond).loss
    torch.manual_seed(9)
    lb = loaded.loss(x, cond).loss
    assert torch.equal(la, lb)


@pytest.mark.parametrize("path", AUTOENCODER_PRESETS, ids=AE_IDS)
def test_autoencoder_encode_decode_shapes(path):
    model = make_model(path)
    perturb(model)
    x = make_signal(model, 3)
    channels, length = model.sample_shape
    z = model.encode(x)
    assert z.shape == (3, *model.latent_shape)
    if model.generates:  # a VAE: continuous latents at T / 2^levels
        assert z.dtype == torch.float32 and z.shape[-1] == model.network.latent_length(length)
    else:  # a tokenizer: one code per latent step
        assert z.dtype == torch.long and 0 <= int(z.min()) and int(z.max()) < model.codebook_size
    x_hat = model.decode(z)
    assert (
        x_hat.shape == (3, channels, length) and x_hat.dtype == torch.float32 and torch.isfinite(x_hat).all()
    )
    assert torch.equal(model.encode(x), z)  # deterministic: no posterior sampling, no codebook update


@pytest.mark.parametrize(
    "path",
    [p for p in TINY_PRESETS if p not in GENERATOR_PRESETS],
    ids=[p.stem for p in TINY_PRESETS if p not in GENERATOR_PRESETS],
)
def test_a_tokenizer_refuses_to_sample_and_reports_code_usage(path):
    model = make_model(path)
    with pytest.raises(NotAGeneratorError, match="maskgit"):
        model.sample({}, 2, generator=torch.Generator().manual_seed(0))
    metrics = model.loss(make_signal(model, 4), {}).metrics
    assert 1.0 <= metrics["perplexity"] <= model.codebook_size
    assert 0.0 < metrics["codebook_usage"] <= 1.0


@pytest.mark.parametrize("path", GENERATOR_PRESETS, ids=GEN_IDS)
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
