"""Training data of the shipped task models, as map-style datasets whose items depend on their index alone.

- :class:`ReportWindows`: PTB-XL windows with the report twice, once as written (mostly German free text) and
  once in English composed from the SCP statements (:func:`synth.data.ptbxl.english_report`); item ``2i`` carries
  the original, ``2i + 1`` the English one. Also labels, age, sex and the heart rate measured on the record.
- :class:`LeadSubsetWindows`: PTB-XL windows with ``leads`` (all twelve) and a ``lead_mask`` drawn from the item's
  index: the wearable 3-lead set, single leads, or any subset, so one model serves every lead set.
- :class:`PPGWindows`: BIDMC PPG windows → ECG lead II, subject-wise splits, overlapping windows.
- :class:`UpsampleWindows`: records present at 100 and 500 Hz: what the 500 Hz window adds to the upsampled 100 Hz one.
- :class:`ReflowPairs`: the records of synthetic cohorts with the noise each was drawn from, to reflow (distil) the
  model that made them.

A training YAML chooses one with ``data.kind`` (``ptbxl``, ``ptbxl_report``, ``ptbxl_leads``, ``bidmc_ppg``,
``ptbxl_upsample``, ``ptbxl_ppg_sim``, ``reflow``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from synth.data.leads import LEADS_12, parse_lead_set
from synth.errors import DataError

#: The lead sets a lead-subset item draws from, with their probabilities; the rest is a random subset.
HEADLINE_SETS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("II", "V1", "V5"), 0.4),  # the wearable 3-lead set
    (("II",), 0.2),
    (("I",), 0.1),
)


def measured_heart_rates(signals: np.ndarray, fs_hz: float, *, progress: bool = False) -> np.ndarray:
    """``(N,)`` heart rate (bpm) of each ``(N, 12, T)`` record from its R-peaks; NaN where none were found."""
    from tqdm.auto import tqdm

    from synth.data.beats import heart_rate

    out = np.full(len(signals), np.nan, dtype=np.float32)
    for i in tqdm(range(len(signals)), desc="heart rate of the training records", unit="rec", disable=not progress):
        out[i] = heart_rate(np.asarray(signals[i], dtype=np.float32), fs_hz)
    return out


class ReportWindows(Dataset):
    """Wraps a :class:`synth.data.torch_data.PTBXLWindows` that has ``report`` in its fields (see module doc)."""

    def __init__(self, base: Any, english: dict[int, str]):
        if "report" not in base.cond_fields:
            raise DataError("ReportWindows needs a base dataset with the report field")
        self.base = base
        ids = [int(i) for i in base.ecg_ids]
        missing = [i for i in ids if i not in english]
        if missing:
            raise DataError(f"no English report for {len(missing)} records (e.g. ecg_id {missing[0]})")
        self.english = [english[i] for i in ids]
        self.sample_shape = base.sample_shape

    def __len__(self) -> int:
        return 2 * len(self.base)

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        x, cond = self.base[index // 2]
        if index % 2:
            cond = {**cond, "report": self.english[(index // 2) // self.base.windows_per_record]}
        return x, cond


def lead_mask_for(index: int, seed: int = 0) -> np.ndarray:
    """``(12,)`` bool: the given leads of item ``index`` (deterministic; see :data:`HEADLINE_SETS`)."""
    rng = np.random.default_rng([seed, zlib.crc32(str(index).encode())])
    u, mask = rng.random(), np.zeros(len(LEADS_12), dtype=bool)
    for leads, p in HEADLINE_SETS:
        if u < p:
            mask[[LEADS_12.index(name) for name in leads]] = True
            return mask
        u -= p
    k = int(rng.integers(1, len(LEADS_12)))  # 1..11 given leads
    mask[rng.choice(len(LEADS_12), k, replace=False)] = True
    return mask


class LeadSubsetWindows(Dataset):
    """Wraps a 12-lead :class:`PTBXLWindows` with ``leads`` in its fields and adds ``lead_mask``."""

    def __init__(self, base: Any, seed: int = 0, fixed: Sequence[str] | None = None):
        if "leads" not in base.cond_fields:
            raise DataError("LeadSubsetWindows needs a base dataset with the leads field")
        self.base, self.seed = base, seed
        self.fixed = None
        if fixed is not None:
            names = parse_lead_set(fixed)
            self.fixed = np.array([name in names for name in LEADS_12])
        self.sample_shape = base.sample_shape

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        x, cond = self.base[index]
        mask = self.fixed if self.fixed is not None else lead_mask_for(index, self.seed)
        return x, {**cond, "lead_mask": mask.copy()}


def normalise_amplitude(x: np.ndarray) -> np.ndarray:
    """``x (..., T)`` minus its median, divided by its 0.5-99.5 percentile range: BIDMC's ECG is not calibrated
    in mV, so the PPG → ECG model learns (and is scored on) this amplitude-free scale (R-peaks near 1)."""
    x = np.asarray(x, dtype=np.float32)
    lo, mid, hi = np.percentile(x, [0.5, 50.0, 99.5], axis=-1, keepdims=True)
    return ((x - mid) / np.maximum(hi - lo, 1e-6)).astype(np.float32)


class PPGWindows(Dataset):
    """BIDMC windows: ``x`` = ECG lead II ``(1, W)`` (amplitude-normalised, :func:`normalise_amplitude`),
    ``cond["ppg"]`` = PPG ``(1, W)`` as recorded (the PPG adapter standardises it); both at 125 Hz.

    ``calibration_s`` > 0 adds ``cond["template"]`` ``(1, W)``: the subject's median beat from the first
    ``calibration_s`` seconds of its ECG drawn at its PPG onsets minus the pulse arrival lag measured there
    (:func:`synth.tasks.ppg2ecg.template_channel`), as a watch that records a short ECG would give it; only
    windows after that stretch are used (inside it the template would be the answer). A record whose stretch has
    too few beats gets a NaN template (none). ``residual``: ``x`` is the ECG minus the template (where there is
    one), for a model that draws around the subject's beat (``beat_template`` with ``residual: true``)."""

    def __init__(self, records: Sequence[Any], window_length: int, window_stride: int | None = None, *,
                 calibration_s: float = 0.0, residual: bool = False):
        from synth.tasks.ppg2ecg import template_channel

        self.window_length = int(window_length)
        self.window_stride = int(window_stride or window_length)
        self.calibration_s = float(calibration_s)
        if residual and self.calibration_s <= 0:
            raise DataError("a residual beat template needs a calibration stretch (data.calibration_s > 0)")
        self.residual = bool(residual)
        self.ecg, self.ppg, self.template, self.index = [], [], [], []
        for rec in records:
            names = [str(n).upper() for n in rec.leads]
            ppg_name = next((n for n in ("PPG", "PLETH") if n in names), None)
            if "II" not in names or ppg_name is None:
                raise DataError(f"BIDMC record without II and PPG channels: {rec.leads}", path=rec.source)
            ecg = np.nan_to_num(rec.signal[names.index("II")]).astype(np.float32)
            ppg = np.nan_to_num(rec.signal[names.index(ppg_name)]).astype(np.float32)
            first = 0
            if self.calibration_s > 0:
                first = int(round(self.calibration_s * rec.fs_hz))
                try:
                    self.template.append(template_channel(ppg, ecg, rec.fs_hz, self.calibration_s))
                except DataError:
                    self.template.append(np.full(len(ecg), np.nan, np.float32))
            room = len(ecg) - first - self.window_length
            n = 1 + room // self.window_stride if room >= 0 else 0
            k = len(self.ecg)
            self.ecg.append(ecg)
            self.ppg.append(ppg)
            self.index += [(k, first + j * self.window_stride) for j in range(n)]
        if not self.index:
            raise DataError(f"no BIDMC window of {self.window_length} samples in {len(records)} records")
        self.sample_shape = (1, self.window_length)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        k, start = self.index[index]
        sl = slice(start, start + self.window_length)
        x = normalise_amplitude(self.ecg[k][None, sl])
        cond = {"ppg": self.ppg[k][None, sl].copy()}
        if self.template:
            cond["template"] = self.template[k][None, sl].copy()
            if self.residual:
                x = x - np.nan_to_num(cond["template"])
        return x, cond


class SimulatedPPGWindows(Dataset):
    """PTB-XL records with a PPG simulated from their own R-peaks (:func:`synth.data.pulse.simulate_ppg`), for
    pretraining PPG → ECG on many more beats than BIDMC has: ``x`` = lead II ``(1, W)`` at ``fs_hz``
    (amplitude-normalised like :class:`PPGWindows`), ``cond["ppg"]`` = the simulated PPG ``(1, W)``.

    Each record's PPG has its own pulse arrival delay, drawn around ``delay_s`` (± ``delay_spread_s``), shape and
    noise, from (``seed``, record): an item depends on its index alone.
    """

    def __init__(self, lead_ii: np.ndarray, fs_in: float, window_length: int, window_stride: int | None = None, *,
                 fs_hz: float = 125.0, delay_s: float = 0.52, delay_spread_s: float = 0.12, seed: int = 0,
                 progress: bool = False):
        from tqdm.auto import tqdm

        from synth.data.beats import detect_r_peaks
        from synth.data.transforms import resample
        from synth.tasks.common import fit_length

        self.window_length = int(window_length)
        self.window_stride = int(window_stride or window_length)
        self.fs_hz, self.delay_s, self.spread, self.seed = float(fs_hz), float(delay_s), float(delay_spread_s), seed
        n_out = int(round(lead_ii.shape[-1] * fs_hz / fs_in))
        self.ecg = fit_length(resample(np.asarray(lead_ii, dtype=np.float32), fs_in, fs_hz), n_out)  # (N, T)
        self.r_peaks, keep = [], []
        for i in tqdm(range(len(self.ecg)), desc="R-peaks for the simulated PPG", unit="rec", disable=not progress):
            try:
                r = detect_r_peaks(self.ecg[i], self.fs_hz)
            except DataError:
                continue
            if len(r) >= 2:
                self.r_peaks.append(r)
                keep.append(i)
        self.ecg = self.ecg[keep]
        per = 1 + (n_out - self.window_length) // self.window_stride if n_out >= self.window_length else 0
        self.index = [(k, j * self.window_stride) for k in range(len(self.ecg)) for j in range(per)]
        if not self.index:
            raise DataError(f"no window of {self.window_length} samples with two R-peaks in {len(lead_ii)} records")
        self.sample_shape = (1, self.window_length)

    def __len__(self) -> int:
        return len(self.index)

    def ppg(self, k: int) -> np.ndarray:
        """The whole simulated PPG of record ``k``."""
        from synth.data.pulse import simulate_ppg

        rng = np.random.default_rng([self.seed, k, 0x99])
        pat = self.delay_s + rng.uniform(-self.spread, self.spread)
        return simulate_ppg(self.r_peaks[k], self.ecg.shape[-1], self.fs_hz, rng, pat_s=pat)

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        k, start = self.index[index]
        sl = slice(start, start + self.window_length)
        return normalise_amplitude(self.ecg[k][None, sl]), {"ppg": self.ppg(k)[None, sl].copy()}


class UpsampleWindows(Dataset):
    """PTB-XL records present at both rates: ``x`` = the 500 Hz window minus the 100 Hz record upsampled to 500 Hz
    (polyphase, :func:`synth.data.transforms.resample`, applied to whole records as at generation time), i.e. what
    the 100 Hz version lacks; ``cond["leads"]`` = the upsampled 100 Hz window (12, W), ``cond["lead_mask"]`` all
    given. A model trained on it turns a 100 Hz record into a 500 Hz one (:mod:`synth.tasks.upsample`).

    Args:
        low, high: ``(N, 12, T)`` and ``(N, 12, 5 T)`` mV arrays of the same records in the same order.
        window_length, window_stride: in 500 Hz samples.
    """

    def __init__(self, low: np.ndarray, high: np.ndarray, window_length: int, window_stride: int | None = None,
                 *, low_fs: float = 100.0, high_fs: float = 500.0):
        from synth.data.transforms import resample
        from synth.tasks.common import fit_length

        if low.ndim != 3 or high.ndim != 3 or len(low) != len(high) or low.shape[1] != high.shape[1]:
            raise DataError(f"low and high rate signals do not pair: {low.shape} vs {high.shape}")
        if len(low) == 0:
            raise DataError("no record is present at both rates")
        total = high.shape[-1]
        up = fit_length(resample(np.nan_to_num(np.asarray(low, dtype=np.float32)), low_fs, high_fs), total)
        self.up = np.ascontiguousarray(up, dtype=np.float32)
        self.residual = (np.nan_to_num(np.asarray(high, dtype=np.float32)) - self.up).astype(np.float32)
        self.window_length = int(window_length)
        self.window_stride = int(window_stride or window_length)
        if not 0 < self.window_length <= total or self.window_stride <= 0:
            raise DataError(f"window_length {window_length} / stride {window_stride} do not fit records of {total} "
                            "samples")
        self.windows_per_record = 1 + (total - self.window_length) // self.window_stride
        self.sample_shape = (high.shape[1], self.window_length)

    def __len__(self) -> int:
        return len(self.up) * self.windows_per_record

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        k, j = divmod(index, self.windows_per_record)
        sl = slice(j * self.window_stride, j * self.window_stride + self.window_length)
        mask = np.ones(self.up.shape[1], dtype=bool)
        return self.residual[k, :, sl].copy(), {"leads": self.up[k, :, sl].copy(), "lead_mask": mask}


class ReflowPairs(Dataset):
    """Teacher samples and their noise, from cohorts a guided teacher made (``synth cohort``): ``x`` = the record's
    ``leads`` (C, T) mV, ``cond`` = the conditions the teacher was given, exactly as it was given them (an empty
    report, label list, age, sex or heart rate in the manifest was absent for the teacher, so it is absent here:
    blank / NaN) plus ``noise`` (``noise_shape``), the N(0, I) draw of the record's noise seed, which the teacher's
    sampler started from (:meth:`synth.generative.base.GenerativeModel.initial_noise`). Training a flow on these
    couplings is reflow (:mod:`synth.generative.flow`).

    Args:
        folders: finished cohort folders, all made at ``fs_hz`` with ``T`` samples.
        classes: the label columns of the model being trained (its labels adapter's classes).
        leads: the model's channels, by name (e.g. the 8 independent leads).
        noise_shape: the model's ``process_shape``.
        keys: the ``cond`` keys the model reads (None: all a cohort has).
    """

    def __init__(self, folders: Sequence[str], classes: Sequence[str] | None, leads: Sequence[str],
                 noise_shape: Sequence[int], keys: Sequence[str] | None = None):
        from synth.data.cohort import Cohort

        if not folders:
            raise DataError("reflow needs at least one cohort folder (data.cohorts)")
        self.cohorts = [Cohort(f, classes=classes) for f in folders]
        self.classes = None if classes is None else list(classes)
        for cohort in self.cohorts:
            names = list(cohort.meta.get("leads", LEADS_12))
            missing = [n for n in leads if n not in names]
            if missing:
                raise DataError(f"cohort has no lead {missing[0]}", path=cohort.path)
        self.lead_index = [[list(c.meta.get("leads", LEADS_12)).index(n) for n in leads] for c in self.cohorts]
        self.noise_shape = tuple(int(n) for n in noise_shape)
        self.keys = None if keys is None else set(keys)
        self.offsets = np.cumsum([0] + [len(c) for c in self.cohorts])
        samples = int(self.cohorts[0].meta.get("samples", 0))
        self.sample_shape = (len(leads), samples)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        import torch

        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs")
        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        cohort, i = self.cohorts[k], index - int(self.offsets[k])
        x = cohort.signal(i)[self.lead_index[k]]
        row = cohort.rows[i]
        cond = cohort.cond(i)
        cond.pop("record")
        if not cohort.label_lists[i]:  # no label given to the teacher: absent, not "all negative"
            cond["labels"] = np.full_like(cond["labels"], np.nan)
        if self.classes is None:
            cond.pop("labels")
        if self.keys is not None:
            cond = {k: v for k, v in cond.items() if k in self.keys}
        generator = torch.Generator().manual_seed(int(row["noise_seed"]))
        cond["noise"] = torch.randn(self.noise_shape, generator=generator).numpy()
        return np.ascontiguousarray(x), cond
