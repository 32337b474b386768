"""Synthetic cohorts at scale: ``synth cohort SPEC.yaml --out DIR``, sharded, resumable, across processes.

A cohort spec (OmegaConf YAML, :class:`CohortSpec`) says which model, how many records, how their conditions are
drawn (label mix, age / sex / heart rate, report source) and how they are sampled. Every record ``i`` gets its
conditions from one table drawn up front with the cohort seed, and its noise from :func:`record_seed` of
(cohort seed, ``i``); so the cohort is the same whatever the number of processes, their order or the
interruptions. Shards of ``shard_size`` records are the unit of work and of output:

    DIR/cohort.json             the resolved spec, model and its SHA-256, versions, timings, counts
    DIR/card.md                 the cohort card (the same, for people)
    DIR/manifest.csv            one row per record: id, shard, row, conditions, noise seed, SHA-256 of its samples
    DIR/shards/signals-00000.npy  (n, 12, T) int16 in µV (1 µV steps, as PTB-XL stores it), NumPy's own format
    DIR/shards/manifest-00000.csv the manifest rows of that shard

Each shard is written under a temporary name and renamed (its manifest part first, then its signals), and the
folder is built in a staging folder beside ``DIR`` (:mod:`synth.outputs`) that becomes ``DIR`` when every shard is
there. Running the same command again after a kill keeps the finished shards and makes the rest. Under
``accelerate launch --multi_gpu --num_processes K -m synth cohort ...`` on GPUs, or ``torchrun --nproc_per_node K
-m synth cohort ...`` (CPU processes too), shard ``s`` is made by process ``s mod K``; process 0 holds the output and
writes the manifest and card at the end. The shards are bitwise the same for any number of processes and any
interruptions; another ``batch_size`` changes the float32 rounding of the batched network, so a few samples may
differ by one µV step (the spec, and so the resume key, includes the batch size). Read a cohort with
:class:`synth.data.cohort.Cohort`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from synth.errors import DataError, MissingFileError

#: Signals are stored as int16 at this many µV per step (PTB-XL's resolution; ±32.7 mV range).
MICROVOLTS_PER_STEP = 1.0
SHARDS = "shards"
MANIFEST_COLUMNS = ("record", "shard", "row", "labels", "report", "age", "sex", "hr", "source_ecg_id", "noise_seed",
                    "sha256")


@dataclass
class LabelMix:
    #: ``train``: records drawn from the training folds as they are; ``balanced``: each of ``classes`` equally
    #: often; ``counts``: exactly ``counts[label]`` records having each label.
    mix: Literal["train", "balanced", "counts"] = "train"
    #: The labels ``balanced`` spreads over (default: the superclasses the model knows).
    classes: list[str] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    #: False: records are drawn as ``mix`` says, but the model is given no labels (e.g. report-only prompts);
    #: the manifest then lists none.
    given: bool = True


#: The values a condition may take (synth.limits), which bound a normal draw whose low / high is not given.
def _value_ranges() -> dict[str, tuple[float, float]]:
    from synth.limits import AGE_RANGE, HEART_RATE_RANGE

    return {"age": AGE_RANGE, "heart_rate": HEART_RATE_RANGE}


VALUE_RANGES = _value_ranges()


@dataclass
class Distribution:
    """``from: train`` (the drawn training record's value), ``none`` (not given), or ``normal`` with ``mean``,
    ``std`` clipped to [``low``, ``high``]; for sex, ``female`` is the share of women."""

    source: Literal["train", "none", "normal", "share"] = "train"
    mean: float = 0.0
    std: float = 1.0
    low: float | None = None
    high: float | None = None
    female: float = 0.5


@dataclass
class CohortSpec:
    #: A shipped model name (``report2ecg``) or an export folder.
    model: str = "report2ecg"
    size: int = 1000
    seed: int = 0
    shard_size: int = 1000
    batch_size: int = 64
    steps: int | None = None
    #: None: 2 (chosen on PTB-XL fold 9), or 1 for a model with guidance distilled into it.
    guidance_scale: float | None = None
    #: Per-modality guidance ``{modality: w}`` (e.g. ``{demographics: 0.5}``), applied where a record gives that
    #: modality; None: the model's configured defaults; ``{}``: none, not even those.
    modality_guidance: dict[str, float] | None = None
    labels: LabelMix = field(default_factory=LabelMix)
    age: Distribution = field(default_factory=Distribution)
    sex: Distribution = field(default_factory=Distribution)
    heart_rate: Distribution = field(default_factory=Distribution)
    #: ``train`` (the drawn record's own report, mostly German), ``composed`` (English from its statements),
    #: ``file:PATH`` (one report per line, taken in turn) or ``none``.
    reports: str = "composed"
    #: PTB-XL folder whose training folds the conditions are drawn from (default: ../shared/data/ptbxl if present,
    #: else the shipped sample).
    data: str | None = None
    cache_dir: str | None = ".cache/ptbxl"

    def __post_init__(self) -> None:
        from synth.limits import (
            BATCH_RANGE,
            GUIDANCE_RANGE,
            RECORDS_RANGE,
            SEED_RANGE,
            STEPS_RANGE,
            check_range,
        )

        check_range("size", self.size, *RECORDS_RANGE)
        check_range("seed", self.seed, *SEED_RANGE)
        check_range("shard_size", self.shard_size, 1, 1_000_000)
        check_range("batch_size", self.batch_size, *BATCH_RANGE)
        if self.guidance_scale is not None:
            check_range("guidance_scale", self.guidance_scale, *GUIDANCE_RANGE)
        if self.steps is not None:
            check_range("steps", self.steps, *STEPS_RANGE)
        for name, weight in (self.modality_guidance or {}).items():
            check_range(f"modality_guidance.{name}", weight, *GUIDANCE_RANGE)
        if not (self.reports in ("train", "composed", "none") or self.reports.startswith("file:")):
            raise ValueError(f"reports must be train, composed, none or file:PATH, got {self.reports!r}")
        if self.labels.mix == "counts" and not self.labels.counts:
            raise ValueError("labels.mix counts needs labels.counts, e.g. {AFIB: 500, NORM: 500}")
        if self.labels.mix == "counts" and sum(self.labels.counts.values()) != self.size:
            raise ValueError(f"labels.counts add up to {sum(self.labels.counts.values())}, size is {self.size}")
        if any(v < 0 for v in self.labels.counts.values()):
            raise ValueError("labels.counts must be >= 0")
        for name in ("age", "heart_rate"):
            d = getattr(self, name)
            if d.source == "normal" and not (d.std > 0 and (d.low is None or d.high is None or d.low < d.high)):
                raise ValueError(f"{name}: normal needs std > 0 and low < high")
            if d.source == "normal":  # checked now, not met halfway through the sampling
                lo, hi = VALUE_RANGES[name]
                for key in ("mean", "low", "high"):
                    if getattr(d, key) is not None:
                        check_range(f"{name}.{key}", getattr(d, key), lo, hi)
            if d.source == "share":
                raise ValueError(f"{name}: share is for sex only")
        if self.sex.source == "normal" or not 0 <= self.sex.female <= 1:
            raise ValueError("sex: use train, none or share (with female in [0, 1])")

    @property
    def shards(self) -> int:
        return -(-self.size // self.shard_size)

    def shard_range(self, shard: int) -> range:
        return range(shard * self.shard_size, min(self.size, (shard + 1) * self.shard_size))


def load_spec(path: str | os.PathLike, overrides: list[str] | None = None) -> CohortSpec:
    """A cohort spec from YAML with ``key=value`` overrides, validated (one-line errors naming the file)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from synth.config import ConfigError, read_yaml, validate
    from synth.training.config import apply_overrides

    node = read_yaml(path)
    try:
        node = apply_overrides(node, overrides or [])
        data = OmegaConf.to_container(node, resolve=True)
    except ConfigError as err:
        err.path = err.path or str(path)
        raise
    except OmegaConfBaseException as err:
        raise ConfigError(str(err).splitlines()[0], path=path) from None
    return validate(CohortSpec, data, source=str(path))


# -- conditions ------------------------------------------------------------------------------------------------------
def _data_root(spec: CohortSpec) -> Path:
    if spec.data:
        return Path(spec.data)
    shared = Path("..") / "shared" / "data" / "ptbxl"
    if (shared / "ptbxl_database.csv").is_file():
        return shared
    from synth.data.sample import sample_ptbxl_root

    return sample_ptbxl_root()


class ConditionSource:
    """The conditions of a cohort's records, shard by shard (memory does not grow with the cohort).

    Built once from the training folds of ``spec.data``: each training record's labels among the model's
    ``classes`` (superclasses, subclasses, rhythms: whichever it knows), its report, age, sex and measured heart
    rate. Shard ``s`` draws its records with its own generator (cohort seed, ``s``), so a shard's conditions do not
    depend on which process draws it or in what order. Only what the model reads (``keys``) is given.
    """

    def __init__(self, spec: CohortSpec, classes: list[str], keys: set[str], *, progress: bool = False):
        from synth.data.ptbxl import PTBXL

        self.spec, self.keys, self.known = spec, set(keys), list(classes)
        train = PTBXL(_data_root(spec), 100).split("train")
        table = train.table
        self.ecg_ids = [int(i) for i in train.ecg_ids]
        kinds = [k for k in ("superclasses", "subclasses", "rhythm") if set(self.known) & set(_kind_classes(k))]
        columns = [table[k].tolist() for k in kinds]
        self.names = [sorted({c for col in columns for c in col[i] if c in self.known}) for i in range(len(table))]
        self.reports = [str(r) for r in table["report"]]
        self.age = table["age"].to_numpy(dtype=np.float64, na_value=np.nan)
        self.sex = [s if s in ("M", "F") else None for s in table["sex"]]
        self.english = train.english_reports() if spec.reports == "composed" else {}
        self.lines = _report_lines(spec)
        self.hr = None
        if "heart_rate" in keys and spec.heart_rate.source == "train":
            self.hr = train.heart_rates(cache_dir=spec.cache_dir, progress=progress)
        self.having = {c: np.array([i for i, row in enumerate(self.names) if c in row], dtype=np.int64)
                       for c in self.known}
        self.wanted = None  # per-record label (balanced over classes, or the counts): index into self.known
        if spec.labels.mix == "balanced":
            from synth.data.ptbxl import SUPERCLASSES

            self.over = spec.labels.classes or [c for c in SUPERCLASSES if c in self.known]
            _check_labels(self.over, self.having, "labels.classes")
        elif spec.labels.mix == "counts":
            _check_labels(list(spec.labels.counts), self.having, "labels.counts")
            order = np.random.default_rng([spec.seed, 0xC0407, 0xC0]).permutation(spec.size)
            labels = np.repeat(np.arange(len(spec.labels.counts), dtype=np.int32), list(spec.labels.counts.values()))
            self.wanted = labels[order]  # 4 bytes a record: the exact counts, spread over every shard

    def shard(self, s: int) -> list[dict]:
        """One condition dict per record of shard ``s`` (``labels`` names, ``report``, ``age``, ``sex``, ``hr``,
        ``source_ecg_id``)."""
        spec = self.spec
        records = spec.shard_range(s)
        rng = np.random.default_rng([spec.seed, 0xC0407, s])
        if spec.labels.mix == "train":
            picks = rng.integers(0, len(self.names), len(records))
        elif spec.labels.mix == "balanced":
            chosen = rng.integers(0, len(self.over), len(records))
            picks = np.array([rng.choice(self.having[self.over[c]]) for c in chosen], dtype=np.int64)
        else:
            counted = list(spec.labels.counts)
            picks = np.array([rng.choice(self.having[counted[w]]) for w in self.wanted[records.start:records.stop]],
                             dtype=np.int64)
        out = []
        for i, k in zip(records, picks):
            ecg_id = self.ecg_ids[k]
            cond: dict[str, Any] = {"source_ecg_id": ecg_id}
            if "labels" in self.keys and self.known and spec.labels.given:
                cond["labels"] = list(self.names[k])
            if "report" in self.keys:
                report = {"train": self.reports[k], "composed": self.english.get(ecg_id, ""), "none": None}.get(
                    spec.reports, self.lines[i % len(self.lines)] if self.lines else None)
                cond["report"] = report or None
            if "age" in self.keys:
                cond["age"] = _value(spec.age, self.age[k], rng, "age")
            if "sex" in self.keys:
                cond["sex"] = _sex(spec.sex, self.sex[k], rng)
            if "heart_rate" in self.keys:
                cond["hr"] = _value(spec.heart_rate, None if self.hr is None else self.hr[k], rng, "heart_rate")
            out.append(cond)
        return out


def draw_conditions(spec: CohortSpec, classes: list[str], keys: set[str], *, progress: bool = False) -> list[dict]:
    """Every record's conditions, shard after shard (see :class:`ConditionSource`)."""
    source = ConditionSource(spec, classes, keys, progress=progress)
    return [c for s in range(spec.shards) for c in source.shard(s)]


def _kind_classes(kind: str) -> list[str]:
    from synth.data.ptbxl import RHYTHMS, SUBCLASSES, SUPERCLASSES

    return list({"superclasses": SUPERCLASSES, "subclasses": SUBCLASSES, "rhythm": RHYTHMS}[kind])


def _check_labels(wanted: list[str], having: dict, what: str) -> None:
    unknown = [c for c in wanted if c not in having]
    if unknown:
        raise DataError(f"{what}: the model knows no label {unknown[0]!r}", hint=f"it knows {', '.join(having)}")
    empty = [c for c in wanted if not len(having[c])]
    if empty:
        raise DataError(f"{what}: no training record has the label {empty[0]!r}", hint="point data: at more records")


def _report_lines(spec: CohortSpec) -> list[str]:
    if not spec.reports.startswith("file:"):
        return []
    path = Path(spec.reports[5:])
    if not path.is_file():
        raise MissingFileError("reports file not found", path=path)
    from synth.io_utils import read_text_lenient
    from synth.tasks.generate import Prompt

    lines = []
    for number, line in enumerate(read_text_lenient(path).splitlines(), start=1):
        if line.strip():
            Prompt(report=line.strip()).check(source=f"{path} line {number}")
            lines.append(line.strip())
    if not lines:
        raise DataError("reports file holds no reports", path=path, hint="one report per line")
    return lines


def _value(dist: Distribution, train_value, rng, name: str) -> float | None:
    """One record's age or heart rate (``name``); a normal draw is clipped to [low, high], each defaulting to the
    end of the range a condition may take (:data:`VALUE_RANGES`)."""
    if dist.source == "none":
        return None
    if dist.source == "train":
        v = None if train_value is None else float(train_value)
        return None if v is None or not math.isfinite(v) else round(v, 1)
    lo, hi = VALUE_RANGES[name]
    low = lo if dist.low is None else dist.low
    high = hi if dist.high is None else dist.high
    return round(float(np.clip(rng.normal(dist.mean, dist.std), low, high)), 1)


def _sex(dist: Distribution, train_value, rng) -> str | None:
    if dist.source == "none":
        return None
    if dist.source == "train":
        return train_value if train_value in ("M", "F") else None
    return "F" if rng.random() < dist.female else "M"


def spec_keys(spec: CohortSpec) -> set[str]:
    """The condition keys the spec's records can give (``report``, ``labels``, ``age``, ``sex``,
    ``heart_rate``), to check its per-modality guidance against before any work."""
    sources = {"report": spec.reports != "none", "labels": spec.labels.given, "age": spec.age.source != "none",
               "sex": spec.sex.source != "none", "heart_rate": spec.heart_rate.source != "none"}
    return {key for key, given in sources.items() if given}


# -- making shards ----------------------------------------------------------------------------------------------------
def spec_key(spec: CohortSpec, model_sha256: str, data_root: Path) -> str:
    """What makes two runs the same cohort (resume only into the same)."""
    fields = asdict(spec)
    if fields["modality_guidance"] is None:  # the key of a cohort begun before the field existed stays the same
        del fields["modality_guidance"]
    text = json.dumps({"spec": fields, "model": model_sha256, "data": str(data_root.resolve())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def shard_done(folder: Path, shard: int) -> bool:
    return (folder / SHARDS / f"signals-{shard:05d}.npy").is_file() and \
        (folder / SHARDS / f"manifest-{shard:05d}.csv").is_file()


def make_shard(model, spec: CohortSpec, conds: list[dict], shard: int, folder: Path, *, progress=None,
               checkpoint: str = "") -> int:
    """Sample shard ``shard`` (``conds``: its records' conditions, :meth:`ConditionSource.shard`) into
    ``folder/shards``: its manifest part, then its signals (both renamed into place, so a shard exists only
    whole). Returns the number of records."""
    from synth.tasks.generate import Prompt, build_condition, record_seed, sample_batch

    records = spec.shard_range(shard)
    prompts, batch_conds = [], []
    for k in range(len(records)):
        c = conds[k]
        prompt = Prompt(report=c.get("report"), labels=list(c.get("labels") or []), age=c.get("age"),
                        sex=c.get("sex"), hr=c.get("hr"), n=1, seed=spec.seed)
        prompts.append(prompt)
        batch_conds.append(build_condition(model, prompt))
    signals = np.empty((len(records), 12, model.cfg.signal.length), dtype=np.int16)
    rows = []
    for start in range(0, len(records), spec.batch_size):
        idx = list(range(start, min(len(records), start + spec.batch_size)))
        # Record i's noise is record_seed(cohort seed, i): pass the cohort index as the index within one prompt.
        items = [(k, records[k]) for k in idx]
        x, _ = sample_batch(model, prompts, batch_conds, items, steps=spec.steps,
                            guidance_scale=spec.guidance_scale, modality_guidance=spec.modality_guidance,
                            checkpoint=checkpoint)
        signals[idx] = to_int16(x)
        if progress is not None:
            progress.update(len(idx))
    for k, i in enumerate(records):
        c = conds[k]
        rows.append({"record": f"{i:08d}", "shard": shard, "row": k, "labels": ",".join(c.get("labels") or []),
                     "report": c.get("report") or "", "age": _cell(c.get("age")), "sex": c.get("sex") or "",
                     "hr": _cell(c.get("hr")), "source_ecg_id": c["source_ecg_id"],
                     "noise_seed": record_seed(spec.seed, i), "sha256": hashlib.sha256(signals[k].tobytes()).hexdigest()})
    target = folder / SHARDS
    target.mkdir(exist_ok=True)
    _atomic_bytes(target / f"manifest-{shard:05d}.csv", _csv_bytes(rows))
    # plain NumPy: readable by anything; the cohort's provenance is in cohort.json. Saved straight to the file:
    # no in-memory copies of a shard that may hold a million records.
    _atomic_write(target / f"signals-{shard:05d}.npy", lambda fh: np.save(fh, signals))
    return len(records)


def to_int16(x: np.ndarray) -> np.ndarray:
    """mV → int16 steps of :data:`MICROVOLTS_PER_STEP` µV (clipped to the int16 range, ±32.7 mV)."""
    steps = np.round(np.asarray(x, dtype=np.float64) * (1000.0 / MICROVOLTS_PER_STEP))
    return np.clip(steps, -32767, 32767).astype(np.int16)


def _cell(value) -> str:
    return "" if value is None else f"{value:g}"


def _csv_bytes(rows: list[dict]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode("utf-8")


def _atomic_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda fh: fh.write(data))


def _atomic_write(path: Path, write) -> None:
    """``write(fh)`` into a temporary file beside ``path``, synced, then renamed onto it: a shard is whole or absent."""
    tmp = path.with_name(f".{path.name}.synth-part")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def finish(folder: Path, spec: CohortSpec, *, model_path: str, model_sha256: str, data_root: Path, fs_hz: float,
           seconds: float, made: int, modality_guidance: str = "") -> None:
    """Join the shard manifests into ``manifest.csv`` and write ``cohort.json`` and ``card.md``
    (``fs_hz``: the model's rate, at which the records are stored; ``modality_guidance``: the per-modality guidance
    sampled with, ``name=w,...``)."""
    import torch

    from synth import __version__

    parts = [folder / SHARDS / f"manifest-{s:05d}.csv" for s in range(spec.shards)]
    with open(folder / "manifest.csv", "w", encoding="utf-8", newline="") as out:
        for k, part in enumerate(parts):
            text = part.read_text(encoding="utf-8")
            out.write(text if k == 0 else text.split("\n", 1)[1])
    from synth.data.cohort import Cohort

    summary = Cohort(folder, check=False).summary()
    summary["fs_hz"] = float(fs_hz)  # the folder has no cohort.json yet to read it from
    meta = {"writer": f"synth {__version__}", "spec": asdict(spec), "model": model_path, "model_sha256": model_sha256,
            "modality_guidance": modality_guidance, "data": str(data_root), "records": spec.size, "shards": spec.shards, "format": "int16 µV npy",
            "microvolts_per_step": MICROVOLTS_PER_STEP, "fs_hz": summary["fs_hz"], "samples": summary["samples"],
            "leads": summary["leads"], "versions": {"synth": __version__, "torch": torch.__version__,
                                                    "numpy": np.__version__, "python": platform.python_version()},
            "timing": {"seconds_this_run": round(seconds, 1), "records_this_run": made,
                       "records_per_s": round(made / seconds, 2) if seconds > 0 and made else None},
            "counts": summary["labels"]}
    (folder / "cohort.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    (folder / "card.md").write_text(card_markdown(meta, summary), encoding="utf-8")


def card_markdown(meta: dict, summary: dict) -> str:
    spec = meta["spec"]
    lines = [f"# Synthetic cohort: {meta['records']:,} records", "",
             f"Made by {meta['writer']} with the model `{meta['model']}` (SHA-256 `{meta['model_sha256'][:16]}…`), "
             f"guidance {spec['guidance_scale']}"
             f"{' (per modality: ' + meta['modality_guidance'] + ')' if meta.get('modality_guidance') else ''}, "
             f"{spec['steps'] or 'default'} steps, seed {spec['seed']}. "
             f"Conditions drawn from the training folds of `{meta['data']}` (label mix `{spec['labels']['mix']}`, "
             f"reports `{spec['reports']}`).", "",
             f"- {meta['shards']} shards of up to {spec['shard_size']} records: `shards/signals-NNNNN.npy`, "
             f"(n, {len(meta['leads'])}, {meta['samples']}) int16 in µV at {meta['fs_hz']:g} Hz, leads "
             f"{', '.join(meta['leads'])}; `manifest.csv` lists every record's conditions, noise seed and checksum.",
             "- Read with `synth.data.cohort.Cohort(folder)` (a PyTorch Dataset), or with NumPy alone: "
             "`np.load('shards/signals-00000.npy') / 1000` is mV.",
             f"- Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}.",
             f"- Last run: {meta['timing']['records_this_run']:,} records in {meta['timing']['seconds_this_run']:,} s "
             f"({meta['timing']['records_per_s']} records/s).", "", "## Labels", "", "| label | records |",
             "|---|---|"]
    lines += [f"| {k} | {v:,} |" for k, v in summary["labels"].items()]
    for name, unit in (("age", "years"), ("hr", "bpm")):
        stats = summary.get(name)
        if stats:
            lines += ["", f"{name}: mean {stats['mean']:.1f} {unit}, range {stats['min']:g}-{stats['max']:g}, "
                          f"given for {stats['n']:,} records"]
    return "\n".join(lines) + "\n"


def build_cohort(spec: CohortSpec, out: str | os.PathLike, *, force: bool = False, allow_large: bool = False,
                 progress: bool = True) -> dict:
    """Make (or resume) the cohort ``spec`` describes in ``out``; see the module doc. Returns ``cohort.json``'s
    content (on process 0; other processes return an empty dict)."""
    import torch
    from accelerate import PartialState

    from synth import limits
    from synth.checkpoint import checkpoint_digest
    from synth.outputs import _sibling, check_output_folder, staged_folder
    from synth.tasks.common import checkpoint_signal, load_task_model
    from synth.tasks.generate import (
        check_modality_guidance,
        condition_spec,
        describe_modality_guidance,
        guidance_for,
    )

    # On a machine without GPUs, torchrun's processes are CPU workers (gloo): accelerate needs to be told.
    state = PartialState(cpu=not torch.cuda.is_available())
    rank, world = state.process_index, state.num_processes
    folder = Path(spec.model) if (Path(spec.model) / "config.json").is_file() else None
    if folder is None:
        from synth.tasks.common import checkpoint_path

        folder = checkpoint_path(spec.model)
    spec = replace(spec, guidance_scale=guidance_for(folder, spec.guidance_scale))
    fs_hz, length = checkpoint_signal(folder)  # a damaged rate or window is refused here, before any work
    limits.check_size(spec.size * 12 * length * 2, f"a cohort of {spec.size:,} records", allow_large=allow_large,
                      path=str(out))
    # Working memory: a shard of int16 records (and its float32 batch on the way), and the sampler's activations
    # for one batch (the estimate synth generate uses for --batch-size).
    shard_records = min(spec.shard_size, spec.size)
    limits.check_size(shard_records * 12 * length * 2 + spec.batch_size * 12 * length * 4 * limits.ACTIVATION_FACTOR,
                      f"shards of {shard_records:,} records sampled in batches of {spec.batch_size}",
                      allow_large=allow_large, memory=True, path=str(out))
    data_root = _data_root(spec)
    inputs = [folder, data_root] + ([spec.reports[len("file:"):]] if spec.reports.startswith("file:") else [])
    # every process: all fail alike instead of waiting on process 0
    check_output_folder(out, overwrite=force, inputs=inputs)
    keys, classes = condition_spec(folder)
    check_modality_guidance(folder, spec.modality_guidance, [spec_keys(spec)], option="modality_guidance")
    model_sha = checkpoint_digest(folder)
    key = spec_key(spec, model_sha, data_root)
    source = ConditionSource(spec, classes or [], keys, progress=progress and rank == 0)
    model, _ = load_task_model(folder, "report2ecg")
    model.to(state.device)  # each record's noise is drawn on the CPU from its own seed, whatever the device
    staging = _sibling(Path(out), "staging")
    started = time.perf_counter()

    def work() -> int:
        """Make this process's unfinished shards; returns how many records it made."""
        from tqdm.auto import tqdm

        mine = [s for s in range(spec.shards) if s % world == rank and not shard_done(staging, s)]
        done = spec.size - sum(len(spec.shard_range(s)) for s in range(spec.shards) if not shard_done(staging, s))
        if rank == 0 and done and progress:
            print(f"resuming: {done:,} of {spec.size:,} records are in finished shards", flush=True)
        made = 0
        with tqdm(total=sum(len(spec.shard_range(s)) for s in mine), desc=f"cohort (process {rank})" if world > 1
                  else "cohort", unit="ECG", disable=not progress, dynamic_ncols=True) as bar:
            for s in mine:
                made += make_shard(model, spec, source.shard(s), s, staging, progress=bar, checkpoint=str(folder))
        return made

    if rank == 0:
        with staged_folder(out, overwrite=force, resume_key=key, inputs=inputs,
                           marker={"model_sha256": model_sha, "records": spec.size}) as stage:
            assert stage == staging
            pending = sum(len(spec.shard_range(s)) for s in range(spec.shards) if not shard_done(staging, s))
            state.wait_for_everyone()  # the staging folder exists: the others may write into it
            work()
            state.wait_for_everyone()  # every shard is there
            missing = [s for s in range(spec.shards) if not shard_done(staging, s)]
            if missing:
                raise DataError(f"shards {missing[:5]} are missing after every process finished",
                                hint="run the same command again to make them")
            finish(staging, spec, model_path=str(folder), model_sha256=model_sha, data_root=data_root, fs_hz=fs_hz,
                   seconds=time.perf_counter() - started, made=pending,
                   modality_guidance=describe_modality_guidance(model, spec.modality_guidance))
        return json.loads((Path(out) / "cohort.json").read_text(encoding="utf-8"))
    state.wait_for_everyone()
    work()
    state.wait_for_everyone()
    return {}
