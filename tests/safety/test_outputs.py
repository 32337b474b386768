"""Output safety (synth.outputs): what --force may replace, one writer per output, and what a killed run leaves.

Kills are simulated here by exceptions and by leftovers laid out as a killed run leaves them; real SIGKILLs are in
test_sigkill.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from synth.cli import main
from synth.data.record import Record
from synth.data.writers import write_record
from synth.errors import DataError, OutputExistsError
from synth.outputs import (
    COMMIT,
    MARKER,
    STAGING_MARKER,
    OutputLockedError,
    OutputRefusedError,
    file_is_synth_output,
    folder_refusal,
    output_lock,
    staged_files,
    staged_folder,
)

SAMPLE = Path(__file__).resolve().parents[2] / "synth" / "assets" / "sample" / "ptbxl" / "records100" / "00000"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (hidden ones included)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def synth_folder(path: Path, files: dict[str, str]) -> Path:
    with staged_folder(path) as stage:
        for name, text in files.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_text(text)
    return path


# -- what --force may replace ---------------------------------------------------------------------------------------
def test_a_finished_output_carries_the_marker_listing_every_file(tmp_path):
    out = synth_folder(tmp_path / "out", {"a.txt": "1", "sub/b.txt": "22"})
    marker = json.loads((out / MARKER).read_text())
    assert marker["files"] == {"a.txt": 1, "sub/b.txt": 2} and marker["writer"].startswith("synth")
    assert folder_refusal(out) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no lock, no staging left


@pytest.mark.parametrize("tamper", ["user file", "edited", "no marker", "link"])
def test_force_refuses_a_folder_synth_did_not_write_or_that_was_changed(tmp_path, tamper):
    out = synth_folder(tmp_path / "out", {"a.txt": "1"})
    if tamper == "user file":
        (out / "notes.docx").write_text("mine")
    elif tamper == "edited":
        (out / "a.txt").write_text("my edit")
    elif tamper == "no marker":
        (out / MARKER).unlink()
    else:
        (out / "link").symlink_to(tmp_path)
    before = tree(out)
    with pytest.raises(OutputRefusedError) as exc, staged_folder(out, overwrite=True) as stage:
        (stage / "new.txt").write_text("x")
    assert str(out) in str(exc.value) and "--force will not replace it" in str(exc.value)
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_force_replaces_its_own_output(tmp_path):
    out = synth_folder(tmp_path / "out", {"a.txt": "1"})
    with staged_folder(out, overwrite=True) as stage:
        (stage / "b.txt").write_text("2")
    assert sorted(tree(out)) == [MARKER, "b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_existing_output_is_refused_without_force(tmp_path):
    out = synth_folder(tmp_path / "out", {"a.txt": "1"})
    with pytest.raises(OutputExistsError, match="already exists"), staged_folder(out):
        pass


@pytest.mark.parametrize("where", ["cwd", "parent of cwd", "home", "repository root", "filesystem root"])
def test_protected_folders_are_never_written_into(tmp_path, monkeypatch, capsys, where):
    (tmp_path / "work" / "here").mkdir(parents=True)
    (tmp_path / "user.txt").write_text("precious")
    monkeypatch.chdir(tmp_path / "work" / "here")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    target = {"cwd": ".", "parent of cwd": str(tmp_path / "work"), "home": str(tmp_path / "home"),
              "repository root": str(tmp_path / "repo"), "filesystem root": "/"}[where]
    before = tree(tmp_path)
    code, out, err = run(["generate", "--n", 1, "--out", target, "--force"], capsys)
    assert code == 2 and err.count("\n") == 1 and "will not" in err and "Traceback" not in err
    assert tree(tmp_path) == before


def test_cli_force_refuses_a_folder_of_user_files_and_keeps_them(tmp_path, capsys, use_tiny_checkpoints):
    out = tmp_path / "results"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    code, _, err = run(["generate", "--n", 1, "--out", out, "--force"], capsys)
    assert code == 2 and "synth did not write it" in err and str(out) in err
    assert tree(out) == {"thesis.tex": b"years of work"}
    code, _, err = run(["generate", "--n", 1, "--out", tmp_path / "gen"], capsys)
    assert code == 0
    code, _, err = run(["generate", "--n", 2, "--out", tmp_path / "gen", "--force", "--seed", 3], capsys)
    assert code == 0 and len(list((tmp_path / "gen").glob("ecg_*.hea"))) == 2


@pytest.mark.parametrize("suffix", [".png", ".csv", ".npz", ".hea"])
def test_force_on_a_file_replaces_only_a_file_synth_wrote(tmp_path, capsys, suffix):
    user = tmp_path / f"mine{suffix}"
    user.write_bytes(b"not from synth")
    fmt = {".csv": "csv", ".npz": "npz", ".hea": "wfdb", ".png": None}[suffix]
    argv = (["data", "plot", SAMPLE / "00001_lr", "--out", user] if fmt is None else
            ["data", "convert", SAMPLE / "00001_lr", user, "--to", fmt])
    code, _, err = run([*argv, "--force"], capsys)
    assert code == 2 and "synth did not write it" in err and str(user) in err
    assert user.read_bytes() == b"not from synth"
    mine = tmp_path / f"ours{suffix}"
    own = [a if a != user else mine for a in argv]
    assert run(own, capsys)[0] == 0
    assert file_is_synth_output(mine)
    assert run([*own, "--force"], capsys)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_writers_mark_every_format():
    rec = Record(np.zeros((2, 100), np.float32), 100, ("I", "II"))
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for name in ("r", "r.npz", "r.csv"):
            for path in write_record(rec, Path(d) / name):
                assert file_is_synth_output(path), path
        (Path(d) / "plain.csv").write_text("time_s,I\n0,1\n")
        assert not file_is_synth_output(Path(d) / "plain.csv")


# -- one writer per output --------------------------------------------------------------------------------------------
def test_a_second_writer_gets_one_line_naming_the_holder(tmp_path, capsys, use_tiny_checkpoints):
    out = tmp_path / "gen"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from synth.outputs import output_lock
        with output_lock({str(out)!r}):
            open({str(tmp_path / 'held')!r}, 'w').close()
            time.sleep(60)
    """)])
    try:
        for _ in range(300):
            if (tmp_path / "held").exists():
                break
            time.sleep(0.05)
        code, _, err = run(["generate", "--n", 1, "--out", out], capsys)
        assert code == 2 and err.count("\n") == 1 and str(out) in err
        assert f"pid {holder.pid}" in err and "being written by another synth run" in err
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    assert run(["generate", "--n", 1, "--out", out], capsys)[0] == 0  # the dead holder's lock is free
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen", "held"]


def test_lock_is_exclusive_within_a_process_too(tmp_path):
    with output_lock(tmp_path / "x"), pytest.raises(OutputLockedError), output_lock(tmp_path / "x"):
        pass
    assert list(tmp_path.iterdir()) == []


# -- what a killed run leaves, and the next run ---------------------------------------------------------------------
def test_stale_staging_is_removed_and_the_rerun_succeeds(tmp_path):
    stale = tmp_path / ".out.synth-staging"
    stale.mkdir()
    (stale / STAGING_MARKER).write_text(json.dumps({"resume_key": None}))
    (stale / "half.dat").write_bytes(b"\0" * 10)
    (tmp_path / ".out.synth-lock").write_text("{}")  # a dead run's lock file: the lock itself died with it
    synth_folder(tmp_path / "out", {"a.txt": "1"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staging_with_the_same_resume_key_is_handed_back(tmp_path):
    with pytest.raises(KeyboardInterrupt), staged_folder(tmp_path / "out", resume_key="k1") as stage:
        (stage / "chunk0").write_text("done")
        raise KeyboardInterrupt
    with staged_folder(tmp_path / "out", resume_key="k1") as stage:
        assert (stage / "chunk0").read_text() == "done"
    assert sorted(tree(tmp_path / "out")) == [MARKER, "chunk0"]
    with pytest.raises(KeyboardInterrupt), staged_folder(tmp_path / "b", resume_key="k1") as stage:
        (stage / "chunk0").write_text("done")
        raise KeyboardInterrupt
    # Other settings cannot resume it: its finished work is refused to be lost, and discarded only with --force.
    with pytest.raises(OutputRefusedError, match="other settings left 1 finished file"), \
            staged_folder(tmp_path / "b", resume_key="other settings"):
        pass
    assert (tmp_path / ".b.synth-staging" / "chunk0").read_text() == "done"
    with staged_folder(tmp_path / "b", resume_key="other settings", overwrite=True) as stage:
        assert list(stage.iterdir()) == [stage / STAGING_MARKER]  # not reused
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "out"]


def test_a_resumable_run_keeps_its_work_when_it_fails_halfway(tmp_path):
    """A bad value met halfway (a SynthError) does not throw away what a resumable run finished."""
    with pytest.raises(DataError), staged_folder(tmp_path / "out", resume_key="k1") as stage:
        (stage / "chunk0").write_text("done")
        raise DataError("a value out of range in the third shard")
    with staged_folder(tmp_path / "out", resume_key="k1") as stage:
        assert (stage / "chunk0").read_text() == "done"
    with pytest.raises(DataError), staged_folder(tmp_path / "plain") as stage:  # nothing to resume: nothing left
        (stage / "chunk0").write_text("done")
        raise DataError("bad")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_force_refuses_a_folder_edited_without_changing_sizes(tmp_path):
    out = synth_folder(tmp_path / "out", {"leads.csv": "I,False\n"})
    time.sleep(0.01)
    (out / "leads.csv").write_text("I,Fixed\n")  # the same number of bytes
    with pytest.raises(OutputRefusedError, match="files changed since synth wrote them"), \
            staged_folder(out, overwrite=True):
        pass
    assert (out / "leads.csv").read_text() == "I,Fixed\n"


def test_a_marker_without_modification_times_is_checked_by_size(tmp_path):
    """Outputs written before synth recorded modification times can still be replaced."""
    out = synth_folder(tmp_path / "out", {"a.txt": "1"})
    meta = json.loads((out / MARKER).read_text())
    del meta["mtimes_ns"]
    (out / MARKER).write_text(json.dumps(meta))
    os.utime(out / "a.txt", ns=(0, 0))
    assert folder_refusal(out) is None


def test_a_folder_we_did_not_make_is_not_taken_for_staging(tmp_path):
    (tmp_path / ".out.synth-staging").mkdir()
    (tmp_path / ".out.synth-staging" / "user.txt").write_text("x")
    with pytest.raises(OutputRefusedError, match="synth did not make it"), staged_folder(tmp_path / "out"):
        pass
    assert (tmp_path / ".out.synth-staging" / "user.txt").read_text() == "x"


def test_replacement_killed_between_its_renames_restores_the_previous_output(tmp_path):
    out = synth_folder(tmp_path / "out", {"old.txt": "previous"})
    new = synth_folder(tmp_path / "new", {"new.txt": "next"})
    os.replace(out, tmp_path / ".out.synth-old")  # the first rename happened ...
    os.replace(new, tmp_path / ".out.synth-staging")  # ... the second did not
    with pytest.raises(OutputExistsError), staged_folder(out):
        pass
    assert tree(out)["old.txt"] == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replacement_killed_after_its_renames_drops_the_old_copy(tmp_path):
    out = synth_folder(tmp_path / "out", {"new.txt": "next"})
    synth_folder(tmp_path / "old", {"old.txt": "previous"}).rename(tmp_path / ".out.synth-old")
    with staged_folder(out, overwrite=True) as stage:
        (stage / "third.txt").write_text("3")
    assert sorted(tree(out)) == [MARKER, "third.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_committed_file_unit_is_finished_by_the_next_run(tmp_path):
    staging = tmp_path / ".clip.mp4.synth-staging"
    staging.mkdir()
    (staging / "clip.png").write_bytes(b"png")
    (staging / "clip.mp4").write_bytes(b"mp4")
    (staging / COMMIT).write_text(json.dumps(["clip.png", "clip.mp4"]))
    os.replace(staging / "clip.png", tmp_path / "clip.png")  # killed after the first move
    with pytest.raises(OutputExistsError), staged_files([tmp_path / "clip.png", tmp_path / "clip.mp4"]):
        pass  # the rerun finds the unit finished, so the output now exists
    assert (tmp_path / "clip.mp4").read_bytes() == b"mp4" and (tmp_path / "clip.png").read_bytes() == b"png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip.png"]


def test_an_uncommitted_file_unit_is_discarded(tmp_path):
    with pytest.raises(RuntimeError, match="disk"), staged_files([tmp_path / "a.png", tmp_path / "a.mp4"]) as stage:
        (stage / "a.png").write_bytes(b"png")
        raise RuntimeError("disk gone")
    assert list(tmp_path.iterdir()) == []


def test_a_mark_that_merely_starts_with_synth_is_not_synths(tmp_path, capsys):
    """Files of other tools whose mark begins with "synth" (synthwave, synthetic, synthesized) are not replaced."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    csv = tmp_path / "mylab.csv"
    csv.write_text("# synthetic ECGs exported by my lab pipeline v2\ntime_s,II\n0,0.1\n")
    hea = tmp_path / "myrec.hea"
    hea.write_text("myrec 1 100 3\nmyrec.dat 16 1000/mV 16 0 0 0 0 II\n# synthesized by hand, do not lose\n")
    png = tmp_path / "art.png"
    plt.figure().savefig(png, metadata={"Software": "synthwave-art 1.0"})
    plt.close("all")
    for user in (csv, hea, png):
        before = user.read_bytes()
        assert not file_is_synth_output(user), user
        argv = (["data", "plot", SAMPLE / "00001_lr", "--out", user] if user.suffix == ".png" else
                ["data", "convert", SAMPLE / "00001_lr", user.with_suffix("") if user.suffix == ".hea" else user,
                 "--to", "wfdb" if user.suffix == ".hea" else "csv"])
        code, _, err = run([*argv, "--force"], capsys)
        assert code == 2 and "synth did not write it" in err, err
        assert user.read_bytes() == before


def test_a_dat_counts_as_synths_only_while_it_is_the_one_written_with_its_header(tmp_path, capsys):
    rec = Record(np.zeros((2, 100), np.float32), 100, ("I", "II"))
    hea, dat = write_record(rec, tmp_path / "r")
    assert file_is_synth_output(hea) and file_is_synth_output(dat)
    dat.write_bytes(b"my own samples, not synth's")
    assert file_is_synth_output(hea) and not file_is_synth_output(dat)
    code, _, err = run(["data", "convert", SAMPLE / "00001_lr", tmp_path / "r", "--to", "wfdb", "--force"], capsys)
    assert code == 2 and "r.dat" in err and "synth did not write it" in err
    assert dat.read_bytes() == b"my own samples, not synth's"


def test_every_file_of_a_unit_is_locked_and_rechecked_before_it_lands(tmp_path):
    png, mp4 = tmp_path / "clip.png", tmp_path / "clip.mp4"
    with output_lock(png):  # another run writes the PNG: the unit does not start
        with pytest.raises(OutputLockedError), staged_files([png, mp4]):
            pass
    with pytest.raises(OutputExistsError), staged_files([png, mp4]) as stage:
        (stage / png.name).write_text("ours")
        (stage / mp4.name).write_text("ours")
        png.write_text("theirs")  # put there by hand while we worked: not replaced without --force
    assert png.read_text() == "theirs" and not mp4.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.png"]


def test_force_refuses_before_any_work_a_synth_folder_it_could_not_delete(tmp_path, monkeypatch):
    out = synth_folder(tmp_path / "out", {"a.txt": "x", "sub/b.txt": "y"})
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == out / "sub" else real_access(p, mode))
    with pytest.raises(OutputRefusedError, match="could not delete it afterwards .sub is read-only"):
        with staged_folder(out, overwrite=True):
            raise AssertionError("no work may start")
    assert tree(out)["sub/b.txt"] == b"y" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_tool_replaces_an_unmarked_folder_it_owns_and_leaves_no_old_copy(tmp_path):
    """What tools/ship_checkpoint.py does: checkpoint folders carry no marker; its own test says what it may replace."""
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with staged_folder(folder, overwrite=True, owned=lambda p: None, mark=False) as stage:
        (stage / "config.json").write_text('{"new": 1}')
    assert tree(folder) == {"config.json": b'{"new": 1}'}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_a_link_in_place_of_the_lock_file_is_refused_and_its_target_kept(tmp_path, kind):
    """The lock is truncated and written: a link planted at .NAME.synth-lock must not make synth overwrite
    the file it points to."""
    victim = tmp_path / "thesis.txt"
    victim.write_text("my thesis")
    lock = tmp_path / ".out.synth-lock"
    if kind == "symlink":
        lock.symlink_to(victim)
    else:
        os.link(victim, lock)
    with pytest.raises(OutputRefusedError, match="synth-lock beside it is"), staged_folder(tmp_path / "out"):
        pass
    assert victim.read_text() == "my thesis" and not (tmp_path / "out").exists()
