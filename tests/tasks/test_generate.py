"""Report → 12-lead: the Python API and ``synth generate`` on the tiny report2ecg model."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from synth.cli import main
from synth.data.readers import read_record
from synth.errors import DataError
from synth.tasks import MAX_REPORT_CHARS, Prompt, build_condition, checkpoint_path, generate, read_prompts
from synth.tasks.common import load_task_model
from synth.tasks.generate import stack_conditions


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model(tiny_checkpoints):
    return load_task_model(tiny_checkpoints / "report2ecg", "report2ecg")[0]


def test_checkpoint_path_uses_the_environment_and_names_a_missing_folder(tmp_path, monkeypatch, tiny_checkpoints):
    monkeypatch.setenv("SYNTH_CHECKPOINTS", str(tiny_checkpoints))
    assert checkpoint_path("reconstruct") == tiny_checkpoints / "reconstruct"
    monkeypatch.setenv("SYNTH_CHECKPOINTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "report2ecg")):
        checkpoint_path("report2ecg")


def test_generate_is_deterministic_and_resamples_to_500_hz(model):
    prompt = Prompt(report="sinus rhythm", labels=["NORM", "MI"], age=63, sex="F", hr=72, n=3, seed=5)
    a, meta = generate(model, prompt, batch_size=2)
    b, _ = generate(model, prompt, batch_size=2)
    c, _ = generate(model, Prompt(report="sinus rhythm", n=3, seed=6), batch_size=2)
    assert a.shape == (3, 12, model.cfg.signal.length) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert meta[2] == {**meta[2], "report": "sinus rhythm", "labels": "NORM,MI", "seed": 5, "index": 2}
    up, meta500 = generate(model, prompt, batch_size=2, fs_hz=500)
    assert up.shape[-1] == 5 * a.shape[-1]
    assert meta500[0]["fs_hz"] == 500 and meta500[0]["model_fs_hz"] == 100 and meta500[0]["resampled"] == "polyphase"


def test_stack_conditions_repeats_each_prompt_and_marks_what_a_prompt_lacks(model):
    a = build_condition(model, Prompt(report="sinus rhythm", hr=60, labels=["NORM"]))
    b = build_condition(model, Prompt(report="Sinusrhythmus", hr=110, labels=["MI", "HYP"]))
    cond = stack_conditions([a, b], [2, 3])
    assert cond["report"] == ["sinus rhythm"] * 2 + ["Sinusrhythmus"] * 3
    assert cond["heart_rate"].tolist() == [60, 60, 110, 110, 110]
    assert cond["labels"].shape == (5, 5) and cond["labels"][4].sum() == 2
    assert model.sample(cond, 5, steps=1).shape == (5, 12, model.cfg.signal.length)
    mixed = stack_conditions([a, build_condition(model, Prompt(report="x"))], [1, 2])
    assert mixed["report"] == ["sinus rhythm", "x", "x"] and torch.isnan(mixed["labels"][1:]).all()
    assert mixed["heart_rate"][0] == 60 and torch.isnan(mixed["heart_rate"][1:]).all()


def test_a_mixed_batch_gives_each_prompt_what_it_gets_alone(model):
    """Prompts with different attributes share one model call; each record equals the one its prompt makes on
    its own (its noise is its own, a missing attribute is the null token) whatever the batch."""
    from synth.tasks.generate import batches_of, sample_batch

    prompts = [Prompt(report="sinus rhythm", labels=["MI"], hr=70, n=2, seed=1), Prompt(n=2, seed=2),
               Prompt(age=40, sex="F", n=1, seed=3), Prompt(labels=["NORM"], n=2, seed=4)]
    conds = [build_condition(model, p) for p in prompts]
    items = batches_of(prompts, 64)[0]
    together, meta = sample_batch(model, prompts, conds, items, steps=2, guidance_scale=2.0)
    assert [(m["prompt"], m["index"]) for m in meta] == items
    for k, (p, j) in enumerate(items):
        alone, _ = sample_batch(model, prompts, conds, [(p, j)], steps=2, guidance_scale=2.0)
        np.testing.assert_allclose(together[k], alone[0], atol=1e-4)
    smaller = np.concatenate([sample_batch(model, prompts, conds, b, steps=2, guidance_scale=2.0)[0]
                              for b in batches_of(prompts, 3)])
    np.testing.assert_allclose(smaller, together, atol=1e-4)  # the batch size does not change the records


@pytest.mark.parametrize(
    ("prompt", "needle"),
    [(Prompt(report="x" * 10_000), "10000 characters is too long"), (Prompt(n=0), "n \\(records\\) 0 is outside the range 1-"),
     (Prompt(labels=["NORM", "AFIB"]), "unknown label 'AFIB'"), (Prompt(age=float("nan")), "age \\(years\\) nan is outside"),
     (Prompt(hr=500), "heart rate \\(bpm\\) 500 is outside the range 20-300"), (Prompt(report="x" * (MAX_REPORT_CHARS + 1)), "too long")],
)
def test_bad_prompts_are_refused(model, prompt, needle):
    with pytest.raises(DataError, match=needle):
        build_condition(model, prompt)


def test_cli_generate_writes_records_plots_and_metadata(use_tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "gen"
    code, stdout, err = run(["generate", "--report", "left ventricular hypertrophy", "--labels", "HYP", "--age", 63,
                             "--sex", "F", "--hr", 72, "--n", 3, "--out", out, "--seed", 1, "--plot", 2, "--fs", 500,
                             "--batch-size", 2], capsys)
    assert code == 0, err
    rec = read_record(out / "ecg_00002")
    assert rec.fs_hz == 500 and rec.leads[:2] == ("I", "II") and rec.metadata["report"] == "left ventricular hypertrophy"
    assert sorted(p.name for p in out.glob("*.png")) == ["ecg_00000.png", "ecg_00001.png"]
    rows = list(csv.DictReader(open(out / "metadata.csv")))
    assert len(rows) == 3 and rows[0]["labels"] == "HYP" and rows[0]["sex"] == "F"
    assert rows[0]["checkpoint"] == str(use_tiny_checkpoints / "report2ecg") and rows[0]["resampled"] == "learned"
    again = tmp_path / "again"
    assert run(["generate", "--report", "left ventricular hypertrophy", "--labels", "HYP", "--age", 63, "--sex", "F",
                "--hr", 72, "--n", 3, "--out", again, "--seed", 1, "--plot", 0, "--fs", 500, "--batch-size", 2],
               capsys)[0] == 0
    np.testing.assert_array_equal(read_record(again / "ecg_00002").signal, rec.signal)


def test_cli_generate_batch_form_from_a_prompts_csv(use_tiny_checkpoints, tmp_path, capsys):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("report,labels,age,sex,hr,n,seed\n"
                       "sinus rhythm,NORM,50,M,60,2,7\n"
                       "Sinusrhythmus. Linksschenkelblock,CD,,f,,1,\n"
                       ",,,,110,,\n", encoding="utf-8")
    out = tmp_path / "batch"
    code, _, err = run(["generate", "--prompts", prompts, "--n", 2, "--out", out, "--format", "npz", "--plot", 0,
                        "--seed", 3], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(open(out / "metadata.csv", encoding="utf-8")))
    assert [r["prompt"] for r in rows] == ["0", "0", "1", "2", "2"]
    assert [r["seed"] for r in rows] == ["7", "7", "100003", "200003", "200003"]
    assert rows[2]["report"] == "Sinusrhythmus. Linksschenkelblock" and rows[2]["sex"] == "F" and rows[2]["hr"] == ""
    assert rows[3]["hr"] == "110.0" and rows[3]["report"] == ""
    assert len(list(out.glob("ecg_*.npz"))) == 5


@pytest.mark.parametrize(
    ("text", "needle"),
    [("report,mood\nx,happy\n", "unknown column(s) ['mood']"), ("report,n\nx,0\n", "row 2: n (records) 0 is outside the range 1-"),
     ("report,age\nx,old\n", "row 2: age 'old' is not a number"), ("report\n", "no rows"),
     ("report,hr\nx,nan\n", "hr is nan"), ("n\n2.5\n", "n '2.5' is not a whole number")],
)
def test_bad_prompts_file_is_refused_with_its_row(tmp_path, text, needle):
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_prompts(path)
    assert needle in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--report", "x" * 10_000], "10000 characters is too long"), (["--n", 0], "argument --n: 0 is outside the range 1-"),
     (["--labels", "NORM,AFIB"], "unknown label 'AFIB'"), (["--age", "nan"], "argument --age: 'nan' is not a finite number"),
     (["--prompts", "p.csv", "--report", "x"], "--prompts and --report both given"),
     (["--prompts", "missing.csv"], "missing.csv"), (["--fs", 0], "argument --fs: 0 is outside the range 10-10,000")],
)
def test_cli_generate_bad_input_exits_2_and_writes_nothing(use_tiny_checkpoints, tmp_path, capsys, monkeypatch,
                                                          extra, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.csv").write_text("report\nx\n")
    code, _, err = run(["generate", "--out", "o", *extra], capsys)
    assert code == 2 and needle in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]


def test_cli_generate_refuses_an_existing_folder_and_a_missing_checkpoint(tmp_path, capsys, monkeypatch):
    (tmp_path / "o").mkdir()
    code, _, err = run(["generate", "--report", "x", "--out", tmp_path / "o"], capsys)
    assert code == 2 and "already exists" in err
    monkeypatch.setenv("SYNTH_CHECKPOINTS", str(tmp_path / "none"))
    code, _, err = run(["generate", "--report", "x", "--out", tmp_path / "p"], capsys)
    assert code == 2 and str(tmp_path / "none" / "report2ecg") in err and not (tmp_path / "p").exists()


def test_a_prompts_file_seed_is_read_exactly(tmp_path):
    from synth.tasks.generate import read_prompts

    (tmp_path / "p.csv").write_text("report,seed\nx,9223372036654775297\ny,12\n")
    assert [p.seed for p in read_prompts(tmp_path / "p.csv")] == [9223372036654775297, 12]


def test_cli_modality_guidance_changes_the_records_and_is_recorded(use_tiny_checkpoints, tmp_path, capsys):
    """``--modality-guidance demographics=W`` adds that term: 0 gives the plain records, a weight changes them;
    a prompt without the modality in the same batch is sampled as it is alone; the metadata says what was used."""
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("report,age,sex,hr,n,seed\nsinus rhythm,50,M,60,2,7\nsinus rhythm,,,,1,8\n", encoding="utf-8")
    outs = {}
    for name, extra in (("plain", []), ("zero", ["--modality-guidance", "demographics=0"]),
                        ("guided", ["--modality-guidance", "demographics=3"])):
        outs[name] = tmp_path / name
        code, _, err = run(["generate", "--prompts", prompts, "--out", outs[name], "--format", "npz", "--plot", 0,
                            "--steps", 2, *extra], capsys)
        assert code == 0, err

    def signal(name, k):
        return np.load(outs[name] / f"ecg_{k:05d}.npz")["signal"]

    for k in range(3):
        np.testing.assert_allclose(signal("zero", k), signal("plain", k), atol=1e-5)
    assert np.abs(signal("guided", 0) - signal("plain", 0)).max() > 1e-3  # demographics given: guided
    np.testing.assert_allclose(signal("guided", 2), signal("plain", 2), atol=1e-4)  # not given: unchanged
    rows = list(csv.DictReader(open(outs["guided"] / "metadata.csv", encoding="utf-8")))
    assert rows[0]["modality_guidance"] == "demographics=3"
    assert list(csv.DictReader(open(outs["plain"] / "metadata.csv")))[0]["modality_guidance"] == ""


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--report", "x", "--modality-guidance", "rhythm=1"], "this model has no modality 'rhythm'"),
     (["--report", "x", "--modality-guidance", "demographics=1"], "'demographics' is guided but no prompt gives it"),
     (["--report", "x", "--modality-guidance", "report"], "is not NAME=WEIGHT"),
     (["--report", "x", "--modality-guidance", "report=99"], "99 is outside the range 0-50")],
)
def test_cli_bad_modality_guidance_exits_2_and_writes_nothing(use_tiny_checkpoints, tmp_path, capsys, monkeypatch,
                                                             extra, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["generate", "--out", "o", *extra], capsys)
    assert code == 2 and needle in err, err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_modality_guidance_option_parses_weights_and_none():
    from synth.cli.common import modality_guidance

    assert modality_guidance("demographics=0.5, report=1") == {"demographics": 0.5, "report": 1.0}
    assert modality_guidance("none") == {}
