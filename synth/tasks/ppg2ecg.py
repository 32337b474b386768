"""PPG → ECG lead II: a PPG of any rate and length, through the PPG-conditioned model.

The PPG is resampled to the model's rate, cut into half-overlapping windows of the model's length (the model
standardises each window itself, so PPG units do not matter) and the generated windows are stitched with a
crossfade (:func:`synth.tasks.common.run_windowed`), then resampled back to the PPG's rate. A PPG shorter than one
window is refused: the model never saw less context.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synth.data.record import Record
from synth.data.transforms import resample
from synth.errors import DataError
from synth.tasks.common import check_finite, fit_length, run_windowed, sample_fn


@dataclass
class PPGToECG:
    """``ecg``: lead II in mV at the PPG's rate (the mean over samples); ``samples`` ``(K, 1, T)``; ``spread`` the
    per-sample std ``(1, T)``."""

    ecg: Record
    samples: np.ndarray
    spread: np.ndarray


def read_ppg(path: str | os.PathLike, *, column: str | None = None, fs_hz: float | None = None,
             leads: tuple[str, ...] | None = None, nan_policy: str = "reject") -> Record:
    """A record holding a ``PPG`` channel (and lead ``II`` when the file has one, e.g. BIDMC).

    ``column`` names the PPG column of a CSV whose headers are not lead names (case-insensitive); ``fs_hz`` is the
    declared rate of CSV/NPY input without a time column; a bare ``.npy`` is taken as one PPG channel unless
    ``leads`` says otherwise.
    """
    from synth.data.readers import read_record, record_format

    p = Path(path)
    if column is not None:
        return _read_csv_column(p, column, fs_hz, nan_policy)
    if record_format(p) == "npy" and leads is None:
        leads = ("PPG",)
    record = read_record(p, fs_hz=fs_hz, leads=leads, nan_policy=nan_policy)
    if "PPG" not in record.leads:
        raise DataError(f"record has no PPG channel; it has {', '.join(record.leads)}", path=p,
                        hint="name the PPG column PPG or PLETH, or pass --ppg-column NAME")
    keep = [n for n in ("II", "PPG") if n in record.leads]
    return record.select(keep)


def _read_csv_column(path: Path, column: str, fs_hz: float | None, nan_policy: str) -> Record:
    import pandas as pd

    from synth.data.readers import _TIME_COLUMNS, check_input_file, rate_from_time_column
    from synth.data.transforms import handle_nan
    from synth.limits import MAX_CSV_BYTES

    check_input_file(path, limit=MAX_CSV_BYTES, what="CSV file")  # a regular file of a readable size, or refused
    try:
        frame = pd.read_csv(path, comment="#")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read CSV: {err}", path=path) from err
    by_name = {str(c).strip().lower(): c for c in frame.columns}
    if column.strip().lower() not in by_name:
        raise DataError(f"no column {column!r}; columns are {', '.join(map(str, frame.columns))}", path=path)
    if fs_hz is None:
        time = [by_name[c] for c in by_name if c in _TIME_COLUMNS]
        if not time or len(frame) < 2:
            raise DataError("CSV has no time column and no sampling rate was given", path=path,
                            hint="pass --in-fs HZ")
        fs_hz = rate_from_time_column(frame[time[0]], path=path)
    try:
        x = frame[by_name[column.strip().lower()]].to_numpy(dtype=np.float32)[None]  # (1, T)
    except (ValueError, TypeError):
        raise DataError(f"column {column!r} has non-numeric values", path=path) from None
    x = handle_nan(x, fs_hz, policy=nan_policy, leads=("PPG",), source=str(path))
    return Record(x, fs_hz, ("PPG",), ("au",), {}, str(path))


def min_duration_s(model) -> float:
    return model.cfg.signal.length / float(model.cfg.signal.fs_hz)


def ppg_to_ecg(model, record: Record, *, num_samples: int = 1, steps: int | None = None, seed: int = 0,
               batch_size: int = 16, progress: bool = True, template: np.ndarray | None = None) -> PPGToECG:
    """Generate lead II for the ``PPG`` channel of ``record`` (any rate, at least one model window long).

    ``template`` ``(T,)`` at the record's rate (:func:`template_channel`) conditions a model that reads one; a
    model that does not refuses it."""
    if "PPG" not in record.leads:
        raise DataError(f"record has no PPG channel; it has {', '.join(record.leads)}", path=record.source)
    if num_samples < 1:
        raise DataError(f"--samples must be at least 1, got {num_samples}")
    fs_model, width = float(model.cfg.signal.fs_hz), int(model.cfg.signal.length)
    if record.duration_s + 1e-9 < min_duration_s(model):
        raise DataError(f"PPG of {record.duration_s:.2f} s is shorter than one model window",
                        path=record.source, hint=f"give at least {min_duration_s(model):g} s of PPG")
    ppg = record.channel("PPG")[None]  # (1, T_in)
    check_finite(ppg, "the PPG", path=record.source)
    if float(np.std(ppg)) == 0.0:
        raise DataError("the PPG is flat (constant)", path=record.source, hint="check the PPG column")
    if template is not None:
        if not reads_template(model):
            raise DataError("this PPG model takes no calibrated beat template", path=record.source,
                            hint="use a model trained with one (configs/task/ppg2ecg_template.yaml)")
        template = np.asarray(template, np.float32).reshape(1, -1)
        if template.shape[-1] != ppg.shape[-1]:
            raise DataError(f"the template has {template.shape[-1]} samples, the PPG {ppg.shape[-1]}",
                            path=record.source)
        ppg = np.concatenate([ppg, template])  # (2, T_in): resampled and windowed together
    elif residual_template(model):
        raise DataError("this PPG model draws the ECG around the subject's own beat and needs a calibration ECG",
                        path=record.source, hint="give --calibrate SECONDS with lead II recorded with the PPG")
    x = resample(ppg, record.fs_hz, fs_model)  # (C, T_m)
    x = fit_length(x, max(width, x.shape[-1]))  # rounding may leave it a sample short of one window

    def cond_of(windows: torch.Tensor) -> dict:
        if template is None:
            return {"ppg": windows}
        return {"ppg": windows[:, :1], "template": windows[:, 1:]}

    generator = torch.Generator().manual_seed(seed)
    fn = sample_fn(model, cond_of, num_samples, steps=steps, generator=generator)
    y = run_windowed(x, width, fn, num_samples=num_samples, batch_size=batch_size,
                     progress="ppg2ecg" if progress else None)  # (K, 1, T_m)
    if template is not None and residual_template(model):  # the crossfade is linear: add it back once, stitched
        y = y + x[None, 1:]
    y = fit_length(resample(y, fs_model, record.fs_hz), record.n_samples)  # (K, 1, T_in)
    meta = {"task": "ppg2ecg", "samples": num_samples, "seed": seed, "steps": steps, "model_fs_hz": fs_model,
            "source": record.source, "beat_template": template is not None}
    ecg = Record(y.mean(axis=0), record.fs_hz, ("II",), metadata=meta)
    spread = y.std(axis=0) if num_samples > 1 else np.zeros_like(y[0])
    return PPGToECG(ecg=ecg, samples=y, spread=spread.astype(np.float32))


def twelve_lead_from(result: PPGToECG, reconstruct_model, *, num_samples: int = 1, seed: int = 0,
                     steps: int | None = None, progress: bool = True):
    """All 12 leads from a generated lead II, through the lead-reconstruction model: ``(lead II record,
    Reconstruction)``; ``steps`` are its sampler steps (None: the model's).

    The PPG model's lead II is amplitude-normalised (its 0.5-99.5 percentile range is 1, about the size of a QRS in
    mV), so the 12 leads are on that relative scale too, not calibrated millivolts.
    """
    from synth.tasks.reconstruct import reconstruct

    lead_ii = Record(result.ecg.signal, result.ecg.fs_hz, ("II",), metadata=dict(result.ecg.metadata),
                     source=result.ecg.source)
    recon = reconstruct(reconstruct_model, lead_ii, ("II",), num_samples=num_samples, steps=steps, seed=seed,
                        progress=progress)
    recon.mean.metadata.update(task="ppg2ecg+reconstruct", amplitude="relative (PPG model scale), not mV")
    return lead_ii, recon


def arrival_offset_s(generated: np.ndarray, recorded: np.ndarray, fs_hz: float) -> float:
    """The systematic lag of the generated R-peaks behind the recorded ones (s; negative: generated early), the
    median signed Δt of the matched beats of a stretch where both are known: a short calibration ECG recorded
    with the PPG. A PPG carries the heartbeat one pulse arrival time (≈ 150-300 ms, subject-dependent) after the
    R-peak, which the model can only learn on average; this measures what is left for one subject. NaN when
    fewer than 3 beats match."""
    from synth.data.beats import rpeak_timing

    dt, _ = rpeak_timing(np.asarray(generated, np.float64), np.asarray(recorded, np.float64), fs_hz, signed=True)
    return float(np.median(dt)) / 1000.0 if len(dt) >= 3 else float("nan")


def shift_signal(x: np.ndarray, seconds: float, fs_hz: float) -> np.ndarray:
    """``x (..., T)`` moved later by ``seconds`` (earlier when negative), whole samples, the edge held."""
    k = int(round(seconds * fs_hz))
    if k == 0:
        return np.array(x, copy=True)
    n = x.shape[-1]
    k = max(-n, min(n, k))
    idx = np.clip(np.arange(n) - k, 0, n - 1)
    return np.take(x, idx, axis=-1)


def calibration_samples(calibration_s: float, n_samples: int, fs_hz: float) -> int:
    """Samples in a calibration stretch of ``calibration_s`` at the start of a recording of ``n_samples``; raises
    :class:`DataError` when it is not positive or does not fit."""
    n = int(round(calibration_s * fs_hz))
    if calibration_s <= 0 or n > n_samples:
        raise DataError(f"calibration stretch of {calibration_s:g} s does not fit the {n_samples / fs_hz:.1f} s "
                        "recording", hint="give a positive length shorter than the recording")
    return n


def calibration_shift_s(generated: np.ndarray, recorded: np.ndarray, fs_hz: float, calibration_s: float) -> float:
    """The shift (s) that lines the generated ``(T,)`` lead II up with the recorded one over their first
    ``calibration_s`` seconds (minus :func:`arrival_offset_s` there); NaN when fewer than 3 beats match."""
    n = calibration_samples(calibration_s, len(generated), fs_hz)
    return -arrival_offset_s(generated[:n], np.nan_to_num(np.asarray(recorded)[:n]), fs_hz)


def calibrate_arrival(result: PPGToECG, recorded_ii: np.ndarray, calibration_s: float) -> tuple[PPGToECG, float]:
    """``result`` with its generated lead II (mean, samples and spread) shifted so that its R-peaks line up with
    the ``recorded_ii`` ones over the first ``calibration_s`` seconds, and the shift applied (s). Raises
    :class:`DataError` when the calibration stretch has too few matching beats."""
    ecg = result.ecg
    shift = calibration_shift_s(ecg.signal[0], recorded_ii, ecg.fs_hz, calibration_s)
    if not np.isfinite(shift):
        raise DataError(f"fewer than 3 beats of the first {calibration_s:g} s match between the generated and the "
                        "recorded ECG", path=ecg.source, hint="a longer calibration stretch, or a cleaner ECG")
    meta = {**ecg.metadata, "arrival_calibration_s": calibration_s, "arrival_shift_s": shift}
    shifted = Record(shift_signal(ecg.signal, shift, ecg.fs_hz), ecg.fs_hz, ecg.leads, metadata=meta,
                     source=ecg.source)
    return PPGToECG(ecg=shifted, samples=shift_signal(result.samples, shift, ecg.fs_hz),
                    spread=shift_signal(result.spread, shift, ecg.fs_hz)), shift


def arrival_lag_s(onsets: np.ndarray, r_peaks: np.ndarray, fs_hz: float, *, max_lag_s: float = 1.0,
                  tolerance_s: float = 0.04) -> float:
    """The pulse arrival lag (s) between ECG ``r_peaks`` and PPG ``onsets`` (both in samples, one stretch): the
    smallest lag in 0.05-``max_lag_s`` that lines up at least 90 % as many onsets with an R-peak (within
    ``tolerance_s``) as the best lag does, refined to the median onset − R-peak distance of those matches.
    Smallest, because with a regular rhythm every lag plus a whole RR interval lines the beats up too. NaN when
    fewer than 3 beats match."""
    on, r = np.asarray(onsets, np.float64), np.asarray(r_peaks, np.float64)
    if len(on) < 3 or len(r) < 3:
        return float("nan")
    lags = np.arange(int(0.05 * fs_hz), int(max_lag_s * fs_hz) + 1, dtype=np.float64)
    tol = tolerance_s * fs_hz
    dist = np.abs(on[None, :, None] - r[None, None, :] - lags[:, None, None]).min(axis=2)  # (lags, onsets)
    score = (dist <= tol).sum(axis=1)
    if score.max() < 3:
        return float("nan")
    lag = lags[np.flatnonzero(score >= 0.9 * score.max())[0]]
    d = on[:, None] - (r[None, :] + lag)
    j = np.abs(d).argmin(axis=1)
    ok = np.abs(d[np.arange(len(on)), j]) <= tol
    return float(np.median(on[ok] - r[j[ok]])) / fs_hz


def calibrated_template(ppg: np.ndarray, recorded_ii: np.ndarray, fs_hz: float, calibration_s: float, *,
                        before_s: float = 0.25, after_s: float = 0.45) -> tuple[np.ndarray, float]:
    """Lead II ``(T,)`` for a whole PPG ``(T,)`` from a short calibration ECG recorded with it (the first
    ``calibration_s`` seconds of ``recorded_ii``, as a watch's single-lead check gives): the subject's median beat
    there (``before_s``/``after_s`` around each R-peak, edges tapered) is drawn at every PPG pulse onset moved back by
    the subject's pulse arrival lag measured there (:func:`arrival_lag_s`). Returns the signal and the lag (s).
    A classic template baseline: it knows the subject's own beat shape and lag, which the model does not. Raises
    :class:`DataError` when the stretch has too few beats."""
    from synth.data.beats import detect_r_peaks
    from synth.data.pulse import pulse_onsets

    ppg = np.nan_to_num(np.asarray(ppg, np.float64))
    n_cal = calibration_samples(calibration_s, len(ppg), fs_hz)
    ii = np.nan_to_num(np.asarray(recorded_ii, np.float64)[:n_cal])
    try:
        r = np.round(detect_r_peaks(ii, fs_hz)).astype(int)
    except DataError:
        r = np.empty(0, int)
    onsets = pulse_onsets(ppg, fs_hz)
    lag = arrival_lag_s(onsets[onsets < n_cal], r, fs_hz)
    a, b = int(round(before_s * fs_hz)), int(round(after_s * fs_hz))
    beats = [ii[k - a : k + b] for k in r if k - a >= 0 and k + b <= n_cal]
    if not np.isfinite(lag) or len(beats) < 3:
        raise DataError(f"fewer than 3 beats in the first {calibration_s:g} s to take a template and a pulse "
                        "arrival lag from", hint="a longer calibration stretch, or a cleaner ECG and PPG")
    template = np.median(np.stack(beats), axis=0)
    template -= np.median(template)
    m = max(1, int(round(0.08 * fs_hz)))
    taper = np.ones(a + b)
    taper[:m] = 0.5 - 0.5 * np.cos(np.pi * np.arange(m) / m)
    taper[-m:] = taper[:m][::-1]
    template *= taper
    out = np.zeros(len(ppg))
    for k in np.round(onsets - lag * fs_hz).astype(int) - a:
        lo, hi = max(0, k), min(len(out), k + a + b)
        if hi > lo:
            out[lo:hi] += template[lo - k : hi - k]
    return out.astype(np.float32), lag


def template_to_ecg(record: Record, calibration_s: float) -> tuple[PPGToECG, float]:
    """:func:`calibrated_template` for a record holding ``PPG`` and a lead ``II`` recorded with it over (at least)
    its first ``calibration_s`` seconds: lead II for the whole PPG, in the recorded lead's units, as a
    :class:`PPGToECG` (one deterministic draw), and the pulse arrival lag (s)."""
    for lead in ("PPG", "II"):
        if lead not in record.leads:
            raise DataError(f"a calibrated template needs PPG and lead II; the input has {', '.join(record.leads)}",
                            path=record.source)
    y, lag = calibrated_template(record.channel("PPG"), record.channel("II"), record.fs_hz, calibration_s)
    meta = {"task": "ppg2ecg", "method": "calibrated template", "arrival_calibration_s": calibration_s,
            "arrival_lag_s": lag, "source": record.source}
    ecg = Record(y[None], record.fs_hz, ("II",), metadata=meta)
    return PPGToECG(ecg=ecg, samples=y[None, None], spread=np.zeros((1, y.size), np.float32)), lag


def template_channel(ppg: np.ndarray, recorded_ii: np.ndarray, fs_hz: float, calibration_s: float) -> np.ndarray:
    """:func:`calibrated_template` ``(T,)`` on the PPG model's amplitude scale (the calibration ECG's 0.5-99.5
    percentile range = 1, as :func:`synth.training.tasks.normalise_amplitude` scales the ECG it learns): the
    ``template`` condition of a model with a ``beat_template`` adapter. Raises :class:`DataError` as
    :func:`calibrated_template` does."""
    y, _ = calibrated_template(ppg, recorded_ii, fs_hz, calibration_s)
    n_cal = calibration_samples(calibration_s, len(ppg), fs_hz)  # the stretch calibrated_template took
    lo, hi = np.percentile(np.nan_to_num(np.asarray(recorded_ii, np.float64)[:n_cal]), [0.5, 99.5])
    return (y / max(hi - lo, 1e-6)).astype(np.float32)


def reads_template(model) -> bool:
    """Whether ``model`` takes a calibrated beat template (a ``beat_template`` adapter)."""
    return "template" in getattr(getattr(model, "conditioning", None), "keys", ())


def residual_template(model) -> bool:
    """Whether ``model`` generates the ECG minus its beat template (``beat_template`` with ``residual: true``)."""
    adapters = getattr(getattr(model, "conditioning", None), "adapters", {})
    return any("template" in a.keys and getattr(getattr(a, "cfg", None), "residual", False)
               for a in adapters.values())


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / max(float(x.std()), 1e-9)


def agreement(generated: np.ndarray, real: np.ndarray, fs_hz: float) -> dict:
    """Pearson r and RMSE of the z-scored signals (BIDMC's ECG is in arbitrary units), heart rates (bpm) and R-peak
    timing: |Δt| of each real R-peak to the nearest generated one within ±150 ms (median and 90th percentile, ms;
    NaN when none matched) and the share of real R-peaks so matched."""
    from synth.data.beats import heart_rate, rpeak_timing

    g, r = _z(np.asarray(generated, np.float64)), _z(np.asarray(real, np.float64))
    hr_g, hr_r = heart_rate(g[None], fs_hz), heart_rate(r[None], fs_hz)
    dt, beats = rpeak_timing(g, r, fs_hz)
    return {"pearson_r": float(np.corrcoef(g, r)[0, 1]), "rmse_z": float(np.sqrt(np.mean((g - r) ** 2))),
            "hr_generated_bpm": float(hr_g), "hr_real_bpm": float(hr_r), "hr_error_bpm": float(abs(hr_g - hr_r)),
            "rpeak_error_ms_median": float(np.median(dt)) if dt.size else float("nan"),
            "rpeak_error_ms_p90": float(np.percentile(dt, 90)) if dt.size else float("nan"),
            "beats_matched": dt.size / beats if beats else float("nan")}


def r_peak_times(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """R-peak times (s) of one ``(T,)`` ECG, empty when none is found."""
    from synth.data.beats import detect_r_peaks

    try:
        return detect_r_peaks(np.nan_to_num(np.asarray(x, np.float64)), fs_hz) / fs_hz
    except DataError:
        return np.empty(0)


def write_ppg2ecg(result: PPGToECG, record: Record, out_dir: Path, *, fmt: str = "wfdb", name: str = "ecg",
                  checkpoint: str = "", plot_s: float = 10.0) -> list[Path]:
    """Write the generated ECG (and its spread with K > 1) and a PPG + ECG plot (with the real ECG when the input
    has one) into ``out_dir`` (an empty staging folder)."""
    from synth.data.plot import plot_ppg_ecg
    from synth.data.writers import write_record
    from synth.tasks.common import record_suffix

    ecg = Record(result.ecg.signal, result.ecg.fs_hz, ("II",), metadata={**result.ecg.metadata,
                                                                        "checkpoint": checkpoint})
    written = write_record(ecg, out_dir / f"{name}{record_suffix(fmt)}", fmt)
    k = result.samples.shape[0]
    if k > 1:
        spread = Record(result.spread, ecg.fs_hz, ("II",), metadata={"what": f"per-sample std over {k} samples (mV)"})
        written += write_record(spread, out_dir / f"{name}_spread{record_suffix(fmt)}", fmt)
    ppg = record.select(["PPG"])
    duration = min(plot_s, record.duration_s)
    title = f"{Path(record.source).name if record.source else 'PPG'}: ECG lead II generated from the PPG"
    if "II" in record.leads:
        real, gen = record.channel("II"), ecg.signal[0]
        units = record.units[record.leads.index("II")]
        if units != "mV":  # BIDMC: arbitrary units; compare shapes on one scale
            real, gen, units = _z(real), _z(gen), "z-score"
        shown = Record(np.stack([real, ppg.signal[0]]), record.fs_hz, ("II", "PPG"), (units, ppg.units[0]),
                       source=record.source)
        overlay = Record(gen[None], record.fs_hz, ("II",), (units,))
        peaks = (r_peak_times(real, record.fs_hz), r_peak_times(gen, record.fs_hz))
        written.append(plot_ppg_ecg(shown, out_dir / f"{name}_ppg.png", duration_s=duration, overlay=overlay,
                                    labels=("real ECG (▼ R-peaks)", "generated ECG (▲ R-peaks)"), title=title,
                                    peaks=peaks))
    else:
        shown = Record(np.stack([ecg.signal[0], ppg.signal[0]]), record.fs_hz, ("II", "PPG"), ("mV", ppg.units[0]),
                       source=record.source)
        written.append(plot_ppg_ecg(shown, out_dir / f"{name}_ppg.png", duration_s=duration, title=title))
    return written
