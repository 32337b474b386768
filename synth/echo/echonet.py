"""Readers for echo video collections: the EchoNet-Dynamic layout and a plain folder of AVI/MP4 files.

EchoNet-Dynamic (Ouyang et al. 2020, Nature 580:252) ships::

    Videos/<FileName>.avi     112×112 grey-in-RGB AVI, ~50 fps
    FileList.csv              FileName, EF, ESV, EDV, FrameHeight, FrameWidth, FPS, NumberOfFrames, Split
    VolumeTracings.csv        FileName, X1, Y1, X2, Y2, Frame (LV long axis + chords at one ED and one ES frame)

``FileName`` appears with or without ``.avi`` depending on the release; both are accepted. The simulator
(:mod:`synth.echo.dataset`) writes the same layout plus ``ECG/<FileName>.hea/.dat`` (WFDB, the clip's ECG) and
``Timing.csv`` (R-peaks and T-ends in seconds from the clip start), so one reader serves real and simulated data.

Every clip comes back as a :class:`~synth.echo.video_io.Clip` (C, F, H, W) in [-1, 1] with its FileList row as
metadata; a row whose video is missing raises :class:`MissingFileError` naming the row and the expected file, and a
video FFmpeg cannot decode raises :class:`DataError` naming the file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from synth.data.record import Record
from synth.echo.video_io import Clip, read_video
from synth.errors import DataError, MissingFileError
from synth.io_utils import read_text_lenient

FILELIST_COLUMNS = ("FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split")
REQUIRED_COLUMNS = ("FileName", "EF", "FPS", "Split")
TRACING_COLUMNS = ("FileName", "X1", "Y1", "X2", "Y2", "Frame")
SPLITS = ("TRAIN", "VAL", "TEST")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".webm")


def _stem(name: str) -> str:
    return name[:-4] if name.lower().endswith(".avi") else name


class EchoNet:
    """The clips listed in ``root/FileList.csv``; ``split("TRAIN")`` narrows to one split (case-insensitive)."""

    def __init__(self, root: str | os.PathLike, *, _table=None):
        import pandas as pd

        self.root = Path(root)
        if _table is not None:
            self.table = _table
            return
        if not self.root.is_dir():
            raise MissingFileError("no such folder", path=self.root)
        path = self.root / "FileList.csv"
        if not path.is_file():
            raise DataError("not an EchoNet-Dynamic folder: FileList.csv is missing", path=self.root,
                            hint="point at the folder holding FileList.csv and Videos/")
        try:
            table = pd.read_csv(io.StringIO(read_text_lenient(path)))
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise DataError(f"cannot parse FileList.csv ({err})", path=path) from None
        missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
        if missing:
            raise DataError(f"FileList.csv lacks columns {missing}", path=path,
                            hint=f"EchoNet-Dynamic columns are {', '.join(FILELIST_COLUMNS)}")
        if table.empty:
            raise DataError("FileList.csv lists no videos", path=path)
        table["FileName"] = [_stem(str(n)) for n in table["FileName"]]
        table["Split"] = table["Split"].astype(str).str.upper()
        bad = sorted(set(table["Split"]) - set(SPLITS))
        if bad:
            raise DataError(f"FileList.csv has unknown Split values {bad}", path=path, hint="use TRAIN, VAL or TEST")
        self.table = table.set_index("FileName", drop=False)
        if self.table.index.duplicated().any():
            dup = self.table.index[self.table.index.duplicated()][0]
            raise DataError(f"FileList.csv lists {dup!r} twice", path=path)

    def split(self, name: str) -> EchoNet:
        name = name.upper()
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; choose TRAIN, VAL or TEST")
        return EchoNet(self.root, _table=self.table[self.table["Split"] == name])

    def __len__(self) -> int:
        return len(self.table)

    @property
    def names(self) -> list[str]:
        return list(self.table.index)

    def video_path(self, name: str) -> Path:
        for suffix in (".avi", ".AVI", ".mp4"):
            path = self.root / "Videos" / f"{name}{suffix}"
            if path.is_file():
                return path
        return self.root / "Videos" / f"{name}.avi"

    def clip(self, key: int | str, *, max_frames: int | None = None) -> Clip:
        """The video of row ``key`` (position or FileName), metadata = its FileList row."""
        name = self.names[key] if isinstance(key, int | np.integer) else _stem(str(key))
        if name not in self.table.index:
            raise DataError(f"{name!r} is not listed in FileList.csv", path=self.root / "FileList.csv")
        path = self.video_path(name)
        if not path.is_file():
            raise MissingFileError(f"FileList.csv lists {name!r} but its video is missing", path=path,
                                   hint="restore the file or remove its row from FileList.csv")
        clip = read_video(path, max_frames=max_frames)
        row = self.table.loc[name]
        clip.metadata.update({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()})
        if "FPS" in row and np.isfinite(float(row["FPS"])) and float(row["FPS"]) > 0:
            clip.fps = float(row["FPS"])  # FileList is authoritative (AVI headers round the rate)
        return clip

    def __getitem__(self, i: int) -> Clip:
        return self.clip(i)

    def ecg(self, name: str) -> Record:
        """The clip's ECG (``ECG/<name>.hea``, written by the simulator); EchoNet-Dynamic itself has none."""
        from synth.data.readers import read_wfdb

        path = self.root / "ECG" / f"{_stem(name)}.hea"
        if not path.is_file():
            raise MissingFileError("no ECG for this clip", path=path,
                                   hint="EchoNet-Dynamic has no ECGs; condition on EF and heart rate instead")
        return read_wfdb(path)

    def timing(self):
        """``Timing.csv`` as a DataFrame indexed by FileName (simulator output), or None when absent."""
        import pandas as pd

        path = self.root / "Timing.csv"
        if not path.is_file():
            return None
        table = pd.read_csv(path).set_index("FileName", drop=False)
        return table

    def tracings(self):
        """``VolumeTracings.csv`` as a DataFrame (FileName without ``.avi``), or None when absent."""
        import pandas as pd

        path = self.root / "VolumeTracings.csv"
        if not path.is_file():
            return None
        table = pd.read_csv(path)
        missing = [c for c in TRACING_COLUMNS if c not in table.columns]
        if missing:
            raise DataError(f"VolumeTracings.csv lacks columns {missing}", path=path)
        table["FileName"] = [_stem(str(n)) for n in table["FileName"]]
        return table


class VideoFolder:
    """Every AVI/MP4/MOV/MKV/WebM file directly in ``root``, sorted by name."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingFileError("no such folder", path=self.root)
        self.paths = sorted(p for p in self.root.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if not self.paths:
            raise DataError("no video files in the folder", path=self.root,
                            hint=f"expected files ending in {', '.join(VIDEO_SUFFIXES)}")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Clip:
        return read_video(self.paths[i])


def parse_times(text: str) -> np.ndarray:
    """``"0.12 0.93"`` (Timing.csv cell) → array of seconds; empty or NaN → empty."""
    if not isinstance(text, str) or not text.strip():
        return np.empty(0)
    return np.array([float(v) for v in text.split()])
