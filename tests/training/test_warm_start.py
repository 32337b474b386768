"""Warm starts: ``init_from`` in a training config, and ``tools/warm_start.py`` mapping a 12-lead export onto the
8-lead architecture and a labels adapter onto a longer class list."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from synth.checkpoint import load_pretrained, save_pretrained
from synth.config import model_config_from_dict
from synth.data.leads import LEADS_8, LEADS_12, LIMB_FROM_I_II
from synth.generative import build_model
from synth.training.trainer import TrainingError, init_weights

REPO = Path(__file__).resolve().parents[2]


def _config(channels: int, classes: list[str]) -> dict:
    return {
        "backbone": "flow",
        "signal": {"channels": channels, "length": 64, "fs_hz": 100.0, "scale_mv": 0.5},
        "network": {"name": "unet1d", "base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1,
                    "attention_levels": [1], "num_heads": 2, "norm_groups": 4},
        "conditioning": {"dim": 16, "adapters": {"labels": {"name": "labels", "num_labels": len(classes),
                                                            "classes": classes}}},
        "process": {"default_steps": 2},
    }


def _warm_start_tool():
    spec = importlib.util.spec_from_file_location("warm_start", REPO / "tools" / "warm_start.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_twelve_lead_export_maps_exactly_onto_the_eight_lead_network():
    torch.manual_seed(0)
    old = build_model(model_config_from_dict(_config(12, ["NORM", "MI"])))
    with torch.no_grad():
        for p in old.parameters():
            p.add_(0.1 * torch.randn_like(p))  # off the zero-initialised head
    new = build_model(model_config_from_dict(_config(8, ["NORM", "AFIB", "MI"])))
    fresh_afib = new.conditioning.adapters["labels"].embedding[2].clone()
    with torch.no_grad():
        assert _warm_start_tool().convert(old, new) == []
    x8 = torch.randn(2, 8, 64)
    x12 = torch.cat([torch.einsum("lk,bkt->blt", torch.tensor(LIMB_FROM_I_II, dtype=torch.float32), x8[:, :2]),
                     x8[:, 2:]], dim=1)  # a record that obeys the lead laws
    t, tokens, mask = torch.full((2,), 0.6), torch.randn(2, 3, 16), torch.ones(2, 3, dtype=torch.bool)
    with torch.no_grad():
        y12 = old.network(x12, t, tokens, mask)
        y8 = new.network(x8, t, tokens, mask)
    torch.testing.assert_close(y8, y12[:, [LEADS_12.index(n) for n in LEADS_8]], atol=1e-5, rtol=1e-4)
    emb_old, emb_new = old.conditioning.adapters["labels"].embedding, new.conditioning.adapters["labels"].embedding
    torch.testing.assert_close(emb_new[[0, 1, 3]], emb_old[[0, 1, 2]])  # summary, NORM, MI follow their names
    torch.testing.assert_close(emb_new[2], fresh_afib)  # a class the old model did not know stays as initialised


def test_init_from_loads_matching_weights_and_refuses_another_architecture(tmp_path):
    torch.manual_seed(1)
    source = build_model(model_config_from_dict(_config(8, ["NORM"])))
    save_pretrained(source, tmp_path / "init")
    target = build_model(model_config_from_dict(_config(8, ["NORM"])))
    init_weights(target, tmp_path / "init")
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    other = build_model(model_config_from_dict(_config(12, ["NORM"])))
    with pytest.raises(TrainingError, match="do not fit this model") as exc:
        init_weights(other, tmp_path / "init")
    assert "warm_start.py" in str(exc.value) and str(tmp_path / "init") in str(exc.value)
    assert load_pretrained(tmp_path / "init").cfg.signal.channels == 8


def test_an_added_modality_starts_from_the_old_weights_with_its_channels_read_as_zero():
    """ppg → ppg + beat template: the stem's new input channel starts at zero and the old modality keeps its
    embedding and null token, so the converted network gives the old output whatever the template says."""
    def cfg(adapters: dict) -> dict:
        c = _config(1, ["NORM"])
        c["signal"]["length"] = 64
        c["conditioning"]["adapters"] = adapters
        return c

    ppg = {"ppg": {"name": "ppg", "hidden_channels": 8, "downsample": 8, "as_channels": True}}
    torch.manual_seed(2)
    old = build_model(model_config_from_dict(cfg(ppg)))
    with torch.no_grad():
        for p in old.parameters():
            p.add_(0.1 * torch.randn_like(p))
    new = build_model(model_config_from_dict(cfg({**ppg, "template": {"name": "beat_template"}})))
    with torch.no_grad():
        fresh = _warm_start_tool().convert(old, new)
    assert fresh == ["conditioning.adapters.template.token (new)"]
    assert torch.all(new.network.stem.weight[:, 2] == 0)
    torch.testing.assert_close(new.conditioning.null_tokens[:1], old.conditioning.null_tokens)
    old.eval(), new.eval()
    x, t, ppg_in = torch.randn(2, 1, 64), torch.full((2,), 0.4), torch.randn(2, 1, 64)
    with torch.no_grad():
        c_old = old.conditioning({"ppg": ppg_in}, 2)
        c_new = new.conditioning({"ppg": ppg_in, "template": torch.randn(2, 1, 64)}, 2)
        y_old = old.network(x, t, c_old.tokens, c_old.mask, c_old.channels)
        y_new = new.network(x, t, c_new.tokens[:, :-1], c_new.mask[:, :-1], c_new.channels)  # the old tokens
    torch.testing.assert_close(y_new, y_old, atol=1e-5, rtol=1e-4)
