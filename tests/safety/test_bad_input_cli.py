"""Bad input over every command, as a careless or hostile user gives it: each case exits 2 with one line
``synth: error: ...`` naming the file (when a file is at fault), no traceback, and nothing written or left behind.

The table below holds the cases; ``test_case_count`` keeps it at 80 or more. Inputs are files the tests write
themselves (damaged copies of good ones); models are the tiny test checkpoints.
"""

from __future__ import annotations

import errno
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from synth import limits
from synth.cli import main
from synth.data.sample import sample_bidmc_root, sample_ptbxl_root
from synth.data.writers import write_record

SAMPLE = sample_ptbxl_root() / "records100" / "00000" / "00001_lr"
PPG = sample_bidmc_root() / "bidmc_csv" / "bidmc_46_Signals.csv.gz"


@dataclass
class Case:
    id: str
    #: ``argv(tmp, checkpoints)``: the command line; it may write the bad files into ``tmp`` first.
    argv: Callable[[Path, Path], list]
    #: Text the error line must contain.
    needle: str
    #: The file the line must name, relative to ``tmp`` ("" = the command line is at fault, no file).
    names: str = ""
    #: ``setup(monkeypatch)`` for cases that need the environment changed (a lowered limit, a failing disk).
    setup: Callable | None = None


# -- files to break ---------------------------------------------------------------------------------------------
def record(tmp: Path, name: str = "rec", **kwargs) -> Path:
    """A copy of a real PTB-XL record written by synth (WFDB), ``tmp/name``."""
    from synth.data.readers import read_record

    rec = read_record(SAMPLE)
    for key, value in kwargs.items():
        setattr(rec, key, value)
    write_record(rec, tmp / name)
    return tmp / name


def header(tmp: Path, transform: Callable[[list[str]], list[str]]) -> Path:
    """The record's header with its lines transformed."""
    base = record(tmp)
    hea = base.with_suffix(".hea")
    hea.write_text("\n".join(transform(hea.read_text().splitlines())) + "\n")
    return base


def record_line(field: int, value: str) -> Callable[[list[str]], list[str]]:
    def edit(lines):
        first = next(i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#"))
        parts = lines[first].split()
        parts[field] = value
        lines[first] = " ".join(parts)
        return lines

    return edit


def text(tmp: Path, name: str, content: str) -> Path:
    (tmp / name).write_text(content)
    return tmp / name


def raw(tmp: Path, name: str, content: bytes) -> Path:
    (tmp / name).write_bytes(content)
    return tmp / name


def npy(tmp: Path, name: str, array) -> Path:
    np.save(tmp / name, array, allow_pickle=True)
    return tmp / name


def npz(tmp: Path, name: str, **arrays) -> Path:
    np.savez(tmp / name, **arrays)
    return tmp / name


def checkpoint(tmp: Path, ck: Path, edit_config=None, edit_weights=None, name: str = "ck") -> Path:
    """A copy of the tiny report2ecg export with its config.json and/or weights edited."""
    folder = tmp / name
    shutil.copytree(ck / "report2ecg", folder)
    if edit_config is not None:
        path = folder / "config.json"
        path.write_text(json.dumps(edit_config(json.loads(path.read_text()))))
    if edit_weights is not None:
        state = load_file(str(folder / "model.safetensors"))
        save_file(edit_weights(state), str(folder / "model.safetensors"))
    return folder


def set_in(path: list, value):
    def edit(cfg):
        node = cfg
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return cfg

    return edit


def nan_weights(state):
    key = next(iter(state))
    state[key] = state[key].clone().fill_(float("nan"))
    return state


def prompts(tmp: Path, content: str) -> Path:
    return text(tmp, "prompts.csv", content)


def low_output_limit(monkeypatch):
    monkeypatch.setattr(limits, "MAX_OUTPUT_BYTES", 10_000)


def low_memory_limit(monkeypatch):
    monkeypatch.setattr(limits, "MAX_MEMORY_BYTES", 200_000)  # a 10 s record reads, its reconstruction does not


def disk_full(monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full)


def wfdb_short_write(monkeypatch):
    """What a full disk does under wfdb: NumPy's tofile writes part of the samples and says so, with no errno."""
    import wfdb

    def short(*args, **kwargs):
        raise OSError("24000 requested and 4096 written")

    monkeypatch.setattr(wfdb, "wrsamp", short)


def npz_declaring(tmp: Path, name: str, shape: tuple) -> Path:
    """An NPZ whose ``signal.npy`` header claims ``shape`` (float32) while holding a few bytes only."""
    import io
    import zipfile

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(tmp / name, "w") as zf:
        zf.writestr("signal.npy", head.getvalue() + b"\0" * 64)
        buf = io.BytesIO()
        np.save(buf, np.float64(100.0))
        zf.writestr("fs_hz.npy", buf.getvalue())
    return tmp / name


def csv_times(tmp: Path, name: str, times) -> Path:
    return text(tmp, name, "time_s,II\n" + "".join(f"{t:.6f},0.1\n" for t in times))


def no_permission(monkeypatch):
    import synth.outputs

    def refused(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(synth.outputs.os, "open", refused)


def yaml_file(tmp: Path, content: str, name: str = "train.yaml") -> Path:
    return text(tmp, name, content)


TRAIN = "model: configs/model/flow_dit_tiny.yaml\ndata: {root: ../shared/data/ptbxl}\n"
GEN = ["generate", "--report", "sinus rhythm", "--n", 1]
COHORT = ["cohort", Path(__file__).resolve().parents[2] / "configs" / "cohort" / "default.yaml", "size=2",
          f"data={sample_ptbxl_root()}", "cache_dir=null"]


def gen(*extra) -> Callable:
    return lambda t, c: [*GEN, *extra, "--out", t / "out"]


def rec_cmd(*extra) -> Callable:
    return lambda t, c: ["reconstruct", SAMPLE, "--leads", "II,V1,V5", *extra, "--out", t / "out"]


def ppg_cmd(*extra) -> Callable:
    return lambda t, c: ["ppg2ecg", PPG, *extra, "--out", t / "out"]


def echo_cmd(*extra) -> Callable:
    return lambda t, c: ["echo", "--ecg", SAMPLE, *extra, "--out", t / "clip.mp4"]


def info(make) -> Callable:
    return lambda t, c: ["data", "info", make(t)]


OUT_OF = "is outside the range"
CASES = [
    # -- data info: damaged records -------------------------------------------------------------------------------
    Case("info-missing", lambda t, c: ["data", "info", t / "nope.hea"], "no such file", "nope.hea"),
    Case("hea-rate-negative", info(lambda t: header(t, record_line(2, "-100"))), "outside the range synth reads",
         "rec.hea"),
    Case("hea-rate-text", info(lambda t: header(t, record_line(2, "abc"))), "'abc' is not a number", "rec.hea"),
    Case("hea-rate-huge", info(lambda t: header(t, record_line(2, "1e9"))), "outside the range synth reads",
         "rec.hea"),
    Case("hea-rate-tiny", info(lambda t: header(t, record_line(2, "0.001"))), "outside the range synth reads",
         "rec.hea"),
    Case("hea-rate-nan", info(lambda t: header(t, record_line(2, "nan"))), "outside the range synth reads",
         "rec.hea"),
    Case("hea-length-huge", info(lambda t: header(t, record_line(3, "1000000000000"))), "samples per lead",
         "rec.hea"),
    Case("hea-length-negative", info(lambda t: header(t, record_line(3, "-5"))), "negative", "rec.hea"),
    Case("hea-length-text", info(lambda t: header(t, record_line(3, "ten"))), "not a whole number", "rec.hea"),
    Case("hea-no-record-line", info(lambda t: header(t, lambda lines: ["# only a comment"])), "no record line",
         "rec.hea"),
    Case("hea-truncated-dat", info(lambda t: (raw(t, "rec.dat", record(t).with_suffix(".dat").read_bytes()[:999]),
                                               t / "rec")[1]), "truncated", "rec.hea"),
    Case("hea-dat-missing", info(lambda t: (record(t).with_suffix(".dat").unlink(), t / "rec")[1]), "missing",
         "rec.hea"),
    Case("hea-unknown-lead", info(lambda t: header(t, lambda ls: [ls[0], ls[1].replace(" I", " XYZ", 1), *ls[2:]])),
         "unknown lead name 'XYZ'", "rec.hea"),
    Case("hea-duplicate-lead", info(lambda t: header(t, lambda ls: [*ls[:3], ls[3].replace(" III", " MLII"),
                                                                     *ls[4:]])), "duplicate", "rec.hea"),
    Case("hea-nan-samples", info(lambda t: record(t, signal=np.full((12, 1000), np.nan, np.float32))),
         "missing (NaN", "rec.hea"),
    Case("hea-binary-garbage", info(lambda t: raw(t, "junk.hea", bytes(range(256)) * 4)), "", "junk.hea"),
    # -- data info: CSV ---------------------------------------------------------------------------------------------
    Case("csv-empty", info(lambda t: text(t, "e.csv", "")), "empty", "e.csv"),
    Case("csv-header-only", info(lambda t: text(t, "h.csv", "time_s,I,II\n")), "no samples", "h.csv"),
    Case("csv-text-sample", info(lambda t: text(t, "s.csv", "time_s,I\n0,0.1\n0.01,lead-off\n")), "non-numeric",
         "s.csv"),
    Case("csv-text-time", info(lambda t: text(t, "t.csv", "time_s,I\nzero,0.1\none,0.2\n")), "non-numeric", "t.csv"),
    Case("csv-time-step-tiny", info(lambda t: text(t, "d.csv", "time_s,I\n0,0.1\n1e-12,0.2\n2e-12,0.3\n")),
         "outside the range synth reads", "d.csv"),
    Case("csv-time-step-huge", info(lambda t: text(t, "d.csv", "time_s,I\n0,0.1\n1000,0.2\n2000,0.3\n")),
         "outside the range synth reads", "d.csv"),
    Case("csv-time-backwards", info(lambda t: text(t, "b.csv", "time_s,I\n0.02,0.1\n0.01,0.1\n0,0.1\n")),
         "not increasing", "b.csv"),
    Case("csv-time-inf", info(lambda t: text(t, "i.csv", "time_s,I\n0,0.1\ninf,0.1\n")), "infinite", "i.csv"),
    Case("csv-inf-sample", info(lambda t: text(t, "v.csv", "time_s,I\n0,inf\n0.01,0.2\n")), "missing (NaN/inf)",
         "v.csv"),
    Case("csv-no-rate", info(lambda t: text(t, "n.csv", "I,II\n0.1,0.2\n")), "no time column", "n.csv"),
    Case("csv-unknown-lead", info(lambda t: text(t, "u.csv", "time_s,Foo\n0,1\n0.01,2\n")), "unknown lead name",
         "u.csv"),
    Case("csv-ragged", info(lambda t: text(t, "r.csv", "time_s,I\n0,1,2,3\n0.01,1\n")), "", "r.csv"),
    # -- data info: NPZ / NPY ---------------------------------------------------------------------------------------
    Case("npz-garbage", info(lambda t: raw(t, "g.npz", b"PK\x03\x04 not really a zip")), "not a synth NPZ", "g.npz"),
    Case("npz-random-bytes", info(lambda t: raw(t, "r.npz", bytes(range(256)))), "not a synth NPZ", "r.npz"),
    Case("npz-foreign", info(lambda t: npz(t, "f.npz", x=np.zeros(3))), "not a synth NPZ", "f.npz"),
    Case("npz-string-signal", info(lambda t: npz(t, "s.npz", signal=np.array(["a", "b"]), fs_hz=100.0,
                                                 leads=np.array(["I"]))), "not a synth NPZ", "s.npz"),
    Case("npz-rate-nan", info(lambda t: npz(t, "n.npz", signal=np.zeros((1, 10)), fs_hz=np.nan,
                                            leads=np.array(["I"]))), "outside the range synth reads", "n.npz"),
    Case("npz-rate-huge", info(lambda t: npz(t, "h.npz", signal=np.zeros((1, 10)), fs_hz=1e9,
                                             leads=np.array(["I"]))), "outside the range synth reads", "h.npz"),
    Case("npz-object", info(lambda t: npz(t, "o.npz", signal=np.array([{}, 1], dtype=object), fs_hz=100.0,
                                          leads=np.array(["I"]))), "not a synth NPZ", "o.npz"),
    Case("npz-bad-metadata", info(lambda t: npz(t, "m.npz", signal=np.zeros((1, 10)), fs_hz=100.0,
                                                leads=np.array(["I"]), metadata=np.array("{not json"))),
         "not a synth NPZ", "m.npz"),
    Case("npy-strings", lambda t, c: ["data", "info", npy(t, "s.npy", np.array(["x", "y"])), "--in-fs", 100,
                                      "--in-leads", "I"], "not numeric", "s.npy"),
    Case("npy-pickled", lambda t, c: ["data", "info", npy(t, "p.npy", np.array([{}], dtype=object)), "--in-fs",
                                      100, "--in-leads", "I"], "cannot read array", "p.npy"),
    Case("npy-garbage", lambda t, c: ["data", "info", raw(t, "g.npy", b"\x93NUMPY garbage"), "--in-fs", 100,
                                      "--in-leads", "I"], "cannot read array", "g.npy"),
    Case("npy-no-rate", lambda t, c: ["data", "info", npy(t, "x.npy", np.zeros((2, 10))), "--in-leads", "I,II"],
         "carries no sampling rate", "x.npy"),
    Case("npy-lead-count", lambda t, c: ["data", "info", npy(t, "x.npy", np.zeros((2, 10))), "--in-fs", 100,
                                         "--in-leads", "I,II,III"], "does not fit 3 leads", "x.npy"),
    Case("npy-complex", lambda t, c: ["data", "info", npy(t, "c.npy", np.zeros((1, 10), complex)), "--in-fs", 100,
                                      "--in-leads", "I"], "not numeric", "c.npy"),
    Case("in-fs-zero", lambda t, c: ["data", "info", SAMPLE, "--in-fs", 0], f"--in-fs: 0 {OUT_OF}"),
    Case("in-fs-nan", lambda t, c: ["data", "info", SAMPLE, "--in-fs", "nan"], "not a finite number"),
    Case("info-fs-huge", lambda t, c: ["data", "info", SAMPLE, "--fs", "1e9"], f"--fs: 1e9 {OUT_OF}"),
    Case("info-unknown-folder", lambda t, c: ["data", "info", t], "not a dataset synth recognises", "."),
    # -- data plot / convert ----------------------------------------------------------------------------------------
    Case("plot-not-png", lambda t, c: ["data", "plot", SAMPLE, "--out", t / "x.jpg"], "PNG", "x.jpg"),
    Case("plot-duration-zero", lambda t, c: ["data", "plot", SAMPLE, "--out", t / "x.png", "--duration", 0],
         f"--duration: 0 {OUT_OF}"),
    Case("plot-duration-huge", lambda t, c: ["data", "plot", SAMPLE, "--out", t / "x.png", "--duration", 1e6],
         f"--duration: 1000000.0 {OUT_OF}"),
    Case("plot-start-negative", lambda t, c: ["data", "plot", SAMPLE, "--out", t / "x.png", "--start", -1],
         f"--start: -1 {OUT_OF}"),
    Case("plot-start-beyond", lambda t, c: ["data", "plot", SAMPLE, "--out", t / "x.png", "--start", 50],
         "outside the record"),
    Case("plot-overlay-missing", lambda t, c: ["data", "plot", SAMPLE, "--out", t / "x.png", "--overlay",
                                               t / "none.hea"], "no such file", "none.hea"),
    Case("plot-out-under-a-file", lambda t, c: ["data", "plot", SAMPLE, "--out",
                                                text(t, "afile", "x") / "x.png"], "a file is in the way", "afile"),
    Case("plot-permission", lambda t, c: ["data", "plot", SAMPLE, "--out", t / "x.png"], "permission denied",
         "x.png", no_permission),
    Case("convert-bad-format", lambda t, c: ["data", "convert", SAMPLE, t / "o", "--to", "edf"], "invalid choice"),
    Case("convert-wfdb-name", lambda t, c: ["data", "convert", SAMPLE, t / "my.rec", "--to", "wfdb"],
         "may hold only letters", "my.rec"),
    Case("convert-fs-zero", lambda t, c: ["data", "convert", SAMPLE, t / "o.npz", "--to", "npz", "--fs", 0],
         f"--fs: 0 {OUT_OF}"),
    Case("convert-unknown-lead", lambda t, c: ["data", "convert", SAMPLE, t / "o.npz", "--to", "npz", "--leads",
                                               "II,Q7"], "unknown lead name 'Q7'"),
    Case("convert-missing-input", lambda t, c: ["data", "convert", t / "in.csv", t / "o.npz", "--to", "npz"],
         "no such file", "in.csv"),
    Case("convert-too-large", lambda t, c: ["data", "convert", SAMPLE, t / "o.csv", "--to", "csv"],
         "above the", "o.csv", low_output_limit),
    Case("convert-disk-full", lambda t, c: ["data", "convert", SAMPLE, t / "o.npz", "--to", "npz"],
         "no space left", "o.npz", disk_full),
    Case("convert-disk-full-wfdb", lambda t, c: ["data", "convert", SAMPLE, t / "o", "--to", "wfdb"],
         "no space left", "o", wfdb_short_write),
    Case("npz-huge-declared", info(lambda t: npz_declaring(t, "big.npz", (12, 10**11))), "too large to read",
         "big.npz"),
    Case("csv-time-jumps-back", info(lambda t: csv_times(t, "back.csv", [*np.arange(1000) / 500,
                                                                          *(1.5 + np.arange(1000) / 500)])),
         "not increasing (at data row 1001)", "back.csv"),
    Case("csv-time-two-rates", info(lambda t: csv_times(t, "two.csv", [*np.arange(1000) / 500,
                                                                         *(2 + np.arange(1, 1001) / 250)])),
         "does not have one sampling rate", "two.csv"),
    # -- generate --------------------------------------------------------------------------------------------------
    Case("gen-steps-zero", gen("--steps", 0), f"--steps: 0 {OUT_OF}"),
    Case("gen-steps-negative", gen("--steps", -1), f"--steps: -1 {OUT_OF}"),
    Case("gen-steps-huge", gen("--steps", 10**6), f"--steps: 1000000 {OUT_OF}"),
    Case("gen-steps-fraction", gen("--steps", 2.5), "not a whole number"),
    Case("gen-guidance-nan", gen("--guidance-scale", "nan"), "not a finite number"),
    Case("gen-guidance-inf", gen("--guidance-scale", "inf"), "not a finite number"),
    Case("gen-guidance-negative", gen("--guidance-scale", -1), OUT_OF),
    Case("gen-seed-negative", gen("--seed", -1), f"--seed: -1 {OUT_OF}"),
    Case("gen-seed-huge", gen("--seed", 2**70), OUT_OF),
    Case("gen-batch-zero", gen("--batch-size", 0), f"--batch-size: 0 {OUT_OF}"),
    Case("gen-n-zero", lambda t, c: ["generate", "--n", 0, "--out", t / "out"], f"--n: 0 {OUT_OF}"),
    Case("gen-n-text", lambda t, c: ["generate", "--n", "many", "--out", t / "out"], "not a number"),
    Case("gen-age", gen("--age", 500), f"--age: 500 {OUT_OF}"),
    Case("gen-hr-zero", gen("--hr", 0), f"--hr: 0 {OUT_OF}"),
    Case("gen-hr-nan", gen("--hr", "nan"), "not a finite number"),
    Case("gen-fs-huge", gen("--fs", "1e9"), OUT_OF),
    Case("gen-fs-tiny", gen("--fs", 0.001), OUT_OF),
    Case("gen-plot-negative", gen("--plot", -1), OUT_OF),
    Case("gen-upsample-steps", gen("--fs", 500, "--upsample-steps", 0), OUT_OF),
    Case("gen-format", gen("--format", "edf"), "invalid choice"),
    Case("gen-unknown-label", gen("--labels", "NORM,XYZ"), "unknown label 'XYZ'"),
    Case("gen-control-char", lambda t, c: ["generate", "--report", "sinus\x07rhythm", "--out", t / "out"],
         "control character"),
    Case("gen-report-long", lambda t, c: ["generate", "--report", "x" * 5000, "--out", t / "out"], "too long"),
    Case("gen-report-not-utf8", lambda t, c: ["generate", "--report", "a\udcff\udcfeb", "--out", t / "out"],
         "not valid UTF-8"),
    Case("gen-prompts-seed-huge", lambda t, c: ["generate", "--prompts", prompts(t, "report,seed\nx,9223372036854775000\n"),
                                                "--out", t / "out"], "9,223,372,036,654,775,807", "prompts.csv"),
    Case("cohort-reports-control", lambda t, c: [*COHORT, f"reports=file:{text(t, 'r.txt', 'sinus' + chr(27) + 'x')}",
                                                 "--out", t / "out", "--quiet"], "control character", "r.txt"),
    Case("cohort-python-tag", lambda t, c: ["cohort", yaml_file(t, "size: !!python/object/apply:os.system ['true']\n",
                                                                "spec.yaml"), "--out", t / "out"],
         "Python tags are not allowed", "spec.yaml"),
    Case("cohort-size-nan", lambda t, c: [*COHORT, "size=nan", "--out", t / "out", "--quiet"], "size", "default.yaml"),
    Case("gen-too-large", lambda t, c: ["generate", "--n", 10**7, "--out", t / "out"], "above the"),
    Case("gen-batch-memory", gen("--batch-size", 4096), "--batch-size 4096 needs about", "", low_memory_limit),
    Case("gen-prompts-missing", lambda t, c: ["generate", "--prompts", t / "p.csv", "--out", t / "out"],
         "not found", "p.csv"),
    Case("gen-prompts-column", lambda t, c: ["generate", "--prompts", prompts(t, "report,mood\nx,happy\n"),
                                             "--out", t / "out"], "unknown column", "prompts.csv"),
    Case("gen-prompts-n-zero", lambda t, c: ["generate", "--prompts", prompts(t, "report,n\nx,0\n"), "--out",
                                             t / "out"], "row 2", "prompts.csv"),
    Case("gen-prompts-age-nan", lambda t, c: ["generate", "--prompts", prompts(t, "report,age\nx,nan\n"), "--out",
                                              t / "out"], "age is nan", "prompts.csv"),
    Case("gen-prompts-seed-text", lambda t, c: ["generate", "--prompts", prompts(t, "report,seed\nx,abc\n"),
                                                "--out", t / "out"], "not a number", "prompts.csv"),
    Case("gen-prompts-label", lambda t, c: ["generate", "--prompts", prompts(t, "labels\nNORM\nBOGUS\n"), "--out",
                                            t / "out"], "unknown label 'BOGUS'", "prompts.csv"),
    Case("gen-prompts-and-report", lambda t, c: ["generate", "--prompts", prompts(t, "report\nx\n"), "--report",
                                                 "y", "--out", t / "out"], "both given"),
    Case("gen-checkpoint-missing", lambda t, c: [*GEN, "--checkpoint", t / "nock", "--out", t / "out"],
         "no config.json", "nock"),
    Case("ck-config-list", lambda t, c: [*GEN, "--checkpoint", checkpoint(t, c, lambda cfg: [cfg]), "--out",
                                         t / "out"], "must hold a JSON object", "ck"),
    Case("ck-config-not-json", lambda t, c: [*GEN, "--checkpoint", (checkpoint(t, c) / "config.json").write_text(
        "{oops") and t / "ck", "--out", t / "out"], "not valid JSON", "ck"),
    Case("ck-submodel-dot", lambda t, c: [*GEN, "--checkpoint", checkpoint(t, c, set_in(["submodels"], ["."])),
                                          "--out", t / "out"], "submodels must list names", "ck"),
    Case("ck-submodel-parent", lambda t, c: [*GEN, "--checkpoint", checkpoint(
        t, c, set_in(["submodels"], ["../ck"])), "--out", t / "out"], "submodels must list names", "ck"),
    Case("ck-submodel-absolute", lambda t, c: [*GEN, "--checkpoint", checkpoint(
        t, c, set_in(["submodels"], ["/etc"])), "--out", t / "out"], "submodels must list names", "ck"),
    Case("ck-submodel-missing", lambda t, c: [*GEN, "--checkpoint", checkpoint(
        t, c, set_in(["submodels"], ["vae"])), "--out", t / "out"], "is missing", "ck"),
    Case("ck-size-absurd", lambda t, c: [*GEN, "--checkpoint", checkpoint(
        t, c, set_in(["model", "network", "base_channels"], 10**8)), "--out", t / "out"], "", "ck"),
    Case("ck-size-negative", lambda t, c: [*GEN, "--checkpoint", checkpoint(
        t, c, set_in(["model", "network", "base_channels"], -4)), "--out", t / "out"], "", "ck"),
    Case("ck-size-overflow", lambda t, c: [*GEN, "--checkpoint", checkpoint(
        t, c, set_in(["model", "signal", "length"], 10**20)), "--out", t / "out"], "out of range", "ck"),
    Case("ck-value-nan", lambda t, c: [*GEN, "--checkpoint", checkpoint(
        t, c, set_in(["model", "signal", "scale_mv"], float("nan"))), "--out", t / "out"], "not a finite", "ck"),
    Case("ck-format-version", lambda t, c: [*GEN, "--checkpoint", checkpoint(
        t, c, set_in(["format_version"], 99)), "--out", t / "out"], "format_version", "ck"),
    Case("ck-nan-weights", lambda t, c: [*GEN, "--checkpoint", checkpoint(t, c, edit_weights=nan_weights),
                                         "--out", t / "out"], "NaN or inf", "ck"),
    Case("ck-garbage-weights", lambda t, c: [*GEN, "--checkpoint", (raw(
        checkpoint(t, c), "model.safetensors", b"\x00" * 64), t / "ck")[1], "--out", t / "out"],
         "not a valid safetensors", "ck"),
    Case("ck-pickle-only", lambda t, c: [*GEN, "--checkpoint", ((checkpoint(t, c) / "model.safetensors").rename(
        t / "ck" / "model.pt"), t / "ck")[1], "--out", t / "out"], "pickled weights are never loaded", "ck"),
    Case("sample-missing", lambda t, c: ["sample", t / "none", "--out", t / "out"], "no config.json", "none"),
    Case("sample-n-zero", lambda t, c: ["sample", c / "report2ecg", "--n", 0, "--out", t / "out"], OUT_OF),
    # -- reconstruct -------------------------------------------------------------------------------------------------
    Case("rec-unknown-lead", lambda t, c: ["reconstruct", SAMPLE, "--leads", "XYZ", "--out", t / "out"],
         "unknown lead name 'XYZ'"),
    Case("rec-all-leads", lambda t, c: ["reconstruct", SAMPLE, "--leads", "12lead", "--out", t / "out"],
         "nothing to reconstruct"),
    Case("rec-ppg-lead", lambda t, c: ["reconstruct", SAMPLE, "--leads", "PPG", "--out", t / "out"],
         "cannot be given"),
    Case("rec-samples-zero", rec_cmd("--samples", 0), f"--samples: 0 {OUT_OF}"),
    Case("rec-samples-huge", rec_cmd("--samples", 1000), f"--samples: 1000 {OUT_OF}"),
    Case("rec-steps-zero", rec_cmd("--steps", 0), f"--steps: 0 {OUT_OF}"),
    Case("rec-missing-input", lambda t, c: ["reconstruct", t / "no.hea", "--leads", "II", "--out", t / "out"],
         "no such file", "no.hea"),
    Case("rec-nan-input", lambda t, c: ["reconstruct", record(t, signal=np.full((12, 1000), np.nan, np.float32)),
                                        "--leads", "II", "--out", t / "out"], "missing (NaN", "rec.hea"),
    Case("rec-memory", rec_cmd(), "above the", "00001_lr", low_memory_limit),
    Case("rec-checkpoint-wrong-task", rec_cmd("--checkpoint", Path("{ck}") / "ppg2ecg"), "not a reconstruct model"),
    # -- ppg2ecg ------------------------------------------------------------------------------------------------------
    Case("ppg-duration-negative", ppg_cmd("--duration", -5), f"--duration: -5 {OUT_OF}"),
    Case("ppg-duration-zero", ppg_cmd("--duration", 0), f"--duration: 0 {OUT_OF}"),
    Case("ppg-start-negative", ppg_cmd("--start", -1), f"--start: -1 {OUT_OF}"),
    Case("ppg-start-beyond", ppg_cmd("--start", 10**5), "outside the record"),
    Case("ppg-too-short", ppg_cmd("--duration", 0.5), "shorter than one model window"),
    Case("ppg-column", ppg_cmd("--ppg-column", "nope"), "no column 'nope'"),
    Case("ppg-no-channel", lambda t, c: ["ppg2ecg", SAMPLE, "--out", t / "out"], "no PPG channel"),
    Case("ppg-flat", lambda t, c: ["ppg2ecg", text(t, "flat.csv", "time_s,PPG\n" + "".join(
        f"{i / 100},1\n" for i in range(2000))), "--out", t / "out"], "flat", "flat.csv"),
    Case("ppg-in-fs-tiny", lambda t, c: ["ppg2ecg", npy(t, "p.npy", np.random.rand(3000)), "--in-fs", 0.001,
                                         "--out", t / "out"], OUT_OF),
    Case("ppg-samples-zero", ppg_cmd("--samples", 0), OUT_OF),
    # -- echo ---------------------------------------------------------------------------------------------------------
    Case("echo-steps-100", echo_cmd("--steps", 100), f"--steps: 100 {OUT_OF}"),
    Case("echo-ef-500", echo_cmd("--ef", 500), f"--ef: 500 {OUT_OF}"),
    Case("echo-ef-nan", echo_cmd("--ef", "nan"), "not a finite number"),
    Case("echo-hr-zero", echo_cmd("--heart-rate", 0), f"--heart-rate: 0 {OUT_OF}"),
    Case("echo-frames-zero", echo_cmd("--frames", 0), f"--frames: 0 {OUT_OF}"),
    Case("echo-frames-huge", echo_cmd("--frames", 10**6), OUT_OF),
    Case("echo-start-negative", echo_cmd("--start", -2), OUT_OF),
    Case("echo-not-mp4", lambda t, c: ["echo", "--ecg", SAMPLE, "--out", t / "clip.avi"], ".mp4", "clip.avi"),
    Case("echo-missing-leads", lambda t, c: ["echo", "--ecg", text(t, "two.csv", "time_s,I,II\n" + "".join(
        f"{i / 100},0.1,0.2\n" for i in range(1000))), "--out", t / "clip.mp4"], "lacks leads", "two.csv"),
    Case("echo-start-beyond", echo_cmd("--start", 9.5), "of ECG", "00001_lr"),
    Case("echo-model-missing", echo_cmd("--model", Path("{tmp}") / "nomodel"), "config.json missing", "nomodel"),
    # -- bench --------------------------------------------------------------------------------------------------------
    Case("bench-fid-n", lambda t, c: ["bench", "fidelity", "--generator", "baseline:ecgsyn", "--n", 0, "--out",
                                      t / "b"], f"--n: 0 {OUT_OF}"),
    Case("bench-fid-boot", lambda t, c: ["bench", "fidelity", "--generator", "baseline:ecgsyn", "--n-boot", 0,
                                         "--out", t / "b"], OUT_OF),
    Case("bench-fid-guidance", lambda t, c: ["bench", "fidelity", "--generator", "baseline:ecgsyn",
                                             "--guidance-scale", "inf", "--out", t / "b"], "not a finite number"),
    Case("bench-rec-samples", lambda t, c: ["bench", "reconstruct", "--generator", "baseline:linear", "--leads",
                                            "II", "--samples", 0, "--out", t / "b"], OUT_OF),
    Case("bench-ppg-steps", lambda t, c: ["bench", "ppg2ecg", "--generator", "baseline:linear", "--steps", 0,
                                          "--out", t / "b"], OUT_OF),
    Case("bench-echo-n", lambda t, c: ["bench", "echo", "--n", -3, "--out", t / "b"], OUT_OF),
    Case("bench-out-user-folder", lambda t, c: ["bench", "fidelity", "--generator", "baseline:ecgsyn", "--out",
                                                text(t, "mine/notes.txt", "x").parent if (t / "mine").mkdir() is None
                                                else None, "--force"], "synth did not write it", "mine"),
    # -- train ---------------------------------------------------------------------------------------------------------
    Case("train-missing", lambda t, c: ["train", t / "none.yaml"], "not found", "none.yaml"),
    Case("train-python-tag", lambda t, c: ["train", yaml_file(t, "steps: !!python/object/apply:os.system ['true']\n")],
         "Python tags are not allowed", "train.yaml"),
    Case("train-list", lambda t, c: ["train", yaml_file(t, "- 1\n- 2\n")], "not a mapping", "train.yaml"),
    Case("train-lr-nan", lambda t, c: ["train", yaml_file(t, TRAIN), "lr=nan"], "not a finite number",
         "train.yaml"),
    Case("train-steps-negative", lambda t, c: ["train", yaml_file(t, TRAIN), "steps=-1"], "must be >= 1",
         "train.yaml"),
    Case("train-steps-huge", lambda t, c: ["train", yaml_file(t, TRAIN), "steps=100000000000000000000"],
         "out of range", "train.yaml"),
    Case("train-override-syntax", lambda t, c: ["train", yaml_file(t, TRAIN), "steps"], "not key=value",
         "train.yaml"),
    Case("train-bad-yaml", lambda t, c: ["train", yaml_file(t, "steps: [1, 2\n")], "not a plain YAML mapping",
         "train.yaml"),
    # -- demo / top level ---------------------------------------------------------------------------------------------
    Case("demo-seed", lambda t, c: ["demo", "--seed", -1, "--out", t / "d"], OUT_OF),
    Case("unknown-command", lambda t, c: ["frobnicate"], "invalid choice"),
    Case("unknown-option", lambda t, c: ["generate", "--n", 1, "--colour", "red", "--out", t / "out"],
         "unrecognized arguments"),
]


def _resolve(argv: list, tmp: Path, ck: Path) -> list[str]:
    return [str(a).replace("{ck}", str(ck)).replace("{tmp}", str(tmp)) for a in argv]


def test_case_count():
    assert len(CASES) >= 80 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_one_line_naming_the_file_and_leaves_nothing(case, tmp_path, monkeypatch, capsys,
                                                                           use_tiny_checkpoints):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the repository: configs/ resolve as documented
    argv = _resolve(case.argv(tmp_path, use_tiny_checkpoints), tmp_path, use_tiny_checkpoints)
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    if case.setup is not None:
        case.setup(monkeypatch)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.startswith("synth: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and case.needle in err, err
    if case.names:
        named = tmp_path / case.names if case.names != "." else tmp_path
        assert str(named) in err or (case.names in err and not (tmp_path / case.names).exists()), err
    after = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert after == before  # nothing written, nothing left behind
