"""``synth cohort``: spec, conditions, shards and manifest, resume after SIGKILL, two processes, reading back."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from synth.cli import main
from synth.config import ConfigError
from synth.data.cohort import Cohort, CohortStream
from synth.data.readers import read_record
from synth.data.sample import sample_ptbxl_root
from synth.tasks.cohort import load_spec

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "configs" / "cohort" / "default.yaml"
KILLPOINT = REPO / "tests" / "safety" / "killpoint.py"


def args_for(out: Path, *extra) -> list[str]:
    return ["cohort", str(SPEC), "model=report2ecg", "size=10", "shard_size=4", "batch_size=3",
            f"data={sample_ptbxl_root()}", "cache_dir=null", *extra, "--out", str(out), "--quiet"]


def checksums(folder: Path) -> list[str]:
    with open(folder / "manifest.csv", newline="") as fh:
        return [r["sha256"] for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, tiny_checkpoints) -> Path:
    out = tmp_path_factory.mktemp("cohort") / "c"
    old = os.environ.get("SYNTH_CHECKPOINTS")
    os.environ["SYNTH_CHECKPOINTS"] = str(tiny_checkpoints)
    try:
        assert main(args_for(out)) == 0
    finally:
        os.environ.pop("SYNTH_CHECKPOINTS") if old is None else os.environ.__setitem__("SYNTH_CHECKPOINTS", old)
    return out


def test_cohort_layout_manifest_and_card(cohort):
    names = sorted(p.name for p in cohort.iterdir())
    assert names == [".synth-output.json", "card.md", "cohort.json", "manifest.csv", "shards"]
    shards = sorted(p.name for p in (cohort / "shards").iterdir())
    assert shards == [f"{kind}-{s:05d}.{ext}" for s in range(3) for kind, ext in (("manifest", "csv"),)] + \
        [f"signals-{s:05d}.npy" for s in range(3)]
    assert [np.load(cohort / "shards" / f"signals-{s:05d}.npy").shape for s in range(3)] == [(4, 12, 64)] * 2 + \
        [(2, 12, 64)]
    with open(cohort / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["record"] for r in rows] == [f"{i:08d}" for i in range(10)]
    assert all(r["sha256"] and r["noise_seed"] and r["source_ecg_id"] for r in rows)
    assert "Synthetic cohort: 10 records" in (cohort / "card.md").read_text()


def test_reading_a_cohort_back_as_a_dataset(cohort):
    data = Cohort(cohort)
    assert len(data) == 10 and data.classes == ["NORM", "MI", "STTC", "CD", "HYP"]
    x, cond = data[3]
    raw = np.load(cohort / "shards" / "signals-00000.npy")[3]
    np.testing.assert_allclose(x, raw / 1000.0)  # int16 µV on disk, mV in memory
    assert x.dtype == np.float32 and cond["labels"].shape == (5,) and cond["record"] == "00000003"
    assert data.verify() == []
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    xb, cb = next(iter(loader))
    assert xb.shape == (4, 12, 64) and cb["labels"].shape == (4, 5)
    streamed = [c["record"] for _, c in CohortStream(cohort)]
    assert streamed == [f"{i:08d}" for i in range(10)]
    summary = data.summary()
    assert summary["records"] == 10 and sum(summary["sex"].values()) == 10


def test_data_info_and_wfdb_export_of_a_cohort(cohort, tmp_path, capsys):
    assert main(["data", "info", str(cohort)]) == 0
    out = capsys.readouterr().out
    assert "synthetic cohort" in out and "10 in 3 shards" in out and "age" in out
    assert main(["data", "convert", str(cohort), str(tmp_path / "wfdb"), "--to", "wfdb", "--records", "2:5"]) == 0
    rec = read_record(tmp_path / "wfdb" / "00000003")
    np.testing.assert_allclose(rec.signal, Cohort(cohort)[3][0], atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "wfdb").glob("*.hea")) == ["00000002.hea", "00000003.hea",
                                                                          "00000004.hea"]


def test_a_killed_cohort_resumes_to_the_same_checksums(cohort, tmp_path, capsys, use_tiny_checkpoints):
    out = tmp_path / "c"
    ready = tmp_path / "ready"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(KILLPOINT), str(ready), "synth.tasks.cohort:make_shard", "2", "--",
                             *args_for(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not ready.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    staging = tmp_path / ".c.synth-staging"
    assert (staging / "shards" / "signals-00000.npy").is_file() and not (staging / "shards" / "signals-00001.npy").exists()
    assert main(args_for(out)[:-1]) == 0  # without --quiet: it says it resumes
    assert "resuming: 4 of 10 records" in capsys.readouterr().out
    assert checksums(out) == checksums(cohort)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "ready"]


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_two_processes_make_the_same_cohort_as_one(cohort, tmp_path, use_tiny_checkpoints):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29517", "-m", "synth",
                           *args_for(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert checksums(tmp_path / "two") == checksums(cohort)


def test_label_mixes(tmp_path, use_tiny_checkpoints):
    from synth.tasks.cohort import draw_conditions

    classes = ["NORM", "MI", "STTC", "CD", "HYP"]
    keys = {"labels", "report", "age", "sex", "heart_rate"}
    base = load_spec(SPEC, [f"data={sample_ptbxl_root()}", "size=60", "cache_dir=null"])
    balanced = draw_conditions(load_spec(SPEC, [f"data={sample_ptbxl_root()}", "size=300", "labels.mix=balanced",
                                                "cache_dir=null", "heart_rate.source=none"]), classes, keys)
    having = {c: sum(c in d["labels"] for d in balanced) for c in classes}
    assert min(having.values()) >= 40  # each label drawn for about a fifth of the records, or more with co-labels
    counts = draw_conditions(load_spec(SPEC, [f"data={sample_ptbxl_root()}", "size=30", "labels.mix=counts",
                                              "labels.counts={HYP: 20, NORM: 10}", "cache_dir=null",
                                              "heart_rate.source=none"]), classes, keys)
    assert sum("HYP" in d["labels"] for d in counts) >= 20 and sum("NORM" in d["labels"] for d in counts) >= 10
    again = draw_conditions(base, classes, keys)
    assert again == draw_conditions(base, classes, keys)  # the same seed draws the same table
    assert all(d["report"] for d in again) and {d["sex"] for d in again} <= {"M", "F", None}


@pytest.mark.parametrize(("overrides", "needle"), [
    (["labels.mix=counts", "labels.counts={NORM: 3}"], "add up to 3, size is 1000"),
    (["size=0"], "size 0 is outside"),
    (["guidance_scale=nan"], "not a finite number"),
    (["colour=red"], "colour"),
    (["reports=wikipedia"], "reports must be"),
    (["sex.source=normal"], "sex: use train, none or share"),
    (["modality_guidance={demographics: 99}"], "modality_guidance.demographics 99"),
])
def test_bad_specs_are_refused_naming_the_file(overrides, needle):
    with pytest.raises(ConfigError, match=needle) as exc:
        load_spec(SPEC, overrides)
    assert str(SPEC) in str(exc.value)


def test_modality_guidance_changes_the_cohort_and_is_recorded(cohort, tmp_path, use_tiny_checkpoints):
    """``modality_guidance={demographics: W}`` adds that term: another cohort (same conditions and noise),
    named in cohort.json and the card; 0 gives the plain cohort back."""
    guided, zero = tmp_path / "guided", tmp_path / "zero"
    assert main(args_for(guided, "modality_guidance={demographics: 3}")) == 0
    assert main(args_for(zero, "modality_guidance={demographics: 0}")) == 0
    plain = np.load(cohort / "shards" / "signals-00000.npy")
    assert np.abs(np.load(guided / "shards" / "signals-00000.npy").astype(int) - plain).max() > 0
    assert checksums(zero) == checksums(cohort)
    assert checksums(guided) != checksums(cohort)
    assert '"modality_guidance": "demographics=3"' in (guided / "cohort.json").read_text()
    assert "per modality: demographics=3" in (guided / "card.md").read_text()


@pytest.mark.parametrize(("extra", "needle"), [
    (["modality_guidance={colour: 1}"], "this model has no modality 'colour'"),
    (["modality_guidance={demographics: 1}", "age.source=none", "sex.source=none", "heart_rate.source=none"],
     "'demographics' is guided but no prompt gives it"),
])
def test_bad_modality_guidance_is_refused_before_any_work(extra, needle, tmp_path, use_tiny_checkpoints, capsys):
    out = tmp_path / "c"
    assert main(args_for(out, *extra)) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("fs_hz", 1.0, "the model's sampling rate (model.signal.fs_hz) 1 Hz is outside"),
    ("length", 0, "model.signal.length) is 0"),
    ("length", "64", "model.signal.length) is '64'"),
])
def test_a_damaged_model_config_is_refused_before_any_work(key, value, needle, tmp_path, tiny_checkpoints, capsys):
    """A model export whose config.json gives a rate no record can be written at (or no window) is refused naming
    that file, before any condition is drawn or anything is written (it made a cohort labelled 1 Hz)."""
    import json

    model = tmp_path / "ck"
    shutil.copytree(tiny_checkpoints / "report2ecg", model)
    config = json.loads((model / "config.json").read_text())
    config["model"]["signal"][key] = value
    (model / "config.json").write_text(json.dumps(config))
    out = tmp_path / "c"
    assert main(args_for(out, f"model={model}")) == 2
    err = capsys.readouterr().err
    assert needle in err and str(model / "config.json") in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_a_batch_or_shard_too_large_for_memory_is_refused_before_any_work(tmp_path, use_tiny_checkpoints, capsys,
                                                                         monkeypatch):
    """generate refuses a --batch-size whose activations exceed the memory limit; cohort did not (it ran at 11 GB)."""
    from synth import limits

    monkeypatch.setattr(limits, "MAX_MEMORY_BYTES", 10 * 1024**2)  # the tiny model's 64 samples: 10 MB is 200 records
    out = tmp_path / "c"
    assert main(args_for(out, "batch_size=256")) == 2
    err = capsys.readouterr().err
    assert "sampled in batches of 256" in err and "--allow-large" in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == []
