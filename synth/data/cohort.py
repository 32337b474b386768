"""Reading a synthetic cohort made by ``synth cohort`` (layout: :mod:`synth.tasks.cohort`).

:class:`Cohort` is a map-style PyTorch dataset: ``cohort[i]`` gives ``(x, cond)`` with ``x`` (12, T) float32 in mV
and ``cond`` holding ``labels`` (K,) multi-hot over :attr:`Cohort.classes`, ``age``, ``sex`` (0 male, 1 female),
``heart_rate`` (NaN where not given), ``report`` and ``record``, the same fields the training datasets give, so a
cohort trains a classifier or a generator directly. Shards are memory-mapped, so a cohort larger than memory
reads fine. :class:`CohortStream` yields the same items shard by shard (an ``IterableDataset`` for streaming,
split across DataLoader workers by shard).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from synth.errors import DataError, MissingFileError

SHARDS = "shards"


def is_cohort(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "cohort.json").is_file() and (p / SHARDS).is_dir()


def _float(text: str) -> float:
    return float(text) if text not in ("", None) else float("nan")


#: Columns every manifest row needs to be read back.
COLUMNS = ("record", "shard", "row", "labels", "report", "age", "sex", "hr")


def _check_rows(rows: list[dict], src: Path) -> None:
    """Refuse a manifest that does not read back: a missing column, a shard or row that is not a whole number
    >= 0, or a record name that is not a plain file name (it names the files ``synth data convert`` writes, which
    must stay inside the output folder)."""
    if rows:
        missing = [c for c in COLUMNS if c not in rows[0]]
        if missing:
            raise DataError(f"manifest has no column {', '.join(missing)}", path=src,
                            hint="a synth cohort manifest was edited or is damaged; make the cohort again")
    for line, r in enumerate(rows, start=2):
        for col in ("shard", "row"):
            value = r[col]
            if not (value or "").isdigit():
                raise DataError(f"line {line}: {col} {value!r} is not a whole number >= 0", path=src,
                                hint="a synth cohort manifest was edited or is damaged; make the cohort again")
        name = r["record"] or ""
        if name in ("", ".", "..") or any(ch in name for ch in "/\\\0") or name != name.strip():
            raise DataError(f"line {line}: record {name!r} is not a plain file name", path=src,
                            hint="a synth cohort manifest was edited or is damaged; make the cohort again")


class Cohort(Dataset):
    """A finished cohort folder (``check=False`` also opens one still being made, e.g. to summarise it)."""

    def __init__(self, path: str | os.PathLike, *, classes: Sequence[str] | None = None, check: bool = True):
        self.path = Path(path)
        if not self.path.is_dir():
            raise MissingFileError("no such cohort folder", path=self.path)
        manifest = self.path / "manifest.csv"
        parts = sorted((self.path / SHARDS).glob("manifest-*.csv")) if (self.path / SHARDS).is_dir() else []
        if not manifest.is_file() and (check or not parts):
            raise DataError("not a synth cohort (no manifest.csv)", path=self.path,
                            hint="make one with synth cohort SPEC.yaml --out DIR")
        sources = [manifest] if manifest.is_file() else parts
        self.rows: list[dict[str, str]] = []
        for src in sources:
            with open(src, encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh))
            _check_rows(rows, src)
            self.rows += rows
        if check:
            meta = self.meta
            if int(meta.get("records", -1)) != len(self.rows):
                raise DataError(f"manifest lists {len(self.rows)} records, cohort.json {meta.get('records')}",
                                path=manifest, hint="the cohort is incomplete: run synth cohort again to finish it")
        self.shard_of = np.array([int(r["shard"]) for r in self.rows], dtype=np.int64)
        self.row_of = np.array([int(r["row"]) for r in self.rows], dtype=np.int64)
        self.label_lists = [[x for x in r["labels"].split(",") if x] for r in self.rows]
        seen = sorted({c for names in self.label_lists for c in names})
        self.classes = list(classes) if classes is not None else self._model_classes() or seen
        self._shards: dict[int, np.ndarray] = {}

    @property
    def meta(self) -> dict:
        path = self.path / "cohort.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"cohort.json cannot be read ({err})", path=path) from None

    def _model_classes(self) -> list[str] | None:
        try:
            from synth.tasks.generate import condition_spec

            return condition_spec(self.meta["model"])[1]
        except Exception:  # noqa: BLE001 - the model may be elsewhere now; the labels in the manifest suffice
            return None

    def shard(self, s: int) -> np.ndarray:
        """Shard ``s``: (n, 12, T) int16 µV, memory-mapped."""
        if s not in self._shards:
            path = self.path / SHARDS / f"signals-{s:05d}.npy"
            if not path.is_file():
                raise MissingFileError("shard missing", path=path, hint="run synth cohort again to finish the cohort")
            self._shards[s] = np.load(path, mmap_mode="r")
        return self._shards[s]

    def __len__(self) -> int:
        return len(self.rows)

    def signal(self, index: int) -> np.ndarray:
        """(12, T) float32 mV of record ``index``."""
        return np.asarray(self.shard(int(self.shard_of[index]))[int(self.row_of[index])], dtype=np.float32) / 1000.0

    def labels(self) -> np.ndarray:
        """(N, K) float32 multi-hot over :attr:`classes`."""
        col = {c: k for k, c in enumerate(self.classes)}
        out = np.zeros((len(self), len(self.classes)), dtype=np.float32)
        for i, names in enumerate(self.label_lists):
            for c in names:
                if c in col:
                    out[i, col[c]] = 1.0
        return out

    def cond(self, index: int) -> dict[str, Any]:
        r = self.rows[index]
        col = {c: k for k, c in enumerate(self.classes)}
        labels = np.zeros(len(self.classes), dtype=np.float32)
        for c in self.label_lists[index]:
            if c in col:
                labels[col[c]] = 1.0
        return {"labels": labels, "report": r["report"], "age": np.float32(_float(r["age"])),
                "sex": np.float32({"M": 0.0, "F": 1.0}.get(r["sex"], float("nan"))),
                "heart_rate": np.float32(_float(r["hr"])), "record": r["record"]}

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} records")
        return self.signal(index), self.cond(index)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All records ``(N, 12, T)`` float32 mV and labels ``(N, K)``: for cohorts that fit in memory."""
        return np.stack([self.signal(i) for i in range(len(self))]), self.labels()

    def verify(self) -> list[str]:
        """Records whose samples no longer match their manifest checksum (empty: intact)."""
        import hashlib

        return [r["record"] for i, r in enumerate(self.rows)
                if hashlib.sha256(np.ascontiguousarray(self.shard(int(self.shard_of[i]))[int(self.row_of[i])])
                                  .tobytes()).hexdigest() != r["sha256"]]

    def summary(self) -> dict:
        """Counts per label, age and heart-rate statistics and histograms, signal shape."""
        first = self.shard(int(self.shard_of[0])) if len(self) else np.zeros((0, 12, 0))
        try:
            meta = self.meta
        except DataError:
            meta = {}
        out: dict[str, Any] = {"path": str(self.path), "records": len(self), "shards": int(len(set(self.shard_of))),
                               "leads": meta.get("leads", ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3",
                                                           "V4", "V5", "V6"]),
                               "samples": int(first.shape[-1]), "fs_hz": float(meta.get("fs_hz", 100.0)),
                               "model": meta.get("model"),
                               "labels": dict(Counter(c for names in self.label_lists for c in names).most_common()),
                               "no_label": sum(1 for names in self.label_lists if not names),
                               "sex": dict(Counter(r["sex"] or "not given" for r in self.rows))}
        for name, edges in (("age", np.arange(0, 101, 10)), ("hr", np.arange(30, 181, 15))):
            values = np.array([_float(r[name]) for r in self.rows], dtype=np.float64)
            values = values[np.isfinite(values)]
            if len(values):
                counts, _ = np.histogram(np.clip(values, edges[0], edges[-1] - 1e-9), bins=edges)
                out[name] = {"n": int(len(values)), "mean": float(values.mean()), "min": float(values.min()),
                             "max": float(values.max()), "histogram": {f"{int(a)}-{int(b)}": int(c) for a, b, c in
                                                                       zip(edges[:-1], edges[1:], counts)}}
        return out


class CohortStream(IterableDataset):
    """The records of a cohort shard by shard, in order (each DataLoader worker takes every k-th shard)."""

    def __init__(self, path: str | os.PathLike, *, classes: Sequence[str] | None = None):
        self.cohort = Cohort(path, classes=classes)

    def __iter__(self) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        info = get_worker_info()
        shards = sorted(set(self.cohort.shard_of.tolist()))
        if info is not None:
            shards = shards[info.id::info.num_workers]
        for s in shards:
            for i in np.flatnonzero(self.cohort.shard_of == s):
                yield self.cohort[int(i)]

    def __len__(self) -> int:
        return len(self.cohort)
