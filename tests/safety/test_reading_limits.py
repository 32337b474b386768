"""Input files are checked before a byte of them is read: a regular file (links followed), within the size limit of
its kind (:mod:`synth.limits`). A named pipe, a device (a link to ``/dev/zero``), a folder or an absurdly large
(sparse) file is refused with one line naming it, in a moment, instead of hanging or reading until memory runs out.
The prompts file of ``synth generate`` is parsed without tracebacks and refuses what it would silently misread.

The cases that hang or exhaust memory when a check is missing run in one child process with its data segment
capped (``RLIMIT_DATA``) and an alarm per case, so a regression fails in seconds instead of freezing the machine.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import synth
from synth import limits
from synth.cli import main
from synth.data.readers import check_input_file, read_record
from synth.data.record import Record
from synth.data.writers import write_record
from synth.errors import DataError, MissingFileError
from synth.tasks.generate import MAX_REPORT_CHARS, read_prompts

GB = 1024**3


def _record(tmp: Path, name: str = "rec", fmt: str = "wfdb") -> Path:
    """A small 2-lead record written by synth; the path to read it by."""
    signal = np.sin(np.linspace(0, 20, 400, dtype=np.float32))[None].repeat(2, axis=0)
    suffix = {"wfdb": "", "npz": ".npz", "csv": ".csv"}[fmt]
    write_record(Record(signal, 100.0, ("II", "PPG"), ("mV", "au")), tmp / f"{name}{suffix}", fmt)
    return tmp / f"{name}{suffix}"


def _sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def _header_without_length(tmp: Path, name: str) -> Path:
    """A WFDB header that names its ``.dat`` but declares no sample count (wfdb then reads the whole file)."""
    (tmp / f"{name}.hea").write_text(f"{name} 1 100\n{name}.dat 16 1000/mV 16 0 0 0 0 II\n")
    return tmp / f"{name}.hea"


def _dangerous_cases(tmp: Path) -> dict[str, tuple[list[str], str, str]]:
    """``id: (argv, needle the error line holds, file it names)``, with their files made in ``tmp``."""
    cases = {}
    for suffix, extra in ((".hea", []), (".npz", []), (".csv", []), (".npy", ["--in-fs", "100", "--in-leads", "II"])):
        fifo = tmp / f"fifo{suffix}"
        os.mkfifo(fifo)
        cases[f"fifo{suffix}"] = (["data", "info", str(fifo), *extra], "named pipe (FIFO), not a regular file", str(fifo))
    for suffix in (".hea", ".npz"):
        os.symlink("/dev/zero", tmp / f"zero{suffix}")
        cases[f"dev-zero{suffix}"] = (["data", "info", str(tmp / f"zero{suffix}")], "character device (/dev/zero)",
                                      str(tmp / f"zero{suffix}"))
    for suffix, needle in ((".hea", "WFDB header of 6.0 GB is larger than the 1.0 MB"),
                           (".csv", "CSV file of 6.0 GB is larger than the 512.0 MB"),
                           (".npz", "NPZ record of 6.0 GB is larger than the 4.0 GB")):
        big = _sparse(tmp / f"big{suffix}", 6 * GB)
        cases[f"sparse-6gb{suffix}"] = (["data", "info", str(big)], needle, str(big))
    # The signal file of a good header: a pipe, /dev/zero, and 6 GB beside a header that declares no length.
    (dat_dir := tmp / "dat").mkdir()
    for kind in ("fifo", "zero"):
        base = _record(dat_dir, f"rec_{kind}")
        dat = base.with_name(base.name + ".dat")
        dat.unlink()
        os.mkfifo(dat) if kind == "fifo" else os.symlink("/dev/zero", dat)
        cases[f"dat-{kind}"] = (["data", "info", str(base)], "WFDB signal file is a", str(dat))
    hea = _header_without_length(dat_dir, "nolen")
    _sparse(dat_dir / "nolen.dat", 6 * GB)
    cases["dat-sparse-6gb"] = (["data", "info", str(hea)], "larger than the 4.0 GB", str(dat_dir / "nolen.dat"))
    # The prompts file of synth generate (read before any model is looked for).
    os.mkfifo(tmp / "prompts_fifo.csv")
    cases["prompts-fifo"] = (["generate", "--prompts", str(tmp / "prompts_fifo.csv"), "--out", str(tmp / "out")],
                             "prompts file is a named pipe", str(tmp / "prompts_fifo.csv"))
    big = _sparse(tmp / "prompts_big.csv", 6 * GB)
    cases["prompts-sparse-6gb"] = (["generate", "--prompts", str(big), "--out", str(tmp / "out")],
                                   "prompts file of 6.0 GB is larger than the 64.0 MB", str(big))
    return cases


_CHILD = r"""
import contextlib, io, json, signal, sys

class Hang(BaseException):
    pass

def on_alarm(*_):
    raise Hang()

signal.signal(signal.SIGALRM, on_alarm)
from synth.cli import main

results = {}
for cid, argv in json.load(sys.stdin).items():
    err = io.StringIO()
    signal.alarm(15)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except Hang:
        code = "hung (stopped after 15 s)"
    except BaseException as exc:  # MemoryError under the cap: a read that had no limit
        code = f"crashed: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.alarm(0)
    results[cid] = {"code": code, "err": err.getvalue()}
print(json.dumps(results))
"""


def _cap_memory():
    cap = 2 * GB  # torch, pandas and wfdb fit; a 6 GB read or /dev/zero does not
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))


@pytest.fixture(scope="module")
def dangerous(tmp_path_factory):
    """Every case of :func:`_dangerous_cases` run by ``synth``'s ``main`` in one capped child process."""
    tmp = tmp_path_factory.mktemp("dangerous")
    cases = _dangerous_cases(tmp)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(synth.__file__).resolve().parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    env.pop("SYNTH_CHECKPOINTS", None)
    done = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps({k: v[0] for k, v in cases.items()}),
                          capture_output=True, text=True, env=env, timeout=600, preexec_fn=_cap_memory)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {k: (results[k], cases[k]) for k in cases}


_DANGEROUS_IDS = ["fifo.hea", "fifo.npz", "fifo.csv", "fifo.npy", "dev-zero.hea", "dev-zero.npz", "sparse-6gb.hea",
                  "sparse-6gb.csv", "sparse-6gb.npz", "dat-fifo", "dat-zero", "dat-sparse-6gb", "prompts-fifo",
                  "prompts-sparse-6gb"]


@pytest.mark.parametrize("case", _DANGEROUS_IDS)
def test_special_and_huge_input_files_are_refused_at_once_with_one_line(dangerous, case):
    result, (_, needle, named) = dangerous[case]
    err = result["err"]
    assert result["code"] == 2, result
    assert err.startswith("synth: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert needle in err and named in err, err


def test_dangerous_case_list_is_complete(tmp_path):
    assert sorted(_dangerous_cases(tmp_path)) == sorted(_DANGEROUS_IDS)


# -- check_input_file ---------------------------------------------------------------------------------------------
def test_check_input_file_accepts_a_regular_file_and_a_link_to_one(tmp_path):
    (tmp_path / "a.csv").write_text("x\n")
    os.symlink(tmp_path / "a.csv", tmp_path / "link.csv")
    assert check_input_file(tmp_path / "a.csv", limit=2) == 2
    assert check_input_file(tmp_path / "link.csv", limit=2) == 2


def test_check_input_file_refuses_what_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "folder").mkdir()
    os.symlink("/dev/null", tmp_path / "null")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    for name, needle in (("pipe", "named pipe (FIFO)"), ("folder", "a folder"), ("null", "character device")):
        with pytest.raises(DataError, match=r"not a regular file") as err:
            check_input_file(tmp_path / name, limit=GB, what="CSV file")
        assert needle in str(err.value) and str(tmp_path / name) in str(err.value)
    with pytest.raises(MissingFileError):
        check_input_file(tmp_path / "dangling", limit=GB)


def test_check_input_file_refuses_a_file_over_its_limit_naming_size_and_limit(tmp_path):
    _sparse(tmp_path / "big.npy", 3 * 1024**2)
    with pytest.raises(DataError) as err:
        check_input_file(tmp_path / "big.npy", limit=1024**2, what="NPY array")
    assert "NPY array of 3.0 MB is larger than the 1.0 MB synth reads" in str(err.value)
    assert str(tmp_path / "big.npy") in str(err.value)


def test_limits_are_those_documented():
    assert limits.MAX_HEADER_BYTES == 1024**2
    assert limits.MAX_INPUT_BYTES == limits.MAX_MEMORY_BYTES
    assert limits.MAX_CSV_BYTES == limits.MAX_MEMORY_BYTES // 8
    assert limits.MAX_PROMPTS_BYTES == 64 * 1024**2


# -- every reader checks its files (with the limits lowered, so that the files stay small) ------------------------
@pytest.mark.parametrize(("fmt", "limit"), [("wfdb", "MAX_INPUT_BYTES"), ("npz", "MAX_INPUT_BYTES"),
                                            ("csv", "MAX_CSV_BYTES")])
def test_each_reader_refuses_a_file_over_its_limit(tmp_path, monkeypatch, fmt, limit):
    path = _record(tmp_path, fmt=fmt)
    read_record(path)  # within the limits as shipped
    monkeypatch.setattr(limits, limit, 100)
    with pytest.raises(DataError, match="is larger than the 100 B synth reads"):
        read_record(path)


def test_a_header_over_its_limit_is_refused(tmp_path, monkeypatch):
    base = _record(tmp_path)
    monkeypatch.setattr(limits, "MAX_HEADER_BYTES", 100)
    with pytest.raises(DataError, match="WFDB header of .* is larger than the 100 B synth reads") as err:
        read_record(base)
    assert str(base) + ".hea" in str(err.value)


def test_npy_over_its_limit_is_refused(tmp_path, monkeypatch):
    np.save(tmp_path / "a.npy", np.zeros((2, 100), np.float32))
    monkeypatch.setattr(limits, "MAX_INPUT_BYTES", 100)
    with pytest.raises(DataError, match="NPY array of .* is larger than the 100 B"):
        read_record(tmp_path / "a.npy", fs_hz=100, leads=["II", "V1"])


def test_gzip_csv_that_unpacks_beyond_the_limit_is_refused_without_unpacking_it_all(tmp_path, monkeypatch):
    rows = "time_s,II\n" + "".join(f"{i / 100:.2f},0.5\n" for i in range(2000))
    with gzip.open(tmp_path / "rec.csv.gz", "wt") as fh:
        fh.write(rows)
    assert read_record(tmp_path / "rec.csv.gz").n_samples == 2000
    monkeypatch.setattr(limits, "MAX_CSV_BYTES", 10_000)  # the file itself is smaller, its text is not
    assert (tmp_path / "rec.csv.gz").stat().st_size < 10_000 < len(rows)
    with pytest.raises(DataError, match="unpacks to more than the 9.8 KB synth reads"):
        read_record(tmp_path / "rec.csv.gz")


def test_dat_of_a_header_without_length_must_fit_the_memory_limit(tmp_path, monkeypatch):
    hea = _header_without_length(tmp_path, "nolen")
    (tmp_path / "nolen.dat").write_bytes(np.zeros(5000, "<i2").tobytes())
    assert read_record(hea).n_samples == 5000  # wfdb reads what the file holds
    monkeypatch.setattr(limits, "MAX_MEMORY_BYTES", 20_000)  # 5000 samples are 40 KB as float64
    with pytest.raises(DataError, match="holds 5,000 samples per lead .* the header declares no length"):
        read_record(hea)


def test_a_folder_where_the_header_names_a_signal_file_is_refused(tmp_path):
    base = _record(tmp_path)
    dat = base.with_name(base.name + ".dat")
    dat.unlink()
    dat.mkdir()
    with pytest.raises(DataError, match="WFDB signal file is a folder, not a regular file"):
        read_record(base)


def test_npz_whose_small_array_claims_gigabytes_is_refused_before_reading(tmp_path):
    import zipfile

    path = _record(tmp_path, fmt="npz")
    header = {"descr": "<U1", "fortran_order": False, "shape": (2 * 10**9,)}  # 8 GB of text claimed, 2 bytes given
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    member.write(b"ab")
    with zipfile.ZipFile(path) as zf:
        kept = {n: zf.read(n) for n in zf.namelist() if n != "metadata.npy"}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in kept.items():
            zf.writestr(name, data)
        zf.writestr("metadata.npy", member.getvalue())
    with pytest.raises(DataError, match="array metadata of shape .* is too large to read"):
        read_record(path)


# -- the prompts file ---------------------------------------------------------------------------------------------
def _prompts(tmp: Path, text: str) -> Path:
    (tmp / "prompts.csv").write_text(text, encoding="utf-8")
    return tmp / "prompts.csv"


def test_prompts_cell_beyond_the_csv_field_limit_is_a_data_error_naming_file_and_row(tmp_path):
    path = _prompts(tmp_path, "report,n\nsinus rhythm,1\n\"" + "x" * 200_000 + "\",1\n")
    with pytest.raises(DataError, match="row 3 .*a cell holds over 131,072 characters") as err:
        read_prompts(path)
    assert str(path) in str(err.value)


def test_prompts_cell_beyond_the_csv_field_limit_exits_2_with_one_line(tmp_path, capsys):
    path = _prompts(tmp_path, "report\n" + "x" * 200_000 + "\n")
    assert main(["generate", "--prompts", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synth: error: ") and err.count("\n") == 1 and "row 2" in err and str(path) in err, err
    assert not (tmp_path / "out").exists()


def test_prompts_report_longer_than_the_documented_limit_is_refused_naming_the_row(tmp_path):
    ok = "x" * MAX_REPORT_CHARS
    assert read_prompts(_prompts(tmp_path, f"report\n{ok}\n"))[0].report == ok
    path = _prompts(tmp_path, f"report\nshort\n{ok}x\n")
    with pytest.raises(DataError, match=f"row 3: report of {MAX_REPORT_CHARS + 1} characters is too long"):
        read_prompts(path)


@pytest.mark.parametrize("header", ["report,report", "report,age,Report ", "n,seed,n"])
def test_prompts_with_a_repeated_column_are_refused_naming_it(tmp_path, header):
    width = len(header.split(","))
    path = _prompts(tmp_path, header + "\n" + ",".join(["1"] * width) + "\n")
    name = header.split(",")[0]
    with pytest.raises(DataError, match=f"column '{name}' appears 2 times") as err:
        read_prompts(path)
    assert str(path) in str(err.value)


def test_prompts_row_with_more_cells_than_the_header_is_refused(tmp_path):
    path = _prompts(tmp_path, "report,n\nSinus rhythm, normal ECG,2\n")
    with pytest.raises(DataError, match="row 2: row has 3 cells but the header names 2 columns"):
        read_prompts(path)
    path = _prompts(tmp_path, "report\nsinus rhythm\nSinus rhythm, normal ECG\n")  # was read as "Sinus rhythm"
    with pytest.raises(DataError, match="row 3: row has 2 cells but the header names 1 column"):
        read_prompts(path)
    # trailing empty cells (a spreadsheet's padding) are not a second report
    assert read_prompts(_prompts(tmp_path, "report,n\nsinus rhythm,2,,\n"))[0].n == 2
    assert read_prompts(_prompts(tmp_path, 'report,n\n"Sinus rhythm, normal ECG",2\n'))[0].report == \
        "Sinus rhythm, normal ECG"


def test_prompts_file_over_its_limit_or_not_a_file_is_refused(tmp_path, monkeypatch):
    path = _prompts(tmp_path, "report\nsinus rhythm\n" * 20)
    monkeypatch.setattr(limits, "MAX_PROMPTS_BYTES", 100)
    with pytest.raises(DataError, match="prompts file of .* is larger than the 100 B"):
        read_prompts(path)
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(DataError, match="prompts file is a folder"):
        read_prompts(tmp_path / "folder.csv")
    with pytest.raises(MissingFileError, match="prompts file not found"):
        read_prompts(tmp_path / "missing.csv")
