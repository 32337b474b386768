"""Configs are validated data; the export format round-trips and refuses pickles; the registry lists its
parts."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from synth import registry
from synth.checkpoint import (
    CheckpointError,
    clean_key,
    load_pretrained,
    load_training_state,
    save_pretrained,
    save_training_state,
    unwrap,
)
from synth.config import ConfigError, load_config, model_config_from_dict, model_config_to_dict
from synth.errors import MissingFileError, OutputExistsError
from synth.generative import build_model

from .conftest import CONFIGS, TINY_PRESETS, make_model

ALL_PRESETS = sorted(CONFIGS.glob("*.yaml"))


class NotPlainData:
    """A custom class: pickling it into a checkpoint must make the file unloadable."""

    def __reduce__(self):
        return (print, ("this would run on load",))


def _yaml(tmp_path, text: str):
    path = tmp_path / "model.yaml"
    path.write_text(text)
    return path


BASE = """
backbone: flow
signal: {channels: 12, length: 64}
network: {name: dit1d, patch_size: 8, hidden_dim: 16, depth: 1, num_heads: 2}
conditioning: {dim: 16, adapters: {labels: {name: labels, num_labels: 3}}}
process: {sampler: euler}
"""


@pytest.mark.parametrize("path", ALL_PRESETS, ids=[p.stem for p in ALL_PRESETS])
def test_every_preset_validates_and_round_trips(path):
    cfg = load_config(path)
    assert model_config_from_dict(model_config_to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (
            "network: {name: dit1d, patch_size: 8, hidden_dim: 16, depth: 1, num_heads: 2, bogus: 1}",
            "network.bogus",
        ),
        ("process: {sampler: euler, time_sampling: gaussian}", "process.time_sampling"),
        ("process: {sampler: euler, steps_typo: 3}", "process.steps_typo"),
        ("signal: {channels: twelve}", "signal.channels"),
        (
            "conditioning: {dim: 16, adapters: {labels: {name: labels, num_lables: 3}}}",
            "conditioning.adapters.labels",
        ),
        ("conditioning: {dim: 16, adapters: {labels: {name: label}}}", "conditioning.adapters.labels.name"),
        ("network: {name: resnet}", "network.name"),
        ("colour: blue", "colour"),
    ],
)
def test_bad_config_names_the_file_and_the_key(tmp_path, edit, key):
    top = edit.split(":")[0]
    text = (
        "\n".join(line for line in BASE.splitlines() if not line.startswith(f"{top}:")) + "\n" + edit + "\n"
    )
    path = _yaml(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_range_checks_and_overrides(tmp_path):
    path = _yaml(tmp_path, BASE)
    with pytest.raises(ConfigError, match="p_drop"):
        load_config(path, {"conditioning.adapters.labels.p_drop": 1.5})
    cfg = load_config(path, {"process.time_sampling": "uniform"})
    assert cfg.process.time_sampling == "uniform"
    with pytest.raises(MissingFileError):
        load_config(tmp_path / "missing.yaml")


def test_a_sampler_of_another_process_is_refused(tmp_path):
    cfg = load_config(_yaml(tmp_path, BASE), {"process.sampler": "ddim"})
    with pytest.raises(registry.RegistryError, match="not a flow sampler"):
        build_model(cfg)


def test_registry_lists_every_part_and_names_the_alternatives():
    listed = registry.list_registered()
    assert listed == {
        "backbone": ["diffusion", "flow", "maskgit", "vae", "video_vqvae", "vqvae"],
        "network": ["conv1d_autoencoder", "dit1d", "token_transformer", "unet1d", "video_vq_autoencoder"],
        "adapter": ["beat_template", "demographics", "ecg", "echo_params", "echo_phase", "labels", "leads", "ppg",
                    "text"],
        "sampler": ["ddim", "ddpm", "dpmsolver++", "euler", "heun"],
    }
    with pytest.raises(registry.RegistryError, match="unet1d"):
        registry.get("network", "unet")


def test_training_state_with_a_pickled_object_is_refused(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"format_version": 1, "step": 3, "payload": NotPlainData()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_training_state(path)


def test_plain_training_state_round_trips(tmp_path):
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {
        "step": 7,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": torch.get_rng_state(),
    }
    path = save_training_state(state, tmp_path / "state.pt")
    loaded = load_training_state(path)
    assert loaded["step"] == 7 and loaded["format_version"] == 1
    assert torch.equal(loaded["model"]["weight"], model.weight)
    assert torch.equal(loaded["rng"], state["rng"])


def test_export_with_pickled_weights_is_refused(tmp_path):
    model = make_model(TINY_PRESETS[0])
    folder = save_pretrained(model, tmp_path / "export")
    (folder / "model.safetensors").write_bytes(pickle.dumps({"w": NotPlainData()}))
    with pytest.raises(CheckpointError, match="pickled checkpoints are refused"):
        load_pretrained(folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(MissingFileError, match="pickled weights are never loaded"):
        load_pretrained(folder)


def test_export_refuses_to_overwrite_and_strips_wrapper_prefixes(tmp_path):
    model = make_model(TINY_PRESETS[-1])

    class Compiled(nn.Module):  # what torch.compile returns: the model under ``_orig_mod``
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

    wrapped = Compiled(model)
    assert next(iter(wrapped.state_dict())).startswith("_orig_mod.")
    assert unwrap(wrapped) is model
    folder = save_pretrained(wrapped, tmp_path / "export")
    loaded = load_pretrained(folder)
    assert set(loaded.state_dict()) == set(model.state_dict())
    with pytest.raises(OutputExistsError):
        save_pretrained(model, folder)
    save_pretrained(model, folder, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    assert clean_key("module._orig_mod.network.head.weight") == "network.head.weight"


def test_weights_from_another_model_are_refused(tmp_path):
    a = save_pretrained(make_model(TINY_PRESETS[0]), tmp_path / "a")
    b = save_pretrained(make_model(TINY_PRESETS[1]), tmp_path / "b")
    (a / "model.safetensors").unlink()
    (b / "model.safetensors").rename(a / "model.safetensors")
    with pytest.raises(CheckpointError, match="do not match"):
        load_pretrained(a)


def test_save_pretrained_overwrites_only_an_export_and_writes_readable_files(tmp_path):
    """overwrite=True replaces a checkpoint export; any other folder is refused, untouched. Exports are not left
    private (mode 0700/0600) by the temporary folder they are assembled in."""
    import os
    import stat

    from synth.checkpoint import save_pretrained
    from synth.outputs import OutputRefusedError

    model = make_model(TINY_PRESETS[0])
    out = save_pretrained(model, tmp_path / "ck")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o777 & ~mask  # as mkdir makes folders, not mkdtemp's 0700
    assert stat.S_IMODE(os.stat(out / "model.safetensors").st_mode) == 0o666 & ~mask
    save_pretrained(model, out, overwrite=True)  # an export: replaced
    user = tmp_path / "user"
    user.mkdir()
    (user / "config.json").write_text("{}")
    (user / "thesis.tex").write_text("mine")
    with pytest.raises(OutputRefusedError, match="holds files an export does not"):
        save_pretrained(model, user, overwrite=True)
    assert (user / "thesis.tex").read_text() == "mine"
