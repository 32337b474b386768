"""The three things users come for, as a Python API (the CLI commands are thin wrappers):

- :mod:`synth.tasks.generate`: report / labels / age / sex / heart rate → 12-lead ECG records, at 100 Hz or, through
  the learned upsampler (:mod:`synth.tasks.upsample`), at 500 Hz.
- :mod:`synth.tasks.reconstruct`: any subset of leads of a record → all 12 leads, with a per-sample spread.
- :mod:`synth.tasks.ppg2ecg`: PPG of any rate → ECG lead II.

Shipped checkpoints are found by :func:`checkpoint_path` (``$SYNTH_CHECKPOINTS/<name>`` or
``<repo>/checkpoints/<name>``). Long records go through the models in half-overlapping windows stitched with a
crossfade (:mod:`synth.tasks.common`).
"""

from synth.tasks.common import TASK_CHECKPOINTS, checkpoint_path, checkpoints_root, load_task_model
from synth.tasks.generate import (
    MAX_REPORT_CHARS,
    Prompt,
    build_condition,
    generate,
    read_prompts,
    write_generated,
)
from synth.tasks.ppg2ecg import ppg_to_ecg, read_ppg, write_ppg2ecg
from synth.tasks.reconstruct import check_leads, reconstruct, write_reconstruction
from synth.tasks.upsample import upsample

__all__ = [
    "MAX_REPORT_CHARS", "TASK_CHECKPOINTS", "Prompt", "build_condition", "check_leads", "checkpoint_path",
    "checkpoints_root", "generate", "load_task_model", "ppg_to_ecg", "read_ppg", "read_prompts", "reconstruct",
    "upsample", "write_generated", "write_ppg2ecg", "write_reconstruction",
]  # fmt: skip
