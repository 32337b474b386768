"""Downstream utility of the report → 12-lead model: TRTR, TSTR, TRTS and augmentation gain on PTB-XL fold 10.

Synthetic records are generated for the conditions (English report composed from the SCP statements, superclass
labels, age, sex, measured heart rate) of ``--n`` randomly drawn *training* records; their labels are the labels
they were asked for. Every classifier (the project's 1D ResNet, a small width) gets the same optimisation budget
(steps, batch size, learning rate) and seed; fold 10 is only scored. Writes JSON + Markdown.

    python benchmarks/utility.py --n 1500 --steps 300 --out benchmarks/results/utility.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from tqdm.auto import tqdm

    from evaluation.classifier import ClassifierConfig, ECGClassifier
    from evaluation.utility import TrainBudget, utility_table
    from synth.checkpoint import load_pretrained
    from synth.data.ptbxl import PTBXL, SUPERCLASSES
    from synth.tasks.common import checkpoints_root
    from synth.training.tasks import measured_heart_rates

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/ptbxl")
    parser.add_argument("--model", default=str(checkpoints_root() / "report2ecg"))
    parser.add_argument("--n", type=int, default=1500, help="synthetic records")
    parser.add_argument("--guidance-scale", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=300, help="optimisation steps per classifier")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=".cache/ptbxl")
    parser.add_argument("--out", default="benchmarks/results/utility.json")
    args = parser.parse_args()
    started = time.perf_counter()

    ds = PTBXL(args.data, 100)
    train, test = ds.split("train"), ds.split("test")
    xr = np.asarray(train.load_signals(cache_dir=args.cache_dir, progress=False), np.float32)
    yr, classes = train.multi_hot("superclasses", SUPERCLASSES)
    xt = np.asarray(test.load_signals(cache_dir=args.cache_dir, progress=False), np.float32)
    yt, _ = test.multi_hot("superclasses", SUPERCLASSES)

    rng = np.random.default_rng(args.seed)
    pick = np.sort(rng.choice(len(train), args.n, replace=False))
    ids = [train.ecg_ids[i] for i in pick]
    english = train.english_reports()
    table = train.table.loc[ids]
    hr = measured_heart_rates(xr[pick], 100.0)
    model = load_pretrained(args.model)
    labels_adapter = model.conditioning.adapters["labels"]
    xs = np.empty((args.n, 12, model.cfg.signal.length), np.float32)
    batch = 64
    for b, start in enumerate(tqdm(range(0, args.n, batch), desc="generating", unit="batch")):
        rows = slice(start, min(args.n, start + batch))
        names = [[c for c, v in zip(classes, row) if v > 0.5] for row in yr[pick][rows]]
        cond = {"report": [english[i] for i in ids[rows]], "labels": labels_adapter.multi_hot(names),
                "age": torch.tensor(table["age"].to_numpy(np.float32)[rows]),
                "sex": torch.tensor(table["sex"].map({"M": 0.0, "F": 1.0}).to_numpy(np.float32)[rows]),
                "heart_rate": torch.tensor(hr[rows])}
        with torch.no_grad():
            xs[rows] = model.sample(cond, rows.stop - rows.start, guidance_scale=args.guidance_scale,
                                    generator=torch.Generator().manual_seed(args.seed + b)).numpy()
    ys = yr[pick]
    gen_s = time.perf_counter() - started

    def factory() -> torch.nn.Module:
        return ECGClassifier(ClassifierConfig(stem_width=16, widths=[32, 64, 64, 128], classes=list(classes)))

    budget = TrainBudget(steps=args.steps, batch_size=args.batch_size)
    result = utility_table(factory, real_train=(xr, yr), real_test=(xt, yt), synthetic=(xs, ys), classes=classes,
                           budget=budget, seed=args.seed)
    print(result)
    out = {"model": args.model, "n_synthetic": args.n, "n_real_train": len(xr), "n_test": len(xt),
           "guidance_scale": args.guidance_scale, "budget": vars(budget) if hasattr(budget, "__dict__") else
           {"steps": budget.steps, "batch_size": budget.batch_size, "lr": budget.lr}, "seed": args.seed,
           "generation_s": gen_s, "wall_s": time.perf_counter() - started, **result.as_dict()}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    lines = ["| setting | trained on | tested on | macro AUROC [95% CI] |", "|---|---|---|---|"]
    for r in result.rows.values():
        lines.append(f"| {r.setting} | {r.trained_on} | {r.tested_on} | {r.auroc} |")
    lines.append(f"| AUG − TRTR | | | {result.augmentation_gain} |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"written {path} ({out['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
