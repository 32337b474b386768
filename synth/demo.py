"""``synth demo``: the three tasks, offline, on the real sample shipped in the package, into one folder.

1. Report → 12-lead: a few English and German reports with a requested heart rate; the heart rate of each generated
   record is measured (Pan-Tompkins) and compared with the request. The first record is also taken to 500 Hz by
   the learned upsampler (a QRS close-up beside the polyphase-filtered version).
2. Reconstruction: a PTB-XL test-fold (fold 10) record from 3 leads (II, V1, V5) and from 1 lead (II); per-lead RMSE
   and Pearson r of the missing leads against the record's own leads, overlays with the truth.
3. PPG → ECG: 30 s of a BIDMC test subject's PPG; r and RMSE (z-scored: BIDMC's ECG is in arbitrary units) and the
   heart-rate error against the subject's real lead II.
4. ECG → echo: a 10 s apical-four-chamber clip (MP4 + filmstrip) driven by the reconstruction record's ECG; its
   end-diastoles (left-ventricular area maxima) against the ECG's R-peaks, in ms.

The five shipped checkpoints (``checkpoints/report2ecg``, ``upsample500``, ``reconstruct``, ``ppg2ecg``,
``echo_maskgit``, or ``$SYNTH_CHECKPOINTS``) are all required: a missing one stops the demo with an error naming its
folder, before any output is written.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from synth.data.bidmc import BIDMC
from synth.data.leads import LEADS_12
from synth.data.plot import plot_ecg
from synth.data.ptbxl import PTBXL
from synth.data.record import Record
from synth.data.sample import sample_bidmc_root, sample_ptbxl_root
from synth.data.writers import write_record
from synth.echo.generate import DEFAULT_MODEL_NAME as ECHO_MODEL
from synth.errors import DataError
from synth.io_utils import atomic_write_text
from synth.tasks.common import TASK_CHECKPOINTS, checkpoint_path, write_table
from synth.tasks.generate import REPORT_GUIDANCE
from synth.tasks.upsample import UPSAMPLER_NAME

#: (report, requested heart rate in bpm): English and German, as users will prompt.
DEMO_PROMPTS: tuple[tuple[str, float], ...] = (
    ("sinus rhythm, normal ECG", 60.0),
    ("sinus tachycardia, left ventricular hypertrophy", 110.0),
    ("Sinusrhythmus, Linkstyp, sonst normales EKG", 75.0),
    ("Sinusbradykardie, Vorderwandinfarkt", 50.0),
)
RECORDS_PER_PROMPT = 2
#: Classifier-free guidance for report → 12-lead (the default of synth generate).
GUIDANCE_SCALE = REPORT_GUIDANCE
GIVEN_SETS: tuple[tuple[str, tuple[str, ...]], ...] = (("3lead", ("II", "V1", "V5")), ("1lead", ("II",)))
PPG_START_S, PPG_DURATION_S = 30.0, 30.0
#: Every checkpoint the demo runs: the three ECG tasks, the 500 Hz upsampler and ECG → echo.
DEMO_CHECKPOINTS: tuple[str, ...] = (*TASK_CHECKPOINTS, ECHO_MODEL)


def _step(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _fmt(x: float, spec: str = ".3f") -> str:
    return "n/a" if x is None or not np.isfinite(x) else format(x, spec)


def run_demo(out: Path, *, seed: int = 0) -> dict:
    """Write the demo into ``out`` (an empty folder) and return the figures it reports."""
    from synth.checkpoint import load_pretrained

    folders = {name: checkpoint_path(name) for name in DEMO_CHECKPOINTS}  # all present, or fail before any work
    out.mkdir(parents=True, exist_ok=True)
    figures: dict = {}
    lines = ["# synth demo", "",
             "Every input below is real data shipped in `synth/assets/sample` (PTB-XL and BIDMC, see its "
             "ATTRIBUTION.md); the models are the shipped checkpoints:",
             "", *[f"- `{name}`: `{folder}`" for name, folder in folders.items()], ""]

    t0 = time.perf_counter()
    _step("loading the report → 12-lead model")
    model = load_pretrained(folders["report2ecg"])
    lines += _demo_generate(model, out / "generate", seed, figures)
    _step("taking one of them to 500 Hz through the upsampler")
    lines += _demo_upsample(load_pretrained(folders[UPSAMPLER_NAME]), out / "generate", seed, figures)
    figures["generate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _step("loading the reconstruction model")
    model = load_pretrained(folders["reconstruct"])
    lines += _demo_reconstruct(model, out, seed, figures, str(folders["reconstruct"]))
    figures["reconstruct_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _step("loading the PPG → ECG model")
    model = load_pretrained(folders["ppg2ecg"])
    lines += _demo_ppg(model, out / "ppg2ecg", seed, figures, str(folders["ppg2ecg"]))
    figures["ppg2ecg_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _step("generating an echo clip from the same record's ECG")
    lines += _demo_echo(out / "echo", seed, figures, folders[ECHO_MODEL])
    figures["echo_s"] = time.perf_counter() - t0

    lines += ["## Timing", "", f"report → 12-lead {figures['generate_s']:.1f} s, reconstruction "
              f"{figures['reconstruct_s']:.1f} s, PPG → ECG {figures['ppg2ecg_s']:.1f} s, ECG → echo "
              f"{figures['echo_s']:.1f} s (model loading included).", ""]
    atomic_write_text(out / "summary.md", "\n".join(lines))
    return figures


def _demo_generate(model, folder: Path, seed: int, figures: dict) -> list[str]:
    from synth.tasks.common import model_leads
    from synth.tasks.generate import Prompt, batches_of, build_condition, sample_batch

    folder.mkdir()
    leads = model_leads(model)
    fs = float(model.cfg.signal.fs_hz)
    prompts = [Prompt(report=report, hr=hr, n=RECORDS_PER_PROMPT, seed=seed) for report, hr in DEMO_PROMPTS]
    counts = [p.n for p in prompts]
    _step(f"generating {sum(counts)} ECGs for {len(prompts)} reports (English and German), one batch")
    # One batch for every prompt: a quarter of the network calls of one batch per prompt.
    (items,) = batches_of(prompts, sum(counts))
    x, _ = sample_batch(model, prompts, [build_condition(model, p) for p in prompts], items,
                        guidance_scale=GUIDANCE_SCALE)
    measured = _heart_rates(x, fs)
    rows, table, k = [], [], 0
    for i, prompt in enumerate(prompts):
        for j in range(prompt.n):
            name = f"prompt{i}_{j}"
            info = {**prompt.attributes(), "seed": seed, "batch_index": k, "measured_hr_bpm": float(measured[k])}
            rec = Record(x[k], fs, leads, metadata=info)
            write_record(rec, folder / name, "wfdb")
            if j == 0:
                plot_ecg(rec, folder / f"{name}.png", title=f'"{prompt.report}", {prompt.hr:g} bpm requested')
            rows.append({"record": name, "report": prompt.report, "requested_hr_bpm": prompt.hr,
                         "measured_hr_bpm": float(measured[k]), "seed": seed, "batch_index": k})
            k += 1
        got = measured[k - prompt.n : k]
        err = np.abs(got - prompt.hr)
        table.append(f"| {prompt.report} | {prompt.hr:g} | {', '.join(_fmt(m, '.0f') for m in got)} | "
                     f"{_fmt(float(np.nanmean(err)), '.1f') if np.isfinite(err).any() else 'n/a'} |")
    write_table(rows, folder / "metadata.csv")
    errors = np.abs(measured - np.repeat([p.hr for p in prompts], counts))
    mae = float(np.nanmean(errors)) if np.isfinite(errors).any() else float("nan")
    figures["generate_hr_mae_bpm"] = mae
    return ["## Report → 12-lead", "",
            f"{RECORDS_PER_PROMPT} records per report (WFDB in `generate/`, guidance scale {GUIDANCE_SCALE:g}), heart "
            "rate measured on the generated "
            "record (Pan-Tompkins over all leads) against the one requested. Mean absolute HR error "
            f"**{_fmt(mae, '.1f')} bpm**.", "",
            "| report | requested HR (bpm) | measured HR (bpm) | abs. error (bpm) |", "|---|---|---|---|", *table, "",
            *[f"![prompt {i}](generate/prompt{i}_0.png)\n" for i in range(len(DEMO_PROMPTS))]]


def _demo_upsample(upsampler, folder: Path, seed: int, figures: dict) -> list[str]:
    """The first generated record at 500 Hz through the learned upsampler, beside the polyphase-resampled one."""
    from evaluation.upsample_bench import high_frequency_share
    from synth.data.readers import read_record
    from synth.data.transforms import resample
    from synth.tasks.plots import plot_qrs_closeup
    from synth.tasks.upsample import upsample

    rec = read_record(folder / "prompt0_0.hea")
    fs_out = float(upsampler.cfg.signal.fs_hz)
    learned = upsample(upsampler, rec.signal, rec.fs_hz, seed=seed)
    polyphase = resample(rec.signal, rec.fs_hz, fs_out)
    write_record(Record(learned, fs_out, rec.leads, metadata={**rec.metadata, "resampled": "learned"}),
                 folder / "prompt0_0_500hz", "wfdb")
    ii = list(rec.leads).index("II")
    plot_qrs_closeup(rec.signal[ii], rec.fs_hz, {"polyphase filter": polyphase[ii], "learned upsampler": learned[ii]},
                     fs_out, folder / "prompt0_0_500hz.png", title="prompt0_0, lead II: 100 Hz → 500 Hz")
    share = float(high_frequency_share(learned[None], fs_out)[0])
    share_poly = float(high_frequency_share(polyphase[None], fs_out)[0])
    figures["upsample_share_above_50hz"] = share
    return ["## 100 Hz → 500 Hz", "",
            f"`prompt0_0` taken to {fs_out:g} Hz by the learned upsampler (`generate/prompt0_0_500hz`, what "
            f"`synth generate --fs 500` does): {100 * share:.2f} % of its power lies above 50 Hz, against "
            f"{100 * share_poly:.3f} % after a polyphase filter (median of PTB-XL's 500 Hz recordings in fold 9: "
            "0.40 %).", "",
            "![100 Hz to 500 Hz](generate/prompt0_0_500hz.png)", ""]


def _heart_rates(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """Heart rate (bpm) of each record ``(N, C, T)``; NaN for a record too short to measure."""
    from synth.data.beats import heart_rate

    try:
        return np.atleast_1d(heart_rate(x, fs_hz))
    except DataError:
        return np.full(len(x), np.nan)


def _demo_record() -> Record:
    """A fold-10 (test) PTB-XL record of the shipped sample that carries a diagnostic superclass (the first one)."""
    ds = PTBXL(sample_ptbxl_root(), 100)
    ids = [i for i in ds.split("test").ecg_ids if ds.metadata(i)["superclasses"]]
    return ds.record(ids[0])


def _demo_reconstruct(model, out: Path, seed: int, figures: dict, checkpoint: str) -> list[str]:
    from evaluation.paired import paired_metrics
    from synth.tasks.reconstruct import reconstruct, write_reconstruction

    record = _demo_record().canonical_order()
    meta = record.metadata
    lines = ["## Reconstruction from 3 leads and from 1 lead", "",
             f"PTB-XL ecg_id {meta['ecg_id']} (fold {meta['strat_fold']}, the test fold; superclasses "
             f"{', '.join(meta['superclasses'])}), {record.duration_s:g} s at {record.fs_hz:g} Hz. Scores are on the "
             "leads *not* given, against the record's own leads.", ""]
    for tag, given in GIVEN_SETS:
        samples = 3 if tag == "1lead" else 1
        _step(f"reconstructing ecg_id {meta['ecg_id']} from {', '.join(given)} ({samples} sample(s))")
        result = reconstruct(model, record, given, num_samples=samples, seed=seed)
        folder = out / f"reconstruct_{tag}"
        folder.mkdir()
        write_reconstruction(result, record, folder, checkpoint=checkpoint)
        write_record(record.select(list(LEADS_12)), folder / "truth", "wfdb")
        m = paired_metrics(result.mean.signal, record.select(list(LEADS_12)).signal, record.fs_hz, given=given)
        mean = m.mean
        figures[f"reconstruct_{tag}_rmse_mv"] = mean["rmse_mv"]
        figures[f"reconstruct_{tag}_r"] = mean["pearson_r"]
        rows = [f"| {lead} | {s.rmse_mv:.3f} | {s.pearson_r:.2f} | {s.amplitude_ratio:.2f} |"
                for lead, s in m.per_lead.items()]
        lines += [f"### From {', '.join(given)}", "",
                  f"Mean over the {len(m.per_lead)} missing leads: RMSE **{mean['rmse_mv']:.3f} mV**, Pearson r "
                  f"**{mean['pearson_r']:.2f}**, amplitude ratio {mean['amplitude_ratio']:.2f} (1 = true amplitude; "
                  "well below 1 = regression to the mean).", "",
                  "| lead | RMSE (mV) | r | amplitude ratio |", "|---|---|---|---|", *rows, "",
                  f"![overlay](reconstruct_{tag}/reconstructed_overlay.png)", ""]
        if samples > 1:
            lines += [f"Spread over {samples} samples (mean ± 1 std; black = truth):", "",
                      f"![uncertainty](reconstruct_{tag}/reconstructed_uncertainty.png)", ""]
    return lines


def _demo_ppg(model, folder: Path, seed: int, figures: dict, checkpoint: str) -> list[str]:
    from synth.tasks.ppg2ecg import agreement, ppg_to_ecg, write_ppg2ecg

    bidmc = BIDMC(sample_bidmc_root())
    subject = bidmc.split("test")[0]
    record = bidmc.record(subject).crop(PPG_START_S, PPG_DURATION_S)
    _step(f"converting {record.duration_s:g} s of BIDMC subject {subject}'s PPG to ECG lead II")
    result = ppg_to_ecg(model, record, seed=seed)
    folder.mkdir()
    write_ppg2ecg(result, record, folder, checkpoint=checkpoint)
    write_record(record, folder / "input", "wfdb")
    a = agreement(result.ecg.signal[0], record.channel("II"), record.fs_hz)
    figures.update({f"ppg2ecg_{k}": v for k, v in a.items()})
    return ["## PPG → ECG", "",
            f"BIDMC subject {subject} (test split), {PPG_START_S:g}-{PPG_START_S + PPG_DURATION_S:g} s at "
            f"{record.fs_hz:g} Hz. Against the subject's real lead II (both z-scored, since BIDMC amplitudes are "
            f"arbitrary units): Pearson r **{a['pearson_r']:.2f}**, RMSE **{a['rmse_z']:.2f}** (z units); heart rate "
            f"{_fmt(a['hr_generated_bpm'], '.0f')} bpm generated vs {_fmt(a['hr_real_bpm'], '.0f')} bpm real "
            f"(error **{_fmt(a['hr_error_bpm'], '.1f')} bpm**). R-peaks (marked ▼ real, ▲ generated): "
            f"{_fmt(100 * a['beats_matched'], '.0f')} % of the real ones have a generated one within 150 ms, "
            f"median timing error **{_fmt(a['rpeak_error_ms_median'], '.0f')} ms** (90th percentile "
            f"{_fmt(a['rpeak_error_ms_p90'], '.0f')} ms).", "",
            "![ppg](ppg2ecg/ecg_ppg.png)", ""]


def _demo_echo(folder: Path, seed: int, figures: dict, checkpoint: Path) -> list[str]:
    from evaluation.echo import extrema_times, lv_area_curve, timing_errors
    from synth.echo.generate import generate_echo
    from synth.echo.timing import beat_times
    from synth.echo.video_io import read_video

    record = _demo_record().canonical_order()
    folder.mkdir()
    info = generate_echo(record, folder / "echo.mp4", model_dir=checkpoint, seed=seed)
    clip = read_video(folder / "echo.mp4")  # what a user gets: the encoded MP4, read back
    duration = clip.video.shape[1] / clip.fps
    ecg = record.select(list(LEADS_12)).signal[:, : int(round(duration * record.fs_hz))]
    try:
        r_s = beat_times(ecg, record.fs_hz).r_s
    except DataError:
        r_s = np.empty(0)
    ed_s = extrema_times(lv_area_curve(clip.video), clip.fps, kind="max")
    errors, misses = timing_errors(ed_s, r_s, duration)
    mae = float(np.mean(np.abs(errors))) if errors else float("nan")
    figures.update(echo_ed_vs_r_mae_ms=mae, echo_ed_matched=len(errors), echo_ed_missed=misses,
                   echo_sample_s=info["sample_seconds"])
    shown = ", ".join(f"{e:+.0f}" for e in errors) or "none"
    return ["## ECG → echo", "",
            f"The first {duration:g} s of the same record's ECG (ecg_id {record.metadata.get('ecg_id')}) drive a "
            f"{clip.video.shape[1]}-frame apical-four-chamber clip at {clip.fps:g} fps (`echo/echo.mp4`; the model "
            "was trained on an ECG-timed ultrasound simulator, not on real echoes). End-diastole (the largest left-ventricular "
            f"area) against the ECG's R-peaks inside the clip: errors {shown} ms (mean absolute "
            f"**{_fmt(mae, '.0f')} ms**, {misses} R-peak(s) without an end-diastole within 0.3 s); sampling took "
            f"{info['sample_seconds']:.1f} s.", "",
            "![echo filmstrip](echo/echo.png)", ""]
