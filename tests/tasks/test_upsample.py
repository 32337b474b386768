"""100 → 500 Hz: the upsampling windows, synth.tasks.upsample on the tiny upsampler, and ``synth generate --fs 500``
through it."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml

from synth.cli import main
from synth.data.readers import read_record
from synth.data.sample import sample_ptbxl_root
from synth.data.transforms import resample
from synth.errors import DataError
from synth.tasks import Prompt, generate
from synth.tasks.common import load_task_model
from synth.tasks.upsample import upsample
from synth.training.tasks import UpsampleWindows

from .tiny import REPO_ROOT, tiny_upsampler


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def upsampler(tiny_checkpoints):
    return load_task_model(tiny_checkpoints / "upsample500", "upsample500", required_keys=("leads",))[0]


@pytest.fixture(scope="module")
def generator(tiny_checkpoints):
    return load_task_model(tiny_checkpoints / "report2ecg", "report2ecg")[0]


def test_windows_pair_the_upsampled_record_with_what_500_hz_adds():
    rng = np.random.default_rng(0)
    high = rng.normal(size=(3, 12, 1000)).astype(np.float32)
    low = high[..., ::5].copy()
    ds = UpsampleWindows(low, high, window_length=400, window_stride=200)
    assert len(ds) == 3 * 4 and ds.sample_shape == (12, 400)
    up = resample(low, 100, 500)
    x, cond = ds[5]  # record 1, window 1: samples 200-600
    np.testing.assert_allclose(cond["leads"], up[1, :, 200:600], atol=1e-5)
    np.testing.assert_allclose(x + cond["leads"], high[1, :, 200:600], atol=1e-5)
    assert cond["lead_mask"].all() and cond["lead_mask"].shape == (12,)
    with pytest.raises(DataError, match="do not pair"):
        UpsampleWindows(low[:2], high, window_length=400)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_upsample_makes_500_hz_deterministically_around_the_polyphase_version(upsampler):
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(scale=0.05, size=(2, 12, 100)), axis=-1).astype(np.float32)  # 1 s at 100 Hz
    a = upsample(upsampler, x, 100, steps=2, seed=3)
    b = upsample(upsampler, x, 100, steps=2, seed=3)
    c = upsample(upsampler, x, 100, steps=2, seed=4)
    assert a.shape == (2, 12, 500) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    detail = a - resample(x, 100, 500)
    assert 0 < np.abs(detail).mean() < 1.0  # the model adds something, on the detail's scale (0.05 mV units)
    single = upsample(upsampler, x[0], 100, steps=2, seed=3)
    assert single.shape == (12, 500)


@pytest.mark.parametrize(
    ("args", "message"),
    [((np.zeros((2, 12, 100)), 250), "takes 100 Hz"), ((np.zeros((2, 3, 100)), 100), r"\(N, 12, T\)"),
     ((np.full((1, 12, 100), np.nan), 100), "not finite|NaN")],
)
def test_upsample_refuses_bad_input(upsampler, args, message):
    with pytest.raises(DataError, match=message):
        upsample(upsampler, *args)


def test_generate_at_500_hz_through_the_upsampler(generator, upsampler):
    prompt = Prompt(report="sinus rhythm", n=3, seed=5)
    low, _ = generate(generator, prompt, batch_size=2)
    learned, meta = generate(generator, prompt, batch_size=2, fs_hz=500, upsampler=upsampler, upsample_steps=1)
    poly, _ = generate(generator, prompt, batch_size=2, fs_hz=500)
    assert learned.shape == poly.shape == (3, 12, 5 * low.shape[-1])
    assert meta[0]["resampled"] == "learned" and meta[0]["fs_hz"] == 500
    assert not np.allclose(learned, poly)
    np.testing.assert_allclose(poly, resample(low, 100, 500), atol=1e-5)
    with pytest.raises(DataError, match="--fs 500"):
        generate(generator, prompt, fs_hz=250, upsampler=upsampler)


def test_cli_generate_fs_500_uses_the_shipped_upsampler_unless_told(use_tiny_checkpoints, generator, tmp_path,
                                                                   capsys):
    out = tmp_path / "gen"
    code, _, err = run(["generate", "--report", "sinus rhythm", "--n", 2, "--out", out, "--fs", 500, "--plot", 0,
                        "--upsample-steps", 1], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(open(out / "metadata.csv")))
    assert [r["resampled"] for r in rows] == ["learned", "learned"]
    assert rows[0]["upsampler"] == str(use_tiny_checkpoints / "upsample500")
    rec = read_record(out / "ecg_00000.hea")
    assert rec.fs_hz == 500 and rec.signal.shape[-1] == 5 * generator.cfg.signal.length
    poly = tmp_path / "poly"
    assert run(["generate", "--report", "sinus rhythm", "--n", 1, "--out", poly, "--fs", 500, "--plot", 0,
                "--upsampler", "polyphase"], capsys)[0] == 0
    rows = list(csv.DictReader(open(poly / "metadata.csv")))
    assert rows[0]["resampled"] == "polyphase" and rows[0]["upsampler"] == ""
    bad = tmp_path / "bad"
    code, _, err = run(["generate", "--report", "sinus rhythm", "--n", 1, "--out", bad, "--fs", 250], capsys)
    assert code != 0 and "--fs 500" in err and not bad.exists()
    code, _, err = run(["generate", "--report", "x", "--n", 1, "--out", bad, "--fs", 500, "--upsampler",
                        tmp_path / "nowhere"], capsys)
    assert code != 0 and "nowhere" in err and not bad.exists()


def test_training_data_of_the_upsampler_comes_from_records_at_both_rates(tmp_path, monkeypatch):
    """The task config trains (a tiny model, 2 steps) on the sample's records present at 100 and 500 Hz."""
    from synth.checkpoint import load_pretrained
    from synth.training.__main__ import main as train_main

    monkeypatch.chdir(REPO_ROOT)
    model_yaml = tmp_path / "tiny_upsampler.yaml"
    model_yaml.write_text(yaml.safe_dump(tiny_upsampler()))
    out = tmp_path / "run"
    assert train_main(["configs/task/upsample500.yaml", f"model={model_yaml}", f"data.root={sample_ptbxl_root()}",
                       "data.cache_dir=null", f"out_dir={out}", "steps=2", "val_every=2", "ckpt_every=2",
                       "batch_size=4", "progress=false", "log_every=1"]) == 0
    model = load_pretrained(out / "model")
    assert model.cfg.signal.fs_hz == 500 and model.cfg.signal.length == 160
    assert train_main(["configs/task/upsample500.yaml", f"model={model_yaml}", "data.fs_hz=100",
                       f"out_dir={tmp_path / 'bad'}", "steps=1"]) != 0
