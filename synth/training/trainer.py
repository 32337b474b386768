"""The one trainer for every generator in ``synth``.

Any ``nn.Module`` with ``loss(x, cond) -> LossOutput`` trains here (``x`` (B, C, T) float32, ``cond`` a dict of
raw conditioning fields); a model customises training only through ``loss`` and an optional ``param_groups()``
(torch optimizer groups; default: weight decay on matrices, none on biases, norms and other 1-D parameters).
Devices, mixed precision and distribution come from Accelerate, so the same config and code run on a CPU, one GPU,
or many GPUs / nodes.

Retraining
----------
One process (CPU, or the first GPU)::

    python -m synth.training configs/train/default.yaml data.cache_dir=/scratch/ptbxl-cache out_dir=runs/unet

Several GPUs on one machine, or several machines (run ``accelerate config`` once, or pass the flags)::

    accelerate launch --multi_gpu --num_processes 8 -m synth.training configs/train/default.yaml out_dir=runs/unet
    accelerate launch --num_machines 2 --machine_rank $RANK --main_process_ip $HEAD --main_process_port 29500 \\
        --num_processes 16 -m synth.training configs/train/default.yaml out_dir=/shared/runs/unet

From Python, or from the ``synth train`` command, :func:`train_from_config` does the same in one call. On a
machine without GPUs, several CPU processes need Accelerate told so: ``ACCELERATE_USE_CPU=1 torchrun
--nproc_per_node 2 -m synth.training ...`` (useful to test distributed code, not to train fast).

``batch_size`` is per process and per micro-batch: an update sees ``batch_size × grad_accum × processes`` samples.
``out_dir`` must be on a filesystem every process sees (checkpoints are assembled there by all ranks).

Resuming: run the same command again. When ``out_dir/checkpoints/`` holds a checkpoint, the newest one is loaded
(model, EMA, optimizer, LR schedule, every random generator, data epoch and position, step) and training continues
as if it had never stopped: the same weights, bit for bit on the same hardware, as an uninterrupted run.

Outputs in ``out_dir``: ``model/`` (the EMA weights, exported by :func:`synth.checkpoint.save_pretrained`),
``checkpoints/step-…/`` (the last ``keep_last``), ``train_log.csv``, ``train_config.json``, ``samples/`` (whatever
``on_sample`` writes) and ``tensorboard/`` when the ``tensorboard`` package is installed.

Scope: data-parallel training (DDP), where every process holds the whole model and optimizer. Sharded optimizers
(FSDP, DeepSpeed ZeRO) would need their own state gathering and are not handled here.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from synth.checkpoint import CheckpointError, save_pretrained, unwrap
from synth.data.torch_data import ResumableSampler, collate
from synth.errors import SynthError
from synth.outputs import check_apart
from synth.training import state as ckpt
from synth.training.config import TrainConfig, train_config_to_dict
from synth.training.ema import EMA

#: ``on_sample(model, step, out_dir)``: called on the main process with the EMA weights in ``model`` (eval mode).
SampleHook = Callable[[nn.Module, int, Path], None]
TRAINING_STATE_FORMAT = 1
LOG_COLUMNS = ("step", "epoch", "loss", "lr", "grad_norm", "val_loss", "it_per_s", "metrics")


class TrainingError(SynthError, RuntimeError):
    """Training cannot go on as configured (diverged loss, data too small, model outside the protocol)."""


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier of update ``step`` (0-based): linear warm-up to 1 over ``warmup_steps``, then a half cosine
    down to ``min_ratio`` at ``total_steps`` (Loshchilov & Hutter 2017, SGDR, Eq. 5 without restarts)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps  # never 0: the first update would be wasted
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def resolve_mixed_precision(setting: str) -> str:
    """``auto`` → ``bf16`` when a bf16-capable GPU is visible, else ``no`` (fp32): CPU autocast is slow."""
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def default_param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on parameters with ≥ 2 dimensions only (nanoGPT's rule): decaying biases and norm gains
    pulls them towards 0, which is not a prior anyone wants for them."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def _loss_metrics(out: Any) -> dict[str, float]:
    # synth.generative.base.LossOutput names its extras ``metrics``; a protocol model may call them ``logs``.
    extras = getattr(out, "metrics", None) or getattr(out, "logs", None) or {}
    return {str(k): float(v) for k, v in extras.items()}


class _LossForward(nn.Module):
    """Routes ``model.loss`` through ``forward`` so DDP sees the call (its gradient hooks are armed in
    ``forward``) and Accelerate's autocast wraps it. Returns ``(loss scalar, metrics dict)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, cond: Mapping[str, Any]) -> tuple[Tensor, dict[str, float]]:
        out = self.model.loss(x, cond)
        return out.loss, _loss_metrics(out)


class Trainer:
    """Train ``model`` on ``train_data`` as ``cfg`` says; :meth:`fit` runs (or resumes) it and exports the EMA.

    Args:
        model: an unwrapped ``nn.Module`` following the protocol; for the export it also needs ``config_dict()``
            and ``frozen_submodels()`` (every :class:`synth.generative.GenerativeModel` has them).
        cfg: the training settings.
        train_data, val_data: map-style datasets whose items ``collate_fn`` turns into ``(x, cond)``.
        collate_fn: default :func:`synth.data.torch_data.collate`.
        on_sample: optional ``on_sample(model, step, out_dir)`` called every ``cfg.sample_every`` steps and at
            the end, on the main process, with the EMA weights loaded and the global RNG state protected (what it
            draws does not change training).
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, train_data: Dataset, val_data: Dataset | None = None,
                 *, collate_fn: Callable = collate, on_sample: SampleHook | None = None):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, set_seed

        missing = [name for name in ("loss", "config_dict", "frozen_submodels") if not callable(getattr(model, name, None))]
        if missing:
            raise TrainingError(f"{type(model).__name__} lacks {missing}",
                                hint="train a synth.generative.GenerativeModel, or give the module these methods")
        ckpt.check_run_folder(cfg.out_dir)
        self.cfg = cfg
        self.on_sample = on_sample
        self.out_dir = Path(cfg.out_dir)
        self.ckpt_root = self.out_dir / ckpt.CHECKPOINTS_DIR
        self.accelerator = Accelerator(
            mixed_precision=resolve_mixed_precision(cfg.mixed_precision),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=cfg.find_unused_parameters)])
        acc = self.accelerator
        # Each process draws its own noise / dropout; rank 0's weights are broadcast by DDP anyway.
        set_seed(cfg.seed, device_specific=True)

        model = unwrap(model)  # a torch.compile / DDP wrapper would leak prefixes into the saved names
        self.model = model
        groups = model.param_groups() if callable(getattr(model, "param_groups", None)) else \
            default_param_groups(model, cfg.weight_decay)
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, functools.partial(
            warmup_cosine, warmup_steps=cfg.warmup_steps, total_steps=cfg.steps, min_ratio=cfg.min_lr_ratio))

        self.samples_per_batch = cfg.batch_size * acc.num_processes  # global samples per micro-batch
        if len(train_data) < self.samples_per_batch:
            raise TrainingError(f"the training set has {len(train_data)} samples, fewer than one batch of "
                                f"{self.samples_per_batch}", hint="lower batch_size or add data")
        self.sampler = ResumableSampler(len(train_data), seed=cfg.seed)
        # Own generators for the loaders: creating a DataLoader iterator draws a worker seed, and drawing it from
        # the global RNG would make a resumed run (one extra iterator) diverge from an uninterrupted one.
        self._train_gen = torch.Generator()
        self._val_gen = torch.Generator()
        pin = torch.cuda.is_available()
        train_loader = DataLoader(train_data, batch_size=cfg.batch_size, sampler=self.sampler, drop_last=True,
                                  num_workers=cfg.num_workers, collate_fn=collate_fn, pin_memory=pin,
                                  generator=self._train_gen)
        val_loader = None if val_data is None or len(val_data) == 0 else DataLoader(
            val_data, batch_size=cfg.batch_size, shuffle=False, drop_last=False, num_workers=cfg.num_workers,
            collate_fn=collate_fn, pin_memory=pin, generator=self._val_gen)
        # The LR scheduler is stepped by hand once per update: Accelerate's wrapper would step it once per process.
        if val_loader is None:
            self.wrapped, self.prepared_optimizer, self.train_loader = acc.prepare(
                _LossForward(model), self.optimizer, train_loader)
            self.val_loader = None
        else:
            self.wrapped, self.prepared_optimizer, self.train_loader, self.val_loader = acc.prepare(
                _LossForward(model), self.optimizer, train_loader, val_loader)
        self.ema = EMA(model, cfg.ema_decay)

        self.step = 0
        self.epoch = 0
        self.position = 0  # samples of the current epoch consumed by all processes together
        self.resumed_from: Path | None = None
        self._resume()

    # -- data ----------------------------------------------------------------------------------------------------
    def _batches(self) -> Iterator[tuple[Tensor, dict[str, Any]]]:
        """Endless micro-batches; ``self.epoch``/``self.position`` always describe what has been consumed."""
        while True:
            self.sampler.set_state(self.epoch, self.position)
            self._train_gen.manual_seed(self.cfg.seed * 1_000_003 + self.epoch)
            for batch in self.train_loader:
                self.position += self.samples_per_batch
                yield batch
            self.epoch += 1
            self.position = 0

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def _resume(self) -> None:
        acc = self.accelerator
        # Partial saves (hidden ``.tmp-step-*``) are never read here; they are removed in fit(), under the lock,
        # so that a second Trainer on the same out_dir cannot delete the one another run is writing.
        folder = ckpt.latest_checkpoint(self.ckpt_root)
        if folder is None:
            return
        state = ckpt.load_state(folder)
        if state.get("trainer_format") != TRAINING_STATE_FORMAT:
            raise CheckpointError(f"training state format {state.get('trainer_format')!r} is not "
                                  f"{TRAINING_STATE_FORMAT}", path=folder, hint="start a new out_dir")
        if state["num_samples"] != self.sampler.num_samples:
            raise CheckpointError(f"the checkpoint was trained on {state['num_samples']} samples per epoch, the "
                                  f"data now has {self.sampler.num_samples}", path=folder,
                                  hint="resume with the same data, or start a new out_dir")
        weights, ema = ckpt.load_tensors(folder / ckpt.MODEL_FILE), ckpt.load_tensors(folder / ckpt.EMA_FILE)
        try:
            self.model.load_state_dict(weights)
            self.ema.load_state_dict(ema, state["ema_updates"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(f"checkpoint does not fit this model ({str(err).splitlines()[0]})", path=folder,
                                  hint="resume with the model config it was trained with, or start a new out_dir"
                                  ) from None
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        rng = ckpt.load_rng(folder, acc.process_index)
        if rng is None:
            warnings.warn(f"{folder}: no RNG state for process {acc.process_index} (the run had fewer processes); "
                          "it starts from a fresh seed", stacklevel=2)
            torch.manual_seed(self.cfg.seed + 7919 * acc.process_index + self.step)
        else:
            ckpt.restore_rng(rng)
        self.resumed_from = folder

    def save_checkpoint(self) -> Path:
        """Write the full training state of the current step (all processes must call this)."""
        acc = self.accelerator
        staging = ckpt.staging_dir(self.ckpt_root, self.step)
        if acc.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        acc.wait_for_everyone()
        ckpt.save_rng(staging, acc.process_index)
        acc.wait_for_everyone()
        final = self.ckpt_root / ckpt.checkpoint_name(self.step)
        if acc.is_main_process:
            ckpt.save_tensors(self.model.state_dict(), staging / ckpt.MODEL_FILE)
            ckpt.save_tensors(self.ema.state_dict(), staging / ckpt.EMA_FILE)
            ckpt.save_state({
                "trainer_format": TRAINING_STATE_FORMAT, "step": self.step, "epoch": self.epoch,
                "position": self.position, "num_samples": self.sampler.num_samples,
                "num_processes": acc.num_processes, "ema_updates": self.ema.num_updates,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "config": train_config_to_dict(self.cfg),
            }, staging)
            final = ckpt.publish(staging, self.cfg.keep_last)
        acc.wait_for_everyone()
        return final

    def export(self) -> Path:
        """Export the EMA weights to ``out_dir/model`` (config.json + model.safetensors)."""
        target = self.out_dir / "model"
        if self.accelerator.is_main_process:
            with self.ema.swapped_into(self.model):
                save_pretrained(self.model, target, overwrite=True)
        self.accelerator.wait_for_everyone()
        return target

    # -- evaluation ----------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _isolated_rng(self) -> Iterator[None]:
        """Fixed noise for evaluation and no effect on the training RNG stream (resumes stay exact)."""
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.cfg.seed)
            yield

    @torch.no_grad()
    def validate(self) -> float | None:
        """Mean validation loss of the EMA weights over ``val_batches`` batches (all if 0), same noise each call."""
        if self.val_loader is None:
            return None
        total = torch.zeros(2, device=self.accelerator.device)  # (loss sum, sample count)
        self._val_gen.manual_seed(self.cfg.seed)
        with self.ema.swapped_into(self.model), self._isolated_rng():
            self.wrapped.eval()
            try:
                for i, (x, cond) in enumerate(self.val_loader):
                    if self.cfg.val_batches and i >= self.cfg.val_batches:
                        break
                    loss, _ = self.wrapped(x, cond)
                    total += torch.stack([loss.detach().float() * x.shape[0],
                                          torch.tensor(float(x.shape[0]), device=total.device)])
            finally:
                self.wrapped.train()
        total = self.accelerator.reduce(total, reduction="sum")
        return float(total[0] / total[1])

    def _call_on_sample(self) -> None:
        if self.on_sample is None or not self.accelerator.is_main_process:
            return
        with self.ema.swapped_into(self.model), self._isolated_rng():
            was_training = self.model.training
            self.model.eval()
            try:
                self.on_sample(self.model, self.step, self.out_dir / "samples")
            finally:
                self.model.train(was_training)

    # -- logging -------------------------------------------------------------------------------------------------
    def _open_logs(self) -> tuple[Any, Any]:
        """CSV (rows past the resumed step dropped: they will be logged again) and TensorBoard if installed."""
        path = self.out_dir / "train_log.csv"
        rows: list[dict[str, str]] = []
        if path.exists() and self.step > 0:
            with open(path, newline="", encoding="utf-8") as fh:
                rows = [r for r in csv.DictReader(fh) if r.get("step", "").isdigit() and int(r["step"]) <= self.step]
        fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - kept open for the whole run
        writer = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        fh.flush()
        try:
            from torch.utils.tensorboard import SummaryWriter

            tensorboard = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self.step or None)
        except ImportError:  # tensorboard is optional: the CSV has everything
            tensorboard = None
        return (fh, writer), tensorboard

    # -- the loop ------------------------------------------------------------------------------------------------
    def fit(self, stop_at_step: int | None = None) -> Path:
        """Train until ``cfg.steps`` (or ``stop_at_step``, e.g. the end of a cluster time slot: a checkpoint is
        saved there and the same command resumes), then export the EMA weights. Returns ``out_dir/model``.

        The main process holds ``out_dir``'s output lock throughout: a second training into the same folder stops
        at once (:class:`synth.outputs.OutputLockedError`) instead of interleaving checkpoints with this one."""
        if not self.accelerator.is_main_process:
            return self._fit(stop_at_step)
        from synth.outputs import output_lock

        with output_lock(self.out_dir):
            return self._fit(stop_at_step)

    def _fit(self, stop_at_step: int | None) -> Path:
        cfg, acc = self.cfg, self.accelerator
        target = cfg.steps if stop_at_step is None else min(stop_at_step, cfg.steps)
        main = acc.is_main_process
        log = tensorboard = None
        if main:
            ckpt.remove_partial(self.ckpt_root)
            ckpt.mark_run_folder(self.out_dir)
            (self.out_dir / "train_config.json").write_text(json.dumps(train_config_to_dict(cfg), indent=2))
            log, tensorboard = self._open_logs()
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=self.step, disable=not (main and cfg.progress), desc="train",
                   unit="step", dynamic_ncols=True)
        params = [p for p in self.model.parameters() if p.requires_grad]
        max_norm = cfg.clip_norm if cfg.clip_norm > 0 else float("inf")
        window = torch.zeros(3, device=acc.device)  # (loss sum, grad-norm sum, updates) since the last log
        metrics_sum: dict[str, float] = {}
        train_seconds = 0.0  # time in updates only: validation, sampling and checkpoints are not training speed
        batches = self._batches()
        saved_at = self.step
        try:
            while self.step < target:
                started = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]
                for micro in range(cfg.grad_accum):
                    x, cond = next(batches)
                    # Gradients are all-reduced once per update, on the last micro-batch only.
                    sync = contextlib.nullcontext() if micro == cfg.grad_accum - 1 else acc.no_sync(self.wrapped)
                    with sync:
                        loss, metrics = self.wrapped(x, cond)
                        acc.backward(loss / cfg.grad_accum)
                    window[0] += loss.detach().float() / cfg.grad_accum
                    for k, v in metrics.items():
                        metrics_sum[k] = metrics_sum.get(k, 0.0) + v / cfg.grad_accum
                grad_norm = acc.clip_grad_norm_(params, max_norm)
                self.prepared_optimizer.step()
                if not acc.optimizer_step_was_skipped:  # fp16 overflow: the update did not happen
                    self.scheduler.step()
                    self.ema.update(self.model)
                self.prepared_optimizer.zero_grad(set_to_none=True)
                self.step += 1
                window[1] += grad_norm.detach().float() if isinstance(grad_norm, Tensor) else float(grad_norm)
                window[2] += 1
                train_seconds += time.perf_counter() - started
                bar.update(1)

                row: dict[str, Any] = {}
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    mean = acc.reduce(window, reduction="mean")
                    loss_value, n = float(mean[0] / mean[2]), float(mean[2])
                    if not math.isfinite(loss_value):
                        raise TrainingError(f"loss is {loss_value} at step {self.step}",
                                            hint="lower lr, raise warmup_steps or set clip_norm; the last "
                                                 "checkpoint is intact")
                    row.update(loss=loss_value, lr=lr, grad_norm=float(mean[1] / mean[2]),
                               it_per_s=n / max(train_seconds, 1e-9),
                               metrics={k: v / n for k, v in metrics_sum.items()})
                    bar.set_postfix(loss=f"{loss_value:.4g}", lr=f"{lr:.2e}")
                    window.zero_()
                    metrics_sum, train_seconds = {}, 0.0
                if cfg.val_every and (self.step % cfg.val_every == 0 or self.step == cfg.steps):
                    row["val_loss"] = self.validate()
                if cfg.sample_every and (self.step % cfg.sample_every == 0 or self.step == cfg.steps):
                    self._call_on_sample()
                if main and row:
                    self._write_row(log, tensorboard, row)
                if self.step % cfg.ckpt_every == 0 or self.step == target:
                    self.save_checkpoint()
                    saved_at = self.step
        finally:
            bar.close()
            if log is not None:
                log[0].close()
            if tensorboard is not None:
                tensorboard.close()
        if saved_at != self.step:
            self.save_checkpoint()
        return self.export()

    def _write_row(self, log: Any, tensorboard: Any, row: dict[str, Any]) -> None:
        fh, writer = log
        metrics = row.get("metrics", {})
        writer.writerow({"step": self.step, "epoch": self.epoch, **{k: row.get(k, "") for k in LOG_COLUMNS[2:-1]},
                         "metrics": json.dumps(metrics, sort_keys=True) if metrics else ""})
        fh.flush()
        if tensorboard is not None:
            for key in ("loss", "lr", "grad_norm", "it_per_s", *metrics):
                value = metrics[key] if key in metrics else row.get(key)
                if value is not None:
                    tensorboard.add_scalar(f"train/{key}", value, self.step)
            if row.get("val_loss") is not None:
                tensorboard.add_scalar("val/loss", row["val_loss"], self.step)


# -- building a run from YAML ------------------------------------------------------------------------------------
def resolve_config_path(path: str, config_file: Path) -> Path:
    """A relative path in a config: as given (from the cwd) if it exists, else relative to the config file."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    beside = config_file.parent / candidate
    return beside if beside.exists() else candidate


def build_registry_model(cfg: TrainConfig, config_file: Path) -> nn.Module:
    """The model named by ``cfg.model`` (a model YAML), built through :mod:`synth.registry`."""
    from synth import registry
    from synth.config import load_config

    if not cfg.model:
        raise TrainingError("no model config", path=config_file,
                            hint="set model: configs/model/<preset>.yaml in the YAML or model=... on the command line")
    return registry.build("backbone", load_config(resolve_config_path(cfg.model, config_file)))


def build_datasets(cfg: TrainConfig, model: nn.Module, config_file: Path) -> tuple[Dataset, Dataset]:
    """PTB-XL train (folds 1-8) and validation (fold 9) windows shaped for ``model``."""
    from synth.data.ptbxl import PTBXL
    from synth.data.torch_data import BUILTIN_FIELDS, PTBXLWindows

    d = cfg.data
    signal = getattr(getattr(model, "cfg", None), "signal", None)
    if d.kind == "bidmc_ppg":
        return _bidmc_datasets(cfg, signal, config_file, model)
    if d.kind == "ptbxl_ppg_sim":
        return _simulated_ppg_datasets(cfg, signal, config_file, model)
    if signal is not None and float(signal.fs_hz) != float(d.fs_hz):
        raise TrainingError(f"the model generates {signal.fs_hz} Hz, data.fs_hz is {d.fs_hz}",
                            hint="make data.fs_hz match the model's signal.fs_hz")
    if d.kind == "ptbxl_upsample":
        return _upsample_datasets(cfg, signal, config_file)
    if d.kind == "reflow":
        return _reflow_datasets(cfg, model, config_file)
    fields = d.cond_fields
    if fields is None:
        reads = sorted(getattr(getattr(model, "conditioning", None), "keys", ()))
        fields = [k for k in reads if k in BUILTIN_FIELDS]
        provided = {"ptbxl_report": {"heart_rate"}, "ptbxl_leads": {"lead_mask"}}.get(d.kind, set())
        unmet = [k for k in reads if k not in BUILTIN_FIELDS and k not in provided]
        if unmet:
            warnings.warn(f"PTB-XL has no {unmet} for this model; they are trained as absent", stacklevel=2)
    length = d.window_length or (signal.length if signal is not None else None)
    ptbxl = PTBXL(resolve_config_path(d.root, config_file), fs_hz=d.fs_hz)
    cache = None if d.cache_dir is None else resolve_config_path(d.cache_dir, config_file)
    kwargs = dict(cache_dir=cache, leads=d.leads, cond_fields=fields, label_kind=d.label_kind,
                  label_classes=_label_classes(model), window_length=length, window_stride=d.window_stride, standardise=d.standardise,
                  progress=cfg.progress)
    if d.kind == "ptbxl_report":
        from synth.training.tasks import ReportWindows, measured_heart_rates

        kwargs["cond_fields"] = list(dict.fromkeys([*fields, "report"]))
        english = ptbxl.english_reports()
        sets = []
        for split in ("train", "val"):
            view = ptbxl.split(split)
            signals = view.load_signals(cache_dir=cache, progress=cfg.progress)
            hr = measured_heart_rates(signals, d.fs_hz, progress=cfg.progress)
            extra = {"heart_rate": dict(zip(view.ecg_ids, hr.tolist()))}
            base = PTBXLWindows(view, **{**kwargs, "cond_fields": [*kwargs["cond_fields"], "heart_rate"]},
                                extra_fields=extra)
            sets.append(ReportWindows(base, english))
        train, val = sets
    elif d.kind == "ptbxl_leads":
        from synth.training.tasks import LeadSubsetWindows

        kwargs["cond_fields"] = ["leads"]
        train = LeadSubsetWindows(PTBXLWindows(ptbxl.split("train"), **kwargs), seed=cfg.seed)
        val = LeadSubsetWindows(PTBXLWindows(ptbxl.split("val"), **kwargs), seed=cfg.seed + 1)
    else:
        train, val = PTBXLWindows(ptbxl.split("train"), **kwargs), PTBXLWindows(ptbxl.split("val"), **kwargs)
    if signal is not None and train.sample_shape[0] != signal.channels:
        raise TrainingError(f"data.leads gives {train.sample_shape[0]} channels, the model generates "
                            f"{signal.channels}", hint="make data.leads match the model's signal.channels")
    return train, val


def _reflow_datasets(cfg: TrainConfig, model: nn.Module, config_file: Path) -> tuple[Dataset, Dataset]:
    """A teacher's cohorts as reflow pairs for ``model`` (its leads, label classes and noise shape)."""
    from synth.data.leads import leads_for_channels
    from synth.training.tasks import ReflowPairs

    d = cfg.data
    if any(p > 0 for p in getattr(getattr(model, "conditioning", None), "p_drop", {}).values()):
        raise TrainingError("reflow pairs carry the conditions the teacher was given; dropping some would pair a "
                            "sample with conditions it was not drawn for", path=config_file,
                            hint="set p_drop: 0 for every adapter of the student's model YAML")
    leads = leads_for_channels(model.cfg.signal.channels)
    classes, shape = _label_classes(model), tuple(model.process_shape)
    keys = sorted(model.conditioning.keys)
    train, val = (ReflowPairs([str(resolve_config_path(f, config_file)) for f in folders], classes, leads, shape,
                              keys=keys) for folders in (d.cohorts, d.val_cohorts))
    if train.sample_shape != tuple(model.sample_shape):
        raise TrainingError(f"the cohorts hold {train.sample_shape} records, the model makes {model.sample_shape}",
                            path=config_file, hint="make the cohorts with the teacher of this student")
    return train, val


def _label_classes(model: nn.Module) -> list[str] | None:
    """The class names of the model's labels adapter (its multi-hot columns), if it has one with names."""
    adapters = getattr(getattr(model, "conditioning", None), "adapters", {})
    named = [a.classes for a in adapters.values() if getattr(a, "classes", None) is not None and "labels" in a.keys]
    return list(named[0]) if named else None


def _bidmc_datasets(cfg: TrainConfig, signal: Any, config_file: Path, model: nn.Module | None = None
                    ) -> tuple[Dataset, Dataset]:
    """BIDMC PPG → ECG lead II windows: training subjects 1-37, validation 38-45 (test 46-53 never read), unless
    ``data.train_subjects`` / ``data.val_subjects`` name others (subject-grouped cross-validation)."""
    from synth.data.bidmc import BIDMC, FS_HZ
    from synth.training.tasks import PPGWindows

    d = cfg.data
    if signal is not None and float(signal.fs_hz) != FS_HZ:
        raise TrainingError(f"BIDMC is sampled at {FS_HZ:g} Hz, the model generates {signal.fs_hz} Hz")
    length = d.window_length or (signal.length if signal is not None else None)
    if length is None:
        raise TrainingError("data.window_length is needed for bidmc_ppg", path=config_file)
    bidmc = BIDMC(resolve_config_path(d.root, config_file))
    from synth.tasks.ppg2ecg import residual_template

    residual = model is not None and residual_template(model)
    out = []
    for split, chosen in (("train", d.train_subjects), ("val", d.val_subjects)):
        if chosen is not None:
            missing = sorted(set(chosen) - set(bidmc.subjects))
            if missing:
                raise TrainingError(f"data.{split}_subjects: subjects {missing} are not in {bidmc.root}",
                                    path=config_file)
        records = [bidmc.record(s) for s in (chosen if chosen is not None else bidmc.split(split))]
        out.append(PPGWindows(records, length, d.window_stride, calibration_s=d.calibration_s, residual=residual))
    return out[0], out[1]


def _simulated_ppg_datasets(cfg: TrainConfig, signal: Any, config_file: Path, model: nn.Module
                            ) -> tuple[Dataset, Dataset]:
    """PTB-XL lead II (folds 1-8 train, 9 validation) with PPGs simulated from its R-peaks, at the model's rate;
    the pulse arrival delay is drawn around the model's PPG adapter ``delay_s``."""
    from synth.data.ptbxl import PTBXL
    from synth.training.tasks import SimulatedPPGWindows

    d = cfg.data
    length = d.window_length or (signal.length if signal is not None else None)
    if length is None or signal is None:
        raise TrainingError("ptbxl_ppg_sim needs a model with a signal length", path=config_file)
    adapters = getattr(getattr(model, "conditioning", None), "adapters", {})
    delay = next((float(a.cfg.delay_s) for a in adapters.values() if hasattr(getattr(a, "cfg", None), "delay_s")),
                 0.52)
    ptbxl = PTBXL(resolve_config_path(d.root, config_file), fs_hz=100)
    cache = None if d.cache_dir is None else resolve_config_path(d.cache_dir, config_file)
    out = []
    for k, split in enumerate(("train", "val")):
        signals = ptbxl.split(split).load_signals(cache_dir=cache, progress=cfg.progress)
        lead_ii = np.asarray(signals[:, 1], dtype=np.float32)  # canonical order: II is the second lead
        out.append(SimulatedPPGWindows(lead_ii, 100.0, length, d.window_stride, fs_hz=float(signal.fs_hz),
                                       delay_s=delay, seed=cfg.seed + k, progress=cfg.progress))
    return out[0], out[1]


def _upsample_datasets(cfg: TrainConfig, signal: Any, config_file: Path) -> tuple[Dataset, Dataset]:
    """PTB-XL records present at 100 and 500 Hz: train (folds 1-8) and validation (fold 9) upsampling windows."""
    from synth.data.ptbxl import at_both_rates
    from synth.training.tasks import UpsampleWindows

    d = cfg.data
    if d.fs_hz != 500:
        raise TrainingError(f"ptbxl_upsample trains 100 → 500 Hz; data.fs_hz is {d.fs_hz}", path=config_file,
                            hint="set data.fs_hz: 500 (and the model's signal.fs_hz)")
    length = d.window_length or (signal.length if signal is not None else None)
    if length is None:
        raise TrainingError("data.window_length is needed for ptbxl_upsample", path=config_file)
    root = resolve_config_path(d.root, config_file)
    cache = None if d.cache_dir is None else resolve_config_path(d.cache_dir, config_file)
    out = []
    for split in ("train", "val"):
        low, high = at_both_rates(root, split)
        if not len(low):
            raise TrainingError(f"no {split} record of {root} is present at both 100 and 500 Hz", path=root)
        out.append(UpsampleWindows(low.load_signals(cache_dir=cache, progress=cfg.progress),
                                   high.load_signals(cache_dir=cache, progress=cfg.progress), length,
                                   d.window_stride))
    return out[0], out[1]


def init_weights(model: nn.Module, folder: Path) -> None:
    """Start ``model`` from the weights of the export ``folder``, which must have exactly its parameters (names
    and shapes): warm-starting a changed architecture goes through a converted export (``tools/warm_start.py``)."""
    from synth.checkpoint import load_weights

    state = load_weights(folder)
    own = model.state_dict()
    frozen = tuple(f"{name}." for name in getattr(model, "frozen_submodels", dict)())
    wanted = {k: v for k, v in own.items() if not k.startswith(frozen)}
    wrong = sorted(k for k in wanted if k not in state or state[k].shape != wanted[k].shape)
    extra = sorted(k for k in state if k not in wanted)
    if wrong or extra:
        raise TrainingError(f"init_from weights do not fit this model: {len(wrong)} missing or of another shape "
                            f"(e.g. {wrong[:2]}), {len(extra)} unexpected (e.g. {extra[:2]})", path=folder,
                            hint="convert the export to this architecture with tools/warm_start.py")
    with torch.no_grad():
        for key, value in wanted.items():
            value.copy_(state[key].to(value.dtype))


def plot_samples(model: nn.Module, step: int, out_dir: Path) -> None:
    """Default sample hook: one unconditional sample (seed 0, EMA weights) on ECG paper, ``step-NNNNNNNN.png``.

    Models that do not generate (tokenizers) are skipped; the seed is fixed so the plots show training progress
    rather than sampling noise.
    """
    from synth.data.leads import leads_for_channels
    from synth.data.plot import plot_ecg
    from synth.data.record import Record

    signal = getattr(getattr(model, "cfg", None), "signal", None)
    if not getattr(model, "generates", True) or signal is None:
        return
    x = model.sample({}, 1, generator=torch.Generator().manual_seed(0))  # (1, C, T) mV
    record = Record(x[0].detach().cpu().numpy(), signal.fs_hz, leads_for_channels(signal.channels))
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_ecg(record, out_dir / f"step-{step:08d}.png", title=f"unconditional sample at step {step}")


def _training_inputs(cfg: TrainConfig, config_file: Path) -> list[tuple[str, Path]]:
    """What a run reads, labelled by its config key: the data folder, the cohorts, the weights it starts from."""
    items = [("data.root", cfg.data.root), ("init_from", cfg.init_from),
             *(("data.cohorts", c) for c in cfg.data.cohorts or ()),
             *(("data.val_cohorts", c) for c in cfg.data.val_cohorts or ())]
    return [(key, resolve_config_path(str(value), config_file)) for key, value in items if value]


def train_from_config(cfg_path: str | os.PathLike, overrides: Mapping[str, Any] | Sequence[str] | None = None, *,
                      model_factory: Callable[[TrainConfig], nn.Module] | None = None,
                      datasets: tuple[Dataset, Dataset | None] | None = None,
                      on_sample: SampleHook | None = None) -> Path:
    """Train (or resume) the run a training YAML describes; returns the export folder ``out_dir/model``.

    ``overrides``: ``["steps=1000", "data.cache_dir=/tmp/c"]`` or a dict of dotted keys. The model comes from
    the registry through the model YAML named by ``model:``, unless ``model_factory(cfg)`` is given; the data
    from PTB-XL as ``data:`` says, unless ``datasets=(train, val)`` is given.
    """
    from accelerate.utils import set_seed

    from synth.training.config import load_train_config

    cfg_path = Path(cfg_path)
    cfg = load_train_config(cfg_path, overrides)
    ckpt.check_run_folder(cfg.out_dir)  # before the model and data load
    check_apart(cfg.out_dir, _training_inputs(cfg, cfg_path))  # a run never writes into what it reads
    set_seed(cfg.seed)  # the initial weights: identical on every process and every (re)start
    model = model_factory(cfg) if model_factory is not None else build_registry_model(cfg, cfg_path)
    if cfg.init_from:  # a resumed run overwrites these weights with its checkpoint's
        init_weights(model, resolve_config_path(cfg.init_from, cfg_path))
    train, val = datasets if datasets is not None else build_datasets(cfg, model, cfg_path)
    return Trainer(model, cfg, train, val, on_sample=on_sample or plot_samples).fit()
