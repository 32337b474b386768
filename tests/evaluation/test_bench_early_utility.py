"""``synth bench utility`` opens every ``--cohort`` (and the ``--filter`` classifier) before PTB-XL loads, and refuses
an ``--out`` that is, lies inside or contains a cohort. PTB-XL is replaced by a tripwire, so a check that comes
after the data fails the test instead of waiting for it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synth.cli import main
from synth.data.sample import sample_ptbxl_root

SAMPLE = str(sample_ptbxl_root())


def _tripwire(*args, **kwargs):
    raise AssertionError("PTB-XL was read before the cohorts were checked")


@pytest.fixture
def no_ptbxl(monkeypatch):
    from synth.data.ptbxl import PTBXL

    monkeypatch.setattr(PTBXL, "__init__", _tripwire)
    monkeypatch.setattr(PTBXL, "load_signals", _tripwire)


def fake_cohort(folder: Path, *, records: int = 2, samples: int = 1000) -> Path:
    """The layout of ``synth cohort`` (cohort.json, manifest.csv, one int16 shard), without a model."""
    from synth.tasks.cohort import MANIFEST_COLUMNS

    (folder / "shards").mkdir(parents=True)
    np.save(folder / "shards" / "signals-00000.npy", np.zeros((records, 12, samples), dtype=np.int16))
    rows = [",".join(MANIFEST_COLUMNS)]
    for i in range(records):
        row = {"record": f"syn{i}", "shard": "0", "row": str(i), "labels": "NORM", "hr": "70"}
        rows.append(",".join(row.get(c, "") for c in MANIFEST_COLUMNS))
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    (folder / "cohort.json").write_text(json.dumps({"records": records}))
    return folder


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(["bench", "utility", *args, "--data", SAMPLE, "--steps", "1", "--cache-dir", "none", "--quiet"])
    err = capsys.readouterr().err
    assert err.startswith("synth: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return code, err


def _no_manifest(folder: Path) -> Path:
    fake_cohort(folder)
    (folder / "manifest.csv").unlink()
    return folder


def _no_cohort_json(folder: Path) -> Path:
    fake_cohort(folder)
    (folder / "cohort.json").unlink()
    return folder


def _manifest_without_columns(folder: Path) -> Path:
    fake_cohort(folder)
    (folder / "manifest.csv").write_text("record,labels\nsyn0,NORM\nsyn1,NORM\n")
    return folder / "manifest.csv"


def _shard_missing(folder: Path) -> Path:
    fake_cohort(folder)
    (folder / "shards" / "signals-00000.npy").unlink()
    return folder / "shards" / "signals-00000.npy"


def _shard_truncated(folder: Path) -> Path:
    fake_cohort(folder)
    shard = folder / "shards" / "signals-00000.npy"
    shard.write_bytes(shard.read_bytes()[:200])
    return shard


def _wrong_length(folder: Path) -> Path:
    fake_cohort(folder, samples=64)
    return folder / "shards" / "signals-00000.npy"


@pytest.mark.parametrize(("make", "needle"), [
    (lambda f: f, "no such cohort folder"),
    (_no_cohort_json, "no cohort.json"),
    (_no_manifest, "no manifest.csv"),
    (_manifest_without_columns, "damaged"),
    (_shard_missing, "shard missing"),
    (_shard_truncated, "shard cannot be read"),
    (_wrong_length, "cohort records are (12, 64)"),
], ids=["missing", "no-cohort-json", "no-manifest", "manifest-columns", "shard-missing", "shard-truncated",
        "wrong-length"])
def test_a_bad_cohort_is_refused_before_ptbxl_loads(make, needle, tmp_path, no_ptbxl, capsys):
    good = fake_cohort(tmp_path / "good")
    named = make(tmp_path / "bad")
    out = tmp_path / "u"
    code, err = _run(capsys, "--cohort", str(good), "--cohort", str(tmp_path / "bad"), "--out", str(out))
    assert code == 2 and needle in err and str(named) in err, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".u.")]


def test_a_missing_filter_classifier_is_refused_before_ptbxl_loads(tmp_path, no_ptbxl, capsys):
    cohort = fake_cohort(tmp_path / "c")
    code, err = _run(capsys, "--cohort", str(cohort), "--filter", str(tmp_path / "noclf"), "--out",
                     str(tmp_path / "u"))
    assert code == 2 and str(tmp_path / "noclf") in err and "config.json" in err


@pytest.mark.parametrize(("where", "force", "needle"), [("inside", False, "lies inside this run's input folder (--cohort)"),
                                                        ("same", True, "it is this run's input (--cohort)"),
                                                        ("around", True, "holds this run's input (--cohort)")])
def test_an_out_overlapping_a_cohort_is_refused_and_nothing_is_written(where, force, needle, tmp_path, no_ptbxl,
                                                                       capsys):
    cohort = fake_cohort(tmp_path / "outer" / "c")
    out = {"inside": cohort / "report", "same": cohort, "around": tmp_path / "outer"}[where]
    before = _listing(tmp_path)
    code, err = _run(capsys, "--cohort", f"mine={cohort}", "--out", str(out), *(["--force"] if force else []))
    assert code == 2 and needle in err and str(out) in err, err
    assert _listing(tmp_path) == before


def test_run_utility_checks_cohorts_before_ptbxl(tmp_path, no_ptbxl):
    """The library entry point keeps the same order as the command line."""
    from evaluation.utility_bench import run_utility
    from synth.errors import SynthError

    with pytest.raises(SynthError, match="no such cohort folder"):
        run_utility([str(tmp_path / "none")], SAMPLE, out_dir=tmp_path / "u", cache_dir=None, progress=False)
    assert not (tmp_path / "u").exists()


def test_open_cohort_accepts_a_cohort_of_ptbxl_shape(tmp_path):
    from evaluation.utility_bench import open_cohort

    assert len(open_cohort(fake_cohort(tmp_path / "c", records=3))) == 3
