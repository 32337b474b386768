"""Text from the input never reaches a file synth writes as a control character or a formula: metadata keys and
values, units and lead names cannot forge header lines (such as the ``# synth-dat-sha256:`` seal) or CSV columns,
and what synth writes it reads back the same; a unit WFDB cannot hold is refused naming its lead. Tables
(``metadata.csv``) escape text a spreadsheet would run as a formula, and :func:`read_table` undoes the escape.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from synth.cli import main
from synth.data.readers import read_record
from synth.data.record import Record
from synth.data.writers import write_record
from synth.errors import DataError
from synth.outputs import DAT_SEAL, WRITER
from synth.tasks.common import read_table, table_text, write_table

#: Keys and values a hostile or careless NPZ may carry: line breaks (every one ``str.splitlines`` knows), a forged
#: seal, a colon, a tab, spaces.
HOSTILE_METADATA = {
    f"a\n# {DAT_SEAL}: 00": 1, "ok": "x\ny\r\n", DAT_SEAL: "ff", "sp ace": [1, 2], "k\u2028j": "v\x85w",
    "c:d": {"e": 1}, "tab\tkey": "\x1e", "nul\x00": "\x00", "report": "=HYPERLINK(\"http://x\")", "\x1cfs": "\x0c",
}


def _npz(path: Path, *, units=("mV", "au"), metadata=None) -> Path:
    signal = np.sin(np.linspace(0, 20, 300, dtype=np.float32))[None].repeat(2, axis=0)
    np.savez(path, signal=signal, fs_hz=np.float64(100), leads=np.array(["II", "PPG"]), units=np.array(list(units)),
             metadata=np.array(json.dumps(metadata or {})))
    return path


def _record(units=("mV", "au"), leads=("II", "PPG"), metadata=None) -> Record:
    signal = np.sin(np.linspace(0, 20, 300, dtype=np.float32))[None].repeat(2, axis=0)
    return Record(signal, 100.0, leads, units, dict(metadata or {}))


def _cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029"]


# -- WFDB headers ---------------------------------------------------------------------------------------------------
def test_hostile_metadata_keys_give_a_wfdb_header_with_no_forged_line_that_reads_back_the_same(tmp_path, capsys):
    src = _npz(tmp_path / "x.npz", metadata=HOSTILE_METADATA)
    code, _, err = _cli(["data", "convert", src, tmp_path / "y", "--to", "wfdb"], capsys)
    assert code == 0, err
    text = (tmp_path / "y.hea").read_text(encoding="utf-8")
    assert not _controls(text) and text.isascii()
    lines = text.splitlines()
    assert lines[3] == f"# {WRITER}"  # record line, two signal lines, then synth's mark
    seals = [ln for ln in lines if ln.startswith(f"# {DAT_SEAL}")]
    assert seals == [lines[-1]]  # one seal, the one synth appended
    assert seals[0].split(": ", 1)[1] == hashlib.sha256((tmp_path / "y.dat").read_bytes()).hexdigest()
    meta = read_record(tmp_path / "y").metadata
    assert {k: v for k, v in meta.items() if k not in ("record_name", "comments")} == HOSTILE_METADATA
    code, out, err = _cli(["data", "info", tmp_path / "y", "--json"], capsys)
    assert code == 0 and json.loads(out)["metadata"]["c:d"] == {"e": 1}, err


def test_wfdb_keeps_plain_keys_plain(tmp_path):
    write_record(_record(metadata={"report": "sinus rhythm", "hr": 60.5}), tmp_path / "r", "wfdb")
    text = (tmp_path / "r.hea").read_text()
    assert '# report: "sinus rhythm"' in text and "# hr: 60.5" in text
    assert read_record(tmp_path / "r").metadata["hr"] == 60.5


@pytest.mark.parametrize("unit", ["a u", "au\nevil,1,2", "a.u.", "a(u)", "m\x00V"])
def test_wfdb_refuses_a_unit_it_cannot_hold_naming_the_lead(tmp_path, capsys, unit):
    src = _npz(tmp_path / "x.npz", units=("mV", unit))
    before = sorted(tmp_path.iterdir())
    code, _, err = _cli(["data", "convert", src, tmp_path / "y", "--to", "wfdb"], capsys)
    assert code == 2 and err.startswith("synth: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert "of lead PPG cannot be written to a WFDB header" in err and str(src) in err, err
    assert sorted(tmp_path.iterdir()) == before  # nothing written, nothing left behind


@pytest.mark.parametrize("unit", ["mmHg", "a_u", "%", "mm/s", "degC"])
def test_wfdb_units_it_can_hold_read_back_the_same(tmp_path, unit):
    write_record(_record(units=("mV", unit)), tmp_path / "r", "wfdb")
    assert read_record(tmp_path / "r").units == ("mV", unit)


def test_metadata_too_large_for_a_header_is_refused_naming_it(tmp_path):
    record = _record(metadata={"small": 1, "notes": "x" * 600_000})
    with pytest.raises(DataError, match="the largest: notes.* too large for a WFDB header"):
        write_record(record, tmp_path / "r", "wfdb")
    assert not list(tmp_path.iterdir())
    write_record(record, tmp_path / "r.npz", "npz")  # NPZ keeps any metadata
    assert read_record(tmp_path / "r.npz").metadata["notes"] == "x" * 600_000


@pytest.mark.parametrize("fmt", ["wfdb", "csv"])
def test_lead_names_no_file_can_hold_are_refused(tmp_path, fmt):
    with pytest.raises(DataError, match="lead name 'PP\\\\nG' cannot be written"):
        write_record(_record(leads=("II", "PP\nG")), tmp_path / "r", fmt)


# -- CSV headers ----------------------------------------------------------------------------------------------------
def test_units_with_a_line_break_and_commas_keep_the_csv_header_one_row(tmp_path, capsys):
    src = _npz(tmp_path / "x.npz", units=("mV", "au\nevil,1,2"))
    code, _, err = _cli(["data", "convert", src, tmp_path / "y.csv", "--to", "csv"], capsys)
    assert code == 0, err
    text = (tmp_path / "y.csv").read_text()
    assert not _controls(text)
    rows = list(csv.reader(text.splitlines()[1:]))
    assert rows[0] == ["time_s", "II", "PPG [au evil,1,2]"] and all(len(r) == 3 for r in rows)
    back = read_record(tmp_path / "y.csv")
    assert back.leads == ("II", "PPG") and back.units == ("mV", "au evil,1,2") and back.n_samples == 300


@pytest.mark.parametrize("unit", ['a#u,"x', "a,u", "#", "µV/s", "au [x]"])
def test_csv_units_with_quotes_commas_and_hashes_read_back_the_same(tmp_path, unit):
    write_record(_record(units=("mV", unit)), tmp_path / "r.csv", "csv")
    back = read_record(tmp_path / "r.csv")
    assert back.units == ("mV", unit) and back.leads == ("II", "PPG")
    np.testing.assert_allclose(back.signal, _record().signal, atol=1e-5)


def test_csv_empty_unit_reads_back_as_mv(tmp_path):
    write_record(_record(units=("mV", "")), tmp_path / "r.csv", "csv")
    assert read_record(tmp_path / "r.csv").units == ("mV", "mV")


# -- tables (metadata.csv) ------------------------------------------------------------------------------------------
FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-1+cmd", "@SUM(A1)", "\tx", "\rx", "'quoted", "-", "=1"]


def test_write_table_escapes_text_a_spreadsheet_would_run_and_read_table_undoes_it(tmp_path):
    rows = [{"report": f, "n": 1} for f in FORMULAS] + [{"report": "sinus rhythm", "n": 2}]
    write_table(rows, tmp_path / "t.csv")
    with open(tmp_path / "t.csv", newline="", encoding="utf-8") as fh:
        raw = list(csv.DictReader(fh))
    assert [r["report"] for r in raw] == ["'" + f for f in FORMULAS] + ["sinus rhythm"]
    assert [r["report"] for r in read_table(tmp_path / "t.csv")] == [*FORMULAS, "sinus rhythm"]
    assert table_text("'=1") == "=1" and table_text("x") == "x"


def test_write_table_leaves_numbers_as_numbers(tmp_path):
    row = {"hr": -5.0, "n": -3, "f32": np.float32(-1.5), "i64": np.int64(-7), "text_number": "-2.5e-3",
           "plus": "+4", "nan": float("nan"), "none": None, "flag": False}
    write_table([row], tmp_path / "t.csv")
    with open(tmp_path / "t.csv", newline="", encoding="utf-8") as fh:
        raw = next(csv.DictReader(fh))
    assert raw == {"hr": "-5.0", "n": "-3", "f32": "-1.5", "i64": "-7", "text_number": "-2.5e-3", "plus": "+4",
                   "nan": "nan", "none": "", "flag": "False"}


def test_generated_metadata_escapes_a_formula_report(use_tiny_checkpoints, tmp_path, capsys):
    report = '=HYPERLINK("http://evil.example","click")'
    prompts = tmp_path / "prompts.csv"
    prompts.write_text('report,n\n"=HYPERLINK(""http://evil.example"",""click"")",1\n-5 mm ST,1\n', encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = _cli(["generate", "--prompts", prompts, "--out", out, "--format", "npz", "--plot", 0, "--steps", 2],
                        capsys)
    assert code == 0, err
    with open(out / "metadata.csv", newline="", encoding="utf-8") as fh:
        raw = list(csv.DictReader(fh))
    assert [r["report"] for r in raw] == ["'" + report, "'-5 mm ST"]
    assert [r["report"] for r in read_table(out / "metadata.csv")] == [report, "-5 mm ST"]
    assert read_record(out / "ecg_00000.npz").metadata["report"] == report  # the record keeps it as given
