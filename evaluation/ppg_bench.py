"""``synth bench ppg2ecg``: PPG → ECG lead II on BIDMC's held-out subjects, against a linear baseline.

Each generator turns every test subject's whole PPG recording into lead II; the result and the recorded lead II are
cut into non-overlapping windows (8 s by default) and compared per window:

- **r**: Pearson correlation of the two windows (higher is better; it needs the beats in phase).
- **RMSE** of the z-scored windows (BIDMC's ECG is not calibrated in mV, so amplitudes are compared after
  standardising each window; 0 is perfect, sqrt(2) is what two unrelated signals give).
- **HR error**: |heart rate of the generated window − heart rate of the recorded one| (bpm), from R-peaks.
- **R-peak timing**: every recorded R-peak is matched to the nearest generated one within ±150 ms (a beat's
  worth of tolerance at most heart rates, well beyond a QRS width); the median and 90th percentile of
  |Δt| (ms, lower is better) over matched beats, and the share of recorded beats matched (higher is better). It
  asks the question r only implies: is each QRS drawn where the real one is?

With ``twelve_lead`` every generator's lead II (amplitude-normalised like the PPG model's training target) also
goes through the lead-reconstruction model to all 12 leads, as ``synth ppg2ecg --twelve-lead`` does, and the
reconstructed limb leads that the subject also has on record (aVR for most BIDMC subjects, III for one; BIDMC's
``V``/``MCL`` chest leads have no known position) are compared per window (**r** of the z-scored windows). The
same reconstruction from the *recorded* lead II is the reference: what the 12-lead stage gives with a true lead II.

Intervals are cluster-bootstrap 95% intervals that resample *subjects* (windows of one subject are not
independent). ``baseline:linear`` is a least-squares FIR map from the PPG (±0.6 s of taps, so the pulse transit
delay is covered) to lead II, fitted on the training subjects only; nothing is fitted or selected on the scored
subjects. With a calibration stretch, ``baseline:template`` draws the subject's own median beat from that stretch
at every PPG pulse onset minus the pulse arrival lag measured there
(:func:`synth.tasks.ppg2ecg.calibrated_template`): what a watch that records a short ECG could do without a model.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from synth.data.beats import rpeak_timing
from synth.errors import DataError
from synth.outputs import staged_folder

BASELINES = ("linear", "template")
WINDOW_S = 8.0
FIR_HALF_S = 0.6


def _z(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return (x - x.mean(axis=-1, keepdims=True)) / np.maximum(x.std(axis=-1, keepdims=True), 1e-9)


class LinearPPGBaseline:
    """Ridge FIR map ``ECG[t] ≈ Σ_k w_k · z(PPG)[t + k]``, k in ±``half`` samples, on z-scored windows."""

    def __init__(self, half: int, ridge: float = 1e-2):
        self.half, self.ridge, self.weights = int(half), float(ridge), None

    def _design(self, ppg: np.ndarray) -> np.ndarray:
        p = np.pad(_z(ppg), (self.half, self.half), mode="edge")
        n = len(ppg)
        return np.stack([p[k : k + n] for k in range(2 * self.half + 1)], axis=1)  # (T, taps)

    def fit(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> LinearPPGBaseline:
        taps = 2 * self.half + 1
        gram, rhs = np.zeros((taps, taps)), np.zeros(taps)
        for ppg, ecg in pairs:
            a = self._design(ppg)
            gram += a.T @ a
            rhs += a.T @ _z(ecg)
        self.weights = np.linalg.solve(gram + self.ridge * np.trace(gram) / taps * np.eye(taps), rhs)
        return self

    def predict(self, ppg: np.ndarray) -> np.ndarray:
        return (self._design(ppg) @ self.weights).astype(np.float32)


def _median(v: np.ndarray) -> float:
    return float(np.median(v)) if len(v) else float("nan")


def _quantile(v: np.ndarray, q: float) -> float:
    return float(np.quantile(v, q)) if len(v) else float("nan")


def _windows(x: np.ndarray, width: int) -> np.ndarray:
    n = len(x) // width
    return x[: n * width].reshape(n, width)


def _cluster_ci(values: dict[int, np.ndarray], stat, n_boot: int, seed: int) -> dict:
    from evaluation.bootstrap import percentile_interval

    subjects = sorted(values)
    est = stat(np.concatenate([values[s] for s in subjects]))
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        pick = rng.choice(subjects, len(subjects), replace=True)
        reps.append(stat(np.concatenate([values[s] for s in pick])))
    return percentile_interval(np.asarray(reps), est).as_dict()


def _limb_lead_r(recon_model, lead_ii: np.ndarray, record, width: int, seed: int, skip: int = 0) -> np.ndarray | None:
    """``(windows,)`` r between the limb leads reconstructed from ``lead_ii`` (the full recording) and the ones
    ``record`` has besides II (mean over those leads per window); None when it has none."""
    from synth.data.bidmc import EXTRA_LIMB_LEADS
    from synth.data.record import Record
    from synth.tasks.reconstruct import reconstruct
    from synth.training.tasks import normalise_amplitude

    leads = [lead for lead in record.leads if lead in EXTRA_LIMB_LEADS]
    if not leads:
        return None
    ii = Record(normalise_amplitude(np.nan_to_num(lead_ii))[None], record.fs_hz, ("II",))
    out = reconstruct(recon_model, ii, ("II",), seed=seed, progress=False).mean
    rs = []
    for lead in leads:
        a, b = _z(_windows(out.channel(lead), width)), _z(_windows(np.nan_to_num(record.channel(lead)), width))
        n = min(len(a), len(b))
        rs.append(np.mean(a[:n] * b[:n], axis=1)[skip:])
    return np.mean(rs, axis=0)


def run_ppg2ecg(generators: Sequence[str], data_root: str | os.PathLike, *, out_dir: str | os.PathLike,
                split: str = "test", seed: int = 0, n_boot: int = 1000, steps: int | None = None,
                samples: int = 1, force: bool = False, progress: bool = True, twelve_lead: str | None = None,
                subjects: Sequence[int] | None = None, train_subjects: Sequence[int] | None = None,
                calibration_s: float = 0.0) -> dict:
    """Score each generator (``baseline:linear`` or a PPG → ECG export folder) on ``split``'s subjects;
    ``twelve_lead`` (a reconstruction export folder, ``""`` for the shipped one) adds the 12-lead check.
    ``subjects`` / ``train_subjects`` replace the fixed split's scored and fitting subjects (one fold of a
    subject-grouped cross-validation; ``split`` then only names it in the report).

    ``calibration_s`` > 0 treats the first seconds of each scored recording as a calibration ECG recorded with the
    PPG (as a watch's single-lead ECG would be): every generator's lead II is shifted by that subject's pulse
    arrival offset measured there (:func:`synth.tasks.ppg2ecg.arrival_offset_s`), and only the windows after the
    calibration stretch are scored."""
    from tqdm.auto import tqdm

    from evaluation.bench import _check_out
    from evaluation.physiology import heart_rate
    from synth.data.bidmc import BIDMC, FS_HZ

    t0 = time.perf_counter()
    if subjects is None and split not in ("val", "test"):
        raise DataError(f"split must be val or test, got {split!r}", hint="training subjects are never scored")
    if not generators:
        raise DataError("give at least one --generator")
    out_dir = Path(out_dir)
    _check_out(out_dir, force)
    bidmc = BIDMC(data_root)
    scored = [s for s in (bidmc.split(split) if subjects is None else subjects) if s in bidmc.subjects]
    train = [s for s in (bidmc.split("train") if train_subjects is None else train_subjects) if s in bidmc.subjects]
    if set(scored) & set(train):
        raise DataError(f"subjects {sorted(set(scored) & set(train))} are both scored and fitted on",
                        hint="keep subjects apart")
    if not scored:
        raise DataError(f"no {split} subjects in this BIDMC folder", path=data_root)
    records = {s: bidmc.record(s, limb_leads=twelve_lead is not None) for s in scored}
    width = int(round(WINDOW_S * FS_HZ))
    if calibration_s < 0:
        raise DataError(f"calibration_s must be at least 0, got {calibration_s:g}")
    if "baseline:template" in generators and calibration_s <= 0:
        raise DataError("baseline:template draws the subject's own beat from the calibration ECG",
                        hint="give calibration_s > 0 (--calibration-s 32)")
    n_cal = int(round(calibration_s * FS_HZ))
    skip = -(-n_cal // width)  # windows touched by the calibration stretch are not scored
    truth = {s: _windows(np.nan_to_num(r.channel("II")), width)[skip:] for s, r in records.items()}
    truth = {s: w for s, w in truth.items() if len(w)}
    report: dict = {"command": "ppg2ecg", "data_root": str(data_root), "split": split, "subjects": sorted(truth),
                    "windows": int(sum(len(w) for w in truth.values())), "window_s": WINDOW_S, "fs_hz": FS_HZ,
                    "seed": seed, "n_boot": n_boot, "calibration_s": calibration_s, "generators": {}}
    recon_model = None
    if twelve_lead is not None:
        from synth.tasks.common import load_task_model

        recon_model, recon_folder = load_task_model(twelve_lead or None, "reconstruct",
                                                    required_keys=("leads", "lead_mask"))
        ref = {s: _limb_lead_r(recon_model, records[s].channel("II"), records[s], width, seed, skip)
               for s in tqdm(sorted(truth), desc="12 leads from the recorded lead II", unit="subject",
                             disable=not progress)}
        ref = {s: v for s, v in ref.items() if v is not None}
        if not ref:
            raise DataError(f"no {split} subject has a limb lead besides II to check the 12 leads against",
                            path=data_root)
        report["twelve_lead"] = {
            "checkpoint": str(recon_folder),
            "leads": {int(s): [x for x in records[s].leads if x not in ("II", "PPG")] for s in ref},
            "reference_from_recorded_ii": _cluster_ci(ref, lambda v: float(np.mean(v)), n_boot, seed),
        }
    examples = {}
    for g, text in enumerate(generators):
        start = time.perf_counter()
        if text.startswith("baseline:"):
            name = text.split(":", 1)[1]
            if name not in BASELINES:
                raise DataError(f"unknown baseline {text!r}", hint="choose baseline:linear or baseline:template")
            if name == "template":
                from synth.tasks.ppg2ecg import template_to_ecg

                full, lags = {}, {}
                for s in truth:
                    out, lags[s] = template_to_ecg(records[s].select(["PPG", "II"]), calibration_s)
                    full[s] = out.ecg.signal[0]
                how = (f"the subject's median beat from the first {calibration_s:g} s of its ECG, drawn at every PPG "
                       f"pulse onset minus its pulse arrival lag measured there (median lag "
                       f"{1000 * np.median(list(lags.values())):.0f} ms); nothing fitted on other subjects")
            else:
                if not train:
                    raise DataError("no training subjects to fit baseline:linear on", path=data_root)
                pairs = [(np.nan_to_num(r.channel("PPG")), np.nan_to_num(r.channel("II")))
                         for r in (bidmc.record(s) for s in train)]
                model = LinearPPGBaseline(int(round(FIR_HALF_S * FS_HZ))).fit(pairs)
                full = {s: model.predict(np.nan_to_num(records[s].channel("PPG"))) for s in truth}
                how = (f"ridge FIR map, {2 * model.half + 1} taps (±{FIR_HALF_S} s), fitted on {len(train)} "
                       "training subjects")
        else:
            from synth.tasks.common import load_task_model
            from synth.tasks.ppg2ecg import ppg_to_ecg, reads_template, template_channel

            model, folder = load_task_model(text, "ppg2ecg", required_keys=("ppg",))
            with_template = calibration_s > 0 and reads_template(model)
            gen, full, no_template = {}, {}, []
            for s in tqdm(sorted(truth), desc=text, unit="subject", disable=not progress):
                template = None
                if with_template:  # the subject's own beat from the calibration stretch, as synth ppg2ecg gives it
                    try:
                        template = template_channel(records[s].channel("PPG"), records[s].channel("II"), FS_HZ,
                                                    calibration_s)
                    except DataError:  # too few beats there: the model runs without one
                        template = np.full(records[s].n_samples, np.nan, np.float32)
                        no_template.append(int(s))
                out = ppg_to_ecg(model, records[s].select(["PPG"]), num_samples=samples, steps=steps,
                                 seed=seed + 1000 * g + s, progress=False, template=template)
                full[s] = out.ecg.signal[0]
            how = (f"synth.tasks.ppg2ecg with {folder}: {model.cfg.signal.length}-sample windows crossfaded, "
                   f"{steps or model.process.default_steps} Euler steps, mean of {samples} sample(s)"
                   + (f"; given the subject's beat template from the calibration stretch"
                      f"{f' (none for subjects {no_template})' if no_template else ''}" if with_template else ""))
        shifts = {}
        if calibration_s > 0 and text != "baseline:template":  # the template is placed by its own measured lag
            from synth.tasks.ppg2ecg import calibration_shift_s, shift_signal

            for s in truth:
                shift = calibration_shift_s(full[s], records[s].channel("II"), FS_HZ, calibration_s)
                shifts[s] = shift if np.isfinite(shift) else 0.0  # too few beats matched: left as it is
                full[s] = shift_signal(full[s], shifts[s], FS_HZ)
        gen = {s: _windows(full[s], width)[skip:] for s in truth}
        r_by, rmse_by, hr_by, dt_by, matched_by, offset_by = {}, {}, {}, {}, {}, {}
        for s in truth:
            a, b = _z(gen[s]), _z(truth[s])
            r_by[s] = np.mean(a * b, axis=1)
            rmse_by[s] = np.sqrt(np.mean((a - b) ** 2, axis=1))
            hr_by[s] = np.abs(heart_rate(gen[s][:, None], FS_HZ) - heart_rate(truth[s][:, None], FS_HZ))
            recorded_ii = np.nan_to_num(records[s].channel("II"))[skip * width:]
            dt, beats = rpeak_timing(full[s][skip * width:], recorded_ii, FS_HZ)
            dt_by[s] = dt
            offset_by[s] = rpeak_timing(full[s][skip * width:], recorded_ii, FS_HZ, signed=True)[0]
            matched_by[s] = np.r_[np.ones(len(dt)), np.zeros(beats - len(dt))]
        finite_mean = lambda v: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")  # noqa: E731
        report["generators"][text] = {
            "how": how, "seconds": time.perf_counter() - start,
            "pearson_r": _cluster_ci(r_by, finite_mean, n_boot, seed),
            "rmse_z": _cluster_ci(rmse_by, finite_mean, n_boot, seed),
            "hr_error_bpm": _cluster_ci(hr_by, finite_mean, n_boot, seed),
            "hr_missing_fraction": float(np.mean(np.concatenate([~np.isfinite(v) for v in hr_by.values()]))),
            "per_subject_r": {int(s): float(np.mean(v)) for s, v in r_by.items()},
            "per_subject_hr_error_bpm": {int(s): finite_mean(v) for s, v in hr_by.items()},
            "rpeak_error_ms_median": _cluster_ci(dt_by, _median, n_boot, seed),
            "rpeak_error_ms_p90": _cluster_ci(dt_by, lambda v: _quantile(v, 0.9), n_boot, seed),
            "beats_matched": _cluster_ci(matched_by, finite_mean, n_boot, seed),
            "per_subject_rpeak_error_ms": {int(s): _median(v) for s, v in dt_by.items()},
            # Δt = generated − recorded: a subject's median is its systematic lag (a pulse arrival time the model
            # cannot know), its interquartile range the beat-to-beat scatter around it.
            "per_subject_rpeak_offset_ms": {int(s): _median(v) for s, v in offset_by.items()},
            "per_subject_rpeak_offset_iqr_ms": {int(s): _quantile(v, 0.75) - _quantile(v, 0.25)
                                                for s, v in offset_by.items()},
        }
        if shifts:
            report["generators"][text]["per_subject_calibration_shift_ms"] = {int(s): 1000 * v
                                                                              for s, v in shifts.items()}
        if recon_model is not None:
            limb_by = {s: _limb_lead_r(recon_model, full[s], records[s], width, seed + 1000 * g + s, skip)
                       for s in tqdm(sorted(report["twelve_lead"]["leads"]), desc=f"12 leads from {text}",
                                     unit="subject", disable=not progress)}
            report["generators"][text]["twelve_lead_r"] = _cluster_ci(limb_by, lambda v: float(np.mean(v)), n_boot,
                                                                      seed)
        first = sorted(truth)[0]
        examples[text] = gen[first][0]
    report["wall_s"] = time.perf_counter() - t0
    with staged_folder(out_dir, overwrite=force) as stage:
        _plot(truth[sorted(truth)[0]][0], examples, FS_HZ, sorted(truth)[0], stage / "overlay.png")
        (stage / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        (stage / "report.md").write_text(_markdown(report), encoding="utf-8")
    return report


def _plot(truth: np.ndarray, examples: dict[str, np.ndarray], fs: float, subject: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(len(truth)) / fs
    fig, axes = plt.subplots(len(examples), 1, figsize=(12, 2.4 * len(examples)), sharex=True, squeeze=False)
    for ax, (name, x) in zip(axes[:, 0], examples.items()):
        ax.plot(t, _z(truth), color="black", lw=1.0, label="recorded lead II")
        ax.plot(t, _z(x), color="tab:blue", lw=1.0, alpha=0.85, label=name)
        ax.set_ylabel("z-score")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"PPG → ECG, BIDMC subject {subject}, first {WINDOW_S:g} s window")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _markdown(r: dict) -> str:
    def ci(d: dict) -> str:
        return f"{d['estimate']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"

    lines = ["# synth bench ppg2ecg", "",
             f"BIDMC `{r['data_root']}`, split **{r['split']}** (subjects {', '.join(map(str, r['subjects']))}), "
             f"{r['windows']} windows of {r['window_s']:g} s at {r['fs_hz']:g} Hz, wall time {r['wall_s']:.0f} s.", "",
             *([f"**Calibrated**: the first {r['calibration_s']:g} s of each recording served as a calibration ECG "
                "(each generator's lead II shifted by that subject's measured pulse arrival offset); only the "
                "windows after it are scored.", ""] if r.get("calibration_s") else []),
             "r: Pearson correlation per window (higher is better). RMSE: of z-scored windows (lower is better; "
             "unrelated signals give about 1.41). HR error: bpm (lower is better). Brackets: cluster-bootstrap 95% "
             "intervals over subjects.", "",
             "R-peak timing: |Δt| of each recorded R-peak to the nearest generated one within ±150 ms (ms, median "
             "and 90th percentile over matched beats; lower is better) and the share of recorded beats matched.", "",
             "| generator | r | RMSE (z) | HR error (bpm) | HR not found | R-peak error median (ms) | 90th pct (ms) | "
             "beats matched |", "|---|---|---|---|---|---|---|---|"]
    for name, g in r["generators"].items():
        lines.append(f"| {name} | {ci(g['pearson_r'])} | {ci(g['rmse_z'])} | {ci(g['hr_error_bpm'])} | "
                     f"{g['hr_missing_fraction']:.2f} | {ci(g['rpeak_error_ms_median'])} | "
                     f"{ci(g['rpeak_error_ms_p90'])} | {ci(g['beats_matched'])} |")
    lines += ["", "Per subject (r, median R-peak error ms): " + "; ".join(
        f"{name}: " + ", ".join(f"{s} {g['per_subject_r'][s]:.2f}/{g['per_subject_rpeak_error_ms'][s]:.0f}"
                                for s in g["per_subject_r"]) for name, g in r["generators"].items())]
    lines += ["", "Per subject, signed R-peak offset (generated − recorded, ms: median [interquartile range]; a "
              "constant lag per subject shows as a median far from 0 with a small range): " + "; ".join(
                  f"{name}: " + ", ".join(f"{s} {g['per_subject_rpeak_offset_ms'][s]:+.0f} "
                                          f"[{g['per_subject_rpeak_offset_iqr_ms'][s]:.0f}]"
                                          for s in g.get("per_subject_rpeak_offset_ms", {}))
                  for name, g in r["generators"].items())]
    if "twelve_lead" in r:
        t = r["twelve_lead"]
        leads = ", ".join(f"{s}: {'/'.join(v)}" for s, v in t["leads"].items())
        lines += ["", "## 12 leads from the generated lead II", "",
                  f"Lead II → 12 leads with `{t['checkpoint']}`; r per window between the reconstructed limb leads "
                  f"and the recorded ones (subject: leads {leads}), mean over windows, cluster-bootstrap intervals.",
                  "", "| lead II from | r of the other limb leads |", "|---|---|",
                  f"| the recording (reference) | {ci(t['reference_from_recorded_ii'])} |"]
        lines += [f"| {name} | {ci(g['twelve_lead_r'])} |" for name, g in r["generators"].items()]
    lines += ["", "## Generators", ""] + [f"- **{k}**: {g['how']} ({g['seconds']:.1f} s)." for k, g in
                                          r["generators"].items()]
    lines += ["", "Plot: `overlay.png`.", ""]
    return "\n".join(lines)
