"""Guidance in a limited interval of flow time (``process.guidance_from`` / ``guidance_until``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from synth import registry
from synth.config import ConfigError, load_config, model_config_from_dict, model_config_to_dict

from .conftest import make_cond, perturb

PRESET = Path(__file__).resolve().parents[2] / "configs" / "model" / "flow_dit_tiny.yaml"


def _model(**process):
    cfg = load_config(PRESET)
    cfg.process = dataclasses.replace(cfg.process, sampler="euler", default_steps=4, **process)
    torch.manual_seed(0)
    model = registry.get("backbone", cfg.backbone).from_config(cfg)
    perturb(model)
    return model


def _draw(model, cond, guidance_scale=2.0):
    return model.sample(cond, 3, guidance_scale=guidance_scale, generator=torch.Generator().manual_seed(0))


def test_interval_selects_the_guided_steps():
    """[0, 1] is guidance throughout; an interval holding no grid time is the conditional model; one holding some
    of them is neither; steps outside the interval make one network call on the conditional batch only."""
    full = _model()
    cond = make_cond(full, 3)
    guided = _draw(full, cond)
    plain = _draw(full, cond, guidance_scale=1.0)
    assert not torch.allclose(guided, plain)

    state = full.state_dict()
    none = _model(guidance_from=0.9, guidance_until=0.95)  # grid 0, 0.25, 0.5, 0.75: none inside
    none.load_state_dict(state)
    assert torch.equal(_draw(none, cond), plain)

    part = _model(guidance_from=0.2, guidance_until=0.8)  # guides at 0.25, 0.5 and 0.75, not at 0
    part.load_state_dict(state)
    batches = []
    part.network.register_forward_hook(lambda m, args, out: batches.append(args[0].shape[0]))
    mid = _draw(part, cond)
    assert batches == [3, 6, 6, 6]
    assert not torch.allclose(mid, guided) and not torch.allclose(mid, plain)


@pytest.mark.parametrize(("lo", "hi"), [(0.6, 0.4), (-0.1, 0.5), (0.2, 1.5)])
def test_bad_interval_is_refused_when_the_config_is_read(lo, hi):
    data = model_config_to_dict(load_config(PRESET))
    data["process"].update(guidance_from=lo, guidance_until=hi)
    with pytest.raises((ConfigError, ValueError), match="guidance_from and guidance_until"):
        model_config_from_dict(data)


def test_interval_survives_the_config_round_trip():
    cfg = load_config(PRESET)
    cfg.process = dataclasses.replace(cfg.process, guidance_from=0.2, guidance_until=0.8)
    back = model_config_from_dict(model_config_to_dict(cfg)).process
    assert (back.guidance_from, back.guidance_until) == (0.2, 0.8)
