"""``synth bench utility`` on a tiny cohort and the shipped PTB-XL sample: every row, the paired gains, the
quality filter and the report files (behaviour, not quality)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth.cli import main
from synth.data.sample import sample_ptbxl_root
from synth.outputs import MARKER

pytest.importorskip("matplotlib")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cohort_100hz(tmp_path_factory, tiny_checkpoints):
    """A 10 s, 100 Hz cohort (the utility classifier reads PTB-XL's record shape): the tiny model's windows are
    64 samples, so a tiny model of PTB-XL's length is exported for it."""
    import torch

    from synth.checkpoint import save_pretrained
    from synth.config import load_config
    from synth.generative import build_model
    from synth.tasks.cohort import build_cohort, load_spec

    root = tmp_path_factory.mktemp("utility")
    cfg = load_config(REPO / "configs" / "model" / "diffusion_unet_tiny.yaml", {"signal.length": 1000,
                                                                                "process.default_steps": 1})
    torch.manual_seed(0)
    save_pretrained(build_model(cfg), root / "model")
    spec = load_spec(REPO / "configs" / "cohort" / "default.yaml",
                     [f"model={root / 'model'}", "size=24", "shard_size=12", f"data={sample_ptbxl_root()}",
                      "cache_dir=null", "labels.mix=balanced"])
    build_cohort(spec, root / "cohort", progress=False)
    return root / "cohort"


def test_bench_utility_rows_gains_filter_and_report(cohort_100hz, tmp_path, capsys):
    out = tmp_path / "u"
    code = main(["bench", "utility", "--cohort", f"bal={cohort_100hz}", "--data", str(sample_ptbxl_root()),
                 "--split", "val", "--steps", "3", "--n-boot", "20", "--fractions", "1,0.5", "--filter",
                 "--cache-dir", "none", "--quiet", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads((out / "report.json").read_text())
    assert list(report["rows"]) == ["TRTR @ 100%", "AUG bal @ 100%", "AUG bal filtered @ 100%", "TRTR @ 50%",
                                    "AUG bal @ 50%", "AUG bal filtered @ 50%", "TSTR bal", "TRTS bal"]
    assert report["rows"]["AUG bal @ 50%"]["n_train"] == 64 + 24 and report["rows"]["TSTR bal"]["n_train"] == 24
    assert set(report["gains"]) == {k for k in report["rows"] if k.startswith("AUG")}
    assert report["gains"]["AUG bal @ 50%"]["against"] == "TRTR @ 50%"
    for g in report["gains"].values():
        assert g["low"] <= g["estimate"] <= g["high"]
    assert len(report["rarest"]) == 3 and "generator saw all training folds" in report["note"]
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "report.json", "report.md", "utility.png"]
    assert "gain vs real alone" in (out / "report.md").read_text() and "TSTR bal" in printed


def test_bench_utility_refuses_a_bad_fraction(cohort_100hz, tmp_path, capsys):
    code = main(["bench", "utility", "--cohort", str(cohort_100hz), "--fractions", "1,2", "--data",
                 str(sample_ptbxl_root()), "--out", str(tmp_path / "u")])
    assert code == 2 and "fraction 2.0 is outside (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()
