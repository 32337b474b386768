"""How an ECG → echo model follows the EF asked of it, and the mapping that makes it draw the EF asked for.

    python benchmarks/echo_ef_response.py --model checkpoints/echo_maskgit --encoder checkpoints/echo_encoder \\
        --data runs/echo_us --split val --ef 20 30 40 50 60 70 80 --out benchmarks/results/echo_ef_response_val \\
        [--write-to runs/echo_maskgit_ef]

Every clip of the split (its ECG and heart rate) is generated once at each EF of ``--ef``, and the EF of each clip
is measured with the echo encoder, as ``synth bench echo`` measures it. The median measured EF at each asked EF is
the model's response curve (made monotone); its inverse, as ``ef_asked`` / ``ef_given`` knots of the
``echo_params`` adapter, asks the model for the EF that it turns into the one wanted (at sampling only; piecewise
linear, held at the end knots: an EF below the lowest median measured is asked as the lowest EF of ``--ef``).
``--write-to`` copies the model export with the knots in its config. Choose on VAL clips; score TEST once with
``synth bench echo``. Written: ``report.json`` and ``response.png``.

``--out`` and ``--write-to`` are new folders, never inside (or holding) the ``--model``, ``--encoder`` or ``--data``
the run reads; both are checked before anything loads.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path


def inverse_knots(asked, measured_median) -> tuple[list[float], list[float]]:
    """``(ef_asked, ef_given)`` knots from the response ``asked`` → ``measured_median`` (both ascending in
    ``asked``): asking the model ``given`` draws ``asked`` on the response curve, kept strictly monotone."""
    import numpy as np

    given = np.asarray(asked, np.float64)
    drawn = np.maximum.accumulate(np.asarray(measured_median, np.float64))  # a dip is noise: hold it level
    keep = np.r_[True, np.diff(drawn) > 1e-6]
    return [round(float(x), 2) for x in drawn[keep]], [round(float(x), 2) for x in given[keep]]


def main(argv: list[str] | None = None) -> int:
    from synth.errors import exit_code_of

    return exit_code_of(Path(__file__).name, lambda: _main(argv))


def _main(argv: list[str] | None) -> None:
    import numpy as np
    import torch
    from tqdm import tqdm

    from evaluation.echo import (
        DEFAULT_EF_GUIDANCE,
        DEFAULT_GUIDANCE,
        ECHO_CACHE,
        clip_cache_dir,
        load_echo_encoder,
        predict_ef,
    )
    from synth.echo.dataset import EchoTensors
    from synth.echo.generate import load_echo_model, sample_videos
    from synth.outputs import check_apart, staged_folder

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="ECG → echo export folder")
    ap.add_argument("--encoder", required=True, help="echo encoder export folder (measures EF)")
    ap.add_argument("--data", required=True, help="simulated echo dataset (tools/make_echo_dataset.py)")
    ap.add_argument("--split", default="VAL", type=str.upper, choices=("VAL", "TEST"))
    ap.add_argument("--n", type=int, default=150, help="clips of the split")
    ap.add_argument("--ef", type=float, nargs="+", default=[20, 30, 40, 50, 60, 70, 80])
    ap.add_argument("--guidance-scale", type=float, default=DEFAULT_GUIDANCE)
    ap.add_argument("--ef-guidance", type=float, default=DEFAULT_EF_GUIDANCE,
                    help="extra guidance on the EF asked (the mapping holds for this value only)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", required=True, help="folder for report.json and response.png (must not exist)")
    ap.add_argument("--write-to", help="copy of the model export with the fitted knots in its config (must not exist)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    out, grid = Path(args.out), sorted(args.ef)
    inputs = [("--model", args.model), ("--encoder", args.encoder), ("--data", args.data)]
    for path in (out, *(() if not args.write_to else (Path(args.write_to), Path(args.write_to + ".tmp")))):
        check_apart(path, inputs)  # before anything loads
    taken = [p for p in (out, *(() if not args.write_to else (Path(args.write_to), Path(args.write_to + ".tmp"))))
             if p.exists()]
    if taken:
        raise SystemExit(f"{taken[0]} exists; choose a new folder")
    model = load_echo_model(args.model)
    params = next((a for a in model.conditioning.adapters.values() if "ef" in a.keys), None)
    if params is None:
        raise SystemExit(f"{args.model}: the model takes no EF")
    if params.cfg.ef_asked is not None:
        raise SystemExit(f"{args.model} already maps the EF asked for; fit on the unmapped export")
    size = model.autoencoder.process.height
    clips = EchoTensors(args.data, args.split, size=size, limit=args.n, progress=True,
                        cache_dir=clip_cache_dir(ECHO_CACHE, args.data))
    encoder = load_echo_encoder(args.encoder)
    gen = torch.Generator().manual_seed(args.seed)
    measured = np.empty((len(grid), len(clips)))
    with tqdm(total=len(grid) * len(clips), desc="generating echo", unit="clip") as bar:
        for g, ef in enumerate(grid):
            for i in range(0, len(clips), args.batch_size):
                j = slice(i, min(i + args.batch_size, len(clips)))
                b = len(clips.ecg[j])
                cond = {"ecg": clips.ecg[j], "ef": torch.full((b,), float(ef)), "heart_rate": clips.heart_rate[j]}
                video = sample_videos(model, cond, b, steps=args.steps, guidance_scale=args.guidance_scale,
                                      ef_guidance=args.ef_guidance, generator=gen)
                measured[g, j] = predict_ef(encoder, video).numpy()
                bar.update(b)
    median = np.median(measured, axis=1)
    ef_asked, ef_given = inverse_knots(grid, median)
    report = {
        "model": args.model, "encoder": args.encoder, "data": args.data, "split": args.split, "clips": len(clips),
        "guidance_scale": args.guidance_scale, "ef_guidance": args.ef_guidance, "steps": args.steps, "seed": args.seed,
        "response": [{"asked": float(a), "measured_median": float(m), "measured_q25": float(np.percentile(r, 25)),
                      "measured_q75": float(np.percentile(r, 75)), "mae_vs_asked": float(np.mean(np.abs(r - a)))}
                     for a, m, r in zip(grid, median, measured)],
        "ef_asked": ef_asked, "ef_given": ef_given, "measured": measured.tolist(),
        "wall_s": time.perf_counter() - t0,
    }
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with staged_folder(out, inputs=inputs) as stage:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        ax.boxplot(measured.T, positions=grid, widths=4, showfliers=False)
        ax.plot(grid, median, "o-", color="C1", label="median measured EF")
        ax.plot(ef_asked, ef_given, "s--", color="C2", label="mapping: asked → given")
        ax.plot([10, 90], [10, 90], "k:", lw=1)
        ax.set(xlabel="EF given to the model (%)", ylabel="EF measured by the echo encoder (%)", xlim=(10, 90),
               ylim=(10, 90), title=f"{Path(args.model).name}, {args.split} clips, guidance {args.guidance_scale:g}"
               f" + EF {args.ef_guidance:g}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(stage / "response.png", dpi=120)
        plt.close(fig)
        (stage / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print("asked EF → median measured: " + ", ".join(f"{a:g} → {m:.1f}" for a, m in zip(grid, median)))
    print(f"knots: ef_asked {ef_asked} → ef_given {ef_given}")
    if args.write_to:
        dest = Path(args.write_to)
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.copytree(args.model, tmp)
        config = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
        adapter = next(a for a in config["model"]["conditioning"]["adapters"].values() if a["name"] == "echo_params")
        adapter["ef_asked"], adapter["ef_given"] = ef_asked, ef_given
        (tmp / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
        tmp.rename(dest)
        print(f"wrote {dest}")


if __name__ == "__main__":
    raise SystemExit(main())
