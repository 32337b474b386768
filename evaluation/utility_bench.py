"""``synth bench utility``: does a synthetic cohort help a classifier that must work on real records?

For each cohort (``synth cohort``) and each fraction of PTB-XL's training folds (100 %, 25 %, 10 % by default;
records drawn with the seed), a classifier is trained fresh with one recipe, one budget and one seed
(:func:`evaluation.utility.train_classifier`) and scored on real records of ``split`` (fold 9 to choose, fold 10 to
report once):

- **TRTR @ f**: real fraction f alone; **AUG @ f**: real fraction f + the whole cohort; **gain @ f** = AUG − TRTR on
  the same resampled test records (paired bootstrap);
- **TSTR**: the cohort alone; **TRTS**: the TRTR @ 100 % classifier scored on the cohort (do its records carry the
  labels they were asked for?);
- **AUG-filtered @ f** (with ``filter``): the cohort without the records whose requested labels a separate
  classifier, trained on the training folds only (the shipped ``ecg_classifier_ptbxl`` by default), does not
  recognise (probability below 0.5 for a requested label it knows).

Per-label AUROCs are reported for every row, the rarest labels of the training folds first (the regime where
oversampling with a ``counts`` or ``balanced`` cohort should help). The generator saw all the training folds:
a fraction row says how a user with less real data would fare, not a generator trained on that fraction.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluation.utility import (
    TrainBudget,
    macro_auroc_ci,
    macro_auroc_difference_ci,
    per_class_auroc,
    predict_scores,
    train_classifier,
)
from synth.errors import DataError, MissingFileError, SynthError

DEFAULT_FRACTIONS = (1.0, 0.25, 0.1)
#: (leads, samples) of the PTB-XL records the classifiers read (10 s at 100 Hz): a cohort's records must match.
RECORD_SHAPE = (12, 1000)


def parse_cohorts(specs: Sequence[str]) -> dict[str, Path]:
    """``NAME=DIR`` or ``DIR`` (named after the folder) → ``{name: folder}``."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        path = Path(folder if sep else spec)
        name = name if sep else path.name
        if name in out:
            raise DataError(f"two cohorts named {name!r}", hint="name them: --cohort NAME=DIR")
        out[name] = path
    return out


def check_inputs(cohorts: Sequence[str], out_dir: str | os.PathLike, data_root: str | os.PathLike | None
                 ) -> dict[str, Path]:
    """What the command line alone tells, before the output is claimed: the cohorts are named once each, and
    ``out_dir`` is not, does not lie inside and does not contain a cohort or the PTB-XL folder. ``{name: folder}``."""
    from evaluation.bench import check_out_apart

    sets = parse_cohorts(cohorts)
    if not sets:
        raise DataError("give at least one --cohort")
    check_out_apart(out_dir, [("--data", data_root), *(("--cohort", folder) for folder in sets.values())])
    return sets


def open_cohort(folder: str | os.PathLike, *, shape: tuple[int, ...] | None = RECORD_SHAPE):
    """A ``--cohort`` folder opened and checked before any PTB-XL signal loads: a finished synth cohort
    (``cohort.json``, ``manifest.csv`` and every shard it names readable) with at least one record, each of
    ``shape`` (leads, samples; from the shard headers, memory-mapped, nothing read). One line naming the file
    otherwise."""
    from synth.data.cohort import SHARDS, Cohort

    folder = Path(folder)
    hint = "give a folder made by synth cohort SPEC.yaml --out DIR"
    if not folder.is_dir():
        raise MissingFileError("no such cohort folder", path=folder, hint=hint)
    if not (folder / "cohort.json").is_file():
        raise DataError("not a synth cohort (no cohort.json)", path=folder, hint=hint)
    try:
        cohort = Cohort(folder, classes=[])
    except SynthError:
        raise
    except OSError as err:
        raise DataError(f"the cohort cannot be read ({err.strerror or err})", path=err.filename or folder,
                        hint="give a cohort folder you can read") from None
    except (KeyError, ValueError, TypeError, AttributeError) as err:  # a column missing, a field not a number
        raise DataError(f"manifest.csv or cohort.json is damaged ({type(err).__name__}: {err})"[:300],
                        path=folder / "manifest.csv", hint="run synth cohort again to rebuild it") from None
    if not len(cohort):
        raise DataError("the cohort holds no records", path=folder, hint=hint)
    for s in sorted(set(cohort.shard_of.tolist())):
        path = folder / SHARDS / f"signals-{s:05d}.npy"
        try:
            shard = cohort.shard(s)
        except SynthError:
            raise
        except (OSError, ValueError) as err:
            raise DataError(f"shard cannot be read ({err})"[:300], path=path,
                            hint="run synth cohort again to finish the cohort") from None
        if shape is not None and tuple(shard.shape[1:]) != tuple(shape):
            raise DataError(f"cohort records are {tuple(shard.shape[1:])}, PTB-XL's {tuple(shape)} (12 leads, 10 s "
                            "at 100 Hz)", path=path, hint="make the cohort with a 100 Hz, 10 s model")
    return cohort


def quality_filter(x: np.ndarray, labels: list[list[str]], classifier_dir, threshold: float = 0.5) -> np.ndarray:
    """(N,) bool: keep the records whose every requested label that the classifier knows scores ≥ ``threshold``.
    ``classifier_dir``: a classifier folder, or the classifier loaded from one."""
    import torch

    from evaluation.classifier import load_classifier

    clf = load_classifier(classifier_dir) if isinstance(classifier_dir, (str, os.PathLike)) else classifier_dir
    probs = np.concatenate([clf.predict(torch.from_numpy(np.ascontiguousarray(x[i:i + 256]))).numpy()
                            for i in range(0, len(x), 256)])  # (N, K), sliding windows as the classifier scores
    col = {c: k for k, c in enumerate(clf.cfg.classes)}
    keep = np.ones(len(x), dtype=bool)
    for i, names in enumerate(labels):
        known = [col[c] for c in names if c in col]
        keep[i] = all(probs[i, k] >= threshold for k in known)
    return keep


def run_utility(cohorts: Sequence[str], data_root: str | os.PathLike, *, out_dir: str | os.PathLike,
                split: str = "test", fractions: Sequence[float] = DEFAULT_FRACTIONS, label_kind: str = "superclasses",
                budget: TrainBudget | None = None, seed: int = 0, n_boot: int = 1000, rare: int = 3,
                filter_classifier: str | os.PathLike | None = None, cache_dir: str | None = ".cache/ptbxl",
                force: bool = False, progress: bool = True) -> dict:
    """Score every row (see the module doc); writes ``report.json``, ``report.md`` and plots into ``out_dir``.
    ``budget``: per classifier (default 300 steps × 64). Every input is checked before PTB-XL loads: the cohorts
    (:func:`open_cohort`), the filter classifier, and an ``out_dir`` apart from them (:func:`check_inputs`)."""
    from tqdm.auto import tqdm

    from evaluation.classifier import ClassifierConfig, ECGClassifier, load_classifier
    from synth.data.cohort import Cohort
    from synth.data.ptbxl import PTBXL
    from synth.outputs import check_output_folder, staged_folder

    sets = check_inputs(cohorts, out_dir, data_root)
    check_output_folder(out_dir, overwrite=force)
    budget = budget or TrainBudget(steps=300)
    started = time.perf_counter()
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        raise DataError(f"fraction {bad[0]} is outside (0, 1]", hint="e.g. --fractions 1,0.25,0.1")
    for folder in sets.values():
        open_cohort(folder)  # a missing or damaged cohort stops the run here, not after PTB-XL has loaded
    filter_model = load_classifier(filter_classifier) if filter_classifier else None
    ds = PTBXL(data_root, 100)
    train, test = ds.split("train"), ds.split("val" if split == "val" else "test")
    yr, classes = train.multi_hot(label_kind)
    keep_cls = [k for k in range(len(classes)) if 0 < yr[:, k].sum() < len(yr)]
    classes = [classes[k] for k in keep_cls]
    yr = yr[:, keep_cls]
    yt, _ = test.multi_hot(label_kind, classes)
    xr = np.asarray(train.load_signals(cache_dir=cache_dir, progress=progress), np.float32)
    xt = np.asarray(test.load_signals(cache_dir=cache_dir, progress=progress), np.float32)
    synthetic = {}
    for name, folder in sets.items():
        cohort = Cohort(folder, classes=classes)
        xs, ys = cohort.arrays()
        if xs.shape[1:] != xr.shape[1:]:
            raise DataError(f"cohort records are {xs.shape[1:]}, PTB-XL's {xr.shape[1:]}", path=folder)
        synthetic[name] = (xs, ys, cohort.label_lists)
    prevalence = yr.mean(axis=0)
    rarest = [classes[k] for k in np.argsort(prevalence)[:rare]]

    def factory():
        return ECGClassifier(ClassifierConfig(stem_width=16, widths=[32, 64, 64, 128], classes=list(classes)))

    rng = np.random.default_rng([seed, 0xF4AC])
    subsets = {f: np.sort(rng.choice(len(xr), max(1, int(round(f * len(xr)))), replace=False)) if f < 1 else
               np.arange(len(xr)) for f in fractions}
    plan: list[tuple[str, str, float | None, tuple[np.ndarray, np.ndarray]]] = []
    for f in fractions:
        idx = subsets[f]
        plan.append((f"TRTR @ {f:.0%}", "real", f, (xr[idx], yr[idx])))
        for name, (xs, ys, names) in synthetic.items():
            plan.append((f"AUG {name} @ {f:.0%}", f"real + {name}", f, (np.concatenate([xr[idx], xs]),
                                                                         np.concatenate([yr[idx], ys]))))
            if filter_classifier:
                keep = quality_filter(xs, names, filter_model)
                plan.append((f"AUG {name} filtered @ {f:.0%}", f"real + {name} ({int(keep.sum())} kept)", f,
                             (np.concatenate([xr[idx], xs[keep]]), np.concatenate([yr[idx], ys[keep]]))))
    for name, (xs, ys, _) in synthetic.items():
        plan.append((f"TSTR {name}", name, None, (xs, ys)))
    rows, scores, models = {}, {}, {}
    for setting, trained_on, fraction, data in tqdm(plan, desc="classifiers", unit="row", disable=not progress):
        model = train_classifier(factory, data, budget=budget, seed=seed)
        models[setting] = model
        scores[setting] = predict_scores(model, xt)
        rows[setting] = _row(setting, trained_on, f"real {split}", fraction, len(data[0]), scores[setting], yt,
                             classes, n_boot, seed)
    full = f"TRTR @ {max(fractions):.0%}"
    for name, (xs, ys, _) in synthetic.items():
        s = predict_scores(models[full], xs)
        rows[f"TRTS {name}"] = _row(f"TRTS {name}", "real", name, None, len(xr), s, ys, classes, n_boot, seed)
    gains = {}
    for setting in rows:
        if setting.startswith("AUG"):
            fraction = rows[setting]["fraction"]
            base = f"TRTR @ {fraction:.0%}"
            gains[setting] = macro_auroc_difference_ci(scores[setting], scores[base], yt, n_boot=n_boot,
                                                       seed=seed).as_dict()
            gains[setting]["against"] = base
    report = {"split": split, "data": str(data_root), "n_train": len(xr), "n_test": len(xt), "label_kind": label_kind,
              "classes": classes, "rarest": rarest, "fractions": list(fractions), "seed": seed, "n_boot": n_boot,
              "budget": {"steps": budget.steps, "batch_size": budget.batch_size, "lr": budget.lr},
              "cohorts": {n: {"path": str(p), "records": len(synthetic[n][0])} for n, p in sets.items()},
              "filter": str(filter_classifier) if filter_classifier else None, "rows": rows, "gains": gains,
              "note": "The generator saw all training folds; fraction rows subsample the real training records only",
              "wall_s": time.perf_counter() - started}
    with staged_folder(out_dir, overwrite=force) as stage:
        (stage / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        (stage / "report.md").write_text(utility_markdown(report), encoding="utf-8")
        plot_utility(report, stage / "utility.png")
    return report


def _row(setting, trained_on, tested_on, fraction, n_train, scores, labels, classes, n_boot, seed) -> dict:
    ci = macro_auroc_ci(scores, labels, n_boot=n_boot, seed=seed).as_dict()
    per = per_class_auroc(scores, labels)
    return {"setting": setting, "trained_on": trained_on, "tested_on": tested_on, "fraction": fraction,
            "n_train": n_train, "macro_auroc": ci,
            "per_class_auroc": {c: (None if not np.isfinite(v) else float(v)) for c, v in zip(classes, per)}}


def _ci(d: dict, digits: int = 3) -> str:
    return f"{d['estimate']:.{digits}f} [{d['low']:.{digits}f}, {d['high']:.{digits}f}]"


def utility_markdown(r: dict) -> str:
    lines = [f"# Downstream utility on PTB-XL {r['split']} ({r['n_test']} records)", "",
             f"One classifier recipe (1D ResNet, {r['budget']['steps']} steps × {r['budget']['batch_size']}, seed "
             f"{r['seed']}) per row; macro AUROC over {len(r['classes'])} {r['label_kind']} with {r['n_boot']} "
             f"bootstrap replicates. {r['note']}.", "",
             "| row | trained on | n train | macro AUROC [95 % CI] | gain vs real alone [95 % CI] | "
             + " | ".join(f"{c} (rare)" for c in r["rarest"]) + " |",
             "|---|---|---|---|---|" + "---|" * len(r["rarest"])]
    for name, row in r["rows"].items():
        gain = _ci(r["gains"][name], 4) if name in r["gains"] else ""
        rare = " | ".join("" if row["per_class_auroc"].get(c) is None else f"{row['per_class_auroc'][c]:.3f}"
                          for c in r["rarest"])
        lines.append(f"| {name} | {row['trained_on']} (tested on {row['tested_on']}) | {row['n_train']:,} | "
                     f"{_ci(row['macro_auroc'])} | {gain} | {rare} |")
    helped = [n for n, g in r["gains"].items() if g["low"] > 0]
    lines += ["", "Rows whose gain interval lies above zero: " + (", ".join(helped) if helped else "none") + "."]
    return "\n".join(lines) + "\n"


def plot_utility(r: dict, out: Path) -> Path:
    """Macro AUROC of every row with its interval, and the augmentation gain against the real fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [2, 1]})
    names = list(r["rows"])
    est = [r["rows"][n]["macro_auroc"]["estimate"] for n in names]
    err = [[e - r["rows"][n]["macro_auroc"]["low"] for n, e in zip(names, est)],
           [r["rows"][n]["macro_auroc"]["high"] - e for n, e in zip(names, est)]]
    colours = ["#4c72b0" if n.startswith("TRTR") else "#dd8452" if n.startswith("AUG") else "#55a868" for n in names]
    ax0.barh(range(len(names)), est, xerr=err, color=colours, capsize=3)
    ax0.set_yticks(range(len(names)), names, fontsize=8)
    ax0.invert_yaxis()
    ax0.set_xlim(max(0.4, min(est) - 0.05), 1.0)
    ax0.set_xlabel(f"macro AUROC (95 % CI) on real {r['split']}; TRTS rows: on the cohort")
    ax0.grid(axis="x", alpha=0.3)
    for cohort in r["cohorts"]:
        for tag in ("", " filtered"):
            keys = [k for k in r["gains"] if k.startswith(f"AUG {cohort}{tag} @")]
            if not keys:
                continue
            fr = [r["rows"][k]["fraction"] for k in keys]
            g = [r["gains"][k] for k in keys]
            ax1.errorbar([100 * f for f in fr], [x["estimate"] for x in g],
                         yerr=[[x["estimate"] - x["low"] for x in g], [x["high"] - x["estimate"] for x in g]],
                         marker="o", capsize=3, label=f"{cohort}{tag}")
    ax1.axhline(0, color="black", linewidth=0.8)
    ax1.set_xscale("log")
    ax1.set_xticks([100 * f for f in r["fractions"]], [f"{f:.0%}" for f in r["fractions"]])
    ax1.minorticks_off()
    ax1.set_xlabel("share of the real training records (%)")
    ax1.set_ylabel("AUROC gain from the cohort (95 % CI)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
