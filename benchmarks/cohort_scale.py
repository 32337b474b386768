"""How `synth cohort` scales on this machine: speed with 1 and 2 processes, memory against cohort size, and a
cohort killed several times with SIGKILL and resumed against one made in one go.

    python benchmarks/cohort_scale.py --out benchmarks/results/cohort_scale.json
    python benchmarks/cohort_scale.py --size 20000 --kills 5 --steps 2 --throughput-size 1000 ...

Every run is the real command line (`synth cohort configs/cohort/default.yaml ...`) in its own process with one
thread per process, timed from outside and measured with GNU time (peak resident memory); two processes run under
torchrun. The killed run is SIGKILLed at evenly spread moments (after 1/(kills+1), 2/(kills+1), … of the
uninterrupted run's time) and the same command run again each time; the manifests' SHA-256 columns of the two
cohorts are compared record by record. Steps: `--throughput-steps` for the speed figures (the model's default when
omitted), `--steps` for the large runs (fewer, so the benchmark fits a CPU session; the mechanics do not depend on
it).

`--parts throughput` or `--parts scale` (memory and resume) runs one half and keeps the other half's figures from
an existing `--out` file: the speed figures need an otherwise idle machine, the rest does not. An existing `--out`
is read and replaced only when this script wrote it (a synth `writer` entry and `made_by` this script); any other
file there is refused before any run starts. It lands by a rename.

The cohorts are made in `--work`, staged beside it and marked as this script's scratch (synth.outputs): a rerun
replaces a scratch folder this script made, unchanged, and refuses any other folder before any run starts.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "configs" / "cohort" / "default.yaml"
#: Recorded in the marker of the scratch folder: the only folders ``--work`` may replace are this script's own.
MADE_BY = "benchmarks/cohort_scale.py"


def _cohort_cmd(out: Path, size: int, steps: int | None, extra: list[str] = (), shard_size: int = 1000) -> list[str]:
    args = [f"size={size}", f"shard_size={shard_size}", *([f"steps={steps}"] if steps else []), *extra]
    return ["cohort", str(SPEC), *args, "--out", str(out), "--quiet"]


def _run(argv: list[str], processes: int = 1) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    python = Path(sys.executable)
    if processes == 1:
        cmd = [python, "-m", "synth", *argv]
    else:
        cmd = [python.parent / "torchrun", "--nproc_per_node", str(processes), "--master_port", "29531", "-m",
               "synth", *argv]
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *map(str, cmd)], env=env, capture_output=True, text=True,
                          cwd=REPO)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return {"seconds": seconds, "peak_rss_mb": int(rss.group(1)) / 1024 if rss else None}


def _checksums(folder: Path) -> list[str]:
    with open(folder / "manifest.csv", newline="") as fh:
        return [r["sha256"] for r in csv.DictReader(fh)]


def scratch_refusal(folder: Path) -> str | None:
    """Why ``folder`` may not be replaced as the scratch folder (None when it is one this script made, unchanged):
    it is removed and remade, so a folder given by mistake (``.``, a data folder) must never qualify."""
    from synth.outputs import made_by_refusal

    return made_by_refusal(folder, MADE_BY, "scratch folder")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="runs/cohort_scale",
                    help="scratch folder, replaced when it is one this script made (any other folder is refused)")
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000], help="also measured for memory")
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--throughput-size", type=int, default=1000)
    ap.add_argument("--throughput-steps", type=int, default=None)
    ap.add_argument("--throughput-shards", type=int, default=10,
                    help="shards of the speed cohort (processes split shards, so several per process)")
    ap.add_argument("--parts", nargs="+", choices=("throughput", "scale"), default=["throughput", "scale"])
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    from synth.errors import exit_code_of
    from synth.outputs import OutputRefusedError, staged_folder

    work = REPO / args.work

    def run() -> None:
        check_out(Path(args.out), work)
        reason = scratch_refusal(work) if work.exists() or work.is_symlink() else None
        if reason:  # before any run; staged_folder checks again when it replaces the folder
            raise OutputRefusedError(f"will not remove it to use as the scratch folder: {reason}", path=work,
                                     hint="give --work a new folder, or one this script made")
        with staged_folder(work, overwrite=True, owned=scratch_refusal, marker={"made_by": MADE_BY}) as stage:
            _measure(stage, args)

    return exit_code_of(Path(__file__).name, run)


def out_refusal(out: Path) -> str | None:
    """Why the existing ``--out`` may not be read and replaced (None when it is a JSON this script wrote)."""
    from evaluation.classifier import json_out_refusal

    reason = json_out_refusal(out)
    if reason:
        return reason
    try:
        made_by = json.loads(out.read_text(encoding="utf-8")).get("made_by")
    except (OSError, ValueError, AttributeError):
        made_by = None
    return None if made_by == MADE_BY else f"it is a synth result, but not one of {MADE_BY}"


def check_out(out: Path, work: Path) -> None:
    """Refuse, before any run, an ``--out`` in the scratch folder (replaced at the end) or an existing one this
    script did not write (it keeps the other half's figures from it, then replaces it)."""
    from synth.outputs import OutputRefusedError

    where, scratch = out.expanduser().resolve(), work.expanduser().resolve()
    if where == scratch or scratch in where.parents:
        raise OutputRefusedError(f"it lies inside the scratch folder --work {work}", path=out,
                                 hint="write --out outside the scratch folder, which is replaced at the end")
    check_ours(out)


def check_ours(out: Path) -> None:
    """Refuse an existing ``--out`` this script did not write."""
    from synth.outputs import OutputRefusedError

    reason = out_refusal(out) if out.exists() or out.is_symlink() else None
    if reason:
        raise OutputRefusedError(f"will not read or replace it: {reason}", path=out,
                                 hint="choose a new --out, or one this script wrote")


def _measure(work: Path, args) -> None:
    """Every run of the benchmark, in the (staged) scratch folder ``work``, and the ``--out`` file."""
    from evaluation.classifier import write_json_out

    out = Path(args.out)
    ours = out.is_file() and out_refusal(out) is None  # checked before any run: exists only when ours
    result: dict = json.loads(out.read_text(encoding="utf-8")) if ours else {}
    result.pop("writer", None)  # the new one is written
    result.update({"made_by": MADE_BY, "machine": f"{os.cpu_count()} CPU cores, one thread per process",
                   "steps_large": args.steps})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    # Warm the caches (signals, heart rates) so no run pays for them.
    _run(_cohort_cmd(work / "warm", 16, 1))
    if "throughput" in args.parts:
        result["throughput"] = _throughput(work, args)
        result["throughput"]["commit"] = commit.stdout.strip()
    if "scale" in args.parts:
        result.update(_scale(work, args))
        result["resume"]["commit"] = commit.stdout.strip()
    if "throughput" in result:
        speed = result["throughput"]["by_processes"]
        result["extrapolated_100k_hours"] = {f"{k}_process{'es' if k != '1' else ''}":
                                             100_000 / v["records_per_s"] / 3600 for k, v in speed.items()}
    check_ours(out)  # put there, or changed, while the runs went on
    write_json_out(out, result, force=ours)  # a file that appeared meanwhile is not replaced
    print(json.dumps({k: v for k, v in result.items() if k != "memory"}, indent=1))


def _throughput(work: Path, args) -> dict:
    speed = {}
    shard_size = -(-args.throughput_size // args.throughput_shards)
    if args.throughput_size // shard_size < 2:
        raise SystemExit("--throughput-shards must give at least 2 shards: processes split the cohort by shard")
    for processes in (1, 2):
        r = _run(_cohort_cmd(work / f"speed{processes}", args.throughput_size, args.throughput_steps,
                             shard_size=shard_size), processes)
        speed[processes] = {**r, "records_per_s": args.throughput_size / r["seconds"]}
        print(f"{processes} process(es): {speed[processes]['records_per_s']:.2f} records/s", flush=True)
    return {"records": args.throughput_size, "shard_size": shard_size,
            "steps": args.throughput_steps or "model default",
            "by_processes": {str(k): v for k, v in speed.items()},
            "identical_1_vs_2": _checksums(work / "speed1") == _checksums(work / "speed2")}


def _scale(work: Path, args) -> dict:
    result = {}
    memory = {}
    for size in [*args.sizes, args.size]:
        r = _run(_cohort_cmd(work / f"mem{size}", size, args.steps))
        memory[size] = r
        print(f"{size} records: {r['seconds']:.0f} s, peak {r['peak_rss_mb']:.0f} MB", flush=True)
    result["memory"] = memory
    whole = work / f"mem{args.size}"
    # The same cohort, killed `kills` times and resumed.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = work / "killed"
    total = memory[args.size]["seconds"]
    kills = []
    for k in range(args.kills):
        cmd = [sys.executable, "-m", "synth", *_cohort_cmd(killed, args.size, args.steps)]
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(total / (args.kills + 1))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        staging = killed.parent / f".{killed.name}.synth-staging" / "shards"
        done = len(list(staging.glob("signals-*.npy"))) if staging.is_dir() else None
        kills.append({"after_s": total / (args.kills + 1), "returncode": proc.returncode, "shards_done": done})
        print(f"kill {k + 1}: {done} shards finished", flush=True)
    final = _run(_cohort_cmd(killed, args.size, args.steps))
    a, b = _checksums(whole), _checksums(killed)
    result["resume"] = {"records": args.size, "kills": kills, "final_run": final, "identical": a == b,
                        "records_compared": len(a), "differing": sum(x != y for x, y in zip(a, b))}
    return result


if __name__ == "__main__":
    raise SystemExit(main())
