"""More scripts beside the library (benchmarks/, tools/) keep synth's output rules: an existing output is replaced
only with ``--force`` and only when synth wrote it, never an output inside (or holding) what the run reads, checked
before any slow work, and a refusal is one line ``SCRIPT: error: PATH: problem`` with exit status 2, no traceback.

As in test_scripts_outputs.py, each test runs the real ``main`` with the slow parts (models, records, sampling,
training) replaced by stubs that fail the test when they are reached where they must not be.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from synth.outputs import MARKER, staged_folder

from .scripts import no_work, run, tree
from .scripts import script as _script


def script(relpath: str):
    return _script(relpath, "script2_")


def checkpoint(folder: Path) -> Path:
    """A folder that looks like a model export (what a benchmark reads)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model": {"backbone": "flow"}}')
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def refused(code, err: str, prog: str, *parts: str) -> None:
    """A one-line refusal of ``prog`` naming each of ``parts``."""
    assert code == 2, err
    assert err.startswith(f"{prog}: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, (part, err)


# -- bug 1: JSON --out of report2ecg_speed, echo_joins, cohort_scale; prompt_steering's .json + .md ----------------
def speed_script(monkeypatch, *, work=no_work):
    """report2ecg_speed.py with the records and the deepfake-ecg baseline stubbed (``work`` is the data loader)."""
    import evaluation.baselines
    import evaluation.bench

    module = script("benchmarks/report2ecg_speed.py")
    monkeypatch.setattr(evaluation.bench, "_open", work)
    monkeypatch.setattr(evaluation.bench, "_load", lambda view, cache, progress: None)
    monkeypatch.setattr(evaluation.bench, "_conditions", lambda *a: None)
    monkeypatch.setattr(evaluation.baselines, "deepfake_ecg_baseline",
                        lambda n, fs, **kw: np.zeros((n, 12, 1000), np.float32))
    monkeypatch.setattr(evaluation.bench, "_load_model", no_work)
    return module


def test_scripts_report2ecg_speed_never_writes_into_a_checkpoint_it_benchmarks(tmp_path, monkeypatch, capsys):
    module = speed_script(monkeypatch)
    ck = checkpoint(tmp_path / "ck2")
    before = tree(ck)
    for extra in ([], ["--force"]):  # --out ck2/config.json destroyed the checkpoint
        code, _, err = run(module, ["--generator", f"{ck}:2", "--out", ck / "config.json", "--n", 4, *extra],
                           monkeypatch, capsys)
        refused(code, err, "report2ecg_speed.py", str(ck / "config.json"), "inside this run's input folder",
                "(--generator)")
        assert tree(ck) == before


def test_scripts_report2ecg_speed_out_is_new_or_its_own(tmp_path, monkeypatch, capsys):
    module = speed_script(monkeypatch)
    out = tmp_path / "notes.json"
    out.write_text('{"mine": 1}')
    argv = ["--generator", "baseline:deepfake-ecg", "--n", 4, "--batch-size", 2, "--out", out]
    code, _, err = run(module, argv, monkeypatch, capsys)
    refused(code, err, "report2ecg_speed.py", f"{out}: output already exists")
    code, _, err = run(module, [*argv, "--force"], monkeypatch, capsys)
    refused(code, err, "report2ecg_speed.py", f"{out}: --force will not replace it: synth did not write it")
    assert out.read_text() == '{"mine": 1}'
    # its own result: written with synth's mark, replaced with --force only, by a rename
    module = speed_script(monkeypatch, work=lambda root, split, n, minimum=1: (None, list(range(8)), None))
    own = tmp_path / "speed.json"
    argv[-1] = own
    code, _, err = run(module, argv, monkeypatch, capsys)
    assert code == 0, err
    first = json.loads(own.read_text())
    assert first["writer"].startswith("synth ") and first["rows"][0]["records"] == 4
    code, _, err = run(module, argv, monkeypatch, capsys)
    refused(code, err, "report2ecg_speed.py", f"{own}: output already exists")
    code, _, err = run(module, [*argv, "--force"], monkeypatch, capsys)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json", "speed.json"]


@pytest.mark.parametrize("taken", ["json", "md", "inside model"])
def test_scripts_prompt_steering_never_overwrites_its_outputs_or_a_checkpoint(tmp_path, monkeypatch, capsys, taken):
    import synth.checkpoint

    monkeypatch.setattr(synth.checkpoint, "load_pretrained", no_work)  # refused before the model loads
    module = script("benchmarks/prompt_steering.py")
    model, clf = checkpoint(tmp_path / "model"), checkpoint(tmp_path / "clf")
    out = tmp_path / "steer.json"
    if taken == "json":
        out.write_text('{"mine": 1}')
        problem = f"{out}: output already exists"
    elif taken == "md":
        out.with_suffix(".md").write_text("my table")
        problem = f"{out.with_suffix('.md')}: output already exists"
    else:
        out = model / "config.json"
        problem = "inside this run's input folder (--model)"
    before = tree(tmp_path)
    code, _, err = run(module, ["--model", model, "--classifier", clf, "--out", out], monkeypatch, capsys)
    refused(code, err, "prompt_steering.py", problem)
    assert tree(tmp_path) == before


def test_scripts_prompt_steering_writes_the_json_and_md_as_one_unit(tmp_path, monkeypatch, capsys):
    module = script("benchmarks/prompt_steering.py")
    monkeypatch.setattr(module, "_measure", lambda args: ({"rows": [], "wall_s": 1.0}, ["| table |"]))
    out = tmp_path / "r" / "steer.json"
    code, _, err = run(module, ["--model", tmp_path / "m", "--classifier", tmp_path / "c", "--out", out],
                       monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["writer"].startswith("synth ")
    assert out.with_suffix(".md").read_text() == "| table |\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["steer.json", "steer.md"]


def test_scripts_echo_joins_out_is_new_or_its_own_and_apart_from_data(tmp_path, monkeypatch, capsys):
    import synth.echo.generate

    monkeypatch.setattr(synth.echo.generate, "load_echo_model", no_work)  # refused before the model loads
    module = script("benchmarks/echo_joins.py")
    data = tmp_path / "ptbxl"
    data.mkdir()
    (data / "ptbxl_database.csv").write_text("ecg_id\n")
    out = tmp_path / "joins.json"
    out.write_text('{"mine": 1}')
    before = tree(tmp_path)
    code, _, err = run(module, ["--data", data, "--out", out], monkeypatch, capsys)
    refused(code, err, "echo_joins.py", f"{out}: output already exists")
    code, _, err = run(module, ["--data", data, "--out", out, "--force"], monkeypatch, capsys)
    refused(code, err, "echo_joins.py", "synth did not write it")
    code, _, err = run(module, ["--data", data, "--out", data / "ptbxl_database.csv", "--force"], monkeypatch,
                       capsys)
    refused(code, err, "echo_joins.py", "inside this run's input folder (--data)")
    assert tree(tmp_path) == before


def cohort_script(monkeypatch):
    module = script("benchmarks/cohort_scale.py")

    def fake_cohort_run(argv, processes=1):
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True)
        (out / "manifest.csv").write_text("sha256\n")
        return {"seconds": 1.0, "peak_rss_mb": 1.0}

    monkeypatch.setattr(module, "_run", fake_cohort_run)
    monkeypatch.setattr(module, "_throughput", lambda work, args: {"by_processes": {"1": {"records_per_s": 2.0}}})
    monkeypatch.setattr(module, "_scale", lambda work, args: {"memory": {"1000": {}}, "resume": {"identical": True}})
    return module


@pytest.mark.parametrize("kind", ["checkpoint config", "other synth result", "inside --work"])
def test_scripts_cohort_scale_reads_and_replaces_only_its_own_out(tmp_path, monkeypatch, capsys, kind):
    module = cohort_script(monkeypatch)
    monkeypatch.setattr(module, "_run", no_work)  # refused before any run
    work = tmp_path / "scratch"
    if kind == "checkpoint config":
        out = checkpoint(tmp_path / "ck") / "config.json"
        problem = "synth did not write it"
    elif kind == "other synth result":
        out = tmp_path / "samplers.json"
        out.write_text(json.dumps({"writer": "synth 0.1.0", "results": [1]}))
        problem = "not one of benchmarks/cohort_scale.py"
    else:
        out = work / "r.json"
        problem = "inside the scratch folder --work"
    before = tree(tmp_path)
    code, _, err = run(module, ["--work", work, "--out", out, "--parts", "throughput"], monkeypatch, capsys)
    refused(code, err, "cohort_scale.py", str(out), problem)
    assert tree(tmp_path) == before


def test_scripts_cohort_scale_keeps_the_other_half_of_its_own_out(tmp_path, monkeypatch, capsys):
    module = cohort_script(monkeypatch)
    work, out = tmp_path / "scratch", tmp_path / "r.json"
    for part in ("throughput", "scale"):
        code, _, err = run(module, ["--work", work, "--out", out, "--parts", part], monkeypatch, capsys)
        assert code == 0, err
    result = json.loads(out.read_text())
    assert result["writer"].startswith("synth ") and result["made_by"] == "benchmarks/cohort_scale.py"
    assert result["throughput"]["by_processes"] and result["resume"]["identical"]  # both halves
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "scratch"]


# -- bug 2: tools/device_bundle.py ---------------------------------------------------------------------------------
def bundle_script(monkeypatch, *, model=no_work):
    import synth.checkpoint

    monkeypatch.setattr(synth.checkpoint, "load_pretrained", model)
    return script("tools/device_bundle.py")


@pytest.mark.parametrize("kind", ["user folder", "user folder, --force", "other synth output, --force"])
def test_scripts_device_bundle_never_writes_into_a_folder_it_did_not_make(tmp_path, monkeypatch, capsys, kind):
    module = bundle_script(monkeypatch)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "mine"
    if kind.startswith("user folder"):
        out.mkdir()
        for name in ("meta.npz", "texts.npz", "train.xz", "val.xz", "notes.txt"):
            (out / name).write_text(f"my {name}")
        problem = "synth did not write it" if "--force" in kind else "output folder already exists"
    else:
        with staged_folder(out) as stage:  # a cohort, say
            (stage / "manifest.csv").write_text("sha256\n")
        problem = "not a bundle of tools/device_bundle.py"
    before = tree(tmp_path)
    code, _, err = run(module, ["--out", out, *(["--force"] if "--force" in kind else [])], monkeypatch, capsys)
    refused(code, err, "device_bundle.py", str(out), problem)
    assert tree(tmp_path) == before


def test_scripts_device_bundle_refuses_an_out_inside_its_data(tmp_path, monkeypatch, capsys):
    module = bundle_script(monkeypatch)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "ptbxl"
    data.mkdir()
    code, _, err = run(module, ["--data", data, "--out", data / "bundle"], monkeypatch, capsys)
    refused(code, err, "device_bundle.py", "inside this run's input folder (--data)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ptbxl"] and not any(data.iterdir())


def test_scripts_device_bundle_lands_whole_with_its_wheels_and_replaces_only_its_own(tmp_path, monkeypatch,
                                                                                      capsys):
    import subprocess

    import torch

    from synth.data.sample import sample_ptbxl_root

    adapters = {"report": SimpleNamespace(embed_texts=lambda texts: [(torch.zeros(4),) for _ in texts]),
                "labels": SimpleNamespace(classes=["NORM", "MI", "SR"])}
    module = bundle_script(monkeypatch,
                           model=lambda path: SimpleNamespace(conditioning=SimpleNamespace(adapters=adapters)))

    def pip_download(cmd, check):
        folder = Path(cmd[cmd.index("-d") + 1])
        (folder / f"{cmd[-1].replace('==', '-')}-py3-none-any.whl").write_bytes(b"wheel")

    monkeypatch.setattr(subprocess, "run", pip_download)
    monkeypatch.chdir(tmp_path)
    argv = ["--data", sample_ptbxl_root(), "--records", 8, "--out", tmp_path / ".device"]
    code, _, err = run(module, argv, monkeypatch, capsys)
    assert code == 0, err
    bundle = tmp_path / ".device"
    assert {"meta.npz", "texts.npz", "train.xz", "val.xz", MARKER} <= set(tree(bundle))
    assert json.loads((bundle / MARKER).read_text())["made_by"] == "tools/device_bundle.py"
    assert len([n for n in tree(bundle) if n.startswith("wheels/") and n.endswith(".whl")]) == 3
    assert not (tmp_path / ".whl").exists()  # nothing in the working directory but the bundle and the cache
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache", ".device"]
    assert module.unpack_signals((bundle / "train.xz").read_bytes()).shape == (8, 8, 1000)
    script("tools/device_train.py").check_bundle(bundle)  # what the device machine trains from
    code, _, err = run(module, argv, monkeypatch, capsys)
    refused(code, err, "device_bundle.py", "output folder already exists")
    code, _, err = run(module, [*argv, "--force"], monkeypatch, capsys)  # its own, unchanged: replaced
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache", ".device"]


# -- bug 3: staged_folder outputs apart from what the benchmark reads ----------------------------------------------
def test_scripts_fd_vs_steps_refuses_an_out_inside_the_generator(tmp_path, monkeypatch, capsys):
    import evaluation.bench

    monkeypatch.setattr(evaluation.bench, "_open", no_work)
    module = script("benchmarks/fd_vs_steps.py")
    ck = checkpoint(tmp_path / "ck")
    code, _, err = run(module, ["--generator", ck, "--out", ck / "steps"], monkeypatch, capsys)
    refused(code, err, "fd_vs_steps.py", str(ck / "steps"), "inside this run's input folder (--generator)")
    assert sorted(tree(ck)) == ["config.json", "model.safetensors"]


def test_scripts_hr_response_refuses_an_out_inside_the_checkpoint(tmp_path, monkeypatch, capsys):
    import synth.checkpoint

    monkeypatch.setattr(synth.checkpoint, "load_pretrained", no_work)
    module = script("benchmarks/hr_response.py")
    ck = checkpoint(tmp_path / "ck")
    code, _, err = run(module, ["--checkpoint", ck, "--out", ck / "hr"], monkeypatch, capsys)
    refused(code, err, "hr_response.py", "inside this run's input folder (--checkpoint)")
    assert sorted(tree(ck)) == ["config.json", "model.safetensors"]


@pytest.mark.parametrize("which", ["--out", "--write-to"])
def test_scripts_echo_ef_response_refuses_outputs_inside_what_it_reads(tmp_path, monkeypatch, capsys, which):
    import synth.echo.generate

    monkeypatch.setattr(synth.echo.generate, "load_echo_model", no_work)
    module = script("benchmarks/echo_ef_response.py")
    model, encoder, data = checkpoint(tmp_path / "model"), checkpoint(tmp_path / "encoder"), tmp_path / "echo"
    data.mkdir()
    out, write_to = (data / "response", tmp_path / "mapped") if which == "--out" else (
        tmp_path / "response", model / "mapped")
    before = tree(tmp_path)
    code, _, err = run(module, ["--model", model, "--encoder", encoder, "--data", data, "--out", out,
                                "--write-to", write_to], monkeypatch, capsys)
    refused(code, err, "echo_ef_response.py", "inside this run's input folder",
            "(--data)" if which == "--out" else "(--model)")
    assert tree(tmp_path) == before


def test_scripts_ppg_cv_refuses_an_out_inside_its_data(tmp_path, monkeypatch, capsys):
    import synth.data.bidmc

    monkeypatch.setattr(synth.data.bidmc, "BIDMC", no_work)
    module = script("benchmarks/ppg_cv.py")
    data = tmp_path / "bidmc"
    data.mkdir()
    code, _, err = run(module, ["--data", data, "--work", tmp_path / "work", "--out", data / "cv"], monkeypatch,
                       capsys)
    refused(code, err, "ppg_cv.py", "inside this run's input folder (--data)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bidmc"] and not any(data.iterdir())


def test_scripts_upsample500_refuses_an_out_inside_the_upsampler(tmp_path, monkeypatch, capsys):
    import synth.data.ptbxl

    monkeypatch.setattr(synth.data.ptbxl, "at_both_rates", no_work)
    module = script("benchmarks/upsample500.py")
    ck = checkpoint(tmp_path / "up")
    code, _, err = run(module, ["--upsampler", ck, "--data", tmp_path / "ptbxl", "--n-generated", 0, "--out",
                                ck / "bench"], monkeypatch, capsys)
    refused(code, err, "upsample500.py", "inside this run's input folder (--upsampler)")
    assert sorted(tree(ck)) == ["config.json", "model.safetensors"]


def test_scripts_make_echo_dataset_refuses_an_out_inside_ptbxl(tmp_path, monkeypatch, capsys):
    module = script("tools/make_echo_dataset.py")
    monkeypatch.setattr(module, "PTBXL", no_work)
    monkeypatch.setattr(module, "build_dataset", no_work)
    data = tmp_path / "ptbxl"
    data.mkdir()
    code, _, err = run(module, ["--ptbxl", data, "--out", data / "echo"], monkeypatch, capsys)
    refused(code, err, "make_echo_dataset.py", "inside this run's input folder (--ptbxl)")
    assert not any(data.iterdir())


# -- bug 4: one line, not a traceback ----------------------------------------------------------------------------
def test_scripts_make_echo_dataset_refusal_is_one_line(tmp_path, monkeypatch, capsys):
    from synth.data.sample import sample_ptbxl_root

    module = script("tools/make_echo_dataset.py")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "FileList.csv").write_text("my list")
    for extra in ([], ["--force"]):
        code, _, err = run(module, ["--ptbxl", sample_ptbxl_root(), "--out", out, "--train", 1, "--val", 1,
                                    "--test", 1, *extra], monkeypatch, capsys)
        refused(code, err, "make_echo_dataset.py", str(out),
                "synth did not write it" if extra else "output folder already exists")
    assert tree(tmp_path) == {"mine/FileList.csv": b"my list"}


def test_scripts_export_checkpoint_refusal_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    module = script("tools/export_checkpoint.py")
    monkeypatch.setattr(module, "build_registry_model", no_work)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    out = checkpoint(tmp_path / "export")
    before = tree(tmp_path)
    code, _, err = run(module, [run_dir, out], monkeypatch, capsys)
    refused(code, err, "export_checkpoint.py", f"{out}: checkpoint folder already exists")
    code, _, err = run(module, [run_dir, run_dir / "export"], monkeypatch, capsys)
    refused(code, err, "export_checkpoint.py", "inside this run's input folder (run)")
    assert tree(tmp_path) == before


def test_scripts_warm_start_refusal_is_one_line(tmp_path, monkeypatch, capsys):
    module = script("tools/warm_start.py")
    code, _, err = run(module, [tmp_path / "absent", tmp_path / "model.yaml", tmp_path / "new"],
                       monkeypatch, capsys)
    refused(code, err, "warm_start.py", str(tmp_path / "absent"))  # the export it reads does not exist
    monkeypatch.setattr(module, "load_pretrained", no_work)
    out = checkpoint(tmp_path / "taken")
    code, _, err = run(module, [tmp_path / "absent", tmp_path / "model.yaml", out], monkeypatch,
                       capsys)
    refused(code, err, "warm_start.py", f"{out}: checkpoint folder already exists")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert not os.path.exists(tmp_path / "new")


def test_scripts_staged_outputs_still_replace_their_own(tmp_path, monkeypatch, capsys):
    """The input checks leave ``--force`` over a synth output as it was (fd_vs_steps --render, no model)."""
    module = script("benchmarks/fd_vs_steps.py")
    fd = {"estimate": 1.0, "low": 0.5, "high": 1.5}
    report = {"generator": "ck", "split": "val", "n": 4, "guidance_scale": 2.0, "wall_s": 1.0,
              "rows": [{"steps": s, "nfe": s, "fd": fd, "fd_floor": fd, "condition_consistency": None,
                        "hr_mae_bpm": 1.0, "seconds_per_ecg": 0.1} for s in (1, 2)]}
    src = tmp_path / "old.json"
    src.write_text(json.dumps(report))
    out = tmp_path / "out"
    with staged_folder(out) as stage:
        (stage / "report.md").write_text("old")
    code, _, err = run(module, ["--render", src, "--out", out, "--force"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads((out / "report.json").read_text())["chosen_steps"] == 1
    code, _, err = run(module, ["--render", out / "report.json", "--out", out, "--force"], monkeypatch, capsys)
    refused(code, err, "fd_vs_steps.py", "holds this run's input (--render)")
