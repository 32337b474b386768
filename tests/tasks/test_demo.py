"""``synth demo`` end to end on the tiny checkpoints (behaviour, not quality), and its error when one is missing.
The same demo on the shipped checkpoints is ``tests/test_cli.py::test_demo_writes_folder_and_refuses_existing``."""

from __future__ import annotations

import re
import shutil

from synth.cli import main
from synth.data.readers import read_record
from synth.outputs import MARKER, staged_folder


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_on_tiny_checkpoints_writes_records_plots_and_summary(use_tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, err = run(["demo", "--out", out], capsys)
    assert code == 0, err
    summary = (out / "summary.md").read_text()
    for heading in ("## Report → 12-lead", "## 100 Hz → 500 Hz", "### From II, V1, V5", "### From II", "## PPG → ECG",
                    "## ECG → echo"):
        assert heading in summary
    assert "Sinusrhythmus" in summary and "ecg_id" in summary and "fold 10" in summary
    assert re.search(r"RMSE \*\*\d+\.\d+ mV\*\*, Pearson r \*\*-?\d\.\d+\*\*", summary)
    links = re.findall(r"\]\(([^)]+\.png)\)", summary)
    assert len(links) >= 8 and all((out / link).is_file() for link in links)
    assert read_record(out / "reconstruct_3lead" / "reconstructed").leads[6] == "V1"
    assert read_record(out / "ppg2ecg" / "ecg").leads == ("II",)
    assert len(list((out / "generate").glob("prompt*_[0-9].hea"))) == 8
    at500 = read_record(out / "generate" / "prompt0_0_500hz")
    assert at500.fs_hz == 500 and at500.signal.shape[-1] == 5 * read_record(out / "generate" / "prompt0_0").n_samples
    assert re.search(r"\d+\.\d+ % of its power lies above 50 Hz", summary)
    assert (out / "echo" / "echo.mp4").stat().st_size > 0 and (out / "echo" / "echo.png").is_file()
    assert re.search(r"mean absolute \*\*(\d+|n/a)( ms)?\*\*", summary)
    assert re.search(r"R-peaks \(marked ▼ real, ▲ generated\): (\d+|n/a) % .* median timing error \*\*(\d+|n/a)"
                     r"( ms)?\*\*", summary)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".demo")]
    code, _, err = run(["demo", "--out", out], capsys)
    assert code == 2 and "already exists" in err


def test_demo_fails_naming_a_missing_checkpoint_and_keeps_the_old_output(tiny_checkpoints, tmp_path, capsys,
                                                                         monkeypatch):
    partial = tmp_path / "ck"
    shutil.copytree(tiny_checkpoints / "report2ecg", partial / "report2ecg")
    shutil.copytree(tiny_checkpoints / "ppg2ecg", partial / "ppg2ecg")
    monkeypatch.setenv("SYNTH_CHECKPOINTS", str(partial))
    old = tmp_path / "demo"
    with staged_folder(old) as stage:  # an earlier demo (a synth output: --overwrite may replace it)
        (stage / "keep.txt").write_text("previous run")
    code, _, err = run(["demo", "--out", old, "--overwrite"], capsys)
    assert code == 2 and str(partial / "reconstruct") in err and "not found" in err
    assert sorted(p.name for p in old.iterdir()) == [MARKER, "keep.txt"]
    assert (old / "keep.txt").read_text() == "previous run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "demo"]
