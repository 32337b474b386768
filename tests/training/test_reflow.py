"""Reflow: a teacher's cohort read back as (noise, sample) couplings, the coupled flow loss, training a student on
them, and the guidance a distilled student declares."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from synth.checkpoint import load_pretrained, save_pretrained
from synth.cli import main
from synth.config import model_config_from_dict
from synth.data.leads import LEADS_8
from synth.data.sample import sample_ptbxl_root
from synth.generative import build_model
from synth.generative.flow import GuidanceError
from synth.training.config import load_train_config
from synth.training.tasks import ReflowPairs
from synth.training.trainer import TrainingError, train_from_config

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "configs" / "cohort" / "default.yaml"
CLASSES = ["NORM", "MI", "STTC", "CD", "HYP", "SR", "AFIB"]


def teacher_config(p_drop: float = 0.2, **process) -> dict:
    return {
        "backbone": "flow",
        "signal": {"channels": 8, "length": 64, "fs_hz": 100.0, "scale_mv": 0.5},
        "network": {"name": "dit1d", "patch_size": 8, "hidden_dim": 32, "depth": 1, "num_heads": 2},
        "conditioning": {"dim": 32, "adapters": {
            "labels": {"name": "labels", "num_labels": len(CLASSES), "classes": CLASSES, "p_drop": p_drop},
            "demographics": {"name": "demographics", "num_frequencies": 4, "p_drop": p_drop}}},
        "process": {"time_sampling": "uniform", "sampler": "euler", "default_steps": 2, **process},
    }


def build(cfg: dict, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(model_config_from_dict(copy.deepcopy(cfg)))
    with torch.no_grad():  # off the zero-initialised heads, so outputs depend on the inputs
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def teacher_and_cohorts(tmp_path_factory):
    root = tmp_path_factory.mktemp("reflow")
    save_pretrained(build(teacher_config()), root / "teacher")
    folders = {}
    for name, seed, extra in (("train", 1, []), ("text", 2, ["labels.given=false", "age.source=none"]),
                              ("val", 3, [])):
        out = root / name
        assert main(["cohort", str(SPEC), f"model={root / 'teacher'}", "size=6", "shard_size=4", "batch_size=4",
                     "steps=2", "guidance_scale=2", f"seed={seed}", f"data={sample_ptbxl_root()}", "cache_dir=null",
                     *extra, "--out", str(out), "--quiet"]) == 0
        folders[name] = out
    return root, folders


def test_a_pair_is_the_noise_the_teacher_drew_its_sample_from(teacher_and_cohorts):
    root, folders = teacher_and_cohorts
    teacher = load_pretrained(root / "teacher")
    pairs = ReflowPairs([folders["train"], folders["text"]], CLASSES, LEADS_8, teacher.process_shape)
    assert len(pairs) == 12 and pairs.sample_shape == (8, 64)
    for index in (0, 5, 7):
        x, cond = pairs[index]
        noise = cond.pop("noise")
        assert x.shape == (8, 64) and noise.shape == (8, 64)
        batch = {k: torch.as_tensor(np.asarray(v))[None] for k, v in cond.items() if k != "report"}
        # The teacher again, from the pair's noise and conditions: its sample is the cohort's record (int16 µV).
        from synth.generative.flow import euler

        with teacher.eval_mode():
            c = teacher.encode_condition(batch, 1, train=False)
            u = teacher.conditioning.unconditional(1)
            x1 = euler(lambda z, t, c=c, u=u: teacher.guided_network(z, t, c, u, 2.0), torch.from_numpy(noise)[None],
                       teacher.time_grid(2))
        np.testing.assert_allclose(teacher.to_signal(x1)[0].numpy(), x, atol=6e-4)
    # A cohort that gave the teacher no labels and no age: both absent in its pairs, not "all negative" / 0.
    _, cond = pairs[8]
    assert np.isnan(cond["labels"]).all() and np.isnan(cond["age"])
    _, cond = pairs[0]
    assert not np.isnan(cond["labels"]).any() and np.isfinite(cond["age"])
    read = ReflowPairs([folders["train"]], CLASSES, LEADS_8, teacher.process_shape, keys=teacher.conditioning.keys)
    assert set(read[0][1]) == {"labels", "age", "sex", "heart_rate", "noise"}


def test_the_coupled_loss_regresses_the_straight_line_between_noise_and_sample():
    model = build(teacher_config(p_drop=0.0))
    x = torch.randn(3, 8, 64)
    noise = torch.randn(3, 8, 64)
    model.sample_time = lambda batch: torch.full((batch,), 0.3)
    out = model.loss(x, {"noise": noise})
    x1 = x / 0.5
    with torch.no_grad():
        c = model.encode_condition({}, 3, train=False)
        pred = model.call_network(0.3 * x1 + 0.7 * noise, torch.full((3,), 0.3), c)
    assert float(out.loss.detach()) == pytest.approx(float(((pred - (x1 - noise)) ** 2).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="noise"):
        model.loss(x, {"noise": noise[:, :4]})


def write_student_yaml(root: Path, folders: dict, p_drop: float) -> Path:
    model_yaml = root / f"student_{p_drop}.yaml"
    model_yaml.write_text(yaml.safe_dump(teacher_config(p_drop=p_drop, distilled_guidance=2.0)))
    train_yaml = root / f"train_{p_drop}.yaml"
    train_yaml.write_text(yaml.safe_dump({
        "model": str(model_yaml), "init_from": str(root / "teacher"), "out_dir": str(root / f"run_{p_drop}"),
        "data": {"kind": "reflow", "cohorts": [str(folders["train"]), str(folders["text"])],
                 "val_cohorts": [str(folders["val"])]},
        "steps": 6, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1, "val_every": 3, "val_batches": 1,
        "sample_every": 0, "ckpt_every": 3, "progress": False}))
    return train_yaml


def test_a_student_trains_on_the_pairs_and_samples_at_guidance_one_only(teacher_and_cohorts):
    root, folders = teacher_and_cohorts
    export = train_from_config(write_student_yaml(root, folders, 0.0))
    student = load_pretrained(export)
    assert student.process.distilled_guidance == 2.0
    x = student.sample({"labels": torch.zeros(1, len(CLASSES))}, 2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 8, 64) and torch.isfinite(x).all()
    with pytest.raises(GuidanceError, match="distilled"):
        student.sample({}, 1, guidance_scale=2.0)
    with pytest.raises(TrainingError, match="p_drop"):
        train_from_config(write_student_yaml(root, folders, 0.2))


def test_reflow_data_config_needs_separate_train_and_validation_cohorts(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text(yaml.safe_dump({"model": "m.yaml", "data": {"kind": "reflow", "cohorts": ["a"],
                                                               "val_cohorts": ["a"]}}))
    with pytest.raises(Exception, match="apart"):
        load_train_config(cfg)
    cfg.write_text(yaml.safe_dump({"model": "m.yaml", "data": {"kind": "ptbxl", "cohorts": ["a"]}}))
    with pytest.raises(Exception, match="reflow only"):
        load_train_config(cfg)


def test_the_command_line_samples_a_distilled_model_at_guidance_one_and_refuses_more(tmp_path, capsys):
    save_pretrained(build(teacher_config(p_drop=0.0, distilled_guidance=2.0)), tmp_path / "student")
    code = main(["sample", str(tmp_path / "student"), "--out", str(tmp_path / "bad"), "--n", "1",
                 "--guidance-scale", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "distilled" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
    assert main(["sample", str(tmp_path / "student"), "--out", str(tmp_path / "ok"), "--n", "2"]) == 0
    import csv

    with open(tmp_path / "ok" / "metadata.csv", newline="") as fh:
        assert {r["guidance_scale"] for r in csv.DictReader(fh)} == {"1.0"}


def test_generate_samples_at_the_guidance_chosen_on_fold_9_unless_told(use_tiny_checkpoints, tmp_path):
    import csv

    for extra, expected in (([], "2.0"), (["--guidance-scale", "1"], "1.0")):
        out = tmp_path / f"g{len(extra)}"
        assert main(["generate", "--labels", "MI", "--n", "1", "--steps", "2", "--out", str(out), *extra]) == 0
        with open(out / "metadata.csv", newline="") as fh:
            assert [r["guidance_scale"] for r in csv.DictReader(fh)] == [expected]
