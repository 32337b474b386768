"""``synth bench fidelity`` and ``synth bench reconstruct`` end to end on the shipped PTB-XL sample (16 records
per fold), through the CLI entry point in-process. Small n: these check structure and the error contract, not
the quality of any generator (the real numbers come from the shared data, see evaluation/bench.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synth.cli import main
from synth.data.leads import LEADS_12
from synth.data.sample import sample_ptbxl_root
from synth.outputs import MARKER

pytest.importorskip("matplotlib")

SAMPLE = str(sample_ptbxl_root())


def _fidelity_args(out: Path, cache: Path, *generators: str, n: int = 6) -> list[str]:
    gens = [a for g in generators for a in ("--generator", g)]
    return ["bench", "fidelity", *gens, "--data", SAMPLE, "--n", str(n), "--out", str(out), "--seed", "3",
            "--n-boot", "20", "--cache-dir", str(cache), "--quiet"]


@pytest.fixture(scope="module")
def fidelity_run(tmp_path_factory) -> Path:
    pytest.importorskip("neurokit2")
    root = tmp_path_factory.mktemp("bench_fid")
    out = root / "fid"
    code = main(_fidelity_args(out, root / "cache", "baseline:real-train", "baseline:ecgsyn", "baseline:nearest"))
    assert code == 0
    return out


@pytest.fixture(scope="module")
def reconstruct_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench_rec")
    out = root / "rec"
    code = main(["bench", "reconstruct", "--generator", "baseline:linear", "--leads", "II,V1,V5", "--data", SAMPLE,
                 "--n", "10", "--out", str(out), "--seed", "1", "--n-boot", "30", "--cache-dir", str(root / "cache"),
                 "--quiet"])
    assert code == 0
    return out


def _interval(d: dict) -> None:
    assert set(d) >= {"estimate", "low", "high"}
    assert d["low"] <= d["estimate"] + 1e-9 and d["estimate"] <= d["high"] + 1e-9


def test_fidelity_writes_report_with_fd_floor_and_intervals(fidelity_run: Path):
    files = {p.name for p in fidelity_run.iterdir()}
    assert {"report.md", "report.json", "fd_with_floor.png", "hr_error.png"} <= files
    assert sum(name.startswith("overlay_") and name.endswith(".png") for name in files) == 3
    assert not any(name.startswith(".") and name != MARKER for name in files)  # the marker, no staging
    report = json.loads((fidelity_run / "report.json").read_text())
    assert report["n"] == 6 and report["split"] == "test"
    assert set(report["generators"]) == {"baseline:real-train", "baseline:ecgsyn", "baseline:nearest"}
    statements = report["real_reference"]["statement_consistency"]  # the shipped statements classifier
    assert statements is not None and all(v >= 5 for v in statements["positives"].values())
    _interval(statements["macro_auroc"])
    assert "per statement" in (fidelity_run / "report.md").read_text()
    floors = set()
    for g in report["generators"].values():
        _interval(g["fd"]["fd"])
        _interval(g["fd"]["fd_floor"])
        floors.add(g["fd"]["fd_floor"]["estimate"])
        assert g["fd"]["n"] == 6
        assert set(g["fd_per_lead"]) == set(LEADS_12)
        for lead in LEADS_12:
            _interval(g["fd_per_lead"][lead]["fd"])
        assert 0 <= g["precision_recall"]["precision"] <= 1 and 0 <= g["precision_recall"]["recall"] <= 1
        assert {"heart_rate_mae_bpm", "qrs_ms_median", "amplitude_outlier_rate"} <= set(g["physiology"])
        hr_ci = g["physiology"]["heart_rate_mae_bpm_ci"]  # the HR MAE with its interval over records
        assert hr_ci["low"] <= g["physiology"]["heart_rate_mae_bpm"] <= hr_ci["high"]
        if "qrs_beat_correlation" in g["physiology"]:
            qrs_ci = g["physiology"]["qrs_beat_correlation_median_ci"]
            assert qrs_ci["low"] <= g["physiology"]["qrs_beat_correlation"]["median"] <= qrs_ci["high"]
    assert len(floors) == 1  # one floor, shared by every generator of the run
    md = (fidelity_run / "report.md").read_text()
    assert "floor" in md and "lower is better" in md and "baseline:ecgsyn" in md


def test_fidelity_baselines_behave_as_documented(fidelity_run: Path):
    """Robust facts at any n: retrieved training records are copies; ECGSYN simulates leads independently, so the
    Einthoven law does not hold for it while it does for recorded ECGs; ECGSYN follows the requested rate."""
    g = json.loads((fidelity_run / "report.json").read_text())["generators"]
    assert g["baseline:real-train"]["memorisation"]["copies"]
    assert g["baseline:nearest"]["memorisation"]["copies"]
    assert not g["baseline:ecgsyn"]["memorisation"]["copies"]
    law = {k: v["physiology"]["lead_law_rms_mv_mean"]["III"] for k, v in g.items()}
    assert law["baseline:ecgsyn"] > 10 * law["baseline:real-train"]
    assert g["baseline:ecgsyn"]["physiology"]["heart_rate_mae_bpm"] < 5.0


def test_fidelity_is_deterministic_under_seed(fidelity_run: Path, tmp_path: Path):
    out = tmp_path / "again"
    assert main(_fidelity_args(out, tmp_path / "cache", "baseline:real-train", "baseline:nearest")) == 0
    a = json.loads((fidelity_run / "report.json").read_text())["generators"]
    b = json.loads((out / "report.json").read_text())["generators"]
    for name in b:
        assert a[name]["fd"] == b[name]["fd"]


def test_reconstruct_scores_the_nine_missing_leads(reconstruct_run: Path):
    files = {p.name for p in reconstruct_run.iterdir()}
    assert {"report.md", "report.json", "per_lead_errors.png", "overlay_00_baseline_linear.png"} <= files
    report = json.loads((reconstruct_run / "report.json").read_text())
    assert report["given"] == ["II", "V1", "V5"]
    per_lead = report["generators"]["baseline:linear"]["per_lead"]
    assert set(per_lead) == set(LEADS_12) - {"II", "V1", "V5"} and len(per_lead) == 9
    for s in per_lead.values():
        for key in ("mae_ci", "rmse_ci", "pearson_r_ci"):
            _interval(s[key])
        assert s["rmse_mv"] > 0 and -1 <= s["pearson_r"] <= 1
    # III = II - I etc.: the limb leads are well predicted from II alone plus the precordials
    assert per_lead["aVF"]["pearson_r"] > 0.7
    assert "| aVF |" in (reconstruct_run / "report.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fidelity", "--generator", "baseline:nope"], "unknown baseline"),
        (["fidelity", "--generator", "baseline:linear"], "other bench command"),
        (["fidelity", "--generator", "no/such/model"], "neither baseline"),
        (["fidelity", "--generator", "baseline:real-train", "--n", "0"], "argument --n: 0 is outside the range 1-"),
        (["fidelity", "--generator", "baseline:real-train", "--n", "17"], "larger than the test split"),
        (["reconstruct", "--generator", "baseline:linear", "--leads", "II,XX"], "unknown lead"),
        (["reconstruct", "--generator", "baseline:linear", "--leads", "12lead"], "nothing to reconstruct"),
        (["reconstruct", "--generator", "baseline:ecgsyn", "--leads", "II"], "unknown baseline"),
        (["reconstruct", "--generator", "baseline:linear", "--leads", "II", "--n", "-1"], "argument --n: -1 is outside"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(args, message, tmp_path: Path, capsys):
    out = tmp_path / "out"
    if "--n" not in args:
        args = [*args, "--n", "4"]
    code = main(["bench", *args, "--data", SAMPLE, "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("synth: error:") and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no staging folder left behind


def test_existing_out_dir_is_refused_without_force(tmp_path: Path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("a user's folder")
    args = ["bench", "reconstruct", "--generator", "baseline:linear", "--leads", "3lead", "--data", SAMPLE, "--n", "3",
            "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--quiet"]
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--force"]) == 2  # not synth's: --force refuses it and keeps the file
    assert "synth did not write it" in capsys.readouterr().err and (out / "mine.txt").exists()
    report = tmp_path / "report"
    assert main([*args[:-4], str(report), *args[-3:]]) == 0
    assert main([*args[:-4], str(report), *args[-3:], "--force"]) == 0  # its own report: replaced
    assert (report / "report.json").exists() and not (report / "mine.txt").exists()


def test_fidelity_scores_a_published_peer_and_a_folder_of_anyones_records(tmp_path: Path, capsys):
    """baseline:deepfake-ecg (the published Pulse2Pulse generator, 8 leads at 500 Hz in µV) arrives as 12 leads
    at 100 Hz in mV with lawful limb leads; records:DIR scores a folder of records as they are, with the labels
    its metadata.csv says they were generated for."""
    pytest.importorskip("deepfakeecg")
    from synth.data.ptbxl import PTBXL
    from synth.data.writers import write_record

    folder = tmp_path / "theirs"
    folder.mkdir()
    train = PTBXL(SAMPLE, 100).split("train")
    rows = ["record,labels,hr"]
    for k in range(8):  # someone's "generated" records: real training records written as 8-lead NPZ
        rec = train[k].select(["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"])
        write_record(rec, folder / f"gen{k}.npz")
        rows.append(f"gen{k},\"{','.join(train.metadata(train.ecg_ids[k])['superclasses'])}\",70")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "fid"
    assert main(_fidelity_args(out, tmp_path / "cache", "baseline:deepfake-ecg", f"records:{folder}", n=6)) == 0
    report = json.loads((out / "report.json").read_text())
    peer, theirs = report["generators"]["baseline:deepfake-ecg"], report["generators"]["records:theirs"]
    assert max(peer["physiology"]["lead_law_rms_mv_mean"].values()) < 1e-5  # derived limb leads obey the laws
    assert np.isfinite(peer["fd"]["fd"]["estimate"]) and "deepfake-ecg" in peer["how"]
    assert theirs["condition_consistency"] is not None and "6 records from" in theirs["how"]
    assert max(theirs["physiology"]["lead_law_rms_mv_mean"].values()) < 1e-5
    assert theirs["physiology"]["heart_rate_mae_bpm"] >= 0
    capsys.readouterr()
    assert main(_fidelity_args(tmp_path / "f2", tmp_path / "cache", f"records:{tmp_path / 'nothing'}")) == 2
    assert "names no folder" in capsys.readouterr().err


def test_fidelity_modality_guidance_reaches_every_checkpoint_and_is_recorded(tmp_path: Path, capsys):
    """--modality-guidance demographics=W guides the shipped report2ecg on age, sex and heart rate too (other
    records than without it, named in the generator's notes and the report); a modality the model lacks is
    refused before any work."""
    model = str(Path(__file__).resolve().parents[2] / "checkpoints" / "report2ecg")
    runs = {}
    for name, extra in (("plain", ["--modality-guidance", "none"]),
                        ("guided", ["--modality-guidance", "demographics=3"])):
        out = tmp_path / name
        assert main([*_fidelity_args(out, tmp_path / "cache", model, n=5), "--steps", "2", *extra]) == 0
        runs[name] = json.loads((out / "report.json").read_text())
    guided, plain = runs["guided"]["generators"]["report2ecg"], runs["plain"]["generators"]["report2ecg"]
    assert "per-modality guidance demographics=3" in guided["how"] and "per-modality" not in plain["how"]
    assert runs["guided"]["modality_guidance"] == {"demographics": 3.0} and runs["plain"]["modality_guidance"] == {}
    assert guided["fd"]["fd"]["estimate"] != plain["fd"]["fd"]["estimate"]
    capsys.readouterr()
    out = tmp_path / "bad"
    assert main([*_fidelity_args(out, tmp_path / "cache", model, n=5), "--modality-guidance", "colour=1"]) == 2
    assert "this model has no modality 'colour'" in capsys.readouterr().err and not out.exists()
