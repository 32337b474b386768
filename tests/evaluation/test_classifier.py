"""The project's ECG classifier / feature extractor: shapes, export round trip, the shipped checkpoints, training
and the rule that checkpoint selection never sees the test fold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.classifier import (
    ClassifierConfig,
    ClassifierFeatures,
    ECGClassifier,
    FeatureExtractor,
    load_classifier,
    load_feature_extractor,
    save_classifier,
    train,
)
from synth.checkpoint import CheckpointError
from synth.data.ptbxl import PTBXL
from synth.data.sample import sample_ptbxl_root

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {"ecg_classifier_ptbxl": 12, "lead2_encoder_ptbxl": 1}


def tiny(leads=("I", "II", "V1"), **kw) -> ECGClassifier:
    torch.manual_seed(0)
    return ECGClassifier(ClassifierConfig(leads=list(leads), stem_width=8, widths=[8, 16], kernel_size=5, **kw))


def test_shapes():
    model = tiny().eval()
    x = torch.randn(4, 3, 250)
    assert model(x).shape == (4, 5)
    assert model.embed(x).shape == (4, model.feature_dim) == (4, 32)
    long = torch.randn(2, 3, 1000)  # 10 s: scored by sliding 2.5 s windows
    assert model.features(long).shape == (2, 32)
    probs = model.predict(long)
    assert probs.shape == (2, 5) and bool(((probs > 0) & (probs < 1)).all())
    single = tiny(leads=["II"]).eval()
    assert single.features(torch.randn(3, 1, 1000)).shape == (3, 32)


def test_sliding_windows_cover_the_record():
    model = tiny()
    windows, n = model._windows(torch.arange(1000.0).expand(1, 3, 1000))
    assert n == 7 and windows.shape == (7, 3, 250)
    assert windows[0, 0, 0] == 0 and windows[-1, 0, -1] == 999


def test_export_load_equal(tmp_path):
    model = tiny().eval()
    x = torch.randn(2, 3, 1000)
    folder = save_classifier(model, tmp_path / "clf")
    meta = json.loads((folder / "config.json").read_text())
    assert meta["model"]["kind"] == "ecg_classifier" and meta["model"]["leads"] == ["I", "II", "V1"]
    assert meta["model"]["fs_hz"] == 100 and meta["model"]["classes"] == ["NORM", "MI", "STTC", "CD", "HYP"]
    loaded = load_classifier(folder)
    torch.testing.assert_close(loaded.features(x), model.features(x))
    torch.testing.assert_close(loaded.predict(x), model.predict(x))
    extractor = load_feature_extractor(folder)
    assert isinstance(extractor, FeatureExtractor) and tuple(extractor.leads) == ("I", "II", "V1")
    np.testing.assert_allclose(extractor.features(x.numpy()), model.features(x).numpy(), rtol=1e-5, atol=1e-6)


def test_load_refuses_a_generator_config(tmp_path):
    folder = save_classifier(tiny(), tmp_path / "clf")
    meta = json.loads((folder / "config.json").read_text())
    meta["model"]["kind"] = "diffusion"
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError):
        load_classifier(folder)


def test_user_extractor_by_path(tmp_path):
    (tmp_path / "my_extractor.py").write_text(
        "import numpy as np\n"
        "class Mean:\n    leads = ('II',)\n    fs_hz = 100.0\n"
        "    def features(self, x):\n        return np.asarray(x).mean(axis=-1)\n"
        "def build():\n    return Mean()\n")
    extractor = load_feature_extractor(f"{tmp_path / 'my_extractor.py'}:build")
    assert extractor.features(np.ones((2, 1, 100), np.float32)).shape == (2, 1)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_checkpoint_gives_finite_features(name):
    folder = REPO / "checkpoints" / name
    extractor = ClassifierFeatures(load_classifier(folder))
    assert len(extractor.leads) == SHIPPED[name]
    record = PTBXL(sample_ptbxl_root()).split("test")[0].select(list(extractor.leads))
    x = record.signal[None].astype(np.float32)  # (1, C, 1000) mV
    feats, probs = extractor.features(x), extractor.predict(x)
    assert feats.shape == (1, extractor.model.feature_dim) and np.isfinite(feats).all()
    assert probs.shape == (1, 5) and np.isfinite(probs).all()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["selection"]["split"] == "val"
    assert sum(p.stat().st_size for p in folder.iterdir()) < 10 * 2**20


def test_training_loss_falls():
    data = PTBXL(sample_ptbxl_root()).split("train")
    x = torch.from_numpy(np.asarray(data.load_signals(workers=1, progress=False))[:32, :3, :250].copy())
    y = torch.from_numpy(data.multi_hot("superclasses")[0][:32])
    model = tiny().train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model.loss(x, {"labels": y}).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3])


def test_training_selects_on_validation_only(tmp_path, monkeypatch):
    """The whole train command (trainer, selection hook, export) on the shipped sample never asks for fold 10."""
    asked: list[str] = []
    split = PTBXL.split

    def spy(self, name):
        asked.append(name)
        return split(self, name)

    monkeypatch.setattr(PTBXL, "split", spy)
    config = REPO / "configs" / "classifier" / "ptbxl_superclass.yaml"
    out = tmp_path / "run"
    best = train(config, [f"out_dir={out}", f"train.data.root={sample_ptbxl_root()}", "train.data.cache_dir=null",
                          "train.steps=2", "train.batch_size=8", "train.warmup_steps=1", "train.sample_every=1",
                          "train.ckpt_every=2", "train.log_every=1", "model.widths=[8,16]", "model.stem_width=8"])
    assert "test" not in asked and "val" in asked
    assert load_classifier(best).cfg.widths == [8, 16]
    selection = json.loads((out / "selection.json").read_text())
    assert selection["best_step"] in (1, 2) and len(selection["history"]) == 2
