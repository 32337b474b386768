"""``synth bench fidelity`` and ``reconstruct`` refuse what the command line names before any slow work: a damaged
checkpoint generator (NaN weights, a broken config.json, no weights, the wrong record shape), an unreadable
``records:DIR``, and an ``--out`` that is, lies inside or contains a folder the bench reads. The PTB-XL loader and
the baselines are replaced by tripwires, so a check that comes too late fails the test instead of running."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from synth.cli import main
from synth.data.sample import sample_ptbxl_root

SAMPLE = str(sample_ptbxl_root())


def _tripwire(*args, **kwargs):
    raise AssertionError("slow work started before the inputs were checked")


@pytest.fixture
def no_slow_work(monkeypatch):
    """PTB-XL (table and signals), the feature extractor and the baselines all fail the test if they are reached."""
    import evaluation.baselines
    import evaluation.bench
    from synth.data.ptbxl import PTBXL

    monkeypatch.setattr(evaluation.bench, "_open", _tripwire)
    monkeypatch.setattr(evaluation.bench, "load_feature_extractor", _tripwire)
    monkeypatch.setattr(PTBXL, "load_signals", _tripwire)
    for name in ("ecgsyn_baseline", "real_train_baseline", "records_baseline"):
        monkeypatch.setattr(evaluation.baselines, name, _tripwire)


def _copy(tiny_checkpoints: Path, name: str, dest: Path) -> Path:
    return Path(shutil.copytree(tiny_checkpoints / name, dest))


def _nan_weights(folder: Path) -> Path:
    state = load_file(str(folder / "model.safetensors"))
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key] = state[key].clone()
    state[key].view(-1)[0] = float("nan")
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder / "model.safetensors"


def _damage(kind: str, folder: Path) -> Path:
    """Damage the checkpoint ``folder`` one way; returns the file the error must name."""
    if kind == "nan-weights":
        return _nan_weights(folder)
    if kind == "empty-config":
        (folder / "config.json").write_text("{}")
        return folder / "config.json"
    if kind == "config-not-json":
        (folder / "config.json").write_text("{not json")
        return folder / "config.json"
    if kind == "config-huge-width":
        meta = json.loads((folder / "config.json").read_text())
        meta["model"]["network"]["base_channels"] = 4096  # checked on the meta device, not allocated
        (folder / "config.json").write_text(json.dumps(meta))
        return folder / "model.safetensors"
    if kind == "no-weights":
        (folder / "model.safetensors").unlink()
        return folder
    raise ValueError(kind)


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("synth: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("kind", ["nan-weights", "empty-config", "config-not-json", "config-huge-width",
                                  "no-weights"])
def test_fidelity_refuses_a_damaged_checkpoint_before_data_and_baselines(kind, tiny_checkpoints, tmp_path,
                                                                          no_slow_work, capsys):
    bad = _copy(tiny_checkpoints, "report2ecg", tmp_path / "bad")
    named = _damage(kind, bad)
    out, cache = tmp_path / "fid", tmp_path / "cache"
    code = main(["bench", "fidelity", "--generator", "baseline:ecgsyn", "--generator", str(bad), "--data", SAMPLE,
                 "--n", "10", "--out", str(out), "--cache-dir", str(cache), "--quiet"])
    err = _one_line_error(capsys)
    assert code == 2 and str(named) in err, err
    assert not out.exists() and not cache.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fid")]  # no lock, no staging left


def test_fidelity_refuses_a_checkpoint_of_the_wrong_record_shape_before_data(tiny_checkpoints, tmp_path,
                                                                             no_slow_work, capsys):
    """The tiny report2ecg makes 64-sample records: bench compares 10 s at 100 Hz, known from its config."""
    model = _copy(tiny_checkpoints, "report2ecg", tmp_path / "short")
    code = main(["bench", "fidelity", "--generator", "baseline:real-train", "--generator", str(model), "--data",
                 SAMPLE, "--n", "4", "--out", str(tmp_path / "fid"), "--cache-dir", "none", "--quiet"])
    err = _one_line_error(capsys)
    assert code == 2 and str(model) in err and "bench compares 12-lead 10 s records" in err
    assert not (tmp_path / "fid").exists()


def test_reconstruct_refuses_a_nan_checkpoint_before_data_and_the_linear_baseline(tiny_checkpoints, tmp_path,
                                                                                  no_slow_work, capsys):
    good = _copy(tiny_checkpoints, "reconstruct", tmp_path / "good")
    bad = _copy(tiny_checkpoints, "reconstruct", tmp_path / "bad")
    weights = _nan_weights(bad)
    code = main(["bench", "reconstruct", "--generator", "baseline:linear", "--generator", str(good), "--generator",
                 str(bad), "--leads", "II,V1,V5", "--data", SAMPLE, "--n", "4", "--out", str(tmp_path / "rec"),
                 "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    err = _one_line_error(capsys)
    assert code == 2 and str(weights) in err and "NaN" in err
    assert not (tmp_path / "rec").exists() and not (tmp_path / "cache").exists()


def test_reconstruct_refuses_a_model_without_leads_before_data(tiny_checkpoints, tmp_path, no_slow_work, capsys):
    model = _copy(tiny_checkpoints, "report2ecg", tmp_path / "report")
    code = main(["bench", "reconstruct", "--generator", str(model), "--leads", "II", "--data", SAMPLE, "--n", "4",
                 "--out", str(tmp_path / "rec"), "--cache-dir", "none", "--quiet"])
    err = _one_line_error(capsys)
    assert code == 2 and str(model) in err and "not on given leads" in err


def _records(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "gen0.npy").write_bytes(b"someone's records")
    return folder


@pytest.mark.parametrize(("where", "force", "needle"), [("inside", False, "lies inside"), ("same", True, "it is this run's input"),
                                                        ("around", True, "holds this run's input")])
def test_fidelity_refuses_an_out_overlapping_a_records_folder(where, force, needle, tmp_path, no_slow_work, capsys):
    """--out inside records:DIR would put the lock and staging into it, and --force on it (or on a folder holding
    it) would replace someone's records with the report: refused before anything is written."""
    recs = _records(tmp_path / "outer" / "recs")
    out = {"inside": recs / "report", "same": recs, "around": tmp_path / "outer"}[where]
    before = _listing(tmp_path)
    code = main(["bench", "fidelity", "--generator", f"records:{recs}", "--data", SAMPLE, "--n", "4", "--out",
                 str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet", *(["--force"] if force else [])])
    err = _one_line_error(capsys)
    assert code == 2 and str(out) in err and needle in err and "--generator" in err, err
    assert _listing(tmp_path) == before  # nothing written into (or beside) the records


def test_run_fidelity_refuses_an_out_inside_a_checkpoint_generator(tiny_checkpoints, tmp_path, no_slow_work):
    """The library entry point keeps the same rule as the command line."""
    from evaluation.bench import run_fidelity
    from synth.errors import SynthError

    model = _copy(tiny_checkpoints, "report2ecg", tmp_path / "model")
    before = _listing(tmp_path)
    with pytest.raises(SynthError, match=r"lies inside this run's input folder \(--generator"):
        run_fidelity([str(model)], SAMPLE, n=4, out_dir=model / "report", cache_dir=None, progress=False)
    assert _listing(tmp_path) == before


def test_fidelity_refuses_an_unreadable_records_folder_before_data(tmp_path, no_slow_work, monkeypatch, capsys):
    """A folder the user may not list (refused by the system as for chmod 0; simulated, since root lists any)."""
    recs = _records(tmp_path / "recs")
    scandir = os.scandir

    def refusing(path="."):
        if Path(path) == recs:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    code = main(["bench", "fidelity", "--generator", "baseline:real-train", "--generator", f"records:{recs}",
                 "--data", SAMPLE, "--n", "4", "--out", str(tmp_path / "fid"), "--cache-dir", "none", "--quiet"])
    err = _one_line_error(capsys)
    assert code == 2 and str(recs) in err and "cannot be read (Permission denied)" in err
    assert not (tmp_path / "fid").exists()


def test_fidelity_refuses_too_few_records_before_data(tmp_path, no_slow_work, capsys):
    """records:DIR with fewer records than --n was refused only after every other generator had run."""
    recs = _records(tmp_path / "recs")
    (recs / "metadata.csv").write_text("record,labels,hr\n")  # not a record
    code = main(["bench", "fidelity", "--generator", "baseline:ecgsyn", "--generator", f"records:{recs}", "--data",
                 SAMPLE, "--n", "4", "--out", str(tmp_path / "fid"), "--cache-dir", "none", "--quiet"])
    err = _one_line_error(capsys)
    assert code == 2 and str(recs) in err and "holds 1 record(s); 4 are scored" in err
    assert not (tmp_path / "fid").exists()


def test_checkpoints_load_once_and_reach_the_generator(tiny_checkpoints, monkeypatch):
    """The models loaded up front are the ones the loop samples with: load_pretrained runs once per checkpoint."""
    import evaluation.bench as bench

    calls = []
    real = bench._load_model
    monkeypatch.setattr(bench, "_load_model", lambda spec, **kw: calls.append(spec.name) or real(spec, **kw))
    specs = bench._parse_generators([str(tiny_checkpoints / "reconstruct")], bench.BASELINES_RECONSTRUCT)
    models = bench._load_models(specs, windowed=True, check=bench._check_reconstruct_conditions)
    assert list(models) == ["reconstruct"] and calls == ["reconstruct"]
    assert not any(torch.isnan(p).any() for p in models["reconstruct"].parameters())


def test_ppg_bench_refuses_an_out_inside_its_data(tmp_path, capsys):
    from synth.data.sample import sample_bidmc_root

    data = tmp_path / "bidmc"
    shutil.copytree(sample_bidmc_root(), data)
    code = main(["bench", "ppg2ecg", "--generator", "baseline:linear", "--data", str(data), "--out",
                 str(data / "report"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "lies inside this run's input folder (--data)" in err, err
    assert not (data / "report").exists() and not any(p.name.startswith(".report") for p in data.iterdir())
