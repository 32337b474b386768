"""PyTorch view of PTB-XL for training: fixed windows of memory-mapped signals, per-record conditioning, and a
resumable sampler.

- :class:`PTBXLWindows` is a map-style ``Dataset``. Item ``i`` is one window ``(C, W)`` float32 in mV (or
  standardised per lead) plus the conditioning fields of its record. Windows are fixed (start, stride), never
  random, so an item depends on its index alone and a worker process needs no random state.
- :func:`collate` turns a list of items into ``(x, cond)``: ``x`` (B, C, W) float32 and ``cond`` a dict of batched
  fields (tensors, or lists for text), the input of every model's ``loss(x, cond)``.
- :class:`ResumableSampler` draws a seeded permutation per epoch and starts it at ``position``; its state
  ``(epoch, position)`` is all a resumed run needs to continue with the very next index (no repeat, no skip).

Why the sampler has no ``set_epoch`` and no ``generator`` attribute: Accelerate's ``DataLoaderShard.__iter__``
calls ``sampler.set_epoch(<its own count of iterations>)`` and, in multi-process runs, replaces and re-seeds a
``sampler.generator``. Both would override the resumed state (a resumed loader restarts its count at 0), so the
sampler's state is set only through :meth:`ResumableSampler.set_state`, which Accelerate does not know about.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from synth.data.leads import LEADS_12, parse_lead_set
from synth.data.ptbxl import PTBXL
from synth.errors import DataError

#: Per-record fields a :class:`PTBXLWindows` can put into ``cond``; see :meth:`PTBXLWindows.available_fields`.
BUILTIN_FIELDS: tuple[str, ...] = ("report", "labels", "age", "sex", "leads", "ecg_id", "index")
#: What a text/label/demographics-conditioned model reads.
DEFAULT_COND_FIELDS: tuple[str, ...] = ("report", "labels", "age", "sex")


class PTBXLWindows(Dataset):
    """Windows of PTB-XL records with their conditioning, for ``DataLoader(..., collate_fn=collate)``.

    Args:
        data: a :class:`PTBXL` view, usually ``PTBXL(root).split("train")``.
        cache_dir: where ``load_signals`` keeps its ``.npy`` cache; the signals are then memory-mapped, so worker
            processes share the pages instead of copying ~1 GB each. ``None`` reads everything into memory.
        signals: an ``(N, 12, T)`` float32 mV array in ``data.ecg_ids`` order, to skip loading (tests, callers that
            already hold it). Exclusive with ``cache_dir``.
        leads: lead subset to return as ``x`` (``"12lead"``, ``"3lead"``, ``"II,V1"``, a list); canonical order is
            kept as given by the spec.
        cond_fields: names of the fields put into ``cond``. Built-in: ``report`` (str, the PTB-XL report),
            ``labels`` ((K,) float32 multi-hot of ``label_kind``), ``age`` (years, NaN if unknown; 90 stands for
            "over 89"), ``sex`` (0 male, 1 female, NaN unknown), ``leads`` ((12, W) mV, all twelve leads of the
            window, for lead-reconstruction models), ``ecg_id`` and ``index`` (int, bookkeeping). Any name in
            ``extra_fields`` too.
        extra_fields: ``{name: {ecg_id: value}}`` for fields made elsewhere (e.g. an English report composed from
            the SCP codes). A name that is also built in replaces the built-in (``{"report": english}``). Every
            record of ``data`` needs a value.
        label_kind, label_classes: passed to :meth:`PTBXL.multi_hot`; default the 5 diagnostic superclasses.
        window_length: samples per window ``W`` (default: the whole record, ``T``); ``window_stride`` (default
            ``window_length``) between window starts. Every record gives ``1 + (T - W) // stride`` windows.
        standardise: per record-window, per lead zero mean and unit variance (then ``x`` is no longer in mV;
            ``leads`` in ``cond`` is standardised the same way so the two stay comparable).
        progress: show the progress bar of the first (uncached) signal load.
    """

    def __init__(
        self,
        data: PTBXL,
        *,
        cache_dir: str | os.PathLike | None = None,
        signals: np.ndarray | None = None,
        leads: str | Sequence[str] = "12lead",
        cond_fields: Sequence[str] = DEFAULT_COND_FIELDS,
        extra_fields: Mapping[str, Mapping[int, Any]] | None = None,
        label_kind: str = "superclasses",
        label_classes: Sequence[str] | None = None,
        window_length: int | None = None,
        window_stride: int | None = None,
        standardise: bool = False,
        progress: bool = True,
    ):
        if signals is not None and cache_dir is not None:
            raise DataError("pass either signals or cache_dir, not both")
        self.ecg_ids = np.asarray(data.ecg_ids, dtype=np.int64)
        self.fs_hz = data.fs_hz
        self.signals = signals if signals is not None else data.load_signals(cache_dir=cache_dir, progress=progress)
        if self.signals.ndim != 3 or self.signals.shape[:2] != (len(self.ecg_ids), len(LEADS_12)):
            raise DataError(f"signals must be ({len(self.ecg_ids)}, 12, T), got {tuple(self.signals.shape)}")
        self.leads = parse_lead_set(leads)
        self.lead_index = np.asarray([LEADS_12.index(name) for name in self.leads])
        total = self.signals.shape[-1]
        self.window_length = int(window_length or total)
        self.window_stride = int(window_stride or self.window_length)
        if not 0 < self.window_length <= total or self.window_stride <= 0:
            raise DataError(f"window_length {window_length} / stride {window_stride} do not fit records of {total} "
                            f"samples", hint=f"use 1 <= window_length <= {total} and a positive stride")
        self.windows_per_record = 1 + (total - self.window_length) // self.window_stride
        self.standardise = bool(standardise)

        table = data.table
        labels, self.label_classes = data.multi_hot(label_kind, label_classes)
        # Per-record columns are pulled out of the table once (a pandas lookup per item would dominate loading),
        # as plain arrays and lists so the dataset pickles into spawned DataLoader workers.
        self._columns: dict[str, Any] = {
            "report": [str(t) for t in table["report"]],
            "labels": labels,  # (N, K) float32
            "age": table["age"].to_numpy(dtype=np.float32, na_value=np.nan),
            "sex": table["sex"].map({"M": 0.0, "F": 1.0}).to_numpy(dtype=np.float32, na_value=np.nan),
            "ecg_id": self.ecg_ids.tolist(),
        }
        self._extra: dict[str, list[Any]] = {}
        for name, by_id in (extra_fields or {}).items():
            missing = [int(i) for i in self.ecg_ids if int(i) not in by_id]
            if missing:
                raise DataError(f"extra field {name!r} has no value for {len(missing)} records (e.g. ecg_id "
                                f"{missing[0]})", hint="give a value for every record of the split")
            self._extra[name] = [by_id[int(i)] for i in self.ecg_ids]
        unknown = [f for f in cond_fields if f not in BUILTIN_FIELDS and f not in self._extra]
        if unknown:
            raise DataError(f"unknown cond field(s) {unknown}",
                            hint=f"built-in fields: {', '.join(BUILTIN_FIELDS)}; others go in extra_fields")
        self.cond_fields = tuple(cond_fields)

    def available_fields(self) -> tuple[str, ...]:
        """Every name ``cond_fields`` may hold for this dataset."""
        return tuple(dict.fromkeys((*BUILTIN_FIELDS, *self._extra)))

    def __len__(self) -> int:
        return len(self.ecg_ids) * self.windows_per_record

    @property
    def sample_shape(self) -> tuple[int, int]:
        """``(C, W)`` of ``x`` for one item."""
        return len(self.leads), self.window_length

    def _window(self, index: int) -> np.ndarray:
        rec, k = divmod(index, self.windows_per_record)
        start = k * self.window_stride
        # np.array copies out of the read-only memory map: torch refuses non-writable arrays.
        window = np.array(self.signals[rec, :, start : start + self.window_length], dtype=np.float32)  # (12, W)
        if self.standardise:
            window = (window - window.mean(axis=-1, keepdims=True)) / np.maximum(window.std(axis=-1, keepdims=True), 1e-6)
        return window

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        """``(x (C, W) float32, {field: value})`` for window ``index`` (record ``index // windows_per_record``)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        rec = index // self.windows_per_record
        window = self._window(index)
        cond: dict[str, Any] = {}
        for name in self.cond_fields:
            if name in self._extra:
                cond[name] = self._extra[name][rec]
            elif name == "leads":
                cond[name] = window
            elif name == "index":
                cond[name] = int(index)
            else:
                cond[name] = self._columns[name][rec]
        return window[self.lead_index], cond


def _stack(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, str):
        return list(values)
    if isinstance(first, torch.Tensor):
        return torch.stack(values)
    if isinstance(first, np.ndarray | np.generic | float | int | bool):
        return torch.from_numpy(np.stack([np.asarray(v) for v in values]))
    return list(values)


def collate(items: Sequence[tuple[Any, Mapping[str, Any]]]) -> tuple[torch.Tensor, dict[str, Any]]:
    """``[(x (C, T), cond), ...]`` → ``x`` (B, C, T) float32 and ``cond`` with each field batched.

    Arrays and numbers become tensors with a leading B (``labels`` (B, K) float32, ``age``/``sex`` (B,) float32,
    ``leads`` (B, 12, T), ``index`` (B,) int64); strings and anything else become lists of length B.
    """
    x = torch.from_numpy(np.stack([np.asarray(item[0], dtype=np.float32) for item in items]))
    keys = items[0][1].keys()
    cond = {key: _stack([item[1][key] for item in items]) for key in keys}
    return x, cond


class ResumableSampler(Sampler[int]):
    """Indices ``0..n-1`` in a fresh permutation per epoch, seeded by ``(seed, epoch)``, starting at ``position``.

    The permutation of epoch ``e`` depends only on ``seed`` and ``e``, so a run that stops after ``p`` samples
    of epoch ``e`` and calls ``set_state(e, p)`` on restart yields exactly the indices it would have yielded had
    it never stopped. ``position`` counts samples over all processes (under Accelerate each process takes every
    ``num_processes``-th batch of this one sequence).
    """

    def __init__(self, num_samples: int, *, seed: int = 0, shuffle: bool = True):
        if num_samples <= 0:
            raise DataError("cannot sample from an empty dataset", hint="check the split and the data folder")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0

    def set_state(self, epoch: int, position: int) -> None:
        """Start the next iteration at sample ``position`` of epoch ``epoch``'s permutation."""
        if epoch < 0 or not 0 <= position <= self.num_samples:
            raise ValueError(f"sampler state (epoch {epoch}, position {position}) outside 0..{self.num_samples}")
        self.epoch, self.position = int(epoch), int(position)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "num_samples": self.num_samples, "seed": self.seed}

    def permutation(self, epoch: int) -> np.ndarray:
        """The full index order of ``epoch`` ``(n,)`` int64."""
        if not self.shuffle:
            return np.arange(self.num_samples, dtype=np.int64)
        # A SeedSequence over (seed, epoch) gives independent streams per epoch without a stateful generator.
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch])))
        return rng.permutation(self.num_samples)

    def __iter__(self) -> Iterator[int]:
        # The order is fixed when iteration starts; set_state during an iteration affects only the next one.
        order = self.permutation(self.epoch)[self.position :]
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.num_samples - self.position
