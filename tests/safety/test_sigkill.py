"""SIGKILL in the middle of generate, reconstruct, ppg2ecg, echo and convert: the previous output (or none) is intact,
the same command run again succeeds, and nothing is left behind. A killed generate keeps what it had made: the rerun
continues from there and writes the same records as an uninterrupted run.

Each victim runs in its own process (tests/safety/killpoint.py plants a pause at a chosen call, then the test
kills it with SIGKILL, which no handler can intercept); the reruns go through ``synth.cli.main`` in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synth.cli import main
from synth.data.readers import read_record
from synth.data.sample import sample_bidmc_root, sample_ptbxl_root
from synth.outputs import COMMIT, MARKER

KILLPOINT = Path(__file__).with_name("killpoint.py")
RECORD = sample_ptbxl_root() / "records100" / "00000" / "00001_lr"
PPG = sample_bidmc_root() / "bidmc_csv" / "bidmc_46_Signals.csv.gz"

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def kill_at(tmp_path: Path, target: str, call: int, argv: list, checkpoints: Path) -> None:
    """Run ``synth ARGV`` in a child that pauses before call ``call`` of ``target``; SIGKILL it there."""
    ready = tmp_path / "ready"
    env = {**os.environ, "SYNTH_CHECKPOINTS": str(checkpoints), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(KILLPOINT), str(ready), target, str(call), "--",
                             *[str(a) for a in argv]], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while not ready.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the kill point {target} #{call}: {proc.stderr.read().decode()[-2000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"the run did not reach {target} #{call}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ready.unlink()


def leftovers(folder: Path) -> list[str]:
    """synth's working files anywhere under ``folder`` (staging, locks, journals, partial files)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if ".synth-" in p.name and p.name != MARKER or ".part" in p.name)


def rerun(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_killed_generate_resumes_and_writes_what_an_uninterrupted_run_writes(tmp_path, capsys, use_tiny_checkpoints):
    args = ["generate", "--report", "sinus rhythm", "--n", 6, "--batch-size", 2, "--seed", 7, "--plot", 1]
    kill_at(tmp_path, "synth.tasks.generate:sample_batch", 3, [*args, "--out", tmp_path / "gen"], use_tiny_checkpoints)
    staging = tmp_path / ".gen.synth-staging"
    assert not (tmp_path / "gen").exists() and staging.is_dir()
    made = sorted(p.name for p in staging.glob("ecg_*.hea"))
    assert made == ["ecg_00000.hea", "ecg_00001.hea", "ecg_00002.hea", "ecg_00003.hea"]  # two chunks kept
    code, out, err = rerun([*args, "--out", tmp_path / "gen"], capsys)
    assert code == 0, err
    assert "resuming: 4 of 6 records" in out
    assert rerun([*args, "--out", tmp_path / "whole"], capsys)[0] == 0  # uninterrupted, for comparison
    for name in ("metadata.csv", *(f"ecg_{k:05d}{s}" for k in range(6) for s in (".hea", ".dat"))):
        assert (tmp_path / "gen" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert leftovers(tmp_path) == []


def test_killed_generate_with_other_settings_keeps_its_work_until_force(tmp_path, capsys, use_tiny_checkpoints):
    """A rerun with other settings cannot resume the killed run: it is refused (the work is kept) unless --force,
    which starts afresh."""
    args = ["generate", "--n", 4, "--batch-size", 2, "--plot", 0, "--out", tmp_path / "gen"]
    kill_at(tmp_path, "synth.tasks.generate:sample_batch", 2, args, use_tiny_checkpoints)
    staging = tmp_path / ".gen.synth-staging"
    kept = sorted(p.name for p in staging.iterdir())
    code, _, err = rerun([*args, "--seed", 1], capsys)
    assert code == 2 and "an unfinished run with other settings left" in err and "--force" in err, err
    assert sorted(p.name for p in staging.iterdir()) == kept
    code, out, _ = rerun([*args, "--seed", 1, "--force"], capsys)
    assert code == 0 and "resuming" not in out
    assert len(list((tmp_path / "gen").glob("ecg_*.dat"))) == 4 and leftovers(tmp_path) == []


def test_killed_reconstruct_leaves_the_old_output_and_the_rerun_replaces_it(tmp_path, capsys, use_tiny_checkpoints):
    args = ["reconstruct", RECORD, "--leads", "II,V1,V5", "--out", tmp_path / "rec"]
    assert rerun(args, capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "rec").iterdir()}
    kill_at(tmp_path, "synth.tasks.common:write_table", 1, [*args, "--force", "--seed", 5], use_tiny_checkpoints)
    assert {p.name: p.read_bytes() for p in (tmp_path / "rec").iterdir()} == before  # untouched
    code, _, err = rerun([*args, "--force", "--seed", 5], capsys)
    assert code == 0, err
    assert read_record(tmp_path / "rec" / "reconstructed").leads[0] == "I" and leftovers(tmp_path) == []


def test_killed_ppg2ecg_reruns_cleanly(tmp_path, capsys, use_tiny_checkpoints):
    args = ["ppg2ecg", PPG, "--duration", 12, "--out", tmp_path / "ppg"]
    kill_at(tmp_path, "synth.data.writers:write_record", 1, args, use_tiny_checkpoints)
    assert not (tmp_path / "ppg").exists()
    code, _, err = rerun(args, capsys)
    assert code == 0, err
    assert (tmp_path / "ppg" / "ecg.hea").is_file() and leftovers(tmp_path) == []


def test_killed_echo_leaves_neither_file_and_the_rerun_writes_both(tmp_path, capsys, use_tiny_checkpoints):
    args = ["echo", "--ecg", RECORD, "--out", tmp_path / "clip.mp4"]
    kill_at(tmp_path, "synth.echo.filmstrip:write_filmstrip", 1, args, use_tiny_checkpoints)  # MP4 made, PNG not
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []
    code, _, err = rerun(args, capsys)
    assert code == 0, err
    assert (tmp_path / "clip.mp4").stat().st_size > 0 and (tmp_path / "clip.png").stat().st_size > 0
    assert leftovers(tmp_path) == []


def test_convert_killed_between_its_two_renames_is_finished_by_the_next_run(tmp_path, capsys, use_tiny_checkpoints):
    args = ["data", "convert", RECORD, tmp_path / "rec", "--to", "wfdb"]
    kill_at(tmp_path, "synth.outputs:_move", 2, args, use_tiny_checkpoints)  # .dat in place, .hea not yet
    assert (tmp_path / "rec.dat").exists() and not (tmp_path / "rec.hea").exists()
    assert (tmp_path / ".rec.hea.synth-staging" / COMMIT).is_file()
    code, _, err = rerun(args, capsys)  # finishes the committed unit, which now exists
    assert code == 2 and "already exists" in err
    assert read_record(tmp_path / "rec").n_samples == 1000 and leftovers(tmp_path) == []
    assert rerun([*args, "--force"], capsys)[0] == 0 and leftovers(tmp_path) == []


def test_convert_killed_while_writing_leaves_nothing(tmp_path, capsys, use_tiny_checkpoints):
    args = ["data", "convert", RECORD, tmp_path / "rec.npz", "--to", "npz"]
    kill_at(tmp_path, "synth.data.writers:write_npz", 1, args, use_tiny_checkpoints)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []
    assert rerun(args, capsys)[0] == 0 and leftovers(tmp_path) == []
