"""The pictures the data layer does not draw: K reconstructions as a mean with a ± spread band per lead, and one
QRS complex up close at two sampling rates."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from synth.data.leads import LEADS_12
from synth.data.plot import _new_figure, _save
from synth.data.record import Record

_MEAN = "#1f4fd6"
_GIVEN = "#1b5e20"


def plot_uncertainty(samples: np.ndarray, fs_hz: float, out_path: str | os.PathLike, *, given: Sequence[str] = (),
                     truth: Record | None = None, title: str = "", max_s: float = 10.0, dpi: int = 110) -> Path:
    """One strip per lead: the mean of ``samples`` ``(K, 12, T)`` mV with a band of ± one per-sample std, the
    given leads in green, and ``truth`` (12 leads, NaN where unknown) in black where it is known.

    At most the first ``max_s`` seconds are drawn.
    """
    k, c, t = samples.shape
    n = min(t, int(round(max_s * fs_hz)))
    time = np.arange(n) / fs_hz
    mean, std = samples[:, :, :n].mean(axis=0), samples[:, :, :n].std(axis=0)  # (12, n)
    fig = _new_figure(13.0, 1.05 * c + 1.0, dpi)
    axes = fig.subplots(c, 1, sharex=True, squeeze=False)[:, 0]
    fig.subplots_adjust(left=0.1, right=0.99, top=1 - 0.55 / fig.get_figheight(), bottom=0.5 / fig.get_figheight(),
                        hspace=0.12)
    for i, (ax, lead) in enumerate(zip(axes, LEADS_12)):
        is_given = lead in given
        colour = _GIVEN if is_given else _MEAN
        if truth is not None and np.isfinite(truth.signal[i, :n]).all() and not is_given:
            ax.plot(time, truth.signal[i, :n], color="black", lw=0.7, zorder=3)
        ax.fill_between(time, mean[i] - std[i], mean[i] + std[i], color=colour, alpha=0.25, lw=0)
        ax.plot(time, mean[i], color=colour, lw=0.8)
        ax.set_ylabel(f"{lead}{' (given)' if is_given else ''}", fontsize=9, rotation=0, ha="right", va="center",
                      color=colour)
        ax.tick_params(labelsize=7)
        ax.text(0.995, 0.9, f"mean std {std[i].mean() * 1000:.0f} µV", transform=ax.transAxes, ha="right", va="top",
                fontsize=7)
    axes[-1].set_xlabel("time [s]", fontsize=9)
    fig.text(0.1, 1 - 0.1 / fig.get_figheight(), title or f"mean ± 1 std over {k} samples", fontsize=12,
             fontweight="bold", ha="left", va="top")
    fig.text(0.1, 0.08 / fig.get_figheight(), f"band: ± one standard deviation over {k} samples (mV); "
             "black: the input's own lead where it has one", fontsize=8, ha="left", va="bottom")
    return _save(fig, out_path, dpi)


def plot_qrs_closeup(low: np.ndarray, low_fs: float, curves: dict[str, np.ndarray], high_fs: float,
                     out_path: str | os.PathLike, *, truth: np.ndarray | None = None, title: str = "",
                     half_width_s: float = 0.12, dpi: int = 110) -> Path:
    """One lead around its largest deflection: the ``low`` ``(T,)`` samples at ``low_fs`` as dots, each of
    ``curves`` (name → ``(T_high,)`` at ``high_fs``) as a line, and ``truth`` (at ``high_fs``) in black."""
    ref = truth if truth is not None else next(iter(curves.values()))
    margin = int(round(half_width_s * high_fs))
    inner = np.abs(ref[margin:-margin] - np.median(ref)) if len(ref) > 2 * margin else np.abs(ref - np.median(ref))
    centre = int(np.argmax(inner)) + (margin if len(ref) > 2 * margin else 0)
    lo, hi = max(0, centre - margin), min(len(ref), centre + margin)
    fig = _new_figure(7.5, 4.0, dpi)
    ax = fig.subplots()
    t_high = np.arange(lo, hi) / high_fs
    if truth is not None:
        ax.plot(t_high, truth[lo:hi], color="black", lw=2.0, label=f"recorded at {high_fs:g} Hz")
    for (name, y), colour in zip(curves.items(), ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")):
        ax.plot(t_high, y[lo:hi], color=colour, lw=1.1, label=name)
    k = np.arange(len(low))
    sel = (k / low_fs >= lo / high_fs) & (k / low_fs < hi / high_fs)
    ax.plot(k[sel] / low_fs, low[sel], "o", color="grey", ms=5, label=f"{low_fs:g} Hz samples", zorder=4)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("mV")
    ax.legend(fontsize=8)
    ax.set_title(title or "one QRS complex up close", fontsize=11)
    fig.tight_layout()
    return _save(fig, out_path, dpi)
