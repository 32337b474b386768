"""Plots: valid, non-blank images for every layout, clear errors, atomic writes, a real PTB-XL record."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from synth.data.leads import LEADS_3, LEADS_12
from synth.data.plot import plot_ecg, plot_ppg_ecg, plot_record
from synth.data.record import Record
from synth.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FS_HZ = 100.0


def _beats(fs_hz: float, duration_s: float, *, heart_rate_bpm: float = 72.0, scale: float = 1.0) -> np.ndarray:
    """One synthetic ECG-like lead, ``(T,)`` mV: P, QRS and T as Gaussian bumps per beat."""
    t = np.arange(int(round(duration_s * fs_hz))) / fs_hz
    x = np.zeros_like(t)
    # (offset from the R peak in s, width in s, amplitude in mV)
    waves = ((-0.16, 0.025, 0.12), (-0.03, 0.01, -0.1), (0.0, 0.012, 1.0), (0.03, 0.01, -0.25), (0.25, 0.05, 0.3))
    for r_peak in np.arange(0.4, duration_s, 60.0 / heart_rate_bpm):
        for offset, width, amp in waves:
            x += amp * np.exp(-0.5 * ((t - r_peak - offset) / width) ** 2)
    return scale * x


def _ecg_record(leads=LEADS_12, fs_hz: float = FS_HZ, duration_s: float = 10.0, **meta) -> Record:
    rows = [_beats(fs_hz, duration_s, scale=0.4 + 0.1 * i) + 0.2 * i for i in range(len(leads))]  # DC offsets too
    return Record(np.stack(rows), fs_hz, tuple(leads), metadata=dict(meta), source="synthetic")


def _ppg_record(duration_s: float = 30.0, fs_hz: float = 125.0) -> Record:
    t = np.arange(int(duration_s * fs_hz)) / fs_hz
    ppg = 0.5 + 0.1 * np.sin(2 * np.pi * 1.2 * t) + 0.03 * np.sin(2 * np.pi * 2.4 * t)
    ecg = 0.4 + 0.3 * _beats(fs_hz, duration_s)
    return Record(np.stack([ecg, ppg]), fs_hz, ("II", "PPG"), ("au", "au"), {"dataset": "bidmc", "subject": 7})


def _read_png(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(path)


def _assert_image(path: Path, *, min_width: int = 1000) -> np.ndarray:
    img = _read_png(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert min_width <= img.shape[1] <= 4000 and 200 <= img.shape[0] <= 4000, img.shape
    assert float(img[..., :3].var()) > 0  # not blank
    return img


def _dark_fraction(img: np.ndarray) -> float:
    """Share of near-black pixels: the traces and text (the paper is pink and white)."""
    return float((img[..., :3].max(axis=2) < 0.25).mean())


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name or p.name.startswith("."))


def test_twelve_lead_layout_is_a_wide_valid_png(tmp_path):
    out = plot_ecg(_ecg_record(ecg_id=5, report="sinus rhythm"), tmp_path / "ecg.png")
    assert out == tmp_path / "ecg.png"
    img = _assert_image(out, min_width=1800)
    # Four rows of ECG paper at true aspect: the page is wider than tall but not a strip.
    assert 1.3 < img.shape[1] / img.shape[0] < 2.2
    assert _dark_fraction(img) > 0.002
    assert _leftovers(tmp_path) == []


def test_three_lead_and_single_lead_strips(tmp_path):
    three = _assert_image(plot_ecg(_ecg_record(LEADS_3), tmp_path / "three.png"))
    one = _assert_image(plot_ecg(_ecg_record(("I",)), tmp_path / "one.png"))
    # Same 10 s width, one row versus three: the single strip is much shorter.
    assert three.shape[1] == one.shape[1]
    assert one.shape[0] < three.shape[0] * 0.6


def test_record_longer_than_ten_seconds_shows_ten(tmp_path):
    ten = _read_png(plot_ecg(_ecg_record(LEADS_3, duration_s=10.0), tmp_path / "ten.png"))
    long = _read_png(plot_ecg(_ecg_record(LEADS_3, duration_s=25.0), tmp_path / "long.png"))
    assert long.shape == ten.shape


def test_short_records_are_drawn_whole(tmp_path):
    six = _assert_image(plot_ecg(_ecg_record(duration_s=6.0), tmp_path / "six.png"), min_width=1000)
    ten = _read_png(plot_ecg(_ecg_record(duration_s=10.0), tmp_path / "ten.png"))
    assert six.shape[0] == ten.shape[0] and six.shape[1] < ten.shape[1]  # the same four rows, narrower
    # Under 4 s the 3 x 4 columns would be under 1 s each: twelve strips instead, so the page is taller than wide.
    three = _assert_image(plot_ecg(_ecg_record(duration_s=3.0), tmp_path / "three.png"), min_width=800)
    assert three.shape[0] > three.shape[1]
    assert _dark_fraction(three) > 0.001


def test_overlay_and_given_leads(tmp_path):
    truth = _ecg_record()
    generated = replace(truth, signal=np.roll(truth.signal, 3, axis=1) * 0.9)
    plain = _read_png(plot_ecg(truth, tmp_path / "plain.png"))
    over = _assert_image(
        plot_ecg(truth, tmp_path / "over.png", overlay=generated, labels=("truth", "reconstructed"),
                 given_leads=("II", "v1", "V5"))
    )
    assert over.shape == plain.shape
    blue = (over[..., 2] > 0.6) & (over[..., 0] < 0.35) & (over[..., 1] < 0.5)
    assert blue.mean() > 0.001  # the overlay is drawn in blue
    assert _leftovers(tmp_path) == []


def test_overlay_aligns_by_lead_name(tmp_path):
    truth = _ecg_record()
    partial = truth.select(["V6", "II", "V1"])  # other order, fewer leads
    assert _assert_image(plot_ecg(truth, tmp_path / "partial.png", overlay=partial)).size


def test_overlay_mismatch_raises(tmp_path):
    truth = _ecg_record(LEADS_3)
    with pytest.raises(DataError, match="shares no plotted lead"):
        plot_ecg(truth, tmp_path / "x.png", overlay=_ecg_record(("I", "aVR")))
    with pytest.raises(DataError, match="Hz"):
        plot_ecg(truth, tmp_path / "x.png", overlay=_ecg_record(LEADS_3, fs_hz=500.0))
    assert not (tmp_path / "x.png").exists()


def test_bad_inputs_raise_data_error(tmp_path):
    with pytest.raises(DataError, match="given_leads"):
        plot_ecg(_ecg_record(LEADS_3), tmp_path / "g.png", given_leads=("V4",))
    ppg_only = Record(np.zeros((1, 500), np.float32), 125.0, ("PPG",), ("au",))
    with pytest.raises(DataError, match="no ECG lead"):
        plot_ecg(ppg_only, tmp_path / "p.png")
    with pytest.raises(DataError, match="no PPG"):
        plot_ppg_ecg(_ecg_record(LEADS_3), tmp_path / "q.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_ppg_ecg_panels_and_dispatch(tmp_path):
    rec = _ppg_record()
    direct = _assert_image(plot_ppg_ecg(rec, tmp_path / "direct.png", start_s=5.0, duration_s=10.0))
    via = _assert_image(plot_record(rec, tmp_path / "via.png", start_s=5.0, duration_s=10.0))
    assert via.shape == direct.shape
    green = (direct[..., 1] > 0.3) & (direct[..., 0] < 0.2) & (direct[..., 2] < 0.5)
    assert green.mean() > 0.0005  # the PPG trace is there
    with pytest.raises(DataError, match="outside the record"):
        plot_ppg_ecg(rec, tmp_path / "late.png", start_s=100.0)
    generated = replace(rec, signal=rec.signal * 1.1)
    assert _assert_image(plot_record(rec, tmp_path / "over.png", overlay=generated)).size
    assert _leftovers(tmp_path) == []


def test_ppg_ecg_marks_r_peaks_of_both_series(tmp_path):
    rec = _ppg_record()
    generated = replace(rec, signal=rec.signal * 1.1)
    real_peaks, made_peaks = np.arange(0.5, 10, 1.0), np.arange(0.6, 10, 1.0)
    real_only = _assert_image(plot_ppg_ecg(rec, tmp_path / "real.png", overlay=generated, peaks=(real_peaks, None)))
    both = _assert_image(plot_ppg_ecg(rec, tmp_path / "both.png", overlay=generated, peaks=(real_peaks, made_peaks)))
    blue = lambda img: (img[..., 2] > 0.6) & (img[..., 0] < 0.3) & (img[..., 1] < 0.5)  # noqa: E731
    assert both.shape == real_only.shape and blue(both).sum() > blue(real_only).sum() + 100  # ten ▲ triangles
    plain = _assert_image(plot_ppg_ecg(rec, tmp_path / "plain.png", overlay=generated))
    dark = lambda img: img[..., :3].max(axis=-1) < 0.15  # noqa: E731
    assert dark(real_only).sum() != dark(plain).sum()


def test_plot_record_dispatches_ecg_without_ppg(tmp_path):
    img = _assert_image(plot_record(_ecg_record(), tmp_path / "r.png", given_leads=("I",)), min_width=1800)
    assert img.shape[1] > img.shape[0]


def test_failing_save_leaves_no_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    out = tmp_path / "ecg.png"
    out.write_bytes(b"old")

    def broken_savefig(self, fname, *args, **kwargs):
        Path(fname).write_bytes(b"\x89PNG partial")  # a crash half-way through writing
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_ecg(_ecg_record(LEADS_3), out)
    with pytest.raises(OSError, match="disk full"):
        plot_ppg_ecg(_ppg_record(), tmp_path / "ppg.png")
    assert out.read_bytes() == b"old"  # the previous file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ecg.png"]


def test_no_pyplot_figures_accumulate(tmp_path):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    for i in range(3):
        plot_ecg(_ecg_record(("II",), duration_s=4.0), tmp_path / f"{i}.png")
    assert len(plt.get_fignums()) == before


def test_nan_gap_is_tolerated(tmp_path):
    rec = _ecg_record(LEADS_3)
    signal = rec.signal.copy()
    signal[0, 200:300] = np.nan
    signal[2, :] = np.nan  # a whole lead missing
    img = _assert_image(plot_ecg(replace(rec, signal=signal), tmp_path / "nan.png"))
    assert _dark_fraction(img) > 0.001


@pytest.mark.shared_data
def test_real_ptbxl_record(tmp_path):
    root = SHARED_DATA / "ptbxl"
    if not (root / "ptbxl_database.csv").exists():
        pytest.skip("needs ../shared/data (PTB-XL subset); absent here")
    from synth.data.ptbxl import PTBXL

    rec = PTBXL(root, 100)[0]
    assert rec.leads == LEADS_12
    img = _assert_image(plot_ecg(rec, tmp_path / "ptbxl.png"), min_width=1800)
    assert 1.3 < img.shape[1] / img.shape[0] < 2.2
    assert _dark_fraction(img) > 0.002
    assert _leftovers(tmp_path) == []
