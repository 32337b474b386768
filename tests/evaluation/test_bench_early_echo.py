"""``synth bench echo`` checks its encoder folder before the model and the clips load (one line naming the file,
no traceback), and never writes into ``--data``: the clip cache lives under ``--cache-dir`` (a synth-owned
``.cache/echo`` by default), so a failed run leaves the dataset as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from evaluation.echo import EchoEncoder, EncoderConfig, save_echo_encoder
from synth.cli import main
from synth.errors import DataError


def _tripwire(*args, **kwargs):
    raise AssertionError("the model or the clips loaded before the encoder was checked")


@pytest.fixture
def no_model_or_clips(monkeypatch):
    import synth.echo.dataset
    import synth.echo.generate

    monkeypatch.setattr(synth.echo.generate, "load_echo_model", _tripwire)
    monkeypatch.setattr(synth.echo.dataset, "EchoTensors", _tripwire)


@pytest.fixture
def fake_data(tmp_path) -> Path:
    """Enough of a dataset for the checks before loading (FileList.csv); its clips are never read."""
    root = tmp_path / "sim"
    root.mkdir()
    (root / "FileList.csv").write_text("FileName,EF,Split\n")
    return root


@pytest.fixture
def encoder(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_echo_encoder(EchoEncoder(EncoderConfig(size=16, channels=(8, 16, 16), feature_dim=8)),
                             tmp_path / "enc")


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def _set_config(enc: Path, meta) -> Path:
    (enc / "config.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return enc / "config.json"


def _damage(kind: str, enc: Path) -> Path:
    meta = json.loads((enc / "config.json").read_text())
    if kind == "empty-object":
        return _set_config(enc, {})
    if kind == "not-json":
        return _set_config(enc, "{oops")
    if kind == "a-list":
        return _set_config(enc, [1, 2])
    if kind == "no-config":
        return _set_config(enc, {"kind": "echo_encoder", "format_version": 1})
    if kind == "no-size":
        del meta["config"]["size"]
        return _set_config(enc, meta)
    if kind == "size-not-16":
        meta["config"]["size"] = 24
        return _set_config(enc, meta)
    if kind == "channels-text":
        meta["config"]["channels"] = "16,32,64"
        return _set_config(enc, meta)
    if kind == "groupnorm":  # GroupNorm(8, 12) cannot be built
        meta["config"]["channels"] = [8, 12, 16]
        return _set_config(enc, meta)
    if kind == "other-shape":
        meta["config"]["feature_dim"] = 16
        _set_config(enc, meta)
        return enc / "model.safetensors"
    if kind == "no-weights":
        (enc / "model.safetensors").unlink()
        return enc
    if kind == "nan-weights":
        state = load_file(str(enc / "model.safetensors"))
        key = next(iter(state))
        state[key] = state[key].clone()
        state[key].view(-1)[0] = float("nan")
        save_file(state, str(enc / "model.safetensors"))
        return enc / "model.safetensors"
    if kind == "not-safetensors":
        (enc / "model.safetensors").write_bytes(b"\x80\x04pickled")
        return enc / "model.safetensors"
    raise ValueError(kind)


KINDS = ["empty-object", "not-json", "a-list", "no-config", "no-size", "size-not-16", "channels-text", "groupnorm",
         "other-shape", "no-weights", "nan-weights", "not-safetensors"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_encoder_is_refused_before_the_model_and_the_clips(kind, encoder, fake_data, tmp_path,
                                                                     no_model_or_clips, monkeypatch, capsys):
    named = _damage(kind, encoder)
    before = _listing(fake_data)
    monkeypatch.chdir(tmp_path)  # where the default --cache-dir (.cache/echo) would be made
    out = tmp_path / "bench"
    code = main(["bench", "echo", "--model", str(tmp_path / "model"), "--data", str(fake_data), "--encoder",
                 str(encoder), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("synth: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert str(named) in err, err
    assert not out.exists() and not (tmp_path / ".cache").exists() and _listing(fake_data) == before


def test_load_echo_encoder_reads_a_sound_encoder(encoder):
    from evaluation.echo import load_echo_encoder

    model = load_echo_encoder(encoder)
    assert model.cfg == EncoderConfig(size=16, channels=(8, 16, 16), feature_dim=8) and not model.training


@pytest.mark.parametrize("where", ["cache", "out"])
def test_a_cache_or_out_inside_data_is_refused(where, encoder, fake_data, tmp_path, no_model_or_clips, monkeypatch,
                                               capsys):
    monkeypatch.chdir(tmp_path)
    before = _listing(tmp_path)
    out = fake_data / "report" if where == "out" else tmp_path / "bench"
    extra = ["--cache-dir", str(fake_data / "cache")] if where == "cache" else []
    code = main(["bench", "echo", "--model", str(tmp_path / "model"), "--data", str(fake_data), "--encoder",
                 str(encoder), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err
    named = fake_data / "cache" if where == "cache" else out
    needle = "the clip cache would lie inside the --data folder" if where == "cache" else \
        "inside this run's input folder (--data)"
    assert code == 2 and needle in err and str(named) in err, err
    assert _listing(tmp_path) == before


@pytest.fixture
def sim_data(tmp_path, make_synthetic_record) -> Path:
    from synth.echo.dataset import ClipSpec, build_dataset

    specs = [ClipSpec(make_synthetic_record(heart_rate_bpm=60 + 9 * i), split, 0.3 * i, f"SIM{i:03d}", i)
             for i, split in enumerate(["TRAIN", "TRAIN", "TEST", "TEST"])]
    return build_dataset(tmp_path / "sim", specs, frames=8, fps=4.0, progress=False)


def test_a_run_that_fails_after_loading_clips_leaves_data_untouched(sim_data, encoder, tiny_checkpoints, tmp_path,
                                                                     monkeypatch, capsys):
    """The clips are cached under --cache-dir (one folder per dataset), not in a cache/ inside --data."""
    import synth.echo.generate

    def stop(*args, **kwargs):
        raise DataError("stopped after the clips loaded")

    monkeypatch.setattr(synth.echo.generate, "sample_videos", stop)
    monkeypatch.chdir(tmp_path)  # the default --cache-dir is .cache/echo here
    before = _listing(sim_data)
    out, cache = tmp_path / "bench", tmp_path / ".cache" / "echo"
    code = main(["bench", "echo", "--model", str(tiny_checkpoints / "echo_maskgit"), "--data", str(sim_data),
                 "--encoder", str(encoder), "--n", "2", "--out", str(out), "--quiet"])
    assert code == 2 and "stopped after the clips loaded" in capsys.readouterr().err
    assert _listing(sim_data) == before and not out.exists()
    cached = list(cache.rglob("*.pt"))
    assert cached and all(p.parent.parent == cache and p.parent.name.startswith("sim-") for p in cached)


def test_the_default_cache_is_synth_owned(monkeypatch, tmp_path):
    from synth.cli import build_parser

    args = build_parser().parse_args(["bench", "echo", "--out", str(tmp_path / "b")])
    assert args.cache_dir == ".cache/echo"
