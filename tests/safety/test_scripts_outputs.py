"""The scripts beside the library (benchmarks/, tools/, evaluation/) keep synth's output rules: they delete or
replace only what they wrote, refuse anything else before any slow work with one line naming the path, and land
their outputs by renames.

Each test runs the real ``main`` with the slow parts (cohorts, training, scoring, sampling) replaced by stubs that
fail the test if they are reached where they must not be; nothing here trains or samples.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from synth.outputs import MARKER, staged_folder

from .scripts import no_work, run, tree
from .scripts import script as _script


def script(relpath: str):
    return _script(relpath, "script_")


# -- benchmarks/cohort_scale.py --work -----------------------------------------------------------------------------
def fake_cohort_run(argv, processes=1):
    """``_run`` without synth cohort: the output folder with one file."""
    out = Path(argv[argv.index("--out") + 1])
    out.mkdir(parents=True)
    (out / "manifest.csv").write_text("sha256\n")
    return {"seconds": 1.0, "peak_rss_mb": 1.0}


def made_with_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "code.py").write_text("mine")
    return repo


@pytest.mark.parametrize("kind", ["user folder", "other synth output", "repository"])
def test_scripts_cohort_scale_never_removes_a_work_folder_it_did_not_make(tmp_path, monkeypatch, capsys, kind):
    module = script("benchmarks/cohort_scale.py")
    monkeypatch.setattr(module, "_run", no_work)
    if kind == "user folder":
        work = tmp_path / "data"
        work.mkdir()
        (work / "precious.csv").write_text("mine")
        problem = "synth did not write it"
    elif kind == "other synth output":
        work = tmp_path / "generated"
        with staged_folder(work) as stage:
            (stage / "a.txt").write_text("x")
        problem = "not a scratch folder of benchmarks/cohort_scale.py"
    else:
        work = made_with_repo(tmp_path)
        problem = "repository root"
    before = tree(work)
    code, _, err = run(module, ["--work", work, "--out", tmp_path / "r.json"], monkeypatch, capsys)
    assert code == 2
    assert err.startswith("cohort_scale.py: error: ") and str(work) in err and problem in err
    assert tree(work) == before
    assert not (tmp_path / "r.json").exists()


def test_scripts_cohort_scale_replaces_its_own_scratch_folder(tmp_path, monkeypatch, capsys):
    module = script("benchmarks/cohort_scale.py")
    monkeypatch.setattr(module, "_run", fake_cohort_run)
    monkeypatch.setattr(module, "_throughput", lambda work, args: {"by_processes": {"1": {"records_per_s": 2.0}}})
    work, out = tmp_path / "scratch", tmp_path / "r.json"
    argv = ["--work", work, "--out", out, "--parts", "throughput"]
    for _ in range(2):  # the second run replaces what the first made
        code, _, err = run(module, argv, monkeypatch, capsys)
        assert code == 0, err
        assert json.loads((work / MARKER).read_text())["made_by"] == "benchmarks/cohort_scale.py"
        assert (work / "warm" / "manifest.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "scratch"]


# -- tools/device_train.py -------------------------------------------------------------------------------------------
def fake_bundle(folder: Path) -> Path:
    from tools.device_bundle import pack_signals

    folder.mkdir()
    split = {"labels": np.zeros((2, 3)), "age": np.zeros(2), "sex": np.zeros(2), "hr": np.zeros(2),
             "own": np.zeros(2, int), "english": np.zeros(2, int)}
    np.savez(folder / "meta.npz", **{f"{s}_{k}": v for s in ("train", "val") for k, v in split.items()})
    np.savez(folder / "texts.npz", texts=np.array(["sinus rhythm"]), embeddings=np.zeros((1, 4)))
    for s in ("train", "val"):
        (folder / f"{s}.xz").write_bytes(pack_signals(np.zeros((2, 8, 100)), 1.0))
    return folder


class Stop(Exception):
    """Where the stubbed training stops the run."""


def test_scripts_device_train_never_deletes_a_folder_it_did_not_make(tmp_path, monkeypatch, capsys):
    module = script("tools/device_train.py")
    seen = {}

    def trainer(model, cfg, train, val):
        seen["work"] = Path(cfg.out_dir)
        raise Stop

    adapter = SimpleNamespace(preload=lambda texts, embeddings: None)
    monkeypatch.setattr("synth.checkpoint.load_pretrained",
                        lambda path: SimpleNamespace(conditioning=SimpleNamespace(adapters={"report": adapter})))
    monkeypatch.setattr("synth.training.trainer.Trainer", trainer)
    out = tmp_path / "out"
    (out / "run").mkdir(parents=True)
    (out / "run" / "precious.txt").write_text("mine")  # $OUT/run was removed and remade
    with pytest.raises(Stop):
        run(module, ["--bundle", fake_bundle(tmp_path / "bundle"), "--device", "cpu", "--out", out],
            monkeypatch, capsys)
    assert tree(out) == {"run/precious.txt": b"mine"}
    assert not seen["work"].exists()  # its own scratch folder, gone with the run


def test_scripts_device_train_refuses_an_out_holding_its_outputs_before_loading(tmp_path, monkeypatch, capsys):
    module = script("tools/device_train.py")
    out = tmp_path / "out"
    (out / "model").mkdir(parents=True)
    (out / "model" / "config.json").write_text("{}")
    code, _, err = run(module, ["--bundle", tmp_path / "absent", "--device", "cpu", "--out", out], monkeypatch, capsys)
    assert code == 2
    assert err.startswith("device_train.py: error: ") and f"{out / 'model'}: already exists" in err
    assert tree(out) == {"model/config.json": b"{}"}


# -- tools/ship_checkpoint.py ----------------------------------------------------------------------------------------
def export(folder: Path, value: float, **files: str) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"value": value}))
    save_file({"w": torch.full((4,), value)}, str(folder / "model.safetensors"))
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(text)
    return folder


def test_scripts_ship_checkpoint_force_keeps_every_file_src_does_not_replace(tmp_path, monkeypatch, capsys):
    from safetensors.torch import load_file

    module = script("tools/ship_checkpoint.py")
    src = export(tmp_path / "run" / "model", 2.0, README__md="generated card")
    dst = export(tmp_path / "ck", 1.0, README__md="hand-written card", metrics__json='{"auroc": 0.9}',
                 selection__json='{"best_step": 3}', train_log__csv="step,loss\n", NOTES__md="why")
    before = tree(dst)
    code, out, err = run(module, [src, dst, "--force"], monkeypatch, capsys)
    assert code in (0, None), err
    after = tree(dst)
    assert sorted(after) == sorted(before)
    assert after["config.json"] == (src / "config.json").read_bytes()
    assert load_file(str(dst / "model.safetensors"))["w"].dtype.is_floating_point
    assert float(load_file(str(dst / "model.safetensors"))["w"][0]) == 2.0
    for name in ("README.md", "metrics.json", "selection.json", "train_log.csv", "NOTES.md"):
        assert after[name] == before[name], name
    assert "metrics.json" in out and "NOTES.md" in out  # named on the way
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "run"]  # swapped by renames, nothing left


def test_scripts_ship_checkpoint_refuses_a_src_that_is_not_an_export(tmp_path, monkeypatch, capsys):
    module = script("tools/ship_checkpoint.py")
    code, _, err = run(module, [tmp_path / "typo", tmp_path / "ck"], monkeypatch, capsys)
    assert code == 2
    assert err.startswith("ship_checkpoint.py: error: ") and "not a checkpoint export (no config.json)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# -- benchmarks/train_classifier.py --name ---------------------------------------------------------------------------
SCORE = {"macro_auroc": 0.9, "macro_auroc_ci": {"low": 0.8, "high": 0.95}, "per_class_auroc": {"NORM": 0.9}}


@pytest.fixture
def classifier_script(tmp_path, monkeypatch):
    """train_classifier.py in ``tmp_path`` with a trained run in runs/clf; training and scoring stubbed."""
    module = script("benchmarks/train_classifier.py")
    run_dir = tmp_path / "runs" / "clf"
    (run_dir / "best").mkdir(parents=True)
    (run_dir / "best" / "config.json").write_text(json.dumps({"model": {"kind": "ecg_classifier"}, "new": 1}))
    (run_dir / "best" / "model.safetensors").write_text("new weights")
    (run_dir / "selection.json").write_text(json.dumps({"best_step": 5, "best_val_macro_auroc": 0.9}))
    recipe = SimpleNamespace(data=SimpleNamespace(root="ptbxl", cache_dir=None))
    monkeypatch.setattr(module, "load_recipe", lambda config, overrides: (None, recipe, run_dir))
    monkeypatch.setattr(module, "train", no_work)
    monkeypatch.setattr(module, "evaluate", lambda ck, **kw: {"split": kw["split"], **SCORE})
    monkeypatch.chdir(tmp_path)
    return module


def classifier_export(folder: Path, **extra: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": {"kind": "ecg_classifier"}, "old": 1}))
    (folder / "model.safetensors").write_text("old weights")
    (folder / "metrics.json").write_text("{}")
    for name, text in extra.items():
        (folder / name.replace("__", ".")).write_text(text)
    return folder


def test_scripts_train_classifier_never_overwrites_another_checkpoint(classifier_script, tmp_path, monkeypatch,
                                                                      capsys):
    generator = tmp_path / "checkpoints" / "report2ecg"
    generator.mkdir(parents=True)
    (generator / "config.json").write_text('{"model": {"backbone": "flow"}}')
    (generator / "model.safetensors").write_text("generator weights")
    before = tree(generator)
    for extra in ([], ["--force"]):
        code, _, err = run(classifier_script, ["c.yaml", "--name", "report2ecg", "--skip-train", *extra],
                           monkeypatch, capsys)
        assert code == 2
        assert err.startswith("train_classifier.py: error: checkpoints/report2ecg: ")
        assert ("not a classifier export of this script" if extra else "already exists") in err
        assert tree(generator) == before
    assert sorted(p.name for p in generator.parent.iterdir()) == ["report2ecg"]


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", ""])
def test_scripts_train_classifier_name_is_a_plain_folder_name(classifier_script, tmp_path, monkeypatch, capsys,
                                                              name):
    code, _, err = run(classifier_script, ["c.yaml", "--name", name, "--skip-train"], monkeypatch, capsys)
    assert code == 2 and "--name" in err and "plain folder name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_scripts_train_classifier_force_replaces_its_own_export_keeping_the_card(classifier_script, tmp_path,
                                                                                  monkeypatch, capsys):
    target = classifier_export(tmp_path / "checkpoints" / "clf", README__md="hand-written card")
    code, out, err = run(classifier_script, ["c.yaml", "--name", "clf", "--skip-train", "--force"], monkeypatch,
                         capsys)
    assert code in (0, None), err
    after = tree(target)
    assert sorted(after) == ["README.md", "config.json", "metrics.json", "model.safetensors", "selection.json"]
    assert after["model.safetensors"] == b"new weights" and json.loads(after["config.json"])["new"] == 1
    assert after["README.md"] == b"hand-written card"
    assert json.loads(after["metrics.json"])["model"] == "clf"
    assert sorted(p.name for p in target.parent.iterdir()) == ["clf"]


def test_scripts_train_classifier_an_interrupted_export_leaves_no_mismatched_checkpoint(classifier_script, tmp_path,
                                                                                      monkeypatch, capsys):
    import shutil

    real_copy = shutil.copy2

    def killed_at_the_weights(src, dst, **kw):
        if Path(src).name == "model.safetensors":
            raise KeyboardInterrupt
        return real_copy(src, dst, **kw)

    monkeypatch.setattr(shutil, "copy2", killed_at_the_weights)
    with pytest.raises(KeyboardInterrupt):
        run(classifier_script, ["c.yaml", "--name", "clf", "--skip-train"], monkeypatch, capsys)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == []  # no config without its weights


# -- evaluation/classifier.py evaluate --out, benchmarks/samplers.py --out -----------------------------------------
def samplers_command(monkeypatch):
    """samplers.py with each sampler's process stubbed (it answers its JSON line at once)."""
    module = script("benchmarks/samplers.py")

    def one_sampler(cmd, **kw):
        label = cmd[cmd.index("--one") + 1]
        row = {"label": label, "steps": 8, "seconds": 1.0, "ecg_per_s": 64.0, "peak_mib": 10.0, "params": 1}
        return SimpleNamespace(stdout=json.dumps(row) + "\n", returncode=0)

    monkeypatch.setattr(module.subprocess, "run", one_sampler)
    return module


def json_command(which: str, monkeypatch):
    if which == "evaluate":
        module = script("evaluation/classifier.py")
        monkeypatch.setattr(module, "evaluate", lambda *a, **kw: {"split": kw["split"], **SCORE})
        return module, ["evaluate", "runs/clf/best"]
    return samplers_command(monkeypatch), ["--device", "cpu", "--n", "2"]


@pytest.mark.parametrize("which", ["evaluate", "samplers"])
def test_scripts_json_out_is_never_overwritten_without_force(tmp_path, monkeypatch, capsys, which):
    module, argv = json_command(which, monkeypatch)
    if which == "evaluate":
        monkeypatch.setattr(module, "evaluate", no_work)  # refused before the data and the model load
    else:
        monkeypatch.setattr(module.subprocess, "run", no_work)  # refused before any sampler runs
    out = tmp_path / "results.json"
    out.write_text("my notes")
    code, _, err = run(module, [*argv, "--out", out], monkeypatch, capsys)
    assert code == 2 and f"{out}: output already exists (choose another name or pass --force)" in err
    assert out.read_text() == "my notes"
    code, _, err = run(module, [*argv, "--out", out, "--force"], monkeypatch, capsys)
    assert code == 2 and f"{out}: --force will not replace it: synth did not write it" in err
    assert out.read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


@pytest.mark.parametrize("which", ["evaluate", "samplers"])
def test_scripts_json_out_force_replaces_its_own_result_by_a_rename(tmp_path, monkeypatch, capsys, which):
    import os

    module, argv = json_command(which, monkeypatch)
    out = tmp_path / "sub" / "results.json"
    code, _, err = run(module, [*argv, "--out", out], monkeypatch, capsys)
    assert code in (0, None), err
    first = json.loads(out.read_text())
    assert first["writer"].startswith("synth ")
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append(Path(b)), real_replace(a, b)))
    code, _, err = run(module, [*argv, "--out", out, "--force"], monkeypatch, capsys)
    assert code in (0, None), err
    assert renames == [out] and json.loads(out.read_text()) == first
    assert sorted(p.name for p in out.parent.iterdir()) == ["results.json"]
