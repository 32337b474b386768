"""Exact resume: stop/resume equals an uninterrupted run, a SIGKILLed run picks up from its last checkpoint,
interrupted saves are ignored, and pickled training state is refused."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from synth.checkpoint import CheckpointError, load_weights
from synth.training import Trainer
from synth.training.state import STATE_FILE, latest_checkpoint, list_checkpoints

from .toy import ToySignals, make_toy, toy_config

TOY_SCRIPT = Path(__file__).with_name("toy.py")
REPO = Path(__file__).resolve().parents[2]


def run(out_dir: Path, stop_at: int | None = None, **cfg) -> tuple[Trainer, list[int]]:
    model = make_toy()
    trainer = Trainer(model, toy_config(out_dir, **cfg), ToySignals(n=40), ToySignals(n=8, seed=1))
    trainer.fit(stop_at_step=stop_at)
    return trainer, model.seen


def test_stop_and_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    # grad_accum 2 × batch 8 over 40 samples: epochs (5 micro-batches) end in the middle of an update.
    cfg = dict(steps=16, grad_accum=2, ckpt_every=4, val_every=5, log_every=3)
    straight, seen_straight = run(tmp_path / "straight", **cfg)
    first, seen_first = run(tmp_path / "split", stop_at=7, **cfg)  # 7: not a checkpoint step, saved on stop
    assert first.step == 7 and latest_checkpoint(tmp_path / "split" / "checkpoints").name == "step-00000007"
    resumed, seen_rest = run(tmp_path / "split", **cfg)
    assert resumed.resumed_from is not None and resumed.step == 16

    torch.testing.assert_close(resumed.model.state_dict(), straight.model.state_dict(), rtol=0, atol=0)
    torch.testing.assert_close(resumed.ema.state_dict(), straight.ema.state_dict(), rtol=0, atol=0)
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]
    assert seen_first + seen_rest == seen_straight
    assert len(seen_straight) == 16 * 2 * 8
    for start in range(0, len(seen_straight) - 40 + 1, 40):  # every epoch is a permutation: no repeat, no skip
        assert sorted(seen_straight[start:start + 40]) == list(range(40))
    # The log of the resumed run continues the first one without duplicated steps.
    straight_log = (tmp_path / "straight" / "train_log.csv").read_text().splitlines()
    split_log = (tmp_path / "split" / "train_log.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in split_log] == [r.split(",")[:2] for r in straight_log]
    assert [r.split(",")[:5] for r in split_log[:3]] == [r.split(",")[:5] for r in straight_log[:3]]  # kept rows
    assert len(list_checkpoints(tmp_path / "split" / "checkpoints")) == 2  # keep_last


def test_sigkilled_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(TOY_SCRIPT), str(out), "30", "0.05"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    try:
        while not list_checkpoints(out / "checkpoints"):
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model").exists()
    killed_at = latest_checkpoint(out / "checkpoints")

    done = subprocess.run(cmd[:-1] + ["0"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed_from = Path(done.stdout.split("resumed_from=")[1].split()[0])
    assert int(resumed_from.name.split("-")[1]) >= int(killed_at.name.split("-")[1]) >= 5
    # Same result as a run that was never killed.
    reference, _ = run(tmp_path / "reference", steps=30)
    torch.testing.assert_close(load_weights(out / "model"), load_weights(reference.out_dir / "model"), rtol=0, atol=0)
    assert [r.split(",")[0] for r in (out / "train_log.csv").read_text().splitlines()[1:]] == \
        [str(s) for s in range(1, 31)]


def test_interrupted_save_is_ignored(tmp_path: Path) -> None:
    first, _ = run(tmp_path, stop_at=5, steps=10)
    half_written = tmp_path / "checkpoints" / ".tmp-step-00000010"
    half_written.mkdir()
    (half_written / "model.safetensors").write_bytes(b"\0" * 10)  # what a kill during the next save leaves
    resumed, _ = run(tmp_path, steps=10)
    assert resumed.resumed_from.name == "step-00000005" and resumed.step == 10
    assert not half_written.exists()


UNPICKLED: list[str] = []


def _record_unpickling() -> str:
    UNPICKLED.append("loaded")
    return "payload"


class Payload:
    """Unpickling this would run code (here: harmless bookkeeping)."""

    def __reduce__(self):
        return (_record_unpickling, ())


def test_pickled_training_state_is_refused(tmp_path: Path) -> None:
    run(tmp_path, stop_at=5, steps=10)
    state_file = latest_checkpoint(tmp_path / "checkpoints") / STATE_FILE
    state = torch.load(state_file, weights_only=True)
    state["optimizer"]["extra"] = Payload()
    with open(state_file, "wb") as fh:
        pickle.dump(state, fh, protocol=2)
    with pytest.raises(CheckpointError, match="refused"):
        run(tmp_path, steps=10)
    assert UNPICKLED == []


def test_resume_refuses_other_data(tmp_path: Path) -> None:
    run(tmp_path, stop_at=5, steps=10)
    with pytest.raises(CheckpointError, match="samples per epoch"):
        Trainer(make_toy(), toy_config(tmp_path, steps=10), ToySignals(n=24))


def test_resume_with_worker_processes(tmp_path: Path) -> None:
    """Workers prefetch batches ahead of the loop; the position counts consumed batches, not fetched ones."""
    cfg = dict(steps=8, num_workers=2, ckpt_every=8)
    straight, seen_straight = run(tmp_path / "straight", **cfg)
    _, seen_first = run(tmp_path / "split", stop_at=3, **cfg)
    resumed, seen_rest = run(tmp_path / "split", **cfg)
    assert seen_first + seen_rest == seen_straight and len(seen_first) == 24
    torch.testing.assert_close(resumed.model.state_dict(), straight.model.state_dict(), rtol=0, atol=0)
