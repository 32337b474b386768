"""Train, select on fold 9, score fold 10 once, and ship a PTB-XL classifier to ``checkpoints/<name>/``.

    OMP_NUM_THREADS=2 python benchmarks/train_classifier.py configs/classifier/ptbxl_superclass.yaml \\
        --name ecg_classifier_ptbxl
    # a run already trained with `python -m evaluation.classifier train ... out_dir=runs/<name>`:
    python benchmarks/train_classifier.py configs/classifier/ptbxl_superclass.yaml --name ecg_classifier_ptbxl \\
        --skip-train

The order is the protocol (EVALUATION.md): the export with the best fold-9 macro AUROC is fixed first (by
``evaluation.classifier.train``), and only then is fold 10 loaded and scored, once, with a bootstrap 95% CI.
Writes ``checkpoints/<name>/{config.json, model.safetensors, metrics.json, selection.json, train_log.csv}``;
the model card is written by hand from ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import torch

from evaluation.classifier import evaluate, load_recipe, train

PUBLISHED = {"source": "Strodthoff et al. 2021, IEEE JBHI 25(5), PTB-XL benchmark, fold 10, 100 Hz, "
                       "xresnet1d101 / inception1d trained on folds 1-8 of the full 21,799-record PTB-XL",
             "superdiagnostic_macro_auroc": 0.930}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--name", required=True, help="checkpoints/<name>")
    parser.add_argument("--skip-train", action="store_true", help="use the run already in out_dir")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    _, train_cfg, out_dir = load_recipe(args.config, args.overrides)
    if not args.skip_train:
        train(args.config, args.overrides)
    best = out_dir / "best"
    selection = json.loads((out_dir / "selection.json").read_text())
    root, cache = train_cfg.data.root, train_cfg.data.cache_dir
    started = time.perf_counter()
    val = evaluate(best, root=root, split="val", cache_dir=cache, n_boot=args.n_boot)
    test = evaluate(best, root=root, split="test", cache_dir=cache, n_boot=args.n_boot)  # once, after selection
    eval_wall = time.perf_counter() - started
    target = Path("checkpoints") / args.name
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(best / name, target / name)
    shutil.copy2(out_dir / "selection.json", target / "selection.json")
    if (out_dir / "train_log.csv").exists():
        shutil.copy2(out_dir / "train_log.csv", target / "train_log.csv")
    metrics = {
        "model": args.name, "config": str(args.config), "data_root": str(root),
        "selection": {"split": "val", "folds": [9], "best_step": selection["best_step"],
                      "best_val_macro_auroc_during_training": selection["best_val_macro_auroc"]},
        "train": {k: selection.get(k) for k in ("train_wall_s", "train_records", "train_windows", "steps",
                                                  "batch_size", "params", "torch_threads")},
        "hardware": f"{platform.processor() or platform.machine()}, CPU only, torch {torch.__version__}",
        "val": val, "test": test, "eval_wall_s": eval_wall, "published_anchor": PUBLISHED,
    }
    (target / "metrics.json").write_text(json.dumps(metrics, indent=2))
    for split in ("val", "test"):
        r = metrics[split]
        ci = r["macro_auroc_ci"]
        per = ", ".join(f"{k} {v:.3f}" for k, v in r["per_class_auroc"].items())
        print(f"{args.name} {split}: macro AUROC {r['macro_auroc']:.4f} [{ci['low']:.4f}, {ci['high']:.4f}]  ({per})")


if __name__ == "__main__":
    main()
