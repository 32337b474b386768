"""The command line: output of the info/convert/plot/demo commands and its error contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from synth import __version__
from synth.cli import main
from synth.data.readers import read_record
from synth.data.sample import sample_bidmc_root, sample_ptbxl_root

SAMPLE_RECORD = sample_ptbxl_root() / "records100" / "00000" / "00001_lr"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_info_on_shipped_ptbxl_sample(capsys):
    code, out, _ = run(["data", "info", sample_ptbxl_root()], capsys)
    assert code == 0
    assert "records       160 (100 Hz: 160; 500 Hz: 20)" in out
    assert "12: I II III aVR aVL aVF V1 V2 V3 V4 V5 V6" in out
    assert "folds         1:16 2:16 3:16 4:16 5:16 6:16 7:16 8:16 9:16 10:16" in out
    assert "NORM" in out and "HYP" in out


@pytest.mark.shared_data
def test_info_on_shared_ptbxl_reports_counts(ptbxl_root, capsys):
    import pandas as pd

    db = pd.read_csv(ptbxl_root / "ptbxl_database.csv")
    n_hr = len(list((ptbxl_root / "records500").rglob("*_hr.hea")))
    code, out, _ = run(["data", "info", ptbxl_root], capsys)
    assert code == 0
    assert f"records       {len(db)} (100 Hz: {len(db)}; 500 Hz: {n_hr})" in out
    folds = db["strat_fold"].value_counts().sort_index()
    assert "folds         " + " ".join(f"{k}:{v}" for k, v in folds.items()) in out
    assert "superclasses  NORM" in out
    assert "12: I II III aVR aVL aVF V1 V2 V3 V4 V5 V6" in out


@pytest.mark.shared_data
def test_info_on_shared_bidmc_reports_53_subjects(bidmc_root, capsys):
    code, out, _ = run(["data", "info", bidmc_root], capsys)
    assert code == 0
    assert "subjects      53" in out
    assert "train 37, val 8, test 8" in out


def test_info_json_on_a_record(capsys):
    import json

    code, out, _ = run(["data", "info", SAMPLE_RECORD, "--json"], capsys)
    assert code == 0
    info = json.loads(out)
    assert info["fs_hz"] == 100 and info["samples"] == 1000 and len(info["leads"]) == 12


def test_convert_resamples_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "rec.npz"
    code, _, _ = run(["data", "convert", SAMPLE_RECORD, out, "--to", "npz", "--fs", "500"], capsys)
    assert code == 0
    rec = read_record(out)
    assert rec.fs_hz == 500 and rec.signal.shape == (12, 5000)
    before = out.read_bytes()
    code, _, err = run(["data", "convert", SAMPLE_RECORD, out, "--to", "npz"], capsys)
    assert code == 2 and "already exists" in err and str(out) in err
    assert out.read_bytes() == before
    code, _, _ = run(["data", "convert", SAMPLE_RECORD, out, "--to", "npz", "--force"], capsys)
    assert code == 0 and read_record(out).fs_hz == 100


def test_convert_lead_subset_to_wfdb_and_csv(tmp_path, capsys):
    code, _, _ = run(["data", "convert", SAMPLE_RECORD, tmp_path / "three", "--to", "wfdb", "--leads", "3lead"], capsys)
    assert code == 0
    three = read_record(tmp_path / "three")
    assert three.leads == ("II", "V1", "V5")
    full = read_record(SAMPLE_RECORD)
    np.testing.assert_allclose(three.signal, full.select(["II", "V1", "V5"]).signal, atol=1e-3)
    code, _, _ = run(["data", "convert", tmp_path / "three", tmp_path / "three.csv", "--to", "csv"], capsys)
    assert code == 0
    np.testing.assert_allclose(read_record(tmp_path / "three.csv").signal, three.signal, atol=1e-5)


def test_plot_writes_png(tmp_path, capsys):
    out = tmp_path / "ecg.png"
    code, _, _ = run(["data", "plot", SAMPLE_RECORD, "--out", out], capsys)
    assert code == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_bidmc_record_uses_ppg_view(tmp_path, capsys):
    out = tmp_path / "ppg.png"
    src = sample_bidmc_root() / "bidmc_csv" / "bidmc_46_Signals.csv.gz"
    code, _, _ = run(["data", "plot", src, "--out", out, "--start", "20"], capsys)
    assert code == 0 and out.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["data", "info", "/no/such/record"], "/no/such/record"),
        (["data", "convert", "/no/such.csv", "x.npz", "--to", "npz"], "/no/such.csv"),
        (["data", "plot", str(SAMPLE_RECORD), "--out", "plot.jpg"], "PNG"),
        (["data", "convert", str(SAMPLE_RECORD), "x", "--to", "wfdb", "--leads", "II,XYZ"], "XYZ"),
        (["data", "info", str(SAMPLE_RECORD), "--fs", "0"], "argument --fs: 0 is outside the range 10-10,000"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_console_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "synth.cli", "data", "info", str(tmp_path / "missing.hea")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "missing" in proc.stderr


def test_demo_writes_folder_and_refuses_existing(tmp_path, capsys, monkeypatch):
    """The demo as `make demo` runs it, on the shipped checkpoints (tests/tasks/test_demo.py covers tiny ones)."""
    import re

    from synth.demo import DEMO_CHECKPOINTS
    from synth.tasks import checkpoints_root

    monkeypatch.delenv("SYNTH_CHECKPOINTS", raising=False)
    missing = [n for n in DEMO_CHECKPOINTS if not (checkpoints_root() / n / "config.json").is_file()]
    if missing:
        pytest.skip(f"shipped checkpoints {missing} are not in {checkpoints_root()} yet (trained separately); "
                    "tests/tasks/test_demo.py runs the demo on tiny checkpoints")
    out = tmp_path / "demo"
    code, stdout, err = run(["demo", "--out", out], capsys)
    assert code == 0, err
    summary = (out / "summary.md").read_text()
    assert "## Report → 12-lead" in summary and "### From II, V1, V5" in summary and "## PPG → ECG" in summary
    assert "## ECG → echo" in summary and (out / "echo" / "echo.mp4").is_file()
    links = re.findall(r"\]\(([^)]+\.png)\)", summary)
    assert len(links) >= 8 and all((out / link).is_file() for link in links)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".demo")]
    code, _, err = run(["demo", "--out", out], capsys)
    assert code == 2 and "already exists" in err


REPO = Path(__file__).resolve().parents[1]


def test_registry_lists_every_kind(capsys):
    code, out, _ = run(["registry"], capsys)
    assert code == 0
    lines = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert {"diffusion", "flow"} <= set(lines["backbones"].replace(",", " ").split())
    assert {"text", "labels", "demographics", "leads", "ppg"} <= set(lines["adapters"].replace(",", " ").split())
    assert {"ddpm", "ddim", "dpmsolver++", "euler", "heun"} <= set(lines["samplers"].replace(",", " ").split())


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    import os

    out = tmp_path_factory.mktemp("train") / "run"
    cwd = os.getcwd()
    os.chdir(REPO)  # the preset names its model and data relative to the repository root
    try:
        code = main(["train", "configs/train/tiny.yaml", f"out_dir={out}", "steps=4", "ckpt_every=2",
                     "val_every=2", "log_every=2", "sample_every=2"])
    finally:
        os.chdir(cwd)
    assert code == 0
    return out / "model"


def test_train_exports_a_loadable_model_and_plots_samples(tiny_export):
    assert (tiny_export / "config.json").exists() and (tiny_export / "model.safetensors").exists()
    plots = sorted(p.name for p in (tiny_export.parent / "samples").glob("step-*.png"))
    assert plots == ["step-00000002.png", "step-00000004.png"]


def test_sample_writes_records_deterministically(tiny_export, tmp_path, capsys):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 1), (b, 1), (c, 2)):
        code, _, err = run(["sample", tiny_export, "--out", out, "--n", "3", "--seed", seed, "--steps", "2"], capsys)
        assert code == 0, err
    recs = [read_record(p / "sample_00002") for p in (a, b, c)]
    assert recs[0].leads[:3] == ("I", "II", "III") and recs[0].fs_hz == 100
    np.testing.assert_array_equal(recs[0].signal, recs[1].signal)
    assert not np.allclose(recs[0].signal, recs[2].signal)
    assert (a / "metadata.csv").read_text().count("\n") == 4 and (a / "sample_00000.png").exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--n", "0"], "argument --n: 0 is outside the range 1-"), (["--report", "sinus rhythm"], "takes no report"),
     (["--labels", "NORM"], "takes no labels")],
)
def test_sample_bad_input(tiny_export, tmp_path, capsys, extra, needle):
    code, _, err = run(["sample", tiny_export, "--out", tmp_path / "o", *extra], capsys)
    assert code == 2 and needle in err
    assert not (tmp_path / "o").exists() and list(tmp_path.iterdir()) == []


def test_sample_refuses_an_existing_folder_and_a_non_export(tiny_export, tmp_path, capsys):
    (tmp_path / "o").mkdir()
    code, _, err = run(["sample", tiny_export, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "already exists" in err
    code, _, err = run(["sample", tmp_path, "--out", tmp_path / "p"], capsys)
    assert code == 2 and "config.json" in err


@pytest.mark.parametrize("raised", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried "
                 "to allocate 9663676416 bytes."),
    MemoryError(),
])
def test_a_failed_allocation_is_one_line_not_a_traceback(raised, capsys, monkeypatch, tmp_path):
    """torch's CPU allocator raises a RuntimeError when a batch does not fit: the user gets the one-line advice."""
    import synth.cli.data as data_cli

    def fail(args):
        raise raised

    monkeypatch.setattr(data_cli, "cmd_info", fail)
    code = main(["data", "info", str(sample_ptbxl_root())])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("synth: error: out of memory") and err.count("\n") == 1, err


def test_other_runtime_errors_are_not_taken_for_memory(monkeypatch):
    import synth.cli.data as data_cli

    def fail(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(data_cli, "cmd_info", fail)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["data", "info", str(sample_ptbxl_root())])
