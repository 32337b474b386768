"""The ECG-paired echo dataset: PTB-XL ECGs drive the phantom, written in the EchoNet-Dynamic layout.

:func:`write_clip_files` writes one clip's files (video, ECG, rows); :func:`build_dataset` fills a whole folder
from ECG records (staged: a half-built dataset never appears under the final name). :class:`EchoTensors` loads a
split into memory at the model's resolution for training.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from synth.data.leads import LEADS_12
from synth.data.record import Record
from synth.echo.echonet import FILELIST_COLUMNS, TRACING_COLUMNS, EchoNet, parse_times
from synth.echo.simulator import SimulatedClip, random_params, simulate
from synth.echo.video_io import resample_video, write_avi
from synth.errors import DataError
from synth.outputs import staged_folder


@dataclass(frozen=True)
class ClipSpec:
    """What to simulate: an ECG, its split, where the clip starts, and the clip's name and seed."""

    record: Record
    split: str
    start_s: float
    name: str
    seed: int


def ecg_window(record: Record, start_s: float, duration_s: float) -> Record:
    """The 12-lead window [start_s, start_s + duration_s) of ``record`` (canonical lead order, mV)."""
    missing = [lead for lead in LEADS_12 if lead not in record.leads]
    if missing:
        raise DataError(f"the ECG lacks leads {missing}; the echo model needs all 12", path=record.source)
    order = [record.leads.index(lead) for lead in LEADS_12]
    a = int(round(start_s * record.fs_hz))
    b = a + int(round(duration_s * record.fs_hz))
    if a < 0 or b > record.n_samples:
        raise DataError(f"window {start_s:.2f}-{start_s + duration_s:.2f} s is outside the {record.duration_s:.2f} s "
                        "ECG", path=record.source)
    return Record(record.signal[order, a:b], record.fs_hz, LEADS_12, metadata=dict(record.metadata),
                  source=record.source)


def write_clip_files(root: Path, spec: ClipSpec, clip: SimulatedClip, duration_s: float) -> tuple[dict, list, dict]:
    """Write ``Videos/<name>.avi`` and ``ECG/<name>`` under ``root``; return its FileList, tracing and timing rows."""
    from synth.data.writers import write_record

    write_avi((clip.video * 255).round().astype(np.uint8), root / "Videos" / f"{spec.name}.avi", clip.fps)
    ecg = ecg_window(spec.record, spec.start_s, duration_s)
    ecg.metadata = {"source_record": str(spec.record.metadata.get("ecg_id", spec.record.source)),
                    "start_s": spec.start_s}
    (root / "ECG").mkdir(exist_ok=True)
    write_record(ecg, root / "ECG" / spec.name, "wfdb", overwrite=True)
    h, w = clip.video.shape[1:]
    row = {"FileName": spec.name, "EF": round(100 * clip.params.ef, 3), "ESV": round(clip.esv_ml, 3),
           "EDV": round(clip.edv_ml, 3), "FrameHeight": h, "FrameWidth": w, "FPS": clip.fps,
           "NumberOfFrames": clip.video.shape[0], "Split": spec.split}
    tracings = [{"FileName": f"{spec.name}.avi", "X1": round(x1, 3), "Y1": round(y1, 3), "X2": round(x2, 3),
                 "Y2": round(y2, 3), "Frame": frame} for frame, x1, y1, x2, y2 in clip.tracings]
    fmt = lambda xs: " ".join(f"{x:.4f}" for x in xs)  # noqa: E731
    near = (clip.r_s > -1.5) & (clip.r_s < duration_s + 1.0)  # beats that shape the clip, with one on each side
    timing = {"FileName": spec.name, "RPeaks_s": fmt(clip.r_s[near]), "TEnds_s": fmt(clip.t_end_s[near]),
              "HeartRate_bpm": round(60.0 / float(np.median(np.diff(clip.r_s))), 2) if len(clip.r_s) > 1 else "",
              "SourceRecord": ecg.metadata["source_record"], "Start_s": spec.start_s}
    return row, tracings, timing


def _simulate_clip(spec: ClipSpec, frames: int, fps: float, simulator: str) -> SimulatedClip | str:
    """One clip of ``spec`` (deterministic under its seed), or the reason it cannot be made."""
    from synth.echo.ultrasound import random_ultrasound_params, simulate_ultrasound

    rng = np.random.default_rng(spec.seed)
    try:
        if simulator == "ultrasound":
            return simulate_ultrasound(spec.record.signal, spec.record.fs_hz, start_s=spec.start_s, frames=frames,
                                       fps=fps, params=random_ultrasound_params(rng), seed=spec.seed)
        return simulate(spec.record.signal, spec.record.fs_hz, start_s=spec.start_s, frames=frames, fps=fps,
                        params=random_params(rng), seed=spec.seed)
    except DataError as err:  # an ECG without two detectable beats: skip it, say so
        return f"{spec.record.source}: {err.problem}"


def _one_thread(parent_pid: int) -> None:
    from synth.io_utils import die_with_parent

    die_with_parent(parent_pid)  # a killed build leaves no simulating processes behind
    torch.set_num_threads(1)


def build_dataset(out: str | os.PathLike, specs: Iterable[ClipSpec], *, frames: int = 32, fps: float = 16.0,
                  overwrite: bool = False, progress: bool = True,
                  simulator: str = "phantom", workers: int = 1) -> Path:
    """Simulate every clip of ``specs`` into ``out`` in the EchoNet layout (+ ECG/ and Timing.csv), with the
    geometric ``phantom`` (:mod:`synth.echo.simulator`) or the ``ultrasound`` simulator
    (:mod:`synth.echo.ultrasound`: scatterers, point-spread function, envelope, log compression).

    ``workers`` > 1 simulates clips in that many processes (one thread each); every clip depends only on its
    spec's seed and the files are written in spec order by this process, so the dataset is the same for any
    number of workers."""
    if simulator not in ("phantom", "ultrasound"):
        raise DataError(f"unknown simulator {simulator!r}", hint="phantom or ultrasound")
    if workers < 1:
        raise DataError(f"workers must be at least 1, got {workers}")
    from concurrent.futures import ProcessPoolExecutor
    from contextlib import nullcontext
    from functools import partial

    from tqdm import tqdm

    rows, tracing_rows, timing_rows, skipped = [], [], [], []
    make = partial(_simulate_clip, frames=frames, fps=fps, simulator=simulator)
    pool = ProcessPoolExecutor(workers, initializer=_one_thread, initargs=(os.getpid(),)) if workers > 1 \
        else nullcontext()
    with staged_folder(out, overwrite=overwrite) as root, pool:
        (root / "Videos").mkdir()
        # One list, walked twice (the clips and the specs they are written under): a generator walked by both
        # would pair each clip with the next spec's record and name, and drop every other spec.
        specs = list(specs)
        clips = pool.map(make, specs, chunksize=4) if workers > 1 else map(make, specs)
        bar = tqdm(zip(specs, clips), total=len(specs), disable=not progress, desc="simulating echo clips",
                   unit="clip")
        for spec, clip in bar:
            if isinstance(clip, str):
                skipped.append(clip)
                continue
            row, tracing, timing = write_clip_files(root, spec, clip, frames / fps)
            rows.append(row)
            tracing_rows.extend(tracing)
            timing_rows.append(timing)
        _write_csv(root / "FileList.csv", FILELIST_COLUMNS, rows)
        _write_csv(root / "VolumeTracings.csv", TRACING_COLUMNS, tracing_rows)
        _write_csv(root / "Timing.csv", list(timing_rows[0]) if timing_rows else ["FileName"], timing_rows)
        (root / "SKIPPED.txt").write_text("\n".join(skipped) + ("\n" if skipped else ""), encoding="utf-8")
    return Path(out)


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


class EchoTensors(Dataset):
    """One split of a simulated EchoNet folder in memory: items ``(video, cond)`` with video (1, F, S, S) in
    [-1, 1] at the model's ``size`` and cond = {"ecg": (12, T) mV, "ef": percent, "heart_rate": bpm}.

    Also keeps per clip ``r_s`` / ``t_end_s`` (seconds from the clip start) for the timing metrics.
    """

    def __init__(self, root: str | os.PathLike, split: str, *, size: int = 64, frames: int | None = None,
                 limit: int | None = None, progress: bool = False, with_cond: bool = True,
                 cache_dir: str | os.PathLike | None = None):
        from tqdm import tqdm

        self.with_cond = with_cond
        cache = None if cache_dir is None else Path(cache_dir) / f"{split.lower()}_{size}_{frames}_{limit}.pt"
        if cache is not None and cache.is_file():
            self._load(cache)
            return
        data = EchoNet(root).split(split)
        names = data.names[:limit] if limit else data.names
        timing = data.timing()
        videos, ecgs, efs, hrs, self.r_s, self.t_end_s = [], [], [], [], [], []
        for name in tqdm(names, disable=not progress, desc=f"loading {split}", unit="clip"):
            clip = data.clip(name)
            video = resample_video(clip.video, clip.fps, size=(size, size))
            if frames is not None:
                video = video[:, :frames]
            videos.append(((video + 1) * 127.5).round().to(torch.uint8))
            ecgs.append(torch.from_numpy(data.ecg(name).signal))
            efs.append(float(clip.metadata["EF"]))
            if timing is not None and name in timing.index:
                row = timing.loc[name]
                self.r_s.append(parse_times(row["RPeaks_s"]))
                self.t_end_s.append(parse_times(row["TEnds_s"]))
                hrs.append(float(row["HeartRate_bpm"]) if str(row["HeartRate_bpm"]) != "nan" else float("nan"))
            else:
                self.r_s.append(np.empty(0))
                self.t_end_s.append(np.empty(0))
                hrs.append(float("nan"))
        self.names = names
        self.fps = float(data.table["FPS"].iloc[0])
        self.videos = torch.stack(videos)  # (N, 1, F, S, S) uint8
        self.ecg = torch.stack(ecgs).float()  # (N, 12, T)
        self.ef = torch.tensor(efs)
        self.heart_rate = torch.tensor(hrs)
        if cache is not None:
            self._save(cache)

    _FIELDS = ("videos", "ecg", "ef", "heart_rate")

    def _save(self, path: Path) -> None:
        from synth.io_utils import atomic_path

        state = {k: getattr(self, k) for k in self._FIELDS}
        state.update(names=list(self.names), fps=self.fps, r_s=[torch.from_numpy(np.asarray(r, dtype=np.float64))
                     for r in self.r_s], t_end_s=[torch.from_numpy(np.asarray(t, dtype=np.float64)) for t in self.t_end_s])
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    def _load(self, path: Path) -> None:
        state = torch.load(path, weights_only=True)
        for k in self._FIELDS:
            setattr(self, k, state[k])
        self.names, self.fps = state["names"], float(state["fps"])
        self.r_s = [r.numpy() for r in state["r_s"]]
        self.t_end_s = [t.numpy() for t in state["t_end_s"]]

    def __len__(self) -> int:
        return len(self.names)

    def video(self, i: int | slice | Tensor) -> Tensor:
        return self.videos[i].float() / 127.5 - 1.0

    def __getitem__(self, i: int) -> tuple[Tensor, dict]:
        if not self.with_cond:
            return self.video(i), {}
        return self.video(i), {"ecg": self.ecg[i], "ef": self.ef[i], "heart_rate": self.heart_rate[i]}


