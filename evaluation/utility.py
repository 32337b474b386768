"""Downstream utility: is synthetic data useful for training a classifier that must work on real records?

Macro AUROC (unitless, 0.5 = chance, 1 = perfect, higher is better) of a multi-label classifier, with bootstrap
intervals over test records, in four settings (Esteban et al. 2017, "Real-valued (medical) time series generation
with recurrent conditional GANs", for TSTR/TRTS; EVALUATION.md for the protocol):

- **TRTR**: train on real training records, test on real test records (PTB-XL fold 10): the reference.
- **TSTR**: train on synthetic records (labels = the conditions they were generated from), test on real ones.
- **TRTS**: the TRTR classifier tested on synthetic records: do they carry the labels they were asked for?
  (This is also the condition-consistency score when the classifier is the project's pretrained one.)
- **augmentation gain**: AUROC(real + synthetic) - AUROC(real alone) on the real test records, with a *paired*
  bootstrap (both classifiers scored on the same resampled test records).

Every classifier comes from the same factory, starts from the same seeded initialisation and gets the same
number of optimisation steps, so the rows differ only in their training data. Nothing here picks a checkpoint or a
threshold on the test records: the test fold is only scored.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchmetrics.functional.classification import multilabel_auroc

from evaluation.bootstrap import Interval, percentile_interval
from synth.errors import DataError

Dataset = tuple[np.ndarray, np.ndarray]  # signals (N, C, T) float32 mV, multi-hot labels (N, K)


# -- AUROC -----------------------------------------------------------------------------------------------------


def per_class_auroc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC per class ``(K,)`` of ``scores (N, K)`` (any monotone scale) against multi-hot ``labels (N, K)``.

    A class without both positives and negatives among the ``N`` records has no AUROC: NaN (torchmetrics would
    return 0 with a warning, which would drag a macro average down).
    """
    s, y = np.asarray(scores, np.float32), np.asarray(labels)
    if s.ndim != 2 or s.shape != y.shape:
        raise DataError(f"scores {s.shape} and labels {y.shape} must both be (N, K)")
    if not np.isfinite(s).all():
        raise DataError("scores contain NaN or inf")
    y = (y > 0.5).astype(np.int64)
    positives = y.sum(axis=0)
    valid = (positives > 0) & (positives < len(y))
    out = np.full(s.shape[1], np.nan)
    if valid.any():
        with warnings.catch_warnings():  # classes without positives are masked out above
            warnings.simplefilter("ignore", UserWarning)
            if s.shape[1] == 1:  # torchmetrics' multilabel form needs two labels or more
                from torchmetrics.functional.classification import binary_auroc

                auc = binary_auroc(torch.from_numpy(s[:, 0]), torch.from_numpy(y[:, 0]))[None]
            else:
                auc = multilabel_auroc(torch.from_numpy(s), torch.from_numpy(y), num_labels=s.shape[1], average=None)
        out[valid] = auc.numpy()[valid]
    return out


def macro_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Unweighted mean AUROC over the classes that have both positives and negatives; NaN if none has."""
    auc = per_class_auroc(scores, labels)
    return float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan")


def macro_auroc_ci(
    scores: np.ndarray, labels: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> Interval:
    """Macro AUROC with a percentile bootstrap interval over records (resampled with replacement).

    A class that a resample happens to leave without positives (rare classes, small test sets) is left out of that
    replicate's average rather than scored as 0 or 0.5; with very rare classes, read the per-class counts too.
    """
    s, y = np.asarray(scores, np.float32), np.asarray(labels, np.float32)
    estimate = macro_auroc(s, y)
    rng = np.random.default_rng(seed)
    reps = np.array([macro_auroc(s[i], y[i]) for i in rng.integers(0, len(s), size=(n_boot, len(s)))])
    return percentile_interval(reps, estimate, level=level)


def macro_auroc_difference_ci(
    scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """AUROC(a) - AUROC(b) on the same records, with a paired bootstrap interval (each replicate scores both
    on the same resample, so the interval reflects the difference, not the two AUROCs' separate noise)."""
    a, b, y = (np.asarray(v, np.float32) for v in (scores_a, scores_b, labels))
    estimate = macro_auroc(a, y) - macro_auroc(b, y)
    rng = np.random.default_rng(seed)
    reps = np.array([macro_auroc(a[i], y[i]) - macro_auroc(b[i], y[i])
                     for i in rng.integers(0, len(y), size=(n_boot, len(y)))])
    return percentile_interval(reps, estimate, level=level)


# -- training --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainBudget:
    """The fixed training budget every row of the table gets: optimisation steps, not epochs, so a small
    synthetic set and a large real one receive the same compute."""

    steps: int = 500
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4


def _check_dataset(data: Dataset, name: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(data[0], np.float32), np.asarray(data[1], np.float32)
    if x.ndim != 3 or y.ndim != 2 or len(x) != len(y):
        raise DataError(f"{name}: signals must be (N, C, T) and labels (N, K) with one N, got {x.shape}, {y.shape}")
    if len(x) == 0:
        raise DataError(f"{name} is empty")
    if not np.isfinite(x).all():
        raise DataError(f"{name}: signals contain NaN or inf", hint="drop non-finite generated records first")
    return x, y


def train_classifier(
    factory: Callable[[], nn.Module], data: Dataset, *, budget: TrainBudget = TrainBudget(), seed: int = 0
) -> nn.Module:
    """Train ``factory()`` (untrained; maps ``(B, C, T)`` mV to logits ``(B, K)``) on ``data`` with a multi-label
    BCE loss and AdamW for ``budget.steps`` steps; returns it in eval mode, on CPU.

    Deterministic for a given ``seed``: initialisation and minibatch order come from it, and the global torch RNG
    is restored afterwards so callers' random streams are untouched.
    """
    x, y = _check_dataset(data, "training set")
    y_t = torch.from_numpy(np.array(y))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory()
        order = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
        model.train()
        perm, cursor = torch.randperm(len(x), generator=order), 0
        for _ in range(budget.steps):
            if cursor + budget.batch_size > len(perm) and cursor > 0:  # next epoch: reshuffle
                perm, cursor = torch.randperm(len(x), generator=order), 0
            idx = perm[cursor : cursor + budget.batch_size]
            cursor += len(idx)
            logits = model(torch.from_numpy(x[idx.numpy()]))  # a copy: x may be a read-only memory map
            if logits.shape != (len(idx), y.shape[1]):
                raise DataError(f"the classifier returned {tuple(logits.shape)} for {len(idx)} records and "
                                f"{y.shape[1]} labels", hint="the factory's model must map (B, C, T) to logits (B, K)")
            loss = nn.functional.binary_cross_entropy_with_logits(logits, y_t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def predict_scores(model: nn.Module, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Sigmoid probabilities ``(N, K)`` float32 of ``model`` on ``x (N, C, T)`` mV."""
    model.eval()
    x = np.asarray(x, np.float32)
    parts = [torch.sigmoid(model(torch.from_numpy(np.array(x[i : i + batch_size])))) for i in range(0, len(x), batch_size)]
    return torch.cat(parts).numpy()


# -- the table -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UtilityRow:
    setting: str  # TRTR, TSTR, TRTS, AUG
    trained_on: str
    tested_on: str
    auroc: Interval
    per_class: dict[str, float]

    def as_dict(self) -> dict:
        return {"setting": self.setting, "trained_on": self.trained_on, "tested_on": self.tested_on,
                "macro_auroc": self.auroc.as_dict(), "per_class_auroc": self.per_class}


@dataclass(frozen=True)
class UtilityTable:
    rows: dict[str, UtilityRow]
    augmentation_gain: Interval

    def as_dict(self) -> dict:
        return {"rows": [r.as_dict() for r in self.rows.values()], "augmentation_gain": self.augmentation_gain.as_dict()}

    def __str__(self) -> str:
        lines = [f"{'setting':<6} {'train':<16} {'test':<10} macro AUROC [{self.augmentation_gain.level:.0%} CI]"]
        lines += [f"{r.setting:<6} {r.trained_on:<16} {r.tested_on:<10} {r.auroc}" for r in self.rows.values()]
        lines.append(f"augmentation gain (AUG - TRTR): {self.augmentation_gain}")
        return "\n".join(lines)


def utility_table(
    factory: Callable[[], nn.Module],
    *,
    real_train: Dataset,
    real_test: Dataset,
    synthetic: Dataset,
    classes: Sequence[str] | None = None,
    budget: TrainBudget = TrainBudget(),
    seed: int = 0,
    n_boot: int = 1000,
    level: float = 0.95,
) -> UtilityTable:
    """TRTR, TSTR, TRTS and augmentation (real + synthetic) macro AUROCs with bootstrap intervals.

    Args:
        factory: returns an untrained classifier ``(B, C, T) -> logits (B, K)``; called once per training set.
        real_train, real_test, synthetic: ``(signals (N, C, T) mV, multi-hot labels (N, K))``; the synthetic
            labels are the conditions the records were generated from. ``real_test`` is only scored.
        classes: names of the ``K`` labels, for the per-class AUROCs.
        budget, seed: identical for every classifier trained.
        n_boot, level: bootstrap replicates and confidence level of the intervals.
    """
    xr, yr = _check_dataset(real_train, "real_train")
    xt, yt = _check_dataset(real_test, "real_test")
    xs, ys = _check_dataset(synthetic, "synthetic")
    k = yr.shape[1]
    if yt.shape[1] != k or ys.shape[1] != k or not (xr.shape[1:] == xt.shape[1:] == xs.shape[1:]):
        raise DataError(f"sets disagree: signals {xr.shape[1:]}, {xt.shape[1:]}, {xs.shape[1:]}; "
                        f"labels {k}, {yt.shape[1]}, {ys.shape[1]}")
    names = list(classes) if classes is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise DataError(f"{len(names)} class names for {k} labels")

    def train(data: Dataset) -> nn.Module:
        return train_classifier(factory, data, budget=budget, seed=seed)

    models = {"real": train((xr, yr)), "synthetic": train((xs, ys)),
              "real+synthetic": train((np.concatenate([xr, xs]), np.concatenate([yr, ys])))}
    plan = [("TRTR", "real", "real test", xt, yt), ("TSTR", "synthetic", "real test", xt, yt),
            ("TRTS", "real", "synthetic", xs, ys), ("AUG", "real+synthetic", "real test", xt, yt)]
    rows, scores = {}, {}
    for setting, trained_on, tested_on, x, y in plan:
        scores[setting] = predict_scores(models[trained_on], x)
        per_class = dict(zip(names, per_class_auroc(scores[setting], y).tolist()))
        auroc = macro_auroc_ci(scores[setting], y, n_boot=n_boot, seed=seed, level=level)
        rows[setting] = UtilityRow(setting, trained_on, tested_on, auroc, per_class)
    gain = macro_auroc_difference_ci(scores["AUG"], scores["TRTR"], yt, n_boot=n_boot, seed=seed, level=level)
    return UtilityTable(rows, gain)
