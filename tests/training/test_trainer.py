"""The trainer on a toy protocol model: learning, accumulation, EMA export, logs, hooks, and the YAML entry point."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from synth.checkpoint import load_weights
from synth.config import ConfigError
from synth.training import Trainer, load_train_config
from synth.training.trainer import TrainingError, warmup_cosine

from .toy import ToySignals, make_toy, toy_config

REPO = Path(__file__).resolve().parents[2]


def read_log(out_dir: Path) -> list[dict[str, str]]:
    with open(out_dir / "train_log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_loss_falls(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, steps=50, lr=1e-2, ckpt_every=50)
    Trainer(make_toy(dropout=0.0), cfg, ToySignals()).fit()
    losses = [float(r["loss"]) for r in read_log(tmp_path)]
    assert len(losses) == 50
    assert sum(losses[-5:]) / 5 < 0.3 * sum(losses[:5]) / 5


def test_accumulating_two_micro_batches_equals_one_double_batch(tmp_path: Path) -> None:
    runs = {}
    for name, batch, accum in [("big", 16, 1), ("accum", 8, 2)]:
        model = make_toy(noise_std=0.0, dropout=0.0)  # deterministic loss: only the batching differs
        cfg = toy_config(tmp_path / name, steps=4, batch_size=batch, grad_accum=accum, clip_norm=0.0)
        Trainer(model, cfg, ToySignals(n=48)).fit()  # 48 = 3 × 16: epochs end at the same sample in both runs
        runs[name] = (model.state_dict(), [float(r["grad_norm"]) for r in read_log(tmp_path / name)])
    # Adam hides a constant gradient scale, so compare the gradient norms too: a sum instead of a mean shows there.
    torch.testing.assert_close(runs["accum"][1], runs["big"][1], rtol=1e-5, atol=0)
    torch.testing.assert_close(runs["accum"][0], runs["big"][0], rtol=1e-5, atol=1e-6)
    assert all(n > 0 for n in runs["big"][1])


def test_ema_weights_are_exported(tmp_path: Path) -> None:
    model = make_toy()
    trainer = Trainer(model, toy_config(tmp_path, steps=15, ema_decay=0.8), ToySignals())
    export = trainer.fit()
    exported = load_weights(export)
    raw = model.state_dict()
    assert set(exported) == set(raw)
    torch.testing.assert_close(exported, trainer.ema.state_dict(), rtol=0, atol=0)
    assert any(not torch.allclose(exported[k], raw[k]) for k in raw)
    assert json.loads((export / "config.json").read_text())["model"] == model.config_dict()
    # The model itself keeps its raw weights after the EMA was swapped in for the export.
    torch.testing.assert_close(model.state_dict(), raw)


def test_validation_sampling_hook_and_log(tmp_path: Path) -> None:
    calls = []

    def on_sample(model, step, out_dir):
        calls.append((step, model.training, torch.randn(1).item()))
        out_dir.mkdir(parents=True, exist_ok=True)

    model = make_toy()
    cfg = toy_config(tmp_path, steps=6, log_every=2, val_every=3, sample_every=3)
    Trainer(model, cfg, ToySignals(), ToySignals(n=12, seed=1), on_sample=on_sample).fit()
    assert [c[0] for c in calls] == [3, 6] and not any(c[1] for c in calls)  # eval mode inside the hook
    assert calls[0][2] == calls[1][2]  # the hook's RNG is isolated and seeded, not the training stream
    assert model.training
    rows = read_log(tmp_path)
    assert [int(r["step"]) for r in rows] == [2, 3, 4, 6]
    val = {int(r["step"]): r["val_loss"] for r in rows if r["val_loss"]}
    assert set(val) == {3, 6} and all(float(v) > 0 for v in val.values())
    assert json.loads(rows[0]["metrics"])["mse"] > 0 and float(rows[0]["it_per_s"]) > 0
    assert (tmp_path / "samples").is_dir()


def test_schedule_warms_up_then_decays() -> None:
    lr = [warmup_cosine(s, warmup_steps=4, total_steps=20, min_ratio=0.1) for s in range(21)]
    assert lr[:4] == [0.25, 0.5, 0.75, 1.0] and lr[4] == 1.0
    assert all(a >= b for a, b in zip(lr[4:], lr[5:])) and lr[20] == pytest.approx(0.1)


def test_model_outside_the_protocol_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="lacks"):
        Trainer(torch.nn.Linear(2, 2), toy_config(tmp_path), ToySignals())


def test_train_configs_load_and_reject_unknown_keys(tmp_path: Path) -> None:
    cfg = load_train_config(REPO / "configs/train/default.yaml", ["steps=7", "data.leads=3lead"])
    assert cfg.steps == 7 and cfg.data.leads == "3lead" and cfg.mixed_precision == "auto"
    tiny = load_train_config(REPO / "configs/train/tiny.yaml", {"batch_size": 4})
    assert tiny.batch_size == 4 and tiny.data.cache_dir is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 10\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match="mixed_precision"):
        load_train_config(REPO / "configs/train/tiny.yaml", ["mixed_precision=fp8"])
    with pytest.raises(ConfigError, match="data.nope"):
        load_train_config(REPO / "configs/train/tiny.yaml", ["data.nope=1"])


def test_entry_point_trains_a_registry_model_on_the_sample(tmp_path: Path, monkeypatch) -> None:
    from synth.checkpoint import load_pretrained
    from synth.training.__main__ import main

    monkeypatch.chdir(REPO)
    out = tmp_path / "run"
    assert main(["configs/train/tiny.yaml", f"out_dir={out}", "steps=2", "val_every=2", "ckpt_every=2"]) == 0
    model = load_pretrained(out / "model")
    assert model.sample({}, 2, steps=2, generator=torch.Generator().manual_seed(0)).shape == (2, 12, 64)
    assert [int(r["step"]) for r in read_log(out)] == [2] and read_log(out)[0]["val_loss"]
    assert main(["configs/train/tiny.yaml", f"out_dir={out}", "steps=2", "lr=-1"]) == 2  # one-line user error


def test_model_param_groups_are_used(tmp_path: Path) -> None:
    model = make_toy()
    first, second = model.net[0], model.net[3]
    model.param_groups = lambda: [{"params": list(first.parameters()), "weight_decay": 0.5},
                                  {"params": list(second.parameters()), "lr": 0.0}]
    frozen = {k: v.clone() for k, v in second.state_dict().items()}
    trainer = Trainer(model, toy_config(tmp_path, steps=3, warmup_steps=0), ToySignals())
    trainer.fit()
    assert [g["weight_decay"] for g in trainer.optimizer.param_groups] == [0.5, 0.01]
    torch.testing.assert_close(second.state_dict(), frozen)  # lr 0 in its group: unchanged


def test_auto_precision_is_fp32_without_cuda() -> None:
    from synth.training.trainer import resolve_mixed_precision

    expected = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    assert resolve_mixed_precision("auto") == expected and resolve_mixed_precision("fp16") == "fp16"


def test_tensorboard_gets_the_logged_scalars_when_installed(tmp_path: Path, monkeypatch) -> None:
    import sys
    import types

    written: list[tuple[str, float, int]] = []

    class FakeWriter:  # stands in for torch.utils.tensorboard.SummaryWriter (tensorboard is an optional extra)
        def __init__(self, log_dir, purge_step=None):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

        def close(self):
            written.append(("closed", 0.0, 0))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    Trainer(make_toy(), toy_config(tmp_path, steps=2, val_every=2), ToySignals(), ToySignals(n=8)).fit()
    tags = {(tag, step) for tag, _, step in written}
    assert {("train/loss", 1), ("train/loss", 2), ("train/mse", 2), ("train/lr", 2), ("val/loss", 2)} <= tags
    assert written[-1][0] == "closed"


def test_training_refuses_a_folder_it_did_not_write_and_leaves_it_untouched(tmp_path: Path, monkeypatch, capsys):
    from synth.outputs import OutputRefusedError
    from synth.training.__main__ import main
    from synth.training.state import RUN_MARKER

    user = tmp_path / "mine"
    (user / "model").mkdir(parents=True)
    (user / "model" / "weights.bin").write_bytes(b"user data")
    (user / "notes.txt").write_text("keep me")
    before = sorted(p.relative_to(user).as_posix() for p in user.rglob("*"))
    with pytest.raises(OutputRefusedError, match="did not write"):
        Trainer(make_toy(), toy_config(user, steps=2), ToySignals())
    monkeypatch.chdir(REPO)
    assert main(["configs/train/tiny.yaml", f"out_dir={user}", "steps=2"]) == 2  # refused before the data loads
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(user) in err[0] and "notes.txt" in err[0]
    assert sorted(p.relative_to(user).as_posix() for p in user.rglob("*")) == before
    assert (user / "model" / "weights.bin").read_bytes() == b"user data"
    # a folder holding only a model/ of someone else's is not a run either; the working directory never is
    (user / "notes.txt").unlink()
    with pytest.raises(OutputRefusedError, match="train_config.json"):
        Trainer(make_toy(), toy_config(user, steps=2), ToySignals())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputRefusedError, match="working directory"):
        Trainer(make_toy(), toy_config(Path("."), steps=2), ToySignals())
    # its own run folder is marked and resumed (an older, unmarked run's folder is accepted too)
    run = tmp_path / "run"
    Trainer(make_toy(), toy_config(run, steps=2), ToySignals()).fit()
    assert (run / RUN_MARKER).is_file()
    (run / RUN_MARKER).unlink()
    assert Trainer(make_toy(), toy_config(run, steps=4), ToySignals()).resumed_from is not None


def test_a_second_training_into_a_locked_run_folder_stops_at_once(tmp_path: Path):
    from synth.outputs import OutputLockedError, output_lock

    run = tmp_path / "run"
    Trainer(make_toy(), toy_config(run, steps=2), ToySignals()).fit()
    with output_lock(run):  # as a running training, halfway through saving a checkpoint
        saving = run / "checkpoints" / ".tmp-step-00000003"
        saving.mkdir()
        (saving / "model.safetensors").write_bytes(b"being written")
        before = {p.relative_to(run).as_posix(): p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
        second = Trainer(make_toy(), toy_config(run, steps=4), ToySignals())
        with pytest.raises(OutputLockedError, match="another synth run"):
            second.fit()
        assert {p.relative_to(run).as_posix(): p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before
    assert second.fit() == run / "model" and second.step == 4  # free again: it resumes and finishes
    assert not saving.exists()  # a partial save left by a killed run is cleared once the lock is held


def test_a_finished_run_without_its_checkpoints_is_not_retrained_over(tmp_path: Path):
    """Deleting a finished run's checkpoints (to free the disk) must not let the next command start at step 0
    and replace its model/ and log."""
    from synth.outputs import OutputRefusedError

    run = tmp_path / "run"
    Trainer(make_toy(), toy_config(run, steps=2), ToySignals()).fit()
    shutil.rmtree(run / "checkpoints")
    before = {p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(OutputRefusedError, match="finished run's model/ but no checkpoint"):
        Trainer(make_toy(), toy_config(run, steps=3), ToySignals())
    assert {p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("entry", ["train_log.csv", "train_config.json"])
def test_a_run_folder_holding_links_is_refused(tmp_path: Path, entry):
    """The run writes its log and config through these names: a link would have it overwrite another file."""
    from synth.outputs import OutputRefusedError

    run = tmp_path / "run"
    Trainer(make_toy(), toy_config(run, steps=2), ToySignals()).fit()
    notebook = tmp_path / "notebook.csv"
    notebook.write_text("my notes")
    (run / entry).unlink()
    (run / entry).symlink_to(notebook)
    with pytest.raises(OutputRefusedError, match="it holds links"):
        Trainer(make_toy(), toy_config(run, steps=4), ToySignals())
    assert notebook.read_text() == "my notes"


def test_training_does_not_write_into_its_data_folder(tmp_path: Path, monkeypatch, capsys):
    from synth.data.sample import sample_ptbxl_root
    from synth.training.__main__ import main

    data = tmp_path / "ptbxl"
    shutil.copytree(sample_ptbxl_root(), data)
    before = sorted(p.relative_to(data).as_posix() for p in data.rglob("*"))
    monkeypatch.chdir(REPO)
    code = main(["configs/train/tiny.yaml", f"out_dir={data / 'records100' / 'run'}", f"data.root={data}",
                 "steps=2"])
    err = capsys.readouterr().err
    assert code == 2 and "lies inside this run's input folder (data.root)" in err, err
    assert sorted(p.relative_to(data).as_posix() for p in data.rglob("*")) == before
