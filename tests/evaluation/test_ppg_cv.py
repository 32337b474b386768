"""Subject-grouped cross-validation of PPG → ECG (``benchmarks/ppg_cv.py``) on the shipped BIDMC sample
(subjects 1, 38 and 46), and the subject overrides it rests on."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from evaluation.ppg_bench import run_ppg2ecg
from synth.data.sample import sample_bidmc_root
from synth.errors import DataError
from synth.training.config import load_train_config

ROOT = Path(__file__).resolve().parents[2]


def _ppg_cv():
    spec = importlib.util.spec_from_file_location("ppg_cv", ROOT / "benchmarks" / "ppg_cv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_folds_hold_every_subject_out_exactly_once():
    folds = _ppg_cv().folds_of(list(range(53, 0, -1)), 6)
    held = [s for f in folds for s in f]
    assert sorted(held) == list(range(1, 54)) and len(held) == 53
    assert [len(f) for f in folds] == [9, 9, 9, 9, 9, 8]
    with pytest.raises(ValueError, match="--folds"):
        _ppg_cv().folds_of([1, 2, 3], 4)


def test_training_subjects_must_stay_apart_from_validation_subjects():
    cfg = load_train_config(ROOT / "configs/task/ppg2ecg_phase.yaml",
                            ["data.train_subjects=[1, 2, 3]", "data.val_subjects=[4]"])
    assert cfg.data.train_subjects == [1, 2, 3] and cfg.data.val_subjects == [4]
    with pytest.raises(Exception, match="overlap"):
        load_train_config(ROOT / "configs/task/ppg2ecg_phase.yaml",
                          ["data.train_subjects=[1, 2]", "data.val_subjects=[2]"])
    with pytest.raises(Exception, match="bidmc_ppg only"):
        load_train_config(ROOT / "configs/task/ppg2ecg_sim.yaml", ["data.train_subjects=[1]"])


def test_bench_refuses_a_subject_both_scored_and_fitted_on(tmp_path):
    with pytest.raises(DataError, match="both scored and fitted"):
        run_ppg2ecg(["baseline:linear"], sample_bidmc_root(), out_dir=tmp_path / "o", split="cv", subjects=[1, 38],
                    train_subjects=[38, 46], progress=False)
    assert not (tmp_path / "o").exists()


def test_cross_validation_trains_per_fold_scores_held_out_subjects_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    work, out = tmp_path / "work", tmp_path / "cv"
    argv = ["--config", "configs/task/ppg2ecg_phase.yaml", "--data", str(sample_bidmc_root()), "--folds", "3",
            "--steps", "2", "--set", "init_from=null", "--set", "batch_size=4", "--set", "val_every=2",
            "--set", "val_batches=1", "--set", "ckpt_every=2", "--set", "progress=false", "--sampler-steps", "1",
            "--work", str(work), "--out", str(out), "--n-boot", "50"]
    _ppg_cv().main(argv)
    report = json.loads((out / "report.json").read_text())
    assert report["folds"] == [[1], [38], [46]] and report["steps_per_fold"] == 2
    for name in ("model", "baseline:linear"):
        r = report["generators"][name]["per_subject"]["r"]
        assert sorted(map(int, r)) == [1, 38, 46] and all(-1 <= v <= 1 for v in r.values())
    fold = json.loads((work / "fold01" / "score" / "report.json").read_text())
    assert fold["subjects"] == [38]  # scored only on the subject its model never saw
    trained = json.loads((work / "fold01" / "train" / "train_config.json").read_text())
    assert trained["data"]["train_subjects"] == [1, 46] and trained["data"]["val_subjects"] == [38]
    assert (out / "per_subject_r.png").stat().st_size > 5_000
    stamp = (work / "fold00" / "score" / "report.json").stat().st_mtime_ns
    _ppg_cv().main([*argv, "--force"])  # a rerun reuses each finished fold
    assert (work / "fold00" / "score" / "report.json").stat().st_mtime_ns == stamp
