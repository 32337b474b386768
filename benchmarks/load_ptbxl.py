"""How long loading every PTB-XL record at 100 Hz into one (N, 12, 1000) float32 array takes on this machine.

Three figures: a cold read of the WFDB files (all cores), the same read while writing the memory-mapped cache, and
a warm load from that cache (open + copy into RAM). The target from the foundation issue is < 60 s for 21,799
records; the cold figure is also extrapolated to that count.

    python benchmarks/load_ptbxl.py [--data ../shared/data/ptbxl] [--cache-dir .cache] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from synth.data.ptbxl import PTBXL

FULL_PTBXL = 21_799


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "ptbxl"))
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    ds = PTBXL(args.data, fs_hz=100)
    n = len(ds)
    print(f"{n} records at 100 Hz in {args.data}; {args.workers} worker processes; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")

    t0 = time.perf_counter()
    cold = ds.load_signals(workers=args.workers, progress=False)
    t_cold = time.perf_counter() - t0

    cache = Path(tempfile.mkdtemp(prefix="synth-bench-cache-"))
    try:
        t0 = time.perf_counter()
        ds.load_signals(cache_dir=cache, workers=args.workers, progress=False)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        warm = np.array(ds.load_signals(cache_dir=cache, progress=False))
        t_warm = time.perf_counter() - t0
        assert np.array_equal(warm, cold), "cached array differs from the WFDB read"
        size_mb = sum(f.stat().st_size for f in cache.iterdir()) / 2**20
    finally:
        shutil.rmtree(cache)

    rate = n / t_cold
    print(f"array {cold.shape} {cold.dtype}, {cold.nbytes / 2**20:.0f} MiB")
    print(f"cold WFDB read : {t_cold:6.1f} s  ({rate:.0f} records/s; {FULL_PTBXL / rate:.0f} s extrapolated to {FULL_PTBXL})")
    print(f"build cache    : {t_build:6.1f} s  ({size_mb:.0f} MiB .npy)")
    print(f"warm from cache: {t_warm:6.2f} s  ({t_warm * FULL_PTBXL / n:.2f} s extrapolated to {FULL_PTBXL})")


if __name__ == "__main__":
    main()
