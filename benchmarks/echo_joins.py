"""Joins of long echo clips: continuous windows (token continuation) against independent 2 s windows.

    python benchmarks/echo_joins.py --records 20 --out benchmarks/results/echo_joins.json

For 10 s PTB-XL ECGs (the shipped sample's fold-10 records, or ``--data``), the whole-ECG clip is made twice with
the shipped model and the same seed: as ``synth echo`` makes it now (each window decoded around the last codes of
the one before and crossfaded with it over the shared frames, :func:`synth.echo.generate.sample_continuous`) and as it did before (independent 2 s windows side
by side). For each clip, the mean absolute frame-to-frame change at the joins (every step inside the overlaps for the
continuous clip; the step at the cut for independent windows) is divided by the median change between other
consecutive frames (:func:`evaluation.echo.join_change`); 1 = a join no larger than any frame step.

``--out`` is a new file, or with ``--force`` a JSON this script wrote (a ``writer`` entry); never inside or equal to
the ``--data`` or the model it reads. It is checked before the model loads and lands by a rename.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    from synth.data.sample import sample_ptbxl_root
    from synth.errors import exit_code_of

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(sample_ptbxl_root()))
    ap.add_argument("--records", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="JSON report (a new file)")
    ap.add_argument("--force", action="store_true", help="replace an --out file this script wrote (nothing else)")
    args = ap.parse_args(argv)
    return exit_code_of(Path(__file__).name, lambda: _measure(args))


def _measure(args: argparse.Namespace) -> None:
    from evaluation.classifier import check_json_out, write_json_out
    from evaluation.echo import join_change
    from synth.data.ptbxl import PTBXL
    from synth.echo.generate import (
        DEFAULT_GUIDANCE,
        DEFAULT_MODEL_NAME,
        ecg_condition,
        join_frames,
        layout,
        load_echo_model,
        sample_continuous,
        sample_videos,
        window_starts,
    )
    from synth.outputs import check_apart
    from synth.tasks.common import checkpoints_root

    check_apart(args.out, [("--data", args.data), ("model", checkpoints_root() / DEFAULT_MODEL_NAME)])
    check_json_out(args.out, force=args.force)  # before the model and the records load
    model = load_echo_model(None)
    lay = layout(model)
    f_tok = lay.frames // model.network.time_tokens
    test = PTBXL(args.data, 100).split("test")
    rows = []
    started = time.perf_counter()
    for k in range(min(args.records, len(test))):
        rec = test[k]
        frames = int(rec.duration_s * lay.fps)
        starts = window_starts(frames, lay, f_tok, available=frames)
        frames = starts[-1] + lay.frames
        t0 = time.perf_counter()
        cont = sample_continuous(model, ecg_condition(rec, lay, starts=starts), starts, lay, ef=None, heart_rate=None,
                                 guidance_scale=DEFAULT_GUIDANCE, generator=torch.Generator().manual_seed(args.seed))
        cont_s = time.perf_counter() - t0
        joins = join_frames(starts, lay)
        windows = frames // lay.frames
        ecg = ecg_condition(rec, lay, windows=windows)
        nan = torch.full((windows,), float("nan"))
        indep = sample_videos(model, {"ecg": ecg, "ef": nan, "heart_rate": nan}, windows, guidance_scale=DEFAULT_GUIDANCE,
                              generator=torch.Generator().manual_seed(args.seed))
        indep = indep.permute(1, 0, 2, 3, 4).reshape(1, -1, *indep.shape[-2:])  # (C, W·F, S, S)
        rows.append({"ecg_id": int(test.ecg_ids[k]), "frames": frames, "windows_continuous": len(starts),
                     "continuous": join_change(cont[0], joins), "seconds_continuous": cont_s,
                     "independent": join_change(indep, [lay.frames * i for i in range(1, windows)])})
        print(f"{rows[-1]['ecg_id']}: continuous {rows[-1]['continuous']['ratio']:.2f}, independent "
              f"{rows[-1]['independent']['ratio']:.2f}", flush=True)
    summary = {kind: {"ratio_median": float(np.median([r[kind]["ratio"] for r in rows])),
                      "ratio_max": float(np.max([r[kind]["ratio"] for r in rows]))}
               for kind in ("continuous", "independent")}
    out = {"records": len(rows), "seed": args.seed, "guidance_scale": DEFAULT_GUIDANCE, "summary": summary, "rows": rows,
           "seconds_per_10s_clip": float(np.mean([r["seconds_continuous"] for r in rows])),
           "wall_s": time.perf_counter() - started}
    write_json_out(args.out, out, force=args.force)
    print(json.dumps(summary))


if __name__ == "__main__":
    raise SystemExit(main())
