"""Report → 12-lead ECG: prompts (free text, superclass labels, age, sex, heart rate) to records on disk.

A :class:`Prompt` is checked against the model before anything is sampled (:func:`build_condition`); sampling is
deterministic under the prompt's seed (chunk ``c`` of a prompt uses ``torch.Generator().manual_seed(seed + c)``);
records at 500 Hz come from the 100 Hz model through the learned upsampler (:mod:`synth.tasks.upsample`, a
cascade) or, when asked, a polyphase filter; the metadata says which. ``synth generate`` and ``synth sample`` both
write through :func:`write_generated`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from synth.errors import DataError, MissingFileError
from synth.tasks.common import record_suffix, write_table

#: Longest report accepted, in characters (PTB-XL reports are under 300; the text encoder reads 64-256 tokens).
MAX_REPORT_CHARS = 2000
#: Columns a prompts CSV may have (all optional).
PROMPT_COLUMNS: tuple[str, ...] = ("report", "labels", "age", "sex", "hr", "n", "seed")
_SEX = {"M": 0.0, "F": 1.0}


@dataclass
class Prompt:
    """One request: what to condition on, how many records and the seed. ``None`` = not given."""

    report: str | None = None
    labels: list[str] = field(default_factory=list)
    age: float | None = None
    sex: str | None = None  # "M" or "F"
    hr: float | None = None  # bpm
    n: int = 1
    seed: int = 0

    def check(self, *, source: str | None = None) -> None:
        """Refuse values no model should get, naming ``source`` (the prompts file and row) when given."""
        if self.n < 1:
            raise DataError(f"--n must be at least 1, got {self.n}", path=source)
        if self.report is not None and len(self.report) > MAX_REPORT_CHARS:
            raise DataError(f"report of {len(self.report)} characters is too long", path=source,
                            hint=f"keep it under {MAX_REPORT_CHARS} characters")
        if self.age is not None and not 0 <= self.age <= 120:
            raise DataError(f"age {self.age} is outside 0-120 years", path=source)
        if self.sex is not None and self.sex not in _SEX:
            raise DataError(f"sex {self.sex!r} is not M or F", path=source)
        if self.hr is not None and not 20 <= self.hr <= 300:
            raise DataError(f"heart rate {self.hr} bpm is outside 20-300", path=source)

    def attributes(self) -> dict:
        """The prompt as plain metadata (what was given only)."""
        given = {"report": self.report, "labels": ",".join(self.labels) or None, "age": self.age, "sex": self.sex,
                 "hr": self.hr}
        return {k: v for k, v in given.items() if v is not None}


def parse_labels(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").replace(";", ",").split(",") if n.strip()]


def build_condition(model, prompt: Prompt, *, source: str | None = None) -> dict:
    """The ``cond`` dict (batch of one) for ``model`` from ``prompt``; unknown label names and attributes the model
    was not trained on are refused."""
    from synth.conditioning.labels import LabelsAdapter

    prompt.check(source=source)
    accepted = set(model.conditioning.keys)
    wanted = {"report": prompt.report, "labels": prompt.labels or None, "age": prompt.age, "sex": prompt.sex,
              "heart_rate": prompt.hr}
    unknown = sorted(k for k, v in wanted.items() if v is not None and k not in accepted)
    if unknown:
        raise DataError(f"this model takes no {', '.join(unknown)}", path=source,
                        hint=f"it is conditioned on: {', '.join(sorted(accepted)) or 'nothing (unconditional)'}")
    cond: dict = {}
    if prompt.report is not None:
        cond["report"] = [prompt.report]
    if prompt.labels:
        adapter = next(a for a in model.conditioning.adapters.values() if isinstance(a, LabelsAdapter))
        try:
            cond["labels"] = adapter.multi_hot([prompt.labels])
        except ValueError as err:
            raise DataError(str(err), path=source) from err
    for key, value in (("age", prompt.age), ("heart_rate", prompt.hr)):
        if value is not None:
            cond[key] = torch.tensor([float(value)])
    if prompt.sex is not None:
        cond["sex"] = torch.tensor([_SEX[prompt.sex]])
    return cond


def stack_conditions(conds: Sequence[dict], counts: Sequence[int]) -> dict:
    """One ``cond`` for a mixed batch: prompt ``i``'s batch-of-one ``conds[i]`` repeated ``counts[i]`` times.

    Every prompt must give the same keys (an absent modality is a null token, not a value that can be stacked).
    """
    keys = set(conds[0])
    if any(set(c) != keys for c in conds):
        raise DataError("prompts batched together must give the same attributes",
                        hint="generate prompts with different attributes separately")
    out: dict = {}
    for key in sorted(keys):
        if isinstance(conds[0][key], torch.Tensor):
            out[key] = torch.cat([c[key].expand(n, *c[key].shape[1:]) for c, n in zip(conds, counts)])
        else:
            out[key] = [v for c, n in zip(conds, counts) for v in list(c[key]) * n]
    return out


def _cell(row: dict, key: str) -> str | None:
    value = row.get(key)
    return None if value is None or not str(value).strip() else str(value).strip()


def _number(row: dict, key: str, source: str, kind=float):
    text = _cell(row, key)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{key} {text!r} is not a number", path=source) from None
    if not math.isfinite(value):
        raise DataError(f"{key} is {text}", path=source, hint="give a finite number or leave the cell empty")
    if kind is int:
        if value != int(value):
            raise DataError(f"{key} {text!r} is not a whole number", path=source)
        return int(value)
    return value


def read_prompts(path: str | os.PathLike, *, default_n: int = 1, default_seed: int = 0) -> list[Prompt]:
    """Prompts from a CSV with any of the columns ``report, labels, age, sex, hr, n, seed`` (one row each).

    Empty cells are "not given"; a row without ``n`` makes ``default_n`` records; a row without ``seed`` uses
    ``default_seed + 100000 * row index`` (so rows never share noise). Unknown columns are refused.
    """
    import csv

    from synth.io_utils import read_text_lenient

    p = Path(path)
    if not p.is_file():
        raise MissingFileError("prompts file not found", path=p)
    rows = list(csv.DictReader(read_text_lenient(p).splitlines()))
    if not rows:
        raise DataError("prompts file has no rows", path=p, hint=f"write a header ({', '.join(PROMPT_COLUMNS)}) "
                                                                 "and one row per prompt")
    columns = {c.strip().lower() for c in rows[0] if c is not None}
    unknown = sorted(columns - set(PROMPT_COLUMNS))
    if unknown:
        raise DataError(f"unknown column(s) {unknown}", path=p, hint=f"allowed: {', '.join(PROMPT_COLUMNS)}")
    prompts = []
    for i, raw in enumerate(rows):
        row = {str(k).strip().lower(): v for k, v in raw.items() if k is not None}
        where = f"{p} row {i + 2}"  # the header is line 1
        sex = _cell(row, "sex")
        n = _number(row, "n", where, int)
        seed = _number(row, "seed", where, int)
        prompt = Prompt(report=_cell(row, "report"), labels=parse_labels(_cell(row, "labels")),
                        age=_number(row, "age", where), sex=sex.upper() if sex else None, hr=_number(row, "hr", where),
                        n=default_n if n is None else n, seed=default_seed + 100_000 * i if seed is None else seed)
        prompt.check(source=where)
        prompts.append(prompt)
    return prompts


def check_output_rate(model, fs_hz: float | None, upsampler=None) -> None:
    """:class:`DataError` before any work if ``upsampler`` cannot take ``model``'s records to ``fs_hz``."""
    if upsampler is None or fs_hz is None or float(fs_hz) == float(model.cfg.signal.fs_hz):
        return
    from synth.tasks.upsample import UPSAMPLE_FROM_HZ, check_upsampler

    to_fs = check_upsampler(upsampler)
    model_fs = float(model.cfg.signal.fs_hz)
    same_leads = upsampler.cfg.signal.channels == model.cfg.signal.channels
    if model_fs != UPSAMPLE_FROM_HZ or float(fs_hz) != to_fs or not same_leads:
        raise DataError(f"the upsampler takes 12 leads at {UPSAMPLE_FROM_HZ:g} Hz to {to_fs:g} Hz; this model makes "
                        f"{model.cfg.signal.channels} channels at {model_fs:g} Hz and {float(fs_hz):g} Hz was asked",
                        hint=f"use --fs {to_fs:g}, or --upsampler polyphase to resample with a filter")


def generate(model, prompt: Prompt, *, steps: int | None = None, guidance_scale: float = 1.0, batch_size: int = 64,
             fs_hz: float | None = None, cond: dict | None = None, progress=None, upsampler=None,
             upsample_steps: int | None = None) -> tuple[np.ndarray, list[dict]]:
    """``prompt.n`` records for ``prompt``: ``(n, C, T)`` float32 mV and one metadata dict per record.

    ``fs_hz`` other than the model's rate: with ``upsampler`` (a 100 → 500 Hz model, :mod:`synth.tasks.upsample`)
    each chunk is upsampled by it (``upsample_steps``; seeded like the chunk), else polyphase-resampled
    (:func:`synth.data.transforms.resample`). ``progress`` is a tqdm bar updated per chunk.
    """
    from synth.data.transforms import resample

    cond = build_condition(model, prompt) if cond is None else cond
    model_fs = float(model.cfg.signal.fs_hz)
    out_fs = model_fs if fs_hz is None else float(fs_hz)
    check_output_rate(model, out_fs, upsampler)
    how = "" if out_fs == model_fs else ("learned" if upsampler is not None else "polyphase")
    chunks, meta = [], []
    for chunk, start in enumerate(range(0, prompt.n, batch_size)):
        n = min(batch_size, prompt.n - start)
        generator = torch.Generator().manual_seed(prompt.seed + chunk)  # same seed, same records
        with torch.no_grad():
            x = model.sample(cond, n, steps=steps, guidance_scale=guidance_scale, generator=generator)
        x = x.cpu().numpy()
        if how == "learned":
            from synth.tasks.upsample import upsample

            x = upsample(upsampler, x, model_fs, steps=upsample_steps, seed=prompt.seed + chunk)
        elif how == "polyphase":
            x = resample(x, model_fs, out_fs)
        chunks.append(x)
        meta += [{**prompt.attributes(), "seed": prompt.seed, "chunk": chunk, "index_in_chunk": i, "steps": steps,
                  "guidance_scale": guidance_scale, "fs_hz": out_fs, "model_fs_hz": model_fs,
                  "resampled": how} for i in range(n)]
        if progress is not None:
            progress.update(n)
    return np.concatenate(chunks).astype(np.float32), meta


def write_generated(model, prompts: Sequence[Prompt], out_dir: Path, *, checkpoint: str, steps: int | None = None,
                    guidance_scale: float = 1.0, batch_size: int = 64, fs_hz: float | None = None, fmt: str = "wfdb",
                    plot: int = 1, prefix: str = "ecg", progress: bool = True, upsampler=None,
                    upsampler_checkpoint: str = "", upsample_steps: int | None = None) -> list[dict]:
    """Generate every prompt into ``out_dir`` (an empty staging folder): records ``{prefix}_{k:05d}`` in ``fmt``,
    PNGs of the first ``plot`` records and ``metadata.csv`` (prompt, attributes, seed, checkpoint per record).

    All prompts are turned into conditions first, so a bad row fails before any sampling. ``upsampler`` (with its
    ``upsampler_checkpoint`` for the metadata): see :func:`generate`. Returns the rows.
    """
    from tqdm.auto import tqdm

    from synth.data.leads import leads_for_channels
    from synth.data.plot import plot_ecg
    from synth.data.record import Record
    from synth.data.writers import write_record

    conds = [build_condition(model, p) for p in prompts]
    leads = leads_for_channels(model.cfg.signal.channels)
    total = sum(p.n for p in prompts)
    rows: list[dict] = []
    with tqdm(total=total, desc="generating", unit="ECG", disable=not progress) as bar:
        for index, (prompt, cond) in enumerate(zip(prompts, conds)):
            x, meta = generate(model, prompt, steps=steps, guidance_scale=guidance_scale, batch_size=batch_size,
                               fs_hz=fs_hz, cond=cond, progress=bar, upsampler=upsampler,
                               upsample_steps=upsample_steps)
            for signal, info in zip(x, meta):
                name = f"{prefix}_{len(rows):05d}"
                info = {**info, "prompt": index, "checkpoint": str(checkpoint),
                        "upsampler": str(upsampler_checkpoint) if info["resampled"] == "learned" else ""}
                rec = Record(signal, info["fs_hz"], leads, metadata=info)
                write_record(rec, out_dir / f"{name}{record_suffix(fmt)}", fmt)
                if len(rows) < plot:
                    title = f"{name}: {textual(prompt)}"
                    plot_ecg(rec, out_dir / f"{name}.png", title=title)
                rows.append({"record": name, **info})
    columns = ("record", "prompt", "report", "labels", "age", "sex", "hr", "seed", "chunk", "index_in_chunk", "steps",
               "guidance_scale", "fs_hz", "model_fs_hz", "resampled", "upsampler", "checkpoint")
    write_table([{c: r.get(c, "") for c in columns} for r in rows], out_dir / "metadata.csv")
    return rows


def textual(prompt: Prompt, width: int = 90) -> str:
    """A short human description of a prompt, for plot titles."""
    import textwrap

    parts = [f'"{prompt.report}"'] if prompt.report else []
    if prompt.labels:
        parts.append("labels " + ",".join(prompt.labels))
    parts += [f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
              for k, v in (("age", prompt.age), ("sex", prompt.sex), ("HR", prompt.hr)) if v is not None]
    return textwrap.shorten(", ".join(parts) or "unconditional", width=width, placeholder=" …")
