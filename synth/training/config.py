"""Training configs: the :class:`TrainConfig` dataclass schema, read from OmegaConf YAML (``configs/train/``).

A training YAML holds the trainer's own settings at the top level plus two parts::

    model: configs/model/diffusion_unet_tiny.yaml   # a model config (relative paths: to the cwd, then this file)
    data: {root: ../shared/data/ptbxl, cache_dir: .cache/ptbxl, ...}
    steps: 100000
    batch_size: 64
    ...

Validation goes through :func:`synth.config.validate`, so an unknown key, a wrong type or a value outside a
``Literal`` raises :class:`synth.config.ConfigError` naming the file, the dotted key and the keys allowed there.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from synth.config import ConfigError, validate
from synth.errors import MissingFileError

MixedPrecision = Literal["auto", "no", "bf16", "fp16"]


@dataclass
class DataConfig:
    """Where the training windows come from (PTB-XL folds 1-8 train, 9 validation; BIDMC subjects 1-37 / 38-45)."""

    #: ``ptbxl`` (windows + the fields the model reads), ``ptbxl_report`` (each record twice: its report and an
    #: English one composed from its SCP statements; plus the measured heart rate), ``ptbxl_leads`` (12 leads +
    #: a lead mask drawn per item), ``bidmc_ppg`` (PPG → ECG lead II), ``ptbxl_upsample`` (records present at 100 and
    #: 500 Hz: the 500 Hz detail given the upsampled 100 Hz record); see :mod:`synth.training.tasks`.
    #: ``ptbxl_ppg_sim`` (PTB-XL lead II with a PPG simulated from its R-peaks, :class:`SimulatedPPGWindows`).
    #: ``reflow`` (a teacher's samples and their noise from the cohorts ``cohorts`` / ``val_cohorts``,
    #: :class:`ReflowPairs`).
    kind: Literal["ptbxl", "ptbxl_report", "ptbxl_leads", "bidmc_ppg", "ptbxl_upsample", "ptbxl_ppg_sim",
                  "reflow"] = "ptbxl"
    root: str = "../shared/data/ptbxl"
    fs_hz: int = 100
    #: ``load_signals`` cache folder: the signals are read once and memory-mapped after that. null: in memory.
    cache_dir: str | None = None
    leads: str = "12lead"
    #: Fields of ``cond`` (see :class:`synth.data.torch_data.PTBXLWindows`); null: the fields the model reads.
    cond_fields: list[str] | None = None
    label_kind: str = "superclasses"
    #: Window length in samples; null: the model's ``signal.length``.
    window_length: int | None = None
    #: Samples between window starts; null: ``window_length`` (no overlap).
    window_stride: int | None = None
    standardise: bool = False
    #: ``bidmc_ppg`` only: subjects to train on and to take the validation loss from, instead of the fixed split
    #: (1-37 / 38-45); used by subject-grouped cross-validation (``benchmarks/ppg_cv.py``).
    train_subjects: list[int] | None = None
    val_subjects: list[int] | None = None
    #: ``bidmc_ppg`` only: seconds at the start of each record taken as a calibration ECG, from which a calibrated
    #: beat template is drawn over the rest (``cond["template"]``, :class:`synth.training.tasks.PPGWindows`);
    #: 0 = none.
    calibration_s: float = 0.0
    #: ``reflow`` only: cohort folders (``synth cohort``) of the teacher's samples to train on and to take the
    #: validation loss from (made with other seeds, so other noise and conditions).
    cohorts: list[str] | None = None
    val_cohorts: list[str] | None = None

    def __post_init__(self) -> None:
        if (self.cohorts or self.val_cohorts) and self.kind != "reflow":
            raise ValueError("data.cohorts and data.val_cohorts are for data.kind reflow only")
        if self.kind == "reflow":
            if not self.cohorts or not self.val_cohorts:
                raise ValueError("data.kind reflow needs data.cohorts and data.val_cohorts (cohort folders)")
            if set(self.cohorts) & set(self.val_cohorts):
                raise ValueError("data.cohorts and data.val_cohorts share a folder: keep them apart")
        for name in ("train_subjects", "val_subjects"):
            subjects = getattr(self, name)
            if subjects is not None:
                if self.kind != "bidmc_ppg":
                    raise ValueError(f"data.{name} is for data.kind bidmc_ppg only")
                if not subjects or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in subjects):
                    raise ValueError(f"data.{name} must be a non-empty list of subject numbers >= 1")
        if self.calibration_s < 0 or (self.calibration_s > 0 and self.kind != "bidmc_ppg"):
            raise ValueError(f"data.calibration_s must be >= 0 and is for data.kind bidmc_ppg only, got "
                             f"{self.calibration_s} for {self.kind}")
        if self.train_subjects and self.val_subjects and set(self.train_subjects) & set(self.val_subjects):
            raise ValueError("data.train_subjects and data.val_subjects overlap: keep subjects apart")
        if self.kind in ("bidmc_ppg", "ptbxl_ppg_sim"):
            return
        if self.fs_hz not in (100, 500):
            raise ValueError(f"data.fs_hz must be 100 or 500 (PTB-XL's rates), got {self.fs_hz}")


@dataclass
class TrainConfig:
    """Every knob of :class:`synth.training.trainer.Trainer`. Steps count optimizer updates, not micro-batches."""

    #: Path of the model YAML (see ``configs/model/``); only :func:`train_from_config` reads it.
    model: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    out_dir: str = "runs/default"
    #: An export folder (config.json + model.safetensors) whose weights start the run instead of the random
    #: initialisation (warm start); it must have this model's parameters. Ignored once ``out_dir`` holds a checkpoint.
    init_from: str | None = None
    steps: int = 100_000
    #: Samples per micro-batch per process; one update sees batch_size * grad_accum * num_processes samples.
    batch_size: int = 64
    grad_accum: int = 1
    lr: float = 2e-4
    #: Cosine decay ends at lr * min_lr_ratio.
    min_lr_ratio: float = 0.1
    warmup_steps: int = 1000
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    #: Max global L2 norm of the gradient; 0 turns clipping off (the norm is still logged).
    clip_norm: float = 1.0
    ema_decay: float = 0.999
    #: "auto": bf16 when CUDA is available, else fp32 ("no").
    mixed_precision: MixedPrecision = "auto"
    log_every: int = 50
    #: Validation loss every N steps (0: never); val_batches limits it (0: the whole split).
    val_every: int = 1000
    val_batches: int = 0
    #: ``on_sample`` callback every N steps (0: never).
    sample_every: int = 5000
    ckpt_every: int = 1000
    keep_last: int = 3
    seed: int = 0
    num_workers: int = 2
    progress: bool = True
    #: Multi-GPU only: conditioning dropout can leave whole adapters without gradient in a step, which plain
    #: DDP treats as an error; finding unused parameters costs a graph walk per step but always works.
    find_unused_parameters: bool = True

    def __post_init__(self) -> None:
        positive = {"steps": self.steps, "batch_size": self.batch_size, "grad_accum": self.grad_accum,
                    "log_every": self.log_every, "ckpt_every": self.ckpt_every, "keep_last": self.keep_last}
        bad = [k for k, v in positive.items() if v < 1]
        if bad:
            raise ValueError(f"{', '.join(bad)} must be >= 1")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("lr must be > 0 and min_lr_ratio in [0, 1]")
        if self.warmup_steps < 0 or self.val_every < 0 or self.sample_every < 0 or self.val_batches < 0:
            raise ValueError("warmup_steps, val_every, sample_every and val_batches must be >= 0")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.clip_norm < 0 or self.weight_decay < 0 or self.num_workers < 0:
            raise ValueError("clip_norm, weight_decay and num_workers must be >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")


def apply_overrides(node: Any, overrides: Mapping[str, Any] | Sequence[str] | None) -> Any:
    """Apply ``["steps=10", "data.leads=3lead"]`` (values parsed as YAML) or ``{"steps": 10}`` to an OmegaConf node."""
    if not overrides:
        return node
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            OmegaConf.update(node, key, value, force_add=True)
        return node
    bad = [item for item in overrides if "=" not in item]
    if bad:
        raise ConfigError(f"override {bad[0]!r} is not key=value", hint="write e.g. steps=1000 data.cache_dir=/tmp/c")
    return OmegaConf.merge(node, OmegaConf.from_dotlist(list(overrides)))


def load_train_config(path: str | os.PathLike, overrides: Mapping[str, Any] | Sequence[str] | None = None
                      ) -> TrainConfig:
    """Read a training YAML, apply dotted-key ``overrides`` and validate it against :class:`TrainConfig`."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("training config not found", path=path, hint="see configs/train/ for presets")
    import yaml

    from synth.config import read_yaml

    node = read_yaml(path)
    try:
        node = apply_overrides(node, overrides)
    except ConfigError as err:
        err.path = err.path or str(path)
        raise
    try:
        data = OmegaConf.to_container(node, resolve=True)
    except (OmegaConfBaseException, yaml.YAMLError) as err:
        raise ConfigError(f"override: {str(err).strip().splitlines()[0]}", path=path) from None
    return validate(TrainConfig, data, source=str(path))


def train_config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain JSON-able dict; ``validate(TrainConfig, d)`` rebuilds an equal config."""
    return dataclasses.asdict(cfg)
