"""A PNG filmstrip of an echo clip with its ECG: frames in a row, the ECG (lead II) below, and a cursor on the
trace at each shown frame's time, so one can check by eye that contraction follows the QRS."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch import Tensor

from synth.echo.video_io import to_uint8
from synth.io_utils import atomic_path
from synth.outputs import WRITER


def write_filmstrip(video: Tensor, fps: float, ecg: np.ndarray, ecg_fs_hz: float, out: str | os.PathLike, *,
                    max_frames: int = 16, lead: int = 1, title: str | None = None) -> Path:
    """video (1, F, H, W) in [-1, 1]; ecg (12, T) mV starting at the first frame's time → PNG at ``out``.

    At most ``max_frames`` evenly spaced frames are shown; each gets a numbered cursor on the ECG; R-peaks found
    in the ECG are marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from synth.errors import DataError

    frames = to_uint8(video)  # (F, H, W)
    f = frames.shape[0]
    shown = np.unique(np.linspace(0, f - 1, min(f, max_frames)).round().astype(int))
    fig = plt.figure(figsize=(1.05 * len(shown), 3.4), dpi=110)
    grid = fig.add_gridspec(2, len(shown), height_ratios=[1.0, 1.1], hspace=0.25, wspace=0.04)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(shown)))
    for k, i in enumerate(shown):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(frames[i], cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color(colours[k])
            spine.set_linewidth(2)
        ax.set_title(f"{i}", fontsize=7, color=colours[k], pad=2)
    ax = fig.add_subplot(grid[1, :])
    trace = np.asarray(ecg)[lead]
    t = np.arange(trace.shape[0]) / ecg_fs_hz
    ax.plot(t, trace, color="black", linewidth=0.9)
    for k, i in enumerate(shown):
        ax.axvline(i / fps, color=colours[k], linewidth=1.0, alpha=0.9)
        ax.text(i / fps, 1.0, f"{i}", transform=ax.get_xaxis_transform(), fontsize=6, color=colours[k],
                ha="center", va="bottom")
    try:
        from synth.data.beats import detect_r_peaks

        peaks = detect_r_peaks(np.asarray(ecg), ecg_fs_hz) / ecg_fs_hz
        ax.plot(peaks, np.interp(peaks, t, trace), "v", color="crimson", markersize=5, label="R-peak (end-diastole)")
        ax.legend(loc="lower right", fontsize=6, frameon=False)
    except DataError:
        pass
    ax.set_xlim(0, max(t[-1], (f - 1) / fps))
    ax.set_xlabel("time (s); a cursor per shown frame", fontsize=7)
    ax.set_ylabel("lead II (mV)", fontsize=7)
    ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=8, y=0.99)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata={"Software": WRITER})
    plt.close(fig)
    return Path(out)
