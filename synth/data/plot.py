"""Pictures of records: a clinical 12-lead printout on ECG paper, lead strips, and a PPG + ECG view.

ECG paper follows the clinical convention: 25 mm/s and 10 mm/mV drawn at a true aspect (1 s across is 2.5 times
1 mV up), minor lines every 1 mm (0.04 s, 0.1 mV), major lines every 5 mm (0.2 s, 0.5 mV). A record with all
twelve leads is laid out as a 3 x 4 grid of 2.5 s segments (I aVR V1 V4 / II aVL V2 V5 / III aVF V3 V6), each
column a consecutive quarter of one 10 s window (records of 4-10 s get shorter columns), with a full lead II
rhythm strip below; any other lead set, or a record under 4 s, gets one full-length strip per lead.

matplotlib is imported inside the functions (``import synth.data`` stays light) and figures are drawn on the Agg
canvas without pyplot, so nothing needs a display and no figure outlives its call. Files are written atomically.
"""

from __future__ import annotations

import os
import textwrap
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from synth.data.leads import LEADS_12, canonical_lead, sort_leads
from synth.data.record import Record
from synth.errors import DataError
from synth.io_utils import atomic_path
from synth.outputs import WRITER

MM_PER_S = 25.0  # paper speed
MM_PER_MV = 10.0  # gain
MAX_SHOWN_S = 10.0  # one printout page, as PTB-XL and most 12-lead machines record
_MIN_GRID_S = 4.0
#: The clinical 3 x 4 layout: rows of leads, each column a consecutive quarter of the window.
LAYOUT_3X4: tuple[tuple[str, ...], ...] = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
RHYTHM_LEAD = "II"

# Paper geometry in mm. Rows are multiples of 5 mm so every baseline and the calibration pulse sit on major lines.
_CAL_MM = 10.0  # left margin holding the 1 mV calibration pulse (0.2 s = 5 mm wide)
_RIGHT_MM = 5.0
_MIN_WIDTH_MM = 150.0
_LABEL_MM = 6.0  # band at the top of each row reserved for the lead labels, so traces never run through them
_MIN_UP_MM, _MIN_DOWN_MM = 20.0, 15.0  # room for the 10 mm pulse + labels, and typical S waves
_MAX_EXCURSION_MM = 40.0  # 4 mV either way: beyond this (artefact, saturation) rows would swallow the page
_INCH_PER_MM = 0.05  # a 10 s page (265 mm) is ~13 in, ~2000 px at 150 dpi: labels legible at a glance
_HEADER_IN, _FOOTER_IN, _SIDE_IN = 0.5, 0.55, 0.15

_PAPER = "#fffafa"
_MINOR = "#f5c6c6"
_MAJOR = "#e07b7b"
_TRUTH = "#000000"
_OTHER = "#1f4fd6"  # blue: reads against both the black truth and the pink grid (red would vanish into it)
_PPG = "#0b6e4f"


# -- shared helpers ---------------------------------------------------------------------------------------------
def _new_figure(width_in: float, height_in: float, dpi: int):
    """A figure on the Agg canvas; it is not registered with pyplot, so it is freed when the call returns."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out_path: str | os.PathLike, dpi: int) -> Path:
    """Write ``fig`` atomically: a failing save leaves neither a partial file nor a temporary one."""
    from matplotlib.backend_bases import FigureCanvasBase

    out = Path(out_path)
    fmt = out.suffix.lower().lstrip(".")
    fmt = fmt if fmt in FigureCanvasBase.get_supported_filetypes() else "png"
    try:
        with atomic_path(out) as tmp:
            meta = {"Software": WRITER} if fmt == "png" else {}
            fig.savefig(tmp, format=fmt, dpi=dpi, facecolor="white", metadata=meta)
    finally:
        fig.clear()  # drop artists (and their arrays) now, not whenever the garbage collector runs
    return out


def _centre(x: np.ndarray) -> np.ndarray:
    """``x`` minus its median, so each drawn piece sits on its baseline whatever the DC offset or wander.

    Clinical carts high-pass the display the same way; an all-NaN piece is returned as is (it draws nothing).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(x) if x.size else np.nan
    return x - med if np.isfinite(med) else x


def _check_overlay(record: Record, overlay: Record | None, leads: Sequence[str]) -> list[str]:
    """The leads among ``leads`` that ``overlay`` also has; raises if the two records cannot be compared."""
    if overlay is None:
        return []
    if abs(overlay.fs_hz - record.fs_hz) > 1e-6:
        raise DataError(
            f"overlay is sampled at {overlay.fs_hz:g} Hz but the record at {record.fs_hz:g} Hz",
            path=overlay.source,
            hint=f"resample one of them first, e.g. synth.data.transforms.resample_record(overlay, {record.fs_hz:g})",
        )
    shared = [name for name in leads if name in overlay.leads]
    if not shared:
        raise DataError(
            f"overlay shares no plotted lead with the record: record {list(leads)}, overlay {list(overlay.leads)}",
            path=overlay.source,
            hint="overlay a record of the same leads (leads are matched by name)",
        )
    return shared


def _default_title(record: Record) -> str:
    meta = record.metadata
    dataset = {"ptbxl": "PTB-XL", "bidmc": "BIDMC", "mimic": "MIMIC-IV-ECG"}.get(str(meta.get("dataset")), meta.get("dataset"))
    for key, name in (("ecg_id", "ecg_id"), ("subject", "subject"), ("study_id", "study_id")):
        if meta.get(key) is not None:
            return f"{dataset or 'record'} {name} {meta[key]}"
    return Path(record.source).name if record.source else "ECG"


def _add_legend(fig, labels: Sequence[str], colours: Sequence[str]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=1.6) for c in colours]
    fig.legend(handles, list(labels), loc="upper right", bbox_to_anchor=(0.995, 0.995), ncol=len(handles),
               frameon=False, fontsize=11)


# -- ECG paper --------------------------------------------------------------------------------------------------
def _draw_paper(ax, width_mm: float, height_mm: float) -> None:
    """Pink background with 1 mm minor and 5 mm major lines, drawn as two line collections (fast to render)."""
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((0, 0), width_mm, height_mm, facecolor=_PAPER, edgecolor="none", zorder=0))
    for step, colour, lw, z in ((1.0, _MINOR, 0.35, 1), (5.0, _MAJOR, 0.7, 2)):
        xs = np.arange(0.0, width_mm + 1e-6, step)
        ys = np.arange(0.0, height_mm + 1e-6, step)
        segs = [[(x, 0.0), (x, height_mm)] for x in xs] + [[(0.0, y), (width_mm, y)] for y in ys]
        ax.add_collection(LineCollection(segs, colors=colour, linewidths=lw, zorder=z))


def _calibration_pulse(ax, baseline_mm: float) -> None:
    """The 1 mV x 0.2 s standardisation pulse in the left margin, so readers can check gain and speed."""
    x = [1.0, 3.0, 3.0, 8.0, 8.0, 9.0]  # edges on 1 mm lines, so the 5 small boxes count
    y = [0.0, 0.0, MM_PER_MV, MM_PER_MV, 0.0, 0.0]
    ax.plot(x, np.asarray(y) + baseline_mm, color=_TRUTH, lw=1.0, zorder=5, solid_joinstyle="miter")


def _trace(ax, x: np.ndarray, fs_hz: float, x0_mm: float, baseline_mm: float, band: tuple[float, float],
           colour: str, lw: float, z: int) -> bool:
    """Draw ``x`` (mV, already centred) from ``x0_mm`` on ``baseline_mm``, clipped to the row ``band``.

    Returns whether any sample fell outside the band (so the caption can say the trace was clipped).
    """
    from matplotlib.patches import Rectangle

    t_mm = x0_mm + np.arange(x.size) * (MM_PER_S / fs_hz)
    y_mm = baseline_mm + x * MM_PER_MV
    (line,) = ax.plot(t_mm, y_mm, color=colour, lw=lw, zorder=z, solid_joinstyle="round")
    lo, hi = band
    width = float(t_mm[-1] - t_mm[0]) + 1.0 if t_mm.size else 1.0
    line.set_clip_path(Rectangle((x0_mm - 0.5, lo), width, hi - lo, transform=ax.transData))
    with np.errstate(invalid="ignore"):
        return bool(np.any((y_mm < lo) | (y_mm > hi)))


def _boxes(mm: float) -> float:
    """``mm`` rounded up to whole 5 mm boxes, so baselines and the page edge fall on major lines."""
    return 5.0 * float(np.ceil(mm / 5.0 - 1e-9))


def _lead_label(ax, x_mm: float, top_mm: float, name: str, given: bool) -> None:
    text = f"{name} (given)" if given else name
    ax.text(x_mm + 1.0, top_mm - _LABEL_MM / 2, text, fontsize=11, fontweight="bold", ha="left", va="center",
            color="#1b5e20" if given else _TRUTH, zorder=6)


def plot_ecg(
    record: Record,
    out_path: str | os.PathLike,
    *,
    overlay: Record | None = None,
    labels: Sequence[str] = ("real", "generated"),
    title: str | None = None,
    given_leads: Iterable[str] | None = None,
    dpi: int = 150,
) -> Path:
    """Draw ``record`` on ECG paper (25 mm/s, 10 mm/mV) and write it to ``out_path`` (PNG by default).

    Args:
        record: ECG leads in mV (other channels such as PPG are ignored here; see :func:`plot_ppg_ecg`). With all
            twelve leads and at least 4 s: the 3 x 4 clinical layout plus a lead II rhythm strip; otherwise one
            strip per lead. At most the first 10 s are drawn (the caption says so); shorter records are drawn whole.
        out_path: the image file; its suffix picks the format (``.png``, ``.pdf``, ``.svg``; unknown: PNG).
        overlay: a second record at the same ``fs_hz`` (e.g. a generated or reconstructed one) drawn in blue over
            the black ``record`` on every lead the two share (matched by name). Raises :class:`DataError` when the
            rates differ or no plotted lead is shared.
        labels: legend names for ``record`` and ``overlay``.
        title: heading; default names the dataset and record id.
        given_leads: leads that were inputs to a reconstruction; their labels read ``"<lead> (given)"``.
        dpi: resolution; 150 gives an image about 2000 px wide for a 10 s record.

    Each drawn piece is shifted by its median so it sits on its baseline (as a clinical cart's display filter
    would); each row is tall enough for its largest deflection up to 4 mV, beyond which traces are clipped (and
    the caption says so). Returns ``Path(out_path)``.
    """
    leads = sort_leads(record.ecg_leads)
    if not leads:
        hint = "use plot_ppg_ecg or plot_record for PPG records" if "PPG" in record.leads else "give a record with ECG leads"
        raise DataError(f"record has no ECG lead to draw; it has {list(record.leads)}", path=record.source, hint=hint)
    given = {canonical_lead(n) for n in (given_leads or ())}
    if given - set(leads):
        raise DataError(f"given_leads {sorted(given - set(leads))} are not among the record's leads {list(leads)}",
                        path=record.source)
    shared = set(_check_overlay(record, overlay, leads))

    fs = record.fs_hz
    n_shown = min(record.n_samples, int(round(MAX_SHOWN_S * fs)))
    shown_s = n_shown / fs
    # Below 4 s the grid's columns get narrower than 1 s (25 mm): too short for a beat or a "(given)" label.
    twelve = set(LEADS_12) <= set(leads) and shown_s >= _MIN_GRID_S

    # Each row is a list of pieces (lead, first sample, end sample (exclusive), x position in mm).
    trace_mm = shown_s * MM_PER_S
    if twelve:
        edges = np.linspace(0, n_shown, 5).round().astype(int)  # four consecutive quarters of the window
        rows = [[(name, edges[j], edges[j + 1], _CAL_MM + edges[j] / fs * MM_PER_S) for j, name in enumerate(row)]
                for row in LAYOUT_3X4]
        rows.append([(RHYTHM_LEAD, 0, n_shown, _CAL_MM)])
    else:
        rows = [[(name, 0, n_shown, _CAL_MM)] for name in leads]

    def piece(rec: Record, name: str, a: int, b: int) -> np.ndarray:
        return _centre(rec.channel(name)[a:b].astype(np.float64))

    # (row, lead, x position in mm, record's piece, overlay's piece or None), pieces centred, in mV
    drawn = [
        (r, name, x0, piece(record, name, a, b), piece(overlay, name, a, b) if name in shared else None)
        for r, row in enumerate(rows)
        for name, a, b, x0 in row
    ]
    # Each row is as tall as its largest deflections need (at least room for the pulse and the labels), so one
    # tall lead (LVH, an artefact) does not stretch the whole page; heights are whole 5 mm boxes.
    ups, downs = [0.0] * len(rows), [0.0] * len(rows)
    for r, _, _, x, y in drawn:
        for p in (x, y):
            p = p[np.isfinite(p)] if p is not None else np.empty(0)
            if p.size:
                ups[r], downs[r] = max(ups[r], float(p.max())), max(downs[r], -float(p.min()))
    up_mm = [_boxes(max(_MIN_UP_MM, min(u * MM_PER_MV, _MAX_EXCURSION_MM) + 1.0 + _LABEL_MM)) for u in ups]
    down_mm = [_boxes(max(_MIN_DOWN_MM, min(d * MM_PER_MV, _MAX_EXCURSION_MM) + 1.0)) for d in downs]
    tops = np.cumsum([0.0] + [u + d for u, d in zip(up_mm, down_mm)])  # distance of each row's top from the top
    # Short records keep a page wide enough for the title and caption; the extra paper stays blank.
    width_mm = _boxes(max(_CAL_MM + trace_mm + _RIGHT_MM, _MIN_WIDTH_MM))
    height_mm = float(tops[-1])

    paper_w_in, paper_h_in = width_mm * _INCH_PER_MM, height_mm * _INCH_PER_MM
    fig_w, fig_h = paper_w_in + 2 * _SIDE_IN, paper_h_in + _HEADER_IN + _FOOTER_IN
    fig = _new_figure(fig_w, fig_h, dpi)
    ax = fig.add_axes((_SIDE_IN / fig_w, _FOOTER_IN / fig_h, paper_w_in / fig_w, paper_h_in / fig_h))
    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    ax.set_aspect("equal")  # the paper's whole point: 1 mm across equals 1 mm up
    ax.set_axis_off()
    _draw_paper(ax, width_mm, height_mm)

    for r in range(len(rows)):
        _calibration_pulse(ax, height_mm - tops[r] - up_mm[r])
    clipped = False
    for r, name, x0, x, y in drawn:
        top = height_mm - tops[r]
        baseline = top - up_mm[r]
        band = (baseline - down_mm[r], top - _LABEL_MM)
        if x0 > _CAL_MM:  # the short bar printed where the cart switches leads
            ax.plot([x0, x0], [baseline - 3.0, baseline + 3.0], color=_TRUTH, lw=1.0, zorder=5)
        _lead_label(ax, x0, top, name, name in given)
        clipped |= _trace(ax, x, fs, x0, baseline, band, _TRUTH, 0.8, 4)
        if y is not None:
            clipped |= _trace(ax, y, fs, x0, baseline, band, _OTHER, 0.8, 5)

    fig.text(_SIDE_IN / fig_w, 1 - 0.08 / fig_h, title if title is not None else _default_title(record),
             fontsize=13, fontweight="bold", ha="left", va="top")
    if overlay is not None:
        _add_legend(fig, labels, (_TRUTH, _OTHER))
    fig.text(_SIDE_IN / fig_w, (_FOOTER_IN - 0.06) / fig_h, _ecg_caption(record, shown_s, given, clipped),
             fontsize=9.5, ha="left", va="top", linespacing=1.35)
    return _save(fig, out_path, dpi)


def _ecg_caption(record: Record, shown_s: float, given: set[str], clipped: bool) -> str:
    parts = [f"fs {record.fs_hz:g} Hz", f"{shown_s:.2f} s"]
    if record.duration_s > shown_s + 1e-9:
        parts[-1] = f"first {shown_s:.1f} s of {record.duration_s:.1f} s shown"
    parts.append(f"{MM_PER_S:g} mm/s, {MM_PER_MV:g} mm/mV")
    non_mv = sorted({u for name, u in zip(record.leads, record.units) if name in LEADS_12 and u != "mV"})
    if non_mv:
        parts.append(f"amplitude in {', '.join(non_mv)}, drawn as if mV")
    if record.metadata.get("ecg_id") is not None:
        parts.append(f"ecg_id {record.metadata['ecg_id']}")
    if given:
        parts.append("(given) = input lead of the reconstruction")
    if clipped:
        parts.append(f"traces clipped beyond ±{_MAX_EXCURSION_MM / MM_PER_MV:g} mV")
    lines = ["  ·  ".join(parts)]
    report = str(record.metadata.get("report") or "").strip()
    if report:
        lines.append(textwrap.shorten(f"report: {report}", width=170, placeholder=" …"))
    return "\n".join(lines)


# -- PPG + ECG --------------------------------------------------------------------------------------------------
def _unit_label(name: str, unit: str) -> str:
    return f"{name} [{unit}]"


def plot_ppg_ecg(
    record: Record,
    out_path: str | os.PathLike,
    *,
    start_s: float = 0.0,
    duration_s: float = 10.0,
    title: str | None = None,
    overlay: Record | None = None,
    labels: Sequence[str] = ("real", "generated"),
    peaks: Sequence[np.ndarray | None] | None = None,
    dpi: int = 150,
) -> Path:
    """Two time-aligned panels of ``record``: an ECG lead on top (II if present), its PPG below.

    Args:
        record: must have a ``PPG`` channel (:class:`DataError` otherwise); the ECG panel is left out when the
            record has no ECG lead. Amplitudes are drawn in the record's ``units`` (``au`` = arbitrary units).
        out_path: the image file (PNG unless the suffix names another format matplotlib writes).
        start_s, duration_s: the window in seconds from the start of the record; the time axis shows that time.
        title: heading; default names the dataset and subject.
        overlay: a second record at the same ``fs_hz`` (e.g. an ECG generated from this PPG) drawn in blue on the
            panels whose channel it shares; :class:`DataError` when the rates differ or nothing is shared.
        labels: legend names for ``record`` and ``overlay``.
        peaks: R-peak times in seconds from the start of the record, for ``record`` and for ``overlay`` (either may
            be None), marked on the ECG panel: black triangles above the trace for ``record``'s, blue ones below
            for ``overlay``'s.
        dpi: resolution (150 gives an image 2000 px wide).

    Returns ``Path(out_path)``.
    """
    if "PPG" not in record.leads:
        raise DataError(f"record has no PPG channel; it has {list(record.leads)}", path=record.source,
                        hint="use plot_ecg (or plot_record, which picks) for ECG-only records")
    if not duration_s > 0:
        raise DataError(f"duration_s must be positive, got {duration_s}")
    ecg = RHYTHM_LEAD if RHYTHM_LEAD in record.leads else (sort_leads(record.ecg_leads) or (None,))[0]
    channels = [c for c in (ecg, "PPG") if c is not None]
    shared = set(_check_overlay(record, overlay, channels))
    window = record.crop(start_s, duration_s)
    other = overlay.crop(start_s, duration_s) if overlay is not None else None

    fig = _new_figure(13.3, 2.6 * len(channels) + 1.1, dpi)
    axes = fig.subplots(len(channels), 1, sharex=True, squeeze=False)[:, 0]
    fig.subplots_adjust(left=0.07, right=0.99, top=1 - 0.5 / fig.get_figheight(), bottom=0.75 / fig.get_figheight(),
                        hspace=0.08)
    for ax, name in zip(axes, channels):
        colour = _PPG if name == "PPG" else _TRUTH
        x = window.channel(name)
        t = start_s + np.arange(x.size) / window.fs_hz
        ax.plot(t, x, color=colour, lw=0.9)
        if name in shared:
            y = other.channel(name)
            ax.plot(start_s + np.arange(y.size) / other.fs_hz, y, color=_OTHER, lw=0.9, alpha=0.9)
        if name == ecg and peaks is not None:
            _mark_peaks(ax, peaks, start_s, window.duration_s)
        ax.set_ylabel(_unit_label(name, window.units[window.leads.index(name)]), fontsize=11)
        ax.xaxis.set_major_locator(_locator(1.0))
        ax.xaxis.set_minor_locator(_locator(0.2))
        ax.grid(which="major", color="#d0d0d0", lw=0.7)
        ax.grid(which="minor", color="#eeeeee", lw=0.5)
        ax.tick_params(labelsize=10)
        ax.set_xlim(start_s, start_s + window.duration_s)
    axes[-1].set_xlabel("time [s]", fontsize=11)

    fig.text(0.07, 1 - 0.08 / fig.get_figheight(), title if title is not None else _default_title(record),
             fontsize=13, fontweight="bold", ha="left", va="top")
    if overlay is not None:
        _add_legend(fig, labels, (_TRUTH, _OTHER))
    caption = [f"fs {record.fs_hz:g} Hz", f"{start_s:g}-{start_s + window.duration_s:g} s of {record.duration_s:.1f} s"]
    if "au" in window.units:
        caption.append("au = arbitrary units")
    fig.text(0.07, 0.12 / fig.get_figheight(), "  ·  ".join(caption), fontsize=9.5, ha="left", va="bottom")
    return _save(fig, out_path, dpi)


def _mark_peaks(ax, peaks: Sequence[np.ndarray | None], start_s: float, duration_s: float) -> None:
    """Triangles at the R-peak times inside the window: the first series above the traces, the second below."""
    lo, hi = ax.get_ylim()
    pad = 0.06 * (hi - lo)
    for times, colour, y, marker in zip(peaks, (_TRUTH, _OTHER), (hi + pad, lo - pad), ("v", "^")):
        if times is None:
            continue
        t = np.asarray(times, dtype=np.float64)
        t = t[(t >= start_s) & (t <= start_s + duration_s)]
        ax.plot(t, np.full(t.shape, y), linestyle="none", marker=marker, markersize=5, color=colour, zorder=6)
    ax.set_ylim(lo - 2 * pad, hi + 2 * pad)


def _locator(step: float):
    from matplotlib.ticker import MultipleLocator

    return MultipleLocator(step)


# -- dispatch ---------------------------------------------------------------------------------------------------
def plot_record(record: Record, out_path: str | os.PathLike, *, overlay: Record | None = None, **kw) -> Path:
    """:func:`plot_ppg_ecg` for a record with a ``PPG`` channel, :func:`plot_ecg` otherwise; ``kw`` go through."""
    if "PPG" in record.leads:
        return plot_ppg_ecg(record, out_path, overlay=overlay, **kw)
    return plot_ecg(record, out_path, overlay=overlay, **kw)
