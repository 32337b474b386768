"""Checkpoint files a user may hand synth: damaged training state, nested or escaping submodels, absurd configs."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from synth.checkpoint import CheckpointError, load_pretrained, load_training_state, save_training_state


def test_a_truncated_training_state_is_called_truncated_not_pickled(tmp_path):
    path = save_training_state({"step": 3, "weights": torch.zeros(1000)}, tmp_path / "training_state.pt")
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(CheckpointError, match="truncated or damaged") as exc:
        load_training_state(path)
    assert str(path) in str(exc.value) and "pickled" not in str(exc.value)


def test_submodels_nest_at_most_three_deep(tmp_path, tiny_checkpoints):
    folder = tmp_path / "ck"
    shutil.copytree(tiny_checkpoints / "report2ecg", folder)
    inner = folder
    for _ in range(4):  # each level lists the next as its submodel
        config = json.loads((inner / "config.json").read_text())
        config["submodels"] = ["sub"]
        (inner / "config.json").write_text(json.dumps(config))
        shutil.copytree(tiny_checkpoints / "report2ecg", inner / "sub")
        inner = inner / "sub"
    with pytest.raises(CheckpointError, match="nest deeper than 3"):
        load_pretrained(folder)


def test_a_linked_submodel_folder_is_refused(tmp_path, tiny_checkpoints):
    folder = tmp_path / "ck"
    shutil.copytree(tiny_checkpoints / "report2ecg", folder)
    (folder / "vae").symlink_to(tmp_path)  # a sub-folder that points outside the checkpoint
    config = json.loads((folder / "config.json").read_text())
    config["submodels"] = ["vae"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="submodel folder 'vae'"):
        load_pretrained(folder)


@pytest.mark.parametrize(("key", "value"), [("base_channels", 10**8), ("base_channels", -4), ("channel_mults", [0])])
def test_sizes_that_do_not_match_the_weights_fail_before_allocation(tmp_path, tiny_checkpoints, key, value):
    folder = tmp_path / "ck"
    shutil.copytree(tiny_checkpoints / "report2ecg", folder)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["network"][key] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as exc:  # CheckpointError or ConfigError, both one-line user errors
        load_pretrained(folder)  # 10**8 channels would ask for terabytes if built for real
    assert str(folder) in str(exc.value)


def test_a_training_checkpoint_with_nan_weights_is_refused_naming_its_file(tmp_path):
    from safetensors.torch import save_file

    from synth.training.state import load_tensors

    path = tmp_path / "model.safetensors"
    save_file({"w": torch.tensor([1.0, float("nan")]), "step": torch.tensor([3])}, str(path))
    with pytest.raises(CheckpointError, match="NaN or inf") as exc:
        load_tensors(path)
    assert str(path) in str(exc.value) and "resume from the one before" in str(exc.value)
