"""The one record type every reader returns and every writer takes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from synth.data.leads import LEADS_12, canonical_lead, sort_leads
from synth.errors import DataError


@dataclass
class Record:
    """A multichannel recording under the project's data contract.

    Attributes:
        signal: ``(C, T)`` float32. ECG leads in mV; other channels (``PPG``, ``RESP``) in the unit ``units`` says.
        fs_hz: sampling rate in Hz.
        leads: canonical channel names, one per row of ``signal`` (see :mod:`synth.data.leads`).
        units: one unit per channel: ``"mV"`` for ECG read from calibrated files, ``"au"`` for arbitrary units.
        metadata: free-form, JSON-serialisable facts about the record (report, age, sex, labels, ids, ...).
        source: the file the record came from, used in error messages.
    """

    signal: np.ndarray
    fs_hz: float
    leads: tuple[str, ...]
    units: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        sig = np.asarray(self.signal)
        if sig.ndim == 1:
            sig = sig[None, :]
        if sig.ndim != 2:
            raise DataError(f"signal must be (C, T), got shape {sig.shape}", path=self.source)
        if sig.shape[0] == 0 or sig.shape[1] == 0:
            raise DataError(f"record has no {'channels' if sig.shape[0] == 0 else 'samples'}", path=self.source)
        with np.errstate(over="ignore"):  # values beyond float32 become inf, which readers refuse as missing
            self.signal = np.ascontiguousarray(sig, dtype=np.float32)
        self.leads = tuple(self.leads)
        if len(self.leads) != self.signal.shape[0]:
            raise DataError(
                f"{len(self.leads)} lead names for {self.signal.shape[0]} signal rows", path=self.source
            )
        if len(set(self.leads)) != len(self.leads):
            raise DataError(f"duplicate leads in {list(self.leads)}", path=self.source)
        self.units = tuple(self.units) if self.units else ("mV",) * len(self.leads)
        if len(self.units) != len(self.leads):
            raise DataError(f"{len(self.units)} units for {len(self.leads)} leads", path=self.source)
        from synth.limits import check_rate

        self.fs_hz = check_rate(self.fs_hz, path=self.source)

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs_hz

    @property
    def ecg_leads(self) -> tuple[str, ...]:
        return tuple(name for name in self.leads if name in LEADS_12)

    def has(self, leads: str | tuple[str, ...] | list[str]) -> bool:
        wanted = (leads,) if isinstance(leads, str) else tuple(leads)
        return all(name in self.leads for name in wanted)

    def channel(self, name: str) -> np.ndarray:
        """One channel, ``(T,)``."""
        return self.select([name]).signal[0]

    def select(self, leads: tuple[str, ...] | list[str]) -> Record:
        """The record restricted to ``leads``, in that order. Raises :class:`DataError` if any is absent."""
        names = [canonical_lead(n, source=self.source) for n in leads]
        missing = [n for n in names if n not in self.leads]
        if missing:
            raise DataError(
                f"record has no lead(s) {missing}; it has {list(self.leads)}",
                path=self.source,
                hint="choose leads the record has",
            )
        idx = [self.leads.index(n) for n in names]
        return replace(self, signal=self.signal[idx], leads=tuple(names), units=tuple(self.units[i] for i in idx),
                       metadata=dict(self.metadata))

    def canonical_order(self) -> Record:
        """The same channels reordered as I, II, III, aVR, aVL, aVF, V1-V6, then PPG, RESP."""
        return self.select(list(sort_leads(self.leads)))

    def crop(self, start_s: float = 0.0, duration_s: float | None = None) -> Record:
        """A time slice ``[start_s, start_s + duration_s)``; metadata keeps ``offset_s``."""
        start = int(round(start_s * self.fs_hz))
        if start < 0 or start >= self.n_samples:
            raise DataError(f"start {start_s} s is outside the record ({self.duration_s:.2f} s)", path=self.source)
        stop = self.n_samples if duration_s is None else min(self.n_samples, start + int(round(duration_s * self.fs_hz)))
        meta = dict(self.metadata, offset_s=float(self.metadata.get("offset_s", 0.0)) + start / self.fs_hz)
        return replace(self, signal=self.signal[:, start:stop], metadata=meta)
