"""Any subset of leads → all 12: a record of any length and rate, through the reconstruction model.

The given leads are resampled to the model's rate, cut into half-overlapping windows of the model's length and
stitched with a crossfade (:func:`synth.tasks.common.run_windowed`); the result is resampled back to the input's
rate and the given leads are copied through unchanged. With ``num_samples`` > 1 each window is sampled K times:
the mean is the reconstruction and the per-sample standard deviation its spread (an uncertainty estimate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synth.data.leads import LEADS_12, canonical_leads, project_limb_leads, sort_leads
from synth.data.record import Record
from synth.data.transforms import resample
from synth.errors import DataError
from synth.tasks.common import check_finite, fit_length, run_windowed, sample_fn


@dataclass
class Reconstruction:
    """``mean``: 12 leads at the input's rate (given leads copied); ``samples``: ``(K, 12, T)`` mV; ``spread``:
    per-sample std ``(12, T)`` mV (zeros with K = 1 and on the given leads)."""

    mean: Record
    samples: np.ndarray
    spread: np.ndarray
    given: tuple[str, ...]


def check_leads(record: Record, leads: Sequence[str]) -> tuple[str, ...]:
    """The requested leads in canonical order; :class:`DataError` naming the file and the leads it lacks."""
    wanted = canonical_leads(list(leads))
    not_ecg = [n for n in wanted if n not in LEADS_12]
    if not_ecg:
        raise DataError(f"{', '.join(not_ecg)} cannot be given to a 12-lead reconstruction", path=record.source,
                        hint="give ECG leads, e.g. II,V1,V5")
    missing = [n for n in wanted if n not in record.leads]
    if missing:
        raise DataError(f"record has no lead(s) {', '.join(missing)}; it has {', '.join(record.leads)}",
                        path=record.source, hint="pass --leads with leads the record has")
    if set(wanted) == set(LEADS_12):
        raise DataError("all 12 leads were given: nothing to reconstruct", path=record.source,
                        hint="pass the subset to reconstruct from, e.g. --leads II,V1,V5")
    return sort_leads(wanted)


def reconstruct(model, record: Record, leads: Sequence[str], *, num_samples: int = 1, steps: int | None = None,
                seed: int = 0, batch_size: int = 16, progress: bool = True, project_limbs: bool = True
                ) -> Reconstruction:
    """Reconstruct all 12 leads of ``record`` from its ``leads``.

    Args:
        model: a generator reading ``leads`` ((B, 12, W) mV, hidden leads zero) and ``lead_mask`` ((B, 12) bool).
        record: any rate and length; other channels (and leads not in ``leads``) are ignored.
        leads: the leads given to the model (names or a set spec already parsed).
        num_samples: K draws per window; the mean is the reconstruction, their std the spread.
        project_limbs: fit the six limb leads to the lead laws (III = II - I, Goldberger), the given ones
            exactly (:func:`synth.data.leads.project_limb_leads`), so e.g. aVF follows from a given II and the
            generated I instead of being generated on its own.
    """
    given = check_leads(record, leads)
    if num_samples < 1:
        raise DataError(f"--samples must be at least 1, got {num_samples}")
    x_in = record.select(list(given)).signal  # (G, T_in) mV
    check_finite(x_in, f"leads {', '.join(given)}", path=record.source)
    fs_model, width = float(model.cfg.signal.fs_hz), int(model.cfg.signal.length)
    x = resample(x_in, record.fs_hz, fs_model)  # (G, T_m)
    full = np.zeros((len(LEADS_12), x.shape[-1]), dtype=np.float32)
    idx = [LEADS_12.index(n) for n in given]
    full[idx] = x
    mask = torch.zeros(1, len(LEADS_12), dtype=torch.bool)
    mask[0, idx] = True

    def cond_of(windows: torch.Tensor) -> dict:
        return {"leads": windows, "lead_mask": mask.expand(windows.shape[0], -1)}

    generator = torch.Generator().manual_seed(seed)
    fn = sample_fn(model, cond_of, num_samples, steps=steps, generator=generator)
    y = run_windowed(full, width, fn, num_samples=num_samples, batch_size=batch_size,
                     progress="reconstructing" if progress else None)  # (K, 12, T_m)
    y = fit_length(resample(y, fs_model, record.fs_hz), record.n_samples)  # (K, 12, T_in)
    y[:, idx] = x_in  # the given leads are the input, unchanged
    if project_limbs:  # limb leads span two dimensions: make the generated ones obey the lead laws with the given
        y = project_limb_leads(y, [n in given for n in LEADS_12])
        y[:, idx] = x_in
    spread = y.std(axis=0) if num_samples > 1 else np.zeros_like(y[0])
    spread[idx] = 0.0  # exactly: float rounding of K identical copies is not uncertainty
    meta = {"task": "reconstruct", "given_leads": ",".join(given), "samples": num_samples, "seed": seed,
            "steps": steps, "model_fs_hz": fs_model, "source": record.source}
    mean = Record(y.mean(axis=0), record.fs_hz, LEADS_12, metadata=meta)
    return Reconstruction(mean=mean, samples=y, spread=spread.astype(np.float32), given=given)


def truth_of(record: Record) -> Record | None:
    """``record``'s ECG leads as a 12-lead record with NaN where a lead is absent (NaN draws nothing in an overlay);
    None when it has no ECG lead."""
    present = [n for n in LEADS_12 if n in record.leads]
    if not present:
        return None
    sig = np.full((len(LEADS_12), record.n_samples), np.nan, dtype=np.float32)
    for n in present:
        sig[LEADS_12.index(n)] = record.channel(n)
    return Record(sig, record.fs_hz, LEADS_12, metadata=dict(record.metadata), source=record.source)


def write_reconstruction(result: Reconstruction, record: Record, out_dir: Path, *, fmt: str = "wfdb",
                         name: str | None = None, checkpoint: str = "") -> list[Path]:
    """Write the reconstruction into ``out_dir`` (an empty staging folder): the record, its spread (K > 1), a
    per-lead table, an overlay plot of input vs reconstruction and, with K > 1, an uncertainty plot."""
    from synth.data.plot import plot_ecg
    from synth.data.writers import write_record
    from synth.tasks.common import record_suffix, write_table
    from synth.tasks.plots import plot_uncertainty

    stem = name or "reconstructed"
    mean = Record(result.mean.signal, result.mean.fs_hz, LEADS_12,
                  metadata={**result.mean.metadata, "checkpoint": checkpoint})
    written = write_record(mean, out_dir / f"{stem}{record_suffix(fmt)}", fmt)
    k = result.samples.shape[0]
    if k > 1:
        spread = Record(result.spread, mean.fs_hz, LEADS_12,
                        metadata={"task": "reconstruct", "what": f"per-sample std over {k} samples (mV)"})
        written += write_record(spread, out_dir / f"{stem}_spread{record_suffix(fmt)}", fmt)
    truth = truth_of(record)
    rows = []
    for i, lead in enumerate(LEADS_12):
        row = {"lead": lead, "given": lead in result.given, "mean_spread_mv": float(result.spread[i].mean())}
        if truth is not None and lead not in result.given and np.isfinite(truth.signal[i]).all():
            err = mean.signal[i] - truth.signal[i]
            row.update(rmse_mv=float(np.sqrt(np.mean(err**2))),
                       pearson_r=float(np.corrcoef(mean.signal[i], truth.signal[i])[0, 1]))
        rows.append(row)
    written.append(write_table(rows, out_dir / "leads.csv"))
    given_txt = ", ".join(result.given)
    title = f"{Path(record.source).name if record.source else 'record'}: 12 leads from {given_txt}"
    if truth is not None:
        written.append(plot_ecg(truth, out_dir / f"{stem}_overlay.png", overlay=mean, given_leads=result.given,
                                labels=("input", "reconstructed"), title=title))
    else:
        written.append(plot_ecg(mean, out_dir / f"{stem}.png", given_leads=result.given, title=title))
    if k > 1:
        written.append(plot_uncertainty(result.samples, mean.fs_hz, out_dir / f"{stem}_uncertainty.png",
                                        given=result.given, truth=truth, title=f"{title}: mean ± spread, {k} samples"))
    return written
