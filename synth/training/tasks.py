"""Training data of the shipped task models, as map-style datasets whose items depend on their index alone.

- :class:`ReportWindows`: PTB-XL windows with the report twice, once as written (mostly German free text) and
  once in English composed from the SCP statements (:func:`synth.data.ptbxl.english_report`); item ``2i`` carries
  the original, ``2i + 1`` the English one. Also labels, age, sex and the heart rate measured on the record.
- :class:`LeadSubsetWindows`: PTB-XL windows with ``leads`` (all twelve) and a ``lead_mask`` drawn from the item's
  index: the wearable 3-lead set, single leads, or any subset, so one model serves every lead set.
- :class:`PPGWindows`: BIDMC PPG windows → ECG lead II, subject-wise splits, overlapping windows.

A training YAML chooses one with ``data.kind`` (``ptbxl``, ``ptbxl_report``, ``ptbxl_leads``, ``bidmc_ppg``).
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

    from evaluation.physiology import heart_rate

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
    ``cond["ppg"]`` = PPG ``(1, W)`` as recorded (the PPG adapter standardises it); both at 125 Hz."""

    def __init__(self, records: Sequence[Any], window_length: int, window_stride: int | None = None):
        self.window_length = int(window_length)
        self.window_stride = int(window_stride or window_length)
        self.ecg, self.ppg, self.index = [], [], []
        for rec in records:
            names = [str(n).upper() for n in rec.leads]
            ppg_name = next((n for n in ("PPG", "PLETH") if n in names), None)
            if "II" not in names or ppg_name is None:
                raise DataError(f"BIDMC record without II and PPG channels: {rec.leads}", path=rec.source)
            ecg = np.nan_to_num(rec.signal[names.index("II")]).astype(np.float32)
            ppg = np.nan_to_num(rec.signal[names.index(ppg_name)]).astype(np.float32)
            n = 1 + (len(ecg) - self.window_length) // self.window_stride if len(ecg) >= self.window_length else 0
            k = len(self.ecg)
            self.ecg.append(ecg)
            self.ppg.append(ppg)
            self.index += [(k, j * self.window_stride) for j in range(n)]
        if not self.index:
            raise DataError(f"no BIDMC window of {self.window_length} samples in {len(records)} records")
        self.sample_shape = (1, self.window_length)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        k, start = self.index[index]
        sl = slice(start, start + self.window_length)
        return normalise_amplitude(self.ecg[k][None, sl]), {"ppg": self.ppg[k][None, sl].copy()}
