"""Outputs that would swallow the run's own input, manifests that name files outside the output, damaged checkpoint
rates in the paired tasks, cohort specs met halfway, and the temporary files a killed writer leaves."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from synth.cli import main
from synth.config import ConfigError
from synth.data.sample import sample_ptbxl_root
from synth.io_utils import _HOST, atomic_path
from synth.tasks.cohort import load_spec

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "configs" / "cohort" / "default.yaml"
SAMPLE_RECORD = next(iter(sorted((sample_ptbxl_root() / "records100").rglob("*.hea")))).with_suffix("")


def run(argv, capsys):
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    return code, err


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, tiny_checkpoints) -> Path:
    out = tmp_path_factory.mktemp("cohort") / "c"
    argv = ["cohort", SPEC, "model=" + str(tiny_checkpoints / "report2ecg"), "size=4", "shard_size=2",
            f"data={sample_ptbxl_root()}", "cache_dir=null", "--out", out, "--quiet"]
    assert main([str(a) for a in argv]) == 0
    return out


# -- the output is the input -------------------------------------------------------------------------------------
def test_converting_a_cohort_onto_itself_is_refused_and_keeps_it(cohort, tmp_path, capsys):
    copy = tmp_path / "c"
    shutil.copytree(cohort, copy)
    before = tree(copy)
    code, err = run(["data", "convert", copy, copy, "--to", "npz", "--force"], capsys)
    assert code == 2 and "it is this run's input" in err and str(copy) in err, err
    code, err = run(["data", "convert", copy, copy / "inside", "--to", "npz"], capsys)
    assert code == 2 and "inside this run's input folder" in err, err
    assert tree(copy) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_reconstructing_into_the_folder_that_holds_the_input_is_refused(use_tiny_checkpoints, tmp_path, capsys):
    first = tmp_path / "rec"
    code, err = run(["reconstruct", SAMPLE_RECORD, "--leads", "II", "--steps", 1, "--out", first], capsys)
    assert code == 0, err
    before = tree(first)
    code, err = run(["reconstruct", first / "reconstructed", "--leads", "II", "--steps", 1, "--out", first,
                     "--force"], capsys)
    assert code == 2 and "it holds this run's input" in err, err
    assert tree(first) == before


def test_a_record_is_not_converted_onto_itself(tmp_path, capsys, synthetic_record):
    from synth.data.writers import write_record

    src = tmp_path / "r.npz"
    write_record(synthetic_record, src, "npz")
    before = src.read_bytes()
    code, err = run(["data", "convert", src, src, "--to", "npz", "--force"], capsys)
    assert code == 2 and "it is this run's input" in err, err
    assert src.read_bytes() == before


# -- manifests that do not read back -------------------------------------------------------------------------------
@pytest.mark.parametrize(("column", "value", "needle"), [
    ("record", "../victim/planted", "record '../victim/planted' is not a plain file name"),
    ("record", "/tmp/planted_abs", "is not a plain file name"),
    ("record", "..", "is not a plain file name"),
    ("shard", "x1", "shard 'x1' is not a whole number"),
    ("row", "-1", "row '-1' is not a whole number"),
])
def test_an_edited_manifest_is_refused_naming_the_line(cohort, tmp_path, capsys, column, value, needle):
    copy = tmp_path / "c"
    shutil.copytree(cohort, copy)
    with open(copy / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
        fields = list(rows[0])
    rows[1][column] = value
    with open(copy / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    for argv in (["data", "convert", copy, tmp_path / "out", "--to", "csv"], ["data", "info", copy]):
        code, err = run(argv, capsys)
        assert code == 2 and needle in err and "line 3" in err and str(copy / "manifest.csv") in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    assert not (tmp_path.parent / "victim").exists()


# -- cohorts: the model's rate, and spec values met halfway --------------------------------------------------------
def test_a_cohort_records_the_rate_of_its_model(tmp_path, tiny_checkpoints):
    model = tmp_path / "ck"
    shutil.copytree(tiny_checkpoints / "report2ecg", model)
    config = json.loads((model / "config.json").read_text())
    config["model"]["signal"]["fs_hz"] = 500.0
    (model / "config.json").write_text(json.dumps(config))
    out = tmp_path / "c"
    assert main(["cohort", str(SPEC), f"model={model}", "size=2", f"data={sample_ptbxl_root()}", "cache_dir=null",
                 "steps=1", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "cohort.json").read_text())["fs_hz"] == 500.0


@pytest.mark.parametrize(("override", "needle"), [
    ("age={source: normal, mean: 200, std: 15}", "age.mean 200.0 is outside the range 0-120"),
    ("heart_rate={source: normal, mean: 70, std: 10, high: 400}", "heart_rate.high 400.0 is outside"),
])
def test_normal_distributions_outside_the_valid_range_are_refused_at_load(override, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)) as exc:
        load_spec(SPEC, [override])
    assert str(SPEC) in str(exc.value)


def test_normal_draws_stay_inside_the_valid_range(tmp_path, use_tiny_checkpoints):
    """A wide normal without low/high is clipped to what a condition may take, not refused shards later."""
    out = tmp_path / "c"
    assert main(["cohort", str(SPEC), "model=report2ecg", "size=12", "shard_size=4", "steps=1",
                 "age={source: normal, mean: 110, std: 30}", "heart_rate={source: normal, mean: 280, std: 60}",
                 f"data={sample_ptbxl_root()}", "cache_dir=null", "--out", str(out), "--quiet"]) == 0
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ages, rates = np.array([float(r["age"]) for r in rows]), np.array([float(r["hr"]) for r in rows])
    assert ages.max() == 120.0 and ages.min() >= 0 and rates.max() == 300.0 and rates.min() >= 20


# -- damaged checkpoint rates in the paired tasks ----------------------------------------------------------------
@pytest.mark.parametrize("task", ["reconstruct", "ppg2ecg"])
def test_a_damaged_checkpoint_rate_is_refused_before_the_task_runs(task, tmp_path, tiny_checkpoints, capsys):
    model = tmp_path / "ck"
    shutil.copytree(tiny_checkpoints / task, model)
    config = json.loads((model / "config.json").read_text())
    config["model"]["signal"]["fs_hz"] = 1.0
    (model / "config.json").write_text(json.dumps(config))
    if task == "reconstruct":
        argv = ["reconstruct", SAMPLE_RECORD, "--leads", "II"]
    else:
        bidmc = next(iter(sorted((REPO / "synth" / "assets" / "sample" / "bidmc").rglob("*Signals.csv*"))))
        argv = ["ppg2ecg", bidmc, "--duration", 30]
    code, err = run([*argv, "--checkpoint", model, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "model.signal.fs_hz) 1 Hz is outside" in err and str(model / "config.json") in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


# -- what a killed writer leaves -----------------------------------------------------------------------------------
def test_a_killed_writers_partial_file_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    left = tmp_path / f".cache.{_HOST}-{dead_pid}-abc123.part.npy"
    live = tmp_path / f".cache.{_HOST}-1-def456.part.npy"  # pid 1 runs: a writer still at work
    other_host = tmp_path / ".cache.elsewhere-999999-ghi789.part.npy"
    for p in (left, live, other_host):
        p.write_bytes(b"partial")
    with atomic_path(tmp_path / "cache.npy") as tmp:
        tmp.write_bytes(b"whole")
    assert (tmp_path / "cache.npy").read_bytes() == b"whole"
    assert not left.exists() and live.exists() and other_host.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_reader_workers_end_when_their_parent_is_killed(tmp_path):
    """A SIGKILLed run's worker processes (PTB-XL readers, echo simulators) end with it instead of running on."""
    import os
    import signal
    import time

    pids = tmp_path / "worker.pid"
    script = f"""
import os, time
from concurrent.futures import ProcessPoolExecutor
from synth.io_utils import die_with_parent

def work(_):
    open({str(pids)!r}, "w").write(str(os.getpid()))
    time.sleep(120)

with ProcessPoolExecutor(1, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
    list(pool.map(work, [0]))
"""
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while not pids.exists() or not pids.read_text():
        assert time.time() < deadline and parent.poll() is None
        time.sleep(0.1)
    worker = int(pids.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the worker outlived its killed parent")


def test_converting_onto_the_data_file_an_input_header_reads_is_refused(tmp_path, capsys, synthetic_record):
    """hdr.hea names rec.dat: converting hdr to the record rec (synth's own, so --force would replace it) must not
    rewrite the samples the input is made of."""
    from synth.data.writers import write_record

    write_record(synthetic_record, tmp_path / "rec", "wfdb")
    header = (tmp_path / "rec.hea").read_text().replace("rec ", "hdr ", 1)
    (tmp_path / "hdr.hea").write_text(header)
    before = (tmp_path / "rec.dat").read_bytes()
    code, err = run(["data", "convert", tmp_path / "hdr.hea", tmp_path / "rec", "--to", "wfdb", "--force"], capsys)
    assert code == 2 and "it is this run's input" in err and "rec.dat" in err, err
    assert (tmp_path / "rec.dat").read_bytes() == before


@pytest.mark.parametrize("command", ["convert", "plot"])
def test_resampling_beyond_the_memory_limit_is_refused_before_it_starts(command, tmp_path, capsys, monkeypatch):
    """--fs resampled the whole record in the reader before any size check (an hour asked at 10 kHz: 10 GB)."""
    from synth import limits
    from synth.data import transforms

    monkeypatch.setattr(limits, "MAX_MEMORY_BYTES", 10 * 1024**2)
    monkeypatch.setattr(transforms, "resample_record", lambda *a, **k: pytest.fail("resampled anyway"))
    out = tmp_path / ("x.csv" if command == "convert" else "x.png")
    extra = ["--to", "csv"] if command == "convert" else []
    code, err = run(["data", command, SAMPLE_RECORD, out, *extra, "--fs", 10000] if command == "convert" else
                    ["data", "plot", SAMPLE_RECORD, "--out", out, "--fs", 10000], capsys)
    assert code == 2 and "from 100 to 10000 Hz needs about" in err, err
    assert list(tmp_path.iterdir()) == []


def test_plot_resamples_only_the_stretch_it_draws(tmp_path, capsys, monkeypatch):
    """A 2 s plot at 10 kHz of a record too long to resample whole within the limit is drawn."""
    from synth import limits

    monkeypatch.setattr(limits, "MAX_MEMORY_BYTES", 10 * 1024**2)
    code, err = run(["data", "plot", SAMPLE_RECORD, "--out", tmp_path / "x.png", "--fs", 10000, "--duration", 2],
                    capsys)
    assert code == 0, err
    assert (tmp_path / "x.png").is_file()
