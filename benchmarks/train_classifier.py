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

``<name>`` is a plain folder name. An existing ``checkpoints/<name>`` is refused before training, unless it is a
classifier export of this script and ``--force`` is given; then the files this script writes are replaced and the
others (the hand-written card) are kept. The export is assembled beside it and renamed into place
(synth.outputs.staged_folder), so an interrupted run never leaves a config that does not match its weights.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import time
from pathlib import Path

import torch

from evaluation.classifier import KIND, evaluate, load_recipe, train
from synth.errors import MissingFileError, exit_code_of
from synth.outputs import protected_reason, staged_folder

PUBLISHED = {"source": "Strodthoff et al. 2021, IEEE JBHI 25(5), PTB-XL benchmark, fold 10, 100 Hz, "
                       "xresnet1d101 / inception1d trained on folds 1-8 of the full 21,799-record PTB-XL",
             "superdiagnostic_macro_auroc": 0.930}
#: What this script writes into ``checkpoints/<name>``: replaced with ``--force``; any other file there is kept.
EXPORT_FILES = ("config.json", "model.safetensors", "metrics.json", "selection.json", "train_log.csv")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def checkpoint_name(text: str) -> str:
    """``--name``: a plain folder name under ``checkpoints/``, so the export cannot land anywhere else."""
    if not _NAME.fullmatch(text) or len(text) > 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a plain folder name (letters, digits, '.', '_', '-'; no "
                                         f"path, not hidden), e.g. ecg_classifier_ptbxl")
    return text


def export_refusal(folder: Path) -> str | None:
    """Why ``--force`` may not replace ``folder`` (None when it is a classifier export of this script: a config.json
    of kind ``ecg_classifier``, its weights and metrics.json, plain files only): the generators and every other
    checkpoint beside it are never overwritten."""
    reason = protected_reason(folder)
    if reason:
        return reason
    try:
        kind = json.loads((folder / "config.json").read_text(encoding="utf-8"))["model"]["kind"]
    except (OSError, ValueError, KeyError, TypeError):
        kind = None
    if kind != KIND or not (folder / "model.safetensors").is_file() or not (folder / "metrics.json").is_file():
        return f"it is not a classifier export of this script ({KIND} config.json, model.safetensors, metrics.json)"
    odd = [p.name for p in folder.iterdir() if p.is_symlink() or not p.is_file()]
    return f"it holds folders or links a classifier export does not ({', '.join(sorted(odd)[:3])})" if odd else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--name", required=True, type=checkpoint_name, help="checkpoints/<name>, a plain folder name")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing classifier export of this script (its other files are kept)")
    parser.add_argument("--skip-train", action="store_true", help="use the run already in out_dir")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    return exit_code_of(Path(__file__).name, lambda: ship(args))


def ship(args: argparse.Namespace) -> None:
    """Train (unless ``--skip-train``), score, and write ``checkpoints/<name>`` as one unit. The target is claimed
    (checked, locked) before training starts."""
    _, train_cfg, out_dir = load_recipe(args.config, args.overrides)
    best = out_dir / "best"
    if args.skip_train and not (best / "config.json").is_file():
        raise MissingFileError("no trained export here (no best/config.json)", path=out_dir,
                               hint="train first: drop --skip-train")
    target = Path("checkpoints") / args.name
    with staged_folder(target, overwrite=args.force, owned=export_refusal, mark=False) as stage:
        if not args.skip_train:
            train(args.config, args.overrides)
        metrics = _score(args, train_cfg, out_dir)
        for name in ("config.json", "model.safetensors"):
            shutil.copy2(best / name, stage / name)
        shutil.copy2(out_dir / "selection.json", stage / "selection.json")
        if (out_dir / "train_log.csv").exists():
            shutil.copy2(out_dir / "train_log.csv", stage / "train_log.csv")
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if target.is_dir():  # a replaced export: keep what this script does not write (the hand-written card)
            for path in target.iterdir():
                if path.name not in EXPORT_FILES and path.is_file() and not path.is_symlink():
                    shutil.copy2(path, stage / path.name)
    for split in ("val", "test"):
        r = metrics[split]
        ci = r["macro_auroc_ci"]
        per = ", ".join(f"{k} {v:.3f}" for k, v in r["per_class_auroc"].items())
        print(f"{args.name} {split}: macro AUROC {r['macro_auroc']:.4f} [{ci['low']:.4f}, {ci['high']:.4f}]  ({per})")


def _score(args: argparse.Namespace, train_cfg, out_dir: Path) -> dict:
    """Fold 9, then fold 10 once (after selection), with the training facts: what ``metrics.json`` holds."""
    selection = json.loads((out_dir / "selection.json").read_text())
    root, cache = train_cfg.data.root, train_cfg.data.cache_dir
    started = time.perf_counter()
    val = evaluate(out_dir / "best", root=root, split="val", cache_dir=cache, n_boot=args.n_boot)
    test = evaluate(out_dir / "best", root=root, split="test", cache_dir=cache, n_boot=args.n_boot)  # once, last
    eval_wall = time.perf_counter() - started
    return {
        "model": args.name, "config": str(args.config), "data_root": str(root),
        "selection": {"split": "val", "folds": [9], "best_step": selection["best_step"],
                      "best_val_macro_auroc_during_training": selection["best_val_macro_auroc"]},
        "train": {k: selection.get(k) for k in ("train_wall_s", "train_records", "train_windows", "steps",
                                                  "batch_size", "params", "torch_threads")},
        "hardware": f"{platform.processor() or platform.machine()}, CPU only, torch {torch.__version__}",
        "val": val, "test": test, "eval_wall_s": eval_wall, "published_anchor": PUBLISHED,
    }


if __name__ == "__main__":
    raise SystemExit(main())
