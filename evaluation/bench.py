"""``synth bench``: every metric of :mod:`evaluation` for one or more generators, in one process, one run.

- :func:`run_fidelity`: conditions (labels, age, sex, heart rate) are taken from ``n`` real records of the chosen
  split; each generator produces one record per condition; then the Fréchet distance beside its real-vs-real
  floor (bootstrap 95% intervals), k-NN precision/recall, memorisation against the training folds and the
  physiology checks, with ``report.md``, ``report.json`` and PNG plots.
- :func:`run_reconstruct`: lead reconstruction from the given leads, per-lead MAE / RMSE / Pearson r (bootstrap
  95% intervals over records), amplitude ratio and lag on the leads that were not given.

Generators are ``baseline:NAME`` (``real-train``, ``ecgsyn``, ``nearest``, ``linear``) or an exported model folder
(``config.json`` + ``model.safetensors``). Everything fitted (PCA basis, scaler, linear map) is fitted on the
training folds (1-8) only; nothing is selected on the scored split. Outputs are written into a staging folder
beside ``out_dir`` and renamed at the end, so an interrupted run leaves no half-written report.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.bootstrap import record_interval
from synth.data.leads import LEADS_12
from synth.errors import DataError
from synth.outputs import staged_folder

BASELINES_FIDELITY = ("real-train", "ecgsyn", "nearest", "deepfake-ecg")
BASELINES_RECONSTRUCT = ("linear",)
ALL_BASELINES = BASELINES_FIDELITY + BASELINES_RECONSTRUCT
CLASSIFIER_NAME = "ecg_classifier_ptbxl"  # under the checkpoints folder (synth.tasks.common.checkpoints_root)
#: The classifier of every statement report2ecg is conditioned on (subclasses, rhythms): per-label consistency.
STATEMENTS_CLASSIFIER_NAME = "ecg_classifier_ptbxl_statements"
#: A label enters the per-label consistency macro average with at least this many positives among the records.
MIN_POSITIVES = 5
PCA_DIM = 16  # components per lead; fixed in advance, not tuned on any fold
PCA_FIT_MAX = 2000  # training records the PCA basis is fitted on (disjoint from the floor's records)
K_NN = 3  # Kynkäänniemi et al. 2019
N_BOOT = 200
FS_HZ = 100


# -- inputs ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorSpec:
    """One ``--generator`` argument: a baseline name or a checkpoint folder."""

    text: str
    baseline: str | None = None
    path: Path | None = None
    #: ``records:DIR``: a folder of records someone generated (scored as they are).
    records: Path | None = None

    @property
    def name(self) -> str:
        if self.records is not None:
            return f"records:{self.records.name}"
        return f"baseline:{self.baseline}" if self.baseline else self.path.name


def parse_generator(text: str, *, allowed: Sequence[str]) -> GeneratorSpec:
    """``baseline:NAME`` (one of ``allowed``) or an export folder; raises :class:`DataError` otherwise."""
    if text.startswith("records:"):
        folder = Path(text.split(":", 1)[1])
        if "real-train" not in allowed:
            raise DataError("records:DIR is scored by synth bench fidelity")
        if not folder.is_dir():
            raise DataError("records:DIR names no folder", path=folder,
                            hint="a folder of WFDB/NPZ/NPY/CSV records, or a synth cohort")
        _check_readable(folder)
        return GeneratorSpec(text, records=folder)
    if text.startswith("baseline:"):
        name = text.split(":", 1)[1]
        if name not in allowed:
            known = ", ".join(f"baseline:{b}" for b in allowed)
            extra = f" (baseline:{name} belongs to the other bench command)" if name in ALL_BASELINES else ""
            raise DataError(f"unknown baseline {text!r} for this command{extra}", hint=f"choose from {known}")
        return GeneratorSpec(text, baseline=name)
    path = Path(text)
    if not (path / "config.json").is_file():
        raise DataError("generator is neither baseline:NAME nor an exported model folder (config.json missing)",
                        path=path, hint=f"use baseline:{'|baseline:'.join(allowed)} or a folder from `synth train`")
    return GeneratorSpec(text, path=path)


def _check_readable(folder: Path) -> None:
    """Refuse a ``records:DIR`` whose listing cannot be read (before any work, not when its turn comes)."""
    try:
        with os.scandir(folder) as entries:
            next(entries, None)
    except OSError as err:
        raise DataError(f"records:DIR cannot be read ({err.strerror or err})", path=folder,
                        hint="give a folder you can read") from None


def check_out_apart(out_dir: str | os.PathLike, inputs: Sequence[tuple[str, str | os.PathLike | None]]) -> None:
    """Refuse, before any work, an output folder that is, lies inside or contains one of the ``inputs``
    (``(option, folder)``; None skipped): synth never writes into a folder it reads, and ``--force`` would replace
    the input with the report."""
    from synth.outputs import check_apart

    check_apart(out_dir, inputs)


def generator_inputs(specs: Sequence[GeneratorSpec]) -> list[tuple[str, Path]]:
    """``(what, folder)`` of every folder the generators read (checkpoints, ``records:DIR``)."""
    return [("--generator", spec.records if spec.records is not None else spec.path)
            for spec in specs if spec.records is not None or spec.path is not None]


def _check_records(folder: Path, n: int) -> None:
    """Refuse a ``records:DIR`` with fewer than ``n`` records, counted from its listing (or its cohort's manifest),
    before any data loads: :func:`evaluation.baselines.records_baseline` reads them only when the generator's turn
    comes."""
    from synth.data.cohort import is_cohort

    if is_cohort(folder):
        from evaluation.utility_bench import open_cohort

        count = len(open_cohort(folder, shape=None))
    else:
        count = sum(1 for p in folder.iterdir() if p.suffix.lower() in (".hea", ".npz", ".npy", ".csv")
                    and p.name not in ("conditions.csv", "metadata.csv") and not p.name.startswith("."))
    if count < n:
        raise DataError(f"records:DIR holds {count} record(s); {n} are scored", path=folder,
                        hint=f"give at least --n {n} records (.hea, .npz, .npy, .csv), or a smaller --n")


def check_inputs(generators: Sequence[str], out_dir: str | os.PathLike, data_root: str | os.PathLike | None, *,
                 allowed: Sequence[str]) -> list[GeneratorSpec]:
    """What the command line alone tells, before the output is claimed: the generators parse, ``records:DIR``
    folders exist and can be read, and ``out_dir`` keeps clear of every folder the bench reads."""
    specs = _parse_generators(generators, allowed)
    check_out_apart(out_dir, [("--data", data_root), *generator_inputs(specs)])
    return specs


def _physiology_intervals(phys, *, n_boot: int, seed: int) -> dict[str, dict[str, float]]:
    """Bootstrap 95 % intervals over records of the HR MAE and of the median beat-to-beat QRS correlation: the
    two physiology figures that targets compare, and that move by tenths between draws of the same model."""
    rng = np.random.default_rng(seed)
    out = {}
    errors = phys.heart_rate_error_bpm
    if errors is not None and np.isfinite(errors).any():
        out["heart_rate_mae_bpm_ci"] = record_interval(errors[np.isfinite(errors)], np.mean, n_boot, rng)
    beats = phys.qrs_beat_correlation
    if beats is not None and np.isfinite(beats).any():
        out["qrs_beat_correlation_median_ci"] = record_interval(beats[np.isfinite(beats)], np.median, n_boot, rng)
    return out


def _generator_seed(seed: int, spec: GeneratorSpec) -> int:
    """The seed a generator draws with: from ``--seed`` and its own name, so its output does not depend on which
    other generators share the run or in which order."""
    import zlib

    return seed + zlib.crc32(spec.name.encode()) % 1_000_000


def _parse_generators(texts: Sequence[str], allowed: Sequence[str]) -> list[GeneratorSpec]:
    if not texts:
        raise DataError("give at least one --generator")
    specs = [parse_generator(t, allowed=allowed) for t in texts]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise DataError(f"a generator is named twice: {names}")
    return specs


def _check_modality_guidance(specs: Sequence[GeneratorSpec], asked: Mapping[str, float] | None) -> None:
    """Refuse per-modality guidance that a checkpoint generator has no modality for (from its config, before any
    work); the bench's conditions give report, labels, age, sex and heart rate."""
    from synth.tasks.generate import check_modality_guidance

    for spec in specs:
        if spec.path is not None:
            check_modality_guidance(spec.path, asked, [{"report", "labels", "age", "sex", "heart_rate"}])


def default_data_root() -> Path:
    """``../shared/data/ptbxl`` when present, else the PTB-XL sample shipped with the package."""
    shared = Path("..") / "shared" / "data" / "ptbxl"
    if (shared / "ptbxl_database.csv").exists():
        return shared
    from synth.data.sample import sample_ptbxl_root

    return sample_ptbxl_root()


def _check_out(out_dir: Path, force: bool) -> None:
    from synth.outputs import check_output_folder

    check_output_folder(out_dir, overwrite=force)


def _open(data_root: str | os.PathLike, split: str, n: int, *, minimum: int = 1):
    from synth.data.ptbxl import PTBXL

    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}; choose val or test")
    if split == "train":
        raise DataError("the scored split cannot be the training split (folds 1-8)", hint="use --split test or val")
    ds = PTBXL(data_root, FS_HZ)
    scored, train = ds.split(split), ds.split("train")
    if n < minimum:
        raise DataError(f"--n must be at least {minimum}, got {n}")
    if n > len(scored):
        raise DataError(f"--n {n} is larger than the {split} split ({len(scored)} records)", path=data_root)
    if len(train) < 2:
        raise DataError(f"the training split has {len(train)} records; need at least 2", path=data_root)
    return ds, scored, train


def _load(view, cache_dir: str | os.PathLike | None, progress: bool) -> np.ndarray:
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    return view.load_signals(cache_dir=cache_dir, progress=progress)


def _tqdm(*args, **kw):
    from tqdm.auto import tqdm

    return tqdm(*args, **kw)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, Path):
        return str(x)
    return x


# -- features ----------------------------------------------------------------------------------------------------


def load_feature_extractor(spec: str | os.PathLike) -> Callable[[np.ndarray], np.ndarray]:
    """``x (N, C, T) mV -> (N, D)`` float64 from a classifier folder or a ``module:factory`` extractor
    (:func:`evaluation.classifier.load_feature_extractor`)."""
    from evaluation.classifier import load_feature_extractor as load

    extractor = load(spec)

    def extract(x: np.ndarray) -> np.ndarray:
        f = np.asarray(extractor.features(np.asarray(x, dtype=np.float32)))
        return f.reshape(len(f), -1).astype(np.float64)

    extract.extractor = extractor  # the classifier behind it (condition consistency uses its predict)
    return extract


# -- conditions and generators -----------------------------------------------------------------------------------


@dataclass
class Conditions:
    """The ``n`` real records whose conditions the generators are asked to reproduce."""

    ecg_ids: list[int]
    signals: np.ndarray  # (n, 12, T) mV
    labels: np.ndarray  # (n, 5) multi-hot NORM, MI, STTC, CD, HYP
    classes: list[str]
    statements: list[list[str]]  # every label of each record: superclasses, subclasses and rhythm statements
    age: np.ndarray  # (n,) years, NaN when missing
    sex: np.ndarray  # (n,) 0 male / 1 female, NaN when missing
    heart_rate: np.ndarray  # (n,) bpm measured on the real record, NaN when no beats were found
    report: list[str]  # English report composed from each record's SCP statements (what a user would prompt)


def _conditions(scored, scored_signals: np.ndarray, index: np.ndarray, progress: bool) -> Conditions:
    from evaluation.physiology import heart_rate
    from synth.data.ptbxl import SUPERCLASSES

    ids = [scored.ecg_ids[i] for i in index]
    labels, classes = scored.multi_hot("superclasses", SUPERCLASSES)
    x = np.asarray(scored_signals[index], dtype=np.float32)
    table = scored.table.loc[ids]
    age = table["age"].to_numpy(dtype=np.float64)
    sex = table["sex"].map({"M": 0.0, "F": 1.0}).to_numpy(dtype=np.float64)
    hr = np.full(len(x), np.nan)
    for i in _tqdm(range(len(x)), desc="heart rate of the real records", unit="rec", disable=not progress):
        hr[i] = heart_rate(x[i], FS_HZ)
    english = scored.english_reports()
    rows = scored.table.loc[ids]
    statements = [sorted({*a, *b, *c}) for a, b, c in zip(rows["superclasses"], rows["subclasses"], rows["rhythm"])]
    return Conditions(ids, x, labels[index], classes, statements, age, sex, hr, [english[i] for i in ids])


def _requested_hr(cond: Conditions) -> np.ndarray:
    """The heart rate asked of a generator: the real record's, NaN replaced by the median, within 30-200 bpm."""
    hr = cond.heart_rate.copy()
    fill = np.nanmedian(hr) if np.isfinite(hr).any() else 70.0
    return np.clip(np.where(np.isfinite(hr), hr, fill), 30.0, 200.0)


#: The conditions bench fidelity gives a checkpoint (from the real records).
_FIDELITY_KEYS = {"labels", "age", "sex", "heart_rate", "report"}


def _checkpoint_condition(model, cond: Conditions, rows: slice):
    """The ``cond`` dict a checkpoint accepts, from the real records' conditions (only the keys it reads)."""
    import torch

    from synth.conditioning.labels import LabelsAdapter

    keys = set(model.conditioning.keys)
    out: dict = {}
    if "labels" in keys:
        adapter = next(a for a in model.conditioning.adapters.values() if isinstance(a, LabelsAdapter))
        if adapter.classes is None:
            raise DataError("the model's labels adapter names no classes: cannot map PTB-XL labels to it")
        known = {c.upper() for c in adapter.classes}  # superclasses, and subclasses / rhythms if the model knows them
        out["labels"] = adapter.multi_hot([[c for c in r if c.upper() in known] for r in cond.statements[rows]])
    if "age" in keys:
        out["age"] = torch.tensor(cond.age[rows], dtype=torch.float32)
    if "sex" in keys:
        out["sex"] = torch.tensor(cond.sex[rows], dtype=torch.float32)
    if "heart_rate" in keys:
        out["heart_rate"] = torch.tensor(_requested_hr(cond)[rows], dtype=torch.float32)
    if "report" in keys:
        out["report"] = cond.report[rows]
    unsupported = keys - _FIDELITY_KEYS
    if unsupported and not out:
        raise DataError(f"this model is conditioned on {sorted(keys)}; bench fidelity provides report, labels, age, "
                        "sex and heart_rate", hint="use synth bench reconstruct for lead-conditioned models")
    return out


def _check_fidelity_conditions(model, spec: GeneratorSpec) -> None:
    """Refuse a checkpoint the bench cannot condition (what :func:`_checkpoint_condition` needs), from its adapters
    alone, before any data loads."""
    from synth.conditioning.labels import LabelsAdapter

    keys = set(model.conditioning.keys)
    if "labels" in keys:
        adapter = next((a for a in model.conditioning.adapters.values() if isinstance(a, LabelsAdapter)), None)
        if adapter is None or adapter.classes is None:
            raise DataError("the model's labels adapter names no classes: cannot map PTB-XL labels to it",
                            path=spec.path)
    if keys - _FIDELITY_KEYS and not keys & _FIDELITY_KEYS:
        raise DataError(f"this model is conditioned on {sorted(keys)}; bench fidelity provides report, labels, age, "
                        "sex and heart_rate", path=spec.path,
                        hint="use synth bench reconstruct for lead-conditioned models")


def _check_reconstruct_conditions(model, spec: GeneratorSpec) -> None:
    keys = set(model.conditioning.keys)
    if not {"leads", "lead_mask"} <= keys:
        raise DataError(f"this model is conditioned on {sorted(keys)}, not on given leads", path=spec.path,
                        hint="reconstruction needs a model with the leads adapter")


def _load_models(specs: Sequence[GeneratorSpec], *, windowed: bool = False, check=None) -> dict:
    """Every checkpoint generator loaded once, up front: its folder, ``config.json``, weights (shapes on the meta
    device, finite values; :func:`synth.checkpoint.load_pretrained`), rate, leads and length, and ``check(model,
    spec)``, are refused before any data loads, not when the generator's turn comes. ``{name: model}``."""
    models = {}
    for spec in specs:
        if spec.path is not None:
            model = _load_model(spec, windowed=windowed)
            if check is not None:
                check(model, spec)
            models[spec.name] = model
    return models


def _load_model(spec: GeneratorSpec, *, windowed: bool = False):
    """A 12-lead checkpoint at 100 Hz; 10 s long, unless ``windowed`` (reconstruction runs any window length)."""
    from synth.checkpoint import load_pretrained

    model = load_pretrained(spec.path)
    sig = model.cfg.signal
    if sig.channels not in (8, 12) or float(sig.fs_hz) != FS_HZ or (sig.length != 10 * FS_HZ and not windowed):
        raise DataError(f"model generates {sig.channels} channels x {sig.length} samples at {sig.fs_hz:g} Hz; bench "
                        f"compares 12-lead 10 s records at {FS_HZ} Hz", path=spec.path)
    return model


def _sample_checkpoint(model, cond_fn, n: int, seed: int, batch_size: int, steps: int | None, desc: str,
                       progress: bool, guidance_scale: float = 1.0, sampler: str | None = None,
                       modality_guidance: Mapping[str, float] | None = None) -> np.ndarray:
    """``n`` records (12 leads) from ``model``, one seeded generator per batch; ``sampler`` a registered sampler
    of the model's process (default: the model's own); ``modality_guidance`` ``{modality: w}`` per-modality
    guidance where a batch gives the modality (None: the model's configured defaults)."""
    import torch

    from synth.tasks.generate import as_records, batch_modality_guidance

    out = np.empty((n, 12, model.cfg.signal.length), dtype=np.float32)
    with _tqdm(total=n, desc=desc, unit="ECG", disable=not progress) as bar:
        for chunk, start in enumerate(range(0, n, batch_size)):
            rows = slice(start, min(n, start + batch_size))
            size = rows.stop - rows.start
            generator = torch.Generator().manual_seed(seed + chunk)
            extra = {} if sampler is None else {"sampler": sampler}
            cond = cond_fn(rows)
            with torch.no_grad():
                x = model.sample(cond, size, steps=steps, guidance_scale=guidance_scale, generator=generator,
                                 modality_guidance=batch_modality_guidance(model, modality_guidance, cond), **extra)
            out[rows] = as_records(model, x.detach().cpu().numpy())  # 12 leads (derived for an 8-lead model)
            bar.update(size)
    return out


def _generate(spec: GeneratorSpec, cond: Conditions, train_pool: np.ndarray, train_labels: np.ndarray,
              real_train_pool: np.ndarray, *, seed: int, batch_size: int, steps: int | None, progress: bool,
              guidance_scale: float = 1.0, modality_guidance: Mapping[str, float] | None = None,
              model=None) -> tuple[np.ndarray, dict]:
    """``(n, 12, T)`` records for the conditions, and notes on how they were made. ``real_train_pool``: the
    training records baseline:real-train draws from (those the PCA basis was not fitted on, where enough);
    ``model``: the checkpoint of ``spec`` when it was loaded already (:func:`_load_models`)."""
    from evaluation import baselines
    from synth.tasks.generate import describe_modality_guidance

    n = len(cond.ecg_ids)
    if spec.baseline == "real-train":
        x, _ = baselines.real_train_baseline(real_train_pool, n, seed=seed)
        return x, {"how": "n real training records drawn at random (ignores the conditions): the floor"}
    if spec.baseline == "ecgsyn":
        hr = _requested_hr(cond)
        out = np.empty((n, 12, 10 * FS_HZ), dtype=np.float32)
        for i in _tqdm(range(n), desc="baseline:ecgsyn", unit="ECG", disable=not progress):
            out[i] = baselines.ecgsyn_baseline(1, hr[i], FS_HZ, 10.0, seed=seed + i)[0]
        return out, {"how": "NeuroKit2 ecg_simulate(method='multileads') at each real record's heart rate"}
    if spec.baseline == "deepfake-ecg":
        x = baselines.deepfake_ecg_baseline(n, FS_HZ, seed=seed, progress=progress)
        return x, {"how": "deepfake-ecg (PyPI, Pulse2Pulse WaveGAN, unconditional): 8 leads at 500 Hz in µV -> mV, "
                          "III/aVR/aVL/aVF derived by the lead laws, resampled to 100 Hz"}
    if spec.records is not None:
        x, labels, hr, how = baselines.records_baseline(spec.records, n, FS_HZ, 10.0, classes=cond.classes, seed=seed)
        notes = {"how": f"records as they are: {how}", "_labels": labels, "_requested_hr": hr}
        return x, notes
    if spec.baseline == "nearest":
        gen = baselines.NearestNeighbourGenerator(train_pool, labels=train_labels)
        x, _ = gen.sample(labels=cond.labels, seed=seed)
        return x, {"how": "training record with the closest superclass labels (Hamming), ties broken at random"}
    model = _load_model(spec) if model is None else model
    distilled = getattr(model.process, "distilled_guidance", None)
    guidance_scale = 1.0 if distilled is not None else guidance_scale  # guided already: its only scale is 1
    x = _sample_checkpoint(model, lambda rows: _checkpoint_condition(model, cond, rows), n, seed, batch_size, steps,
                           spec.name, progress, guidance_scale, modality_guidance=modality_guidance)
    used = steps or getattr(model.process, "default_steps", None)
    guidance = f"guidance {distilled:g} distilled" if distilled is not None else f"guidance scale {guidance_scale:g}"
    per_modality = describe_modality_guidance(model, modality_guidance)
    guidance += f", per-modality guidance {per_modality}" if per_modality else ""
    return x, {"how": f"load_pretrained({spec.path}) + sample ({used} steps, {guidance}), "
                      f"conditioned on {sorted(model.conditioning.keys)}"}


# -- fidelity ----------------------------------------------------------------------------------------------------


def _condition_consistency(featurize, x: np.ndarray, cond: Conditions, *, n_boot: int, seed: int) -> dict | None:
    """The classifier's macro AUROC for the superclasses requested of each record, scored on what was generated
    (None without a classifier that predicts those classes). On the real records themselves it is the ceiling."""
    from evaluation.utility import macro_auroc_ci, per_class_auroc

    extractor = getattr(featurize, "extractor", None)
    classes = list(getattr(getattr(getattr(extractor, "model", None), "cfg", None), "classes", []) or [])
    if extractor is None or not callable(getattr(extractor, "predict", None)) or not classes:
        return None
    shared = [c for c in cond.classes if c in classes]
    if not shared:
        return None
    scores = np.asarray(extractor.predict(np.asarray(x, dtype=np.float32)))[:, [classes.index(c) for c in shared]]
    labels = cond.labels[:, [cond.classes.index(c) for c in shared]]
    ci = macro_auroc_ci(scores, labels, n_boot=n_boot, seed=seed)
    return {"macro_auroc": ci.as_dict(), "per_class_auroc": dict(zip(shared, per_class_auroc(scores, labels))),
            "positives": dict(zip(shared, labels.sum(axis=0).astype(int)))}


def _statement_consistency(scorer, x: np.ndarray, statements: list[list[str]], *, n_boot: int,
                           seed: int) -> dict | None:
    """Per-label condition consistency over every statement the ``scorer`` classifier knows (superclasses,
    subclasses, rhythms): its AUROC for each label requested of the records (the real records' statements, which
    every prompt carries in its report and, for models that know them, its labels), scored on what was generated.
    The macro average takes the labels with at least :data:`MIN_POSITIVES` positives."""
    import torch

    from evaluation.utility import macro_auroc_ci, per_class_auroc

    classes = list(scorer.cfg.classes)
    labels = np.array([[1.0 if c in s else 0.0 for c in classes] for s in statements], dtype=np.float32)
    positives = labels.sum(axis=0)
    keep = [k for k in range(len(classes)) if MIN_POSITIVES <= positives[k] < len(labels)]
    if not keep:
        return None
    with torch.no_grad():
        scores = np.concatenate([scorer.predict(torch.from_numpy(np.ascontiguousarray(x[i:i + 128], np.float32)))
                                 .numpy() for i in range(0, len(x), 128)])
    ci = macro_auroc_ci(scores[:, keep], labels[:, keep], n_boot=n_boot, seed=seed)
    per = per_class_auroc(scores[:, keep], labels[:, keep])
    return {"macro_auroc": ci.as_dict(), "labels": [classes[k] for k in keep],
            "per_label_auroc": {classes[k]: float(v) for k, v in zip(keep, per)},
            "positives": {classes[k]: int(positives[k]) for k in keep}}


def _concat_features(pca, x: np.ndarray) -> np.ndarray:
    f = pca.transform(x)  # (N, C, d)
    return f.reshape(len(f), -1)


def run_fidelity(
    generators: Sequence[str],
    data_root: str | os.PathLike,
    *,
    split: str = "test",
    n: int = 500,
    seed: int = 0,
    out_dir: str | os.PathLike,
    features: str | os.PathLike | None = None,
    force: bool = False,
    cache_dir: str | os.PathLike | None = ".cache/ptbxl",
    batch_size: int = 64,
    steps: int | None = None,
    n_boot: int = N_BOOT,
    guidance_scale: float = 1.0,
    modality_guidance: Mapping[str, float] | None = None,
    progress: bool = True,
) -> dict:
    """Score each generator against ``n`` real records of ``split`` (see the module docstring); returns the
    report dict written to ``out_dir/report.json``. ``modality_guidance``: per-modality guidance for every
    checkpoint (None: each model's configured defaults; checked against each model's modalities before any work)."""
    from evaluation.frechet import LeadPCA, fd_with_floor
    from evaluation.manifold import precision_recall
    from evaluation.memorisation import memorisation_report
    from evaluation.physiology import physiology_report

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    specs = check_inputs(generators, out_dir, data_root, allowed=BASELINES_FIDELITY)
    _check_modality_guidance(specs, modality_guidance)
    _check_out(out_dir, force)
    models = _load_models(specs, check=_check_fidelity_conditions)  # a bad checkpoint stops the run here, not later
    for spec in specs:
        if spec.records is not None:
            _check_records(spec.records, n)
    ds, scored, train = _open(data_root, split, n, minimum=K_NN + 2)
    if len(train) < n + 2:
        raise DataError(f"--n {n} needs at least {n + 2} training records for the floor, found {len(train)}")
    extractor, feature_note = None, None
    from synth.tasks.common import checkpoints_root

    default_classifier = checkpoints_root() / CLASSIFIER_NAME
    if features is None and (default_classifier / "config.json").exists():
        features = default_classifier
    if features is not None:
        extractor = load_feature_extractor(features)
        feature_note = f"classifier features from {features}"
    statements_scorer = None
    if (checkpoints_root() / STATEMENTS_CLASSIFIER_NAME / "config.json").exists():
        from evaluation.classifier import load_classifier

        statements_scorer = load_classifier(checkpoints_root() / STATEMENTS_CLASSIFIER_NAME)

    rng = np.random.default_rng(seed)
    scored_x = _load(scored, cache_dir, progress)
    train_x = _load(train, cache_dir, progress)
    index = np.sort(rng.choice(len(scored), n, replace=False))
    cond = _conditions(scored, scored_x, index, progress)
    # Training records: n for the floor, the rest for the generators (real-train, nearest) and the PCA basis.
    perm = rng.permutation(len(train))
    floor_idx, rest_idx = np.sort(perm[:n]), np.sort(perm[n:])
    floor_x = np.asarray(train_x[floor_idx], dtype=np.float32)
    train_labels, _ = train.multi_hot("superclasses", cond.classes)
    pool_x = np.asarray(train_x[rest_idx], dtype=np.float32)
    pool_labels = train_labels[rest_idx]
    pca_idx = np.sort(rng.choice(len(rest_idx), min(PCA_FIT_MAX, len(rest_idx)), replace=False))
    pca_dim = min(PCA_DIM, len(pca_idx))
    pca = LeadPCA.fit(pool_x[pca_idx], pca_dim)
    not_pca = np.setdiff1d(np.arange(len(rest_idx)), pca_idx)
    real_train_pool = pool_x[not_pca] if len(not_pca) >= n else pool_x
    if extractor is None:
        feature_note = (f"raw-signal PCA features: {pca_dim} principal components per lead ({12 * pca_dim} in all), "
                        f"fitted on {len(pca_idx)} training records disjoint from the floor's (no classifier "
                        f"checkpoint at {default_classifier}; pass --features PATH for classifier features)")
        featurize = lambda x: _concat_features(pca, x)  # noqa: E731
    else:
        featurize = extractor
    f_test, f_floor = featurize(cond.signals), featurize(floor_x)
    p_test = pca.transform(cond.signals)
    p_floor = pca.transform(floor_x)
    memo_q = float(min(0.25, max(0.01, 10.0 / n)))  # keep quantile * n >= 10 where n allows (fixed rule)

    report: dict = {
        "command": "fidelity", "data_root": str(data_root), "split": split, "n": n, "seed": seed, "n_boot": n_boot,
        "guidance_scale": guidance_scale, "modality_guidance": modality_guidance, "steps": steps,
        "fs_hz": FS_HZ, "features": feature_note, "feature_kind": "classifier" if extractor else "raw-signal PCA",
        "pca_dim": pca_dim, "k": K_NN, "memorisation_quantile": memo_q,
        "train_records": len(train), "floor_records": n, "condition_ecg_ids": cond.ecg_ids,
        "real_reference": {}, "generators": {},
    }
    # Real references: the scored records' own physiology, and train-vs-test precision/recall.
    phys_real = physiology_report(cond.signals, FS_HZ)
    report["real_reference"] = {
        "physiology": {**phys_real.as_dict(), **_physiology_intervals(phys_real, n_boot=n_boot, seed=seed)},
        "precision_recall_train_vs_test": precision_recall(f_test, f_floor, K_NN).as_dict(),
        "heart_rate_measured_bpm": cond.heart_rate,
    }
    samples, hr_errors = {}, {}
    for spec in specs:
        g_seed = _generator_seed(seed, spec)
        gen_start = time.perf_counter()
        x, notes = _generate(spec, cond, pool_x, pool_labels, real_train_pool, seed=g_seed, batch_size=batch_size, steps=steps,
                             guidance_scale=guidance_scale, modality_guidance=modality_guidance,
                             progress=progress, model=models.get(spec.name))
        gen_s = time.perf_counter() - gen_start
        if not np.isfinite(x).all():
            bad = int((~np.isfinite(x.reshape(n, -1)).all(axis=1)).sum())
            raise DataError(f"{spec.name} produced {bad} records with NaN or inf", hint="check the generator")
        # records:DIR brings its own requested labels and heart rates (or none); the others were asked for cond's.
        own_labels, own_hr = notes.pop("_labels", None), notes.pop("_requested_hr", None)
        asked = cond if spec.records is None else (
            None if own_labels is None else Conditions(cond.ecg_ids[:len(x)], x, own_labels, cond.classes,
                                                       [], cond.age, cond.sex, cond.heart_rate, []))
        if len(x) != n:
            raise DataError(f"{spec.name} gave {len(x)} records; {n} are scored", path=spec.records,
                            hint=f"give at least --n {n} records, or a smaller --n")
        f_gen = featurize(x)
        fd = fd_with_floor(f_gen, f_test, f_floor, n=n, n_boot=n_boot, seed=seed)
        p_gen = pca.transform(x)
        per_lead = {lead: fd_with_floor(p_gen[:, c], p_test[:, c], p_floor[:, c], n=n, n_boot=n_boot, seed=seed)
                    for c, lead in enumerate(LEADS_12)}
        pr = precision_recall(f_test, f_gen, K_NN)
        # A copy is near its training record in both distances; euclidean alone also finds quiet (low-voltage)
        # records near every quiet training record (seen on fold 9: different beats, same low amplitude).
        memo = memorisation_report(x, cond.signals, pool_x, quantile=memo_q)
        memo_cos = memorisation_report(x, cond.signals, pool_x, quantile=memo_q, metric="cosine")
        requested = _requested_hr(cond) if spec.records is None else own_hr
        phys = physiology_report(x, FS_HZ, requested_hr_bpm=requested)
        consistency = None if asked is None else _condition_consistency(featurize, x, asked, n_boot=n_boot, seed=seed)
        per_label = None if statements_scorer is None or spec.records is not None else _statement_consistency(
            statements_scorer, x, cond.statements, n_boot=n_boot, seed=seed)
        hr_errors[spec.name] = phys.heart_rate_error_bpm
        samples[spec.name] = x
        report["generators"][spec.name] = {
            "spec": spec.text, **notes, "generation_s": gen_s,
            "fd": fd.as_dict(),
            "fd_per_lead": {lead: v.as_dict() for lead, v in per_lead.items()},
            "precision_recall": pr.as_dict(),
            "memorisation": {**memo.as_dict(), "copies": memo.copies and memo_cos.copies,
                             "euclidean_flag": memo.copies, "cosine": memo_cos.as_dict()},
            "physiology": {**phys.as_dict(), **_physiology_intervals(phys, n_boot=n_boot, seed=seed)},
            "condition_consistency": consistency,
            "statement_consistency": per_label,
        }
    report["real_reference"]["condition_consistency"] = _condition_consistency(featurize, cond.signals, cond,
                                                                               n_boot=n_boot, seed=seed)
    if statements_scorer is not None:
        report["real_reference"]["statement_consistency"] = _statement_consistency(
            statements_scorer, cond.signals, cond.statements, n_boot=n_boot, seed=seed)
    report["wall_s"] = time.perf_counter() - t0
    report = _jsonable(report)
    from evaluation.report import fidelity_markdown, plot_fd, plot_hr_errors, plot_overlay

    with staged_folder(out_dir, overwrite=force) as stage:
        plots = {"fd": plot_fd(report, stage / "fd_with_floor.png"),
                 "hr_error": plot_hr_errors(hr_errors, stage / "hr_error.png")}
        for g, name in enumerate(samples):
            safe = name.replace("baseline:", "baseline_").replace("/", "_")
            plots[f"overlay:{name}"] = plot_overlay(cond.signals[0], samples[name][0], name, cond.ecg_ids[0],
                                                    stage / f"overlay_{g:02d}_{safe}.png")
        report["plots"] = {k: p.name for k, p in plots.items()}
        (stage / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False), encoding="utf-8")
        (stage / "report.md").write_text(fidelity_markdown(report), encoding="utf-8")
    return report


# -- reconstruction ----------------------------------------------------------------------------------------------


def parse_leads(text: str | Sequence[str]) -> tuple[str, ...]:
    """Given leads in canonical order from ``II,V1,V5`` or a named set (``3lead``, ``1lead:I``)."""
    from synth.data.leads import parse_lead_set

    if isinstance(text, str) and not text.strip():
        raise DataError("give the leads the reconstruction starts from, e.g. --leads II,V1,V5")
    leads = parse_lead_set(text)  # raises DataError for unknown names and duplicates
    unknown = [x for x in leads if x not in LEADS_12]
    if unknown:
        raise DataError(f"leads {unknown} are not ECG leads of the 12-lead set",
                        hint=f"use lead names from {', '.join(LEADS_12)}")
    if len(leads) == len(LEADS_12):
        raise DataError("all 12 leads are given: nothing to reconstruct", hint="give fewer leads, e.g. II,V1,V5")
    return tuple(n for n in LEADS_12 if n in leads)


def _mean_pooled_rmse(rmse: np.ndarray) -> float:
    """Mean over the scored leads of each lead's RMSE pooled over records: ``rmse`` (N records, L leads)."""
    return float(np.mean(np.sqrt(np.mean(rmse**2, axis=0))))


def run_reconstruct(
    generators: Sequence[str],
    data_root: str | os.PathLike,
    leads: str | Sequence[str],
    *,
    split: str = "test",
    n: int = 500,
    seed: int = 0,
    out_dir: str | os.PathLike,
    force: bool = False,
    cache_dir: str | os.PathLike | None = ".cache/ptbxl",
    batch_size: int = 64,
    steps: int | None = None,
    n_boot: int = N_BOOT,
    samples: int = 1,
    progress: bool = True,
) -> dict:
    """Reconstruct the leads not in ``leads`` on ``n`` records of ``split``; returns the report dict."""
    from evaluation.baselines import LinearLeadReconstructor
    from evaluation.paired import paired_metrics

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    specs = check_inputs(generators, out_dir, data_root, allowed=BASELINES_RECONSTRUCT)
    given = parse_leads(leads)
    _check_out(out_dir, force)
    models = _load_models(specs, windowed=True, check=_check_reconstruct_conditions)  # before any data loads
    ds, scored, train = _open(data_root, split, n, minimum=1)
    rng = np.random.default_rng(seed)
    scored_x = _load(scored, cache_dir, progress)
    index = np.sort(rng.choice(len(scored), n, replace=False))
    truth = np.asarray(scored_x[index], dtype=np.float32)
    ids = [scored.ecg_ids[i] for i in index]
    mask = np.array([lead in given for lead in LEADS_12])
    report: dict = {"command": "reconstruct", "data_root": str(data_root), "split": split, "n": n, "seed": seed,
                    "n_boot": n_boot, "fs_hz": FS_HZ, "given": list(given),
                    "missing": [x for x in LEADS_12 if x not in given], "ecg_ids": ids, "generators": {}}
    predictions, rmse_by_record = {}, {}
    for spec in specs:
        gen_start = time.perf_counter()
        if spec.baseline == "linear":
            train_x = _load(train, cache_dir, progress)
            model = LinearLeadReconstructor(given).fit(train_x)
            pred = np.concatenate([model.predict(truth[s : s + 512]) for s in
                                   _tqdm(iterable=range(0, n, 512), desc="baseline:linear", disable=not progress)])
            notes = {"how": f"least squares fitted on {len(train)} training records (folds 1-8)",
                     "weights": model.weights}
        else:
            from synth.data.record import Record
            from synth.tasks.reconstruct import reconstruct

            m = models[spec.name]
            pred = np.empty_like(truth)
            spread = np.zeros(len(truth), dtype=np.float64)
            for i in _tqdm(range(n), desc=spec.name, unit="rec", disable=not progress):
                rec = Record(truth[i], FS_HZ, LEADS_12)
                out = reconstruct(m, rec, given, num_samples=samples, steps=steps, seed=_generator_seed(seed, spec) + i,
                                  batch_size=batch_size, progress=False)
                pred[i] = out.mean.signal
                spread[i] = float(out.spread[~mask].mean())
            used = steps or m.process.default_steps
            notes = {"how": f"synth.tasks.reconstruct with {spec.path}: {m.cfg.signal.length}-sample windows, "
                            f"{used} Euler step(s), mean of {samples} sample(s) per window",
                     "steps": used, "samples": samples,
                     "mean_spread_mv": float(spread.mean()) if samples > 1 else None}
        gen_s = time.perf_counter() - gen_start
        pm = paired_metrics(pred, truth, FS_HZ, given=given)
        boot = np.random.default_rng(seed)
        per_lead = {}
        for j, lead in enumerate(pm.leads):
            s = pm.per_lead[lead]
            per_lead[lead] = {
                **s.as_dict(),
                "variance_ratio": float(np.nanmedian(pm.amplitude_ratio[:, j] ** 2)),
                "mae_ci": record_interval(pm.mae[:, j], np.mean, n_boot, boot),
                "rmse_ci": record_interval(pm.rmse[:, j], lambda v: float(np.sqrt(np.mean(v**2))), n_boot, boot),
                "pearson_r_ci": record_interval(pm.pearson_r[:, j], lambda v: float(np.nanmean(v)) if np.isfinite(v).any()
                                           else float("nan"), n_boot, boot),
            }
        predictions[spec.name] = pred
        rmse_by_record[spec.name] = pm.rmse
        report["generators"][spec.name] = {
            "spec": spec.text, **notes, "generation_s": gen_s, "per_lead": per_lead, "mean": pm.mean,
            "mean_rmse_ci": record_interval(pm.rmse, _mean_pooled_rmse, n_boot, np.random.default_rng(seed)),
            "mean_pearson_r_ci": record_interval(pm.pearson_r, lambda v: float(np.nanmean(v)), n_boot,
                                            np.random.default_rng(seed)),
        }
    names = list(rmse_by_record)
    report["paired_differences"] = {
        f"{a} - {b}": record_interval(np.stack([rmse_by_record[a], rmse_by_record[b]], axis=1),
                                 lambda v: _mean_pooled_rmse(v[:, 0]) - _mean_pooled_rmse(v[:, 1]), n_boot,
                                 np.random.default_rng(seed))
        for i, a in enumerate(names) for b in names[i + 1:]
    }
    report["wall_s"] = time.perf_counter() - t0
    report = _jsonable(report)
    from evaluation.report import plot_paired, plot_reconstruction, reconstruct_markdown

    with staged_folder(out_dir, overwrite=force) as stage:
        plots = {"per_lead": plot_paired(report, stage / "per_lead_errors.png")}
        for g, name in enumerate(predictions):
            safe = name.replace("baseline:", "baseline_").replace("/", "_")
            plots[f"overlay:{name}"] = plot_reconstruction(truth[0], predictions[name][0], given, name, ids[0],
                                                           stage / f"overlay_{g:02d}_{safe}.png")
        report["plots"] = {k: p.name for k, p in plots.items()}
        (stage / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False), encoding="utf-8")
        (stage / "report.md").write_text(reconstruct_markdown(report), encoding="utf-8")
    return report
