"""100 Hz → 500 Hz through a learned upsampler (``checkpoints/upsample500``).

The generators work at 100 Hz, where PTB-XL has all its records; 500 Hz exists for few of them. A polyphase filter
turns 100 Hz into 500 Hz samples but adds nothing above 50 Hz and keeps the blunted QRS peaks of the 100 Hz version.
The upsampler is a second, conditional model (a cascade): given the record polyphase-upsampled to 500 Hz, it
generates what PTB-XL's 500 Hz recordings hold beyond that (sharper QRS complexes, high-frequency content), in
half-overlapping 2 s windows stitched with a crossfade (:func:`synth.tasks.common.run_windowed`). The output is
the upsampled record plus that detail.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from synth.data.leads import LEADS_12
from synth.data.transforms import resample
from synth.errors import DataError
from synth.tasks.common import check_finite, fit_length, run_windowed, sample_fn

#: The rate the upsampler's input was recorded at in training (PTB-XL ``records100``).
UPSAMPLE_FROM_HZ = 100.0
#: Name of the shipped upsampler under ``checkpoints/``.
UPSAMPLER_NAME = "upsample500"


def check_upsampler(model) -> float:
    """The rate ``model`` upsamples to; :class:`DataError` if it is not a 12-lead upsampler (reads ``leads``)."""
    keys = set(model.conditioning.keys)
    signal = model.cfg.signal
    if "leads" not in keys or int(signal.channels) != len(LEADS_12) or not float(signal.fs_hz) > UPSAMPLE_FROM_HZ:
        raise DataError(f"not a 12-lead upsampler from {UPSAMPLE_FROM_HZ:g} Hz: it reads {sorted(keys)} and makes "
                        f"{signal.channels} channels at {signal.fs_hz} Hz")
    return float(signal.fs_hz)


def upsample(model, x: np.ndarray, fs_hz: float = UPSAMPLE_FROM_HZ, *, steps: int | None = None,
             seed: int | Sequence[int] = 0, batch_size: int = 16, progress: bool = False) -> np.ndarray:
    """``x`` ``(N, 12, T)`` or ``(12, T)`` mV at ``fs_hz`` (100) → the same records at the model's rate (500 Hz).

    ``steps`` Euler steps per window (default: the model's); one step gives the conditional mean of the detail,
    more steps a sample of it. Deterministic under ``seed``; a list of N seeds gives each record its own, so a
    record's detail does not depend on the others it is upsampled with.
    """
    out_fs = check_upsampler(model)
    if float(fs_hz) != UPSAMPLE_FROM_HZ:
        raise DataError(f"the upsampler takes {UPSAMPLE_FROM_HZ:g} Hz records, got {fs_hz:g} Hz",
                        hint=f"resample to {UPSAMPLE_FROM_HZ:g} Hz first")
    x = np.asarray(x, dtype=np.float32)
    single = x.ndim == 2
    batch = x[None] if single else x
    if batch.ndim != 3 or batch.shape[1] != len(LEADS_12):
        raise DataError(f"the upsampler takes (N, 12, T) records in canonical lead order, got {x.shape}")
    check_finite(batch, "record to upsample")
    total = int(round(batch.shape[-1] * out_fs / fs_hz))
    up = fit_length(resample(batch, fs_hz, out_fs), total)  # (N, 12, T_out)
    width = int(model.cfg.signal.length)
    mask = torch.ones(1, len(LEADS_12), dtype=torch.bool)

    def cond_of(windows: torch.Tensor) -> dict:
        return {"leads": windows, "lead_mask": mask.expand(windows.shape[0], -1)}

    per_record = not isinstance(seed, int | np.integer)
    if per_record and len(seed) != len(up):
        raise ValueError(f"{len(seed)} seeds for {len(up)} records")
    fn = sample_fn(model, cond_of, 1, steps=steps, generator=torch.Generator().manual_seed(0 if per_record else seed))
    from tqdm.auto import tqdm

    out = np.empty_like(up)
    for i in tqdm(range(len(up)), desc=f"upsampling to {out_fs:g} Hz", unit="rec", disable=not progress):
        if per_record:
            fn = sample_fn(model, cond_of, 1, steps=steps, generator=torch.Generator().manual_seed(int(seed[i])))
        detail = run_windowed(up[i], width, fn, batch_size=batch_size)[0]  # (12, T_out)
        out[i] = up[i] + detail
    return out[0] if single else out
