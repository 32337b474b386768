"""Report → 12-lead ECG: prompts (free text, superclass labels, age, sex, heart rate) to records on disk.

A :class:`Prompt` is checked against the model before anything is sampled (:func:`build_condition`); sampling is
deterministic under the prompt's seed (record ``j`` of a prompt draws its noise from :func:`record_seed`, so it is
the same in any batch; batches mix prompts with any attributes);
records at 500 Hz come from the 100 Hz model through the learned upsampler (:mod:`synth.tasks.upsample`, a
cascade) or, when asked, a polyphase filter; the metadata says which. ``synth generate`` and ``synth sample`` both
write through :func:`write_generated`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from synth.errors import DataError, MissingFileError
from synth.tasks.common import check_finite_output, model_leads, record_suffix, write_table

#: Longest report accepted, in characters (PTB-XL reports are under 300; the text encoder reads 64-256 tokens).
MAX_REPORT_CHARS = 2000
#: Columns a prompts CSV may have (all optional).
PROMPT_COLUMNS: tuple[str, ...] = ("report", "labels", "age", "sex", "hr", "n", "seed")
_SEX = {"M": 0.0, "F": 1.0}
#: C0/C1 control characters other than tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


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
        from synth.limits import AGE_RANGE, HEART_RATE_RANGE, RECORDS_RANGE, check_range

        check_range("n (records)", self.n, *RECORDS_RANGE, path=source)
        check_range("seed", self.seed, 0, 2**63 - 1 - 2 * RECORDS_RANGE[1], path=source)
        if self.report is not None and len(self.report) > MAX_REPORT_CHARS:
            raise DataError(f"report of {len(self.report)} characters is too long", path=source,
                            hint=f"keep it under {MAX_REPORT_CHARS} characters")
        if self.report is not None:
            try:
                self.report.encode("utf-8")
            except UnicodeEncodeError:  # bytes that are not UTF-8, passed on by the shell
                raise DataError("report is not valid UTF-8 text", path=source,
                                hint="write the report in UTF-8 (check the terminal's or the file's encoding)") from None
        if self.report is not None and _CONTROL.search(self.report):
            code = ord(_CONTROL.search(self.report).group())
            raise DataError(f"report holds a control character (U+{code:04X})", path=source,
                            hint="remove it; reports are plain text (tabs and line breaks are fine)")
        if self.age is not None:
            check_range("age (years)", self.age, *AGE_RANGE, path=source)
        if self.sex is not None and self.sex not in _SEX:
            raise DataError(f"sex {self.sex!r} is not M or F", path=source)
        if self.hr is not None:
            check_range("heart rate (bpm)", self.hr, *HEART_RATE_RANGE, path=source)

    def attributes(self) -> dict:
        """The prompt as plain metadata (what was given only)."""
        given = {"report": self.report, "labels": ",".join(self.labels) or None, "age": self.age, "sex": self.sex,
                 "hr": self.hr}
        return {k: v for k, v in given.items() if v is not None}


def parse_labels(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").replace(";", ",").split(",") if n.strip()]


def given_keys(prompt: Prompt) -> set[str]:
    """The condition keys ``prompt`` gives (``report``, ``labels``, ``age``, ``sex``, ``heart_rate``)."""
    wanted = {"report": prompt.report, "labels": prompt.labels or None, "age": prompt.age, "sex": prompt.sex,
              "heart_rate": prompt.hr}
    return {k for k, v in wanted.items() if v is not None}


def check_prompt(prompt: Prompt, keys, classes: Sequence[str] | None, *, source: str | None = None) -> None:
    """Refuse a prompt whose attributes a model (reading condition ``keys``, with label ``classes``) cannot take;
    works from a checkpoint's config alone (:func:`condition_spec`), before any weights load."""
    prompt.check(source=source)
    accepted = set(keys)
    unknown = sorted(k for k in given_keys(prompt) if k not in accepted)
    if unknown:
        raise DataError(f"this model takes no {', '.join(unknown)}", path=source,
                        hint=f"it is conditioned on: {', '.join(sorted(accepted)) or 'nothing (unconditional)'}")
    if prompt.labels:
        known = {c.upper() for c in classes or ()}
        bad = [name for name in prompt.labels if name.upper() not in known]
        if bad:
            raise DataError(f"unknown label {bad[0]!r}", path=source,
                            hint=f"this model knows {', '.join(classes or []) or 'no label names'}")


def condition_spec(folder: str | os.PathLike) -> tuple[set[str], list[str] | None]:
    """``(condition keys, label classes)`` of an export, from its ``config.json`` only."""
    from synth import registry
    from synth.checkpoint import read_config
    from synth.config import model_config_from_dict

    cfg = model_config_from_dict(read_config(folder)["model"], source=str(Path(folder) / "config.json"))
    keys, classes = set(), None
    for component in cfg.conditioning.adapters.values():
        keys |= set(registry.get("adapter", component.name).keys)
        if getattr(component.params, "classes", None) is not None:
            classes = list(component.params.classes)
    return keys, classes


def check_modality_guidance(folder: str | os.PathLike, asked: Mapping[str, float] | None,
                            given: Iterable[Collection[str]], *, option: str = "--modality-guidance") -> None:
    """Refuse per-modality guidance (``{modality: w}``) that names a modality the export does not have, or one
    that no request gives (guiding towards an absent condition guides towards nothing); ``given``: the condition
    keys each request gives (:func:`given_keys` of each prompt). From ``config.json`` only, before any weights
    load. Each batch is then guided on the modalities its prompts give (:func:`batch_modality_guidance`)."""
    from synth import registry
    from synth.checkpoint import read_config
    from synth.config import model_config_from_dict

    if not asked:
        return
    cfg = model_config_from_dict(read_config(folder)["model"], source=str(Path(folder) / "config.json"))
    adapters = cfg.conditioning.adapters
    given = [set(keys) for keys in given]
    for name in asked:
        if name not in adapters:
            raise DataError(f"{option}: this model has no modality {name!r}", path=folder,
                            hint=f"its modalities: {', '.join(adapters) or 'none (unconditional)'}")
        keys = set(registry.get("adapter", adapters[name].name).keys)
        if not any(keys & request for request in given):
            raise DataError(f"{option}: modality {name!r} is guided but no prompt gives it",
                            hint=f"give {', '.join(sorted(keys))} or drop its guidance")


def batch_modality_guidance(model, asked: Mapping[str, float] | None, cond: dict) -> dict[str, float] | None:
    """``asked`` restricted to the modalities the batch's ``cond`` gives (None: the model's configured
    defaults, which :meth:`~synth.generative.base.GenerativeModel.guidance_branches` restricts the same way)."""
    if asked is None:
        return None
    return {name: w for name, w in asked.items() if model.conditioning.adapters[name].present(cond)}


#: Classifier-free guidance for report → ECG when none is asked: 2, chosen over 1, 1.5 and 3 on PTB-XL fold 9
#: (FD and condition consistency; checkpoints/report2ecg/README.md).
REPORT_GUIDANCE = 2.0


def guidance_for(folder: str | os.PathLike, asked: float | None, default: float = REPORT_GUIDANCE) -> float:
    """The guidance scale to sample the export ``folder`` at: ``asked``, else ``default``. A model with guidance
    distilled into it (``process.distilled_guidance``) is guided already and samples at 1 only; read from its
    ``config.json``, so a wrong request fails before the model loads."""
    from synth.checkpoint import read_config

    distilled = (read_config(folder)["model"].get("process") or {}).get("distilled_guidance")
    if distilled is None:
        return default if asked is None else float(asked)
    if asked not in (None, 1.0):
        raise DataError(f"this model has guidance {distilled:g} distilled into it and samples at guidance scale 1 "
                        f"only, not {asked:g}", path=folder,
                        hint="leave out --guidance-scale (or use a model without distilled guidance)")
    return 1.0


def build_condition(model, prompt: Prompt, *, source: str | None = None) -> dict:
    """The ``cond`` dict (batch of one) for ``model`` from ``prompt``; unknown label names and attributes the model
    was not trained on are refused."""
    from synth.conditioning.labels import LabelsAdapter

    adapter = next((a for a in model.conditioning.adapters.values() if isinstance(a, LabelsAdapter)), None)
    check_prompt(prompt, model.conditioning.keys, getattr(adapter, "classes", None), source=source)
    cond: dict = {}
    if prompt.report is not None:
        cond["report"] = [prompt.report]
    if prompt.labels:
        cond["labels"] = adapter.multi_hot([prompt.labels])
    for key, value in (("age", prompt.age), ("heart_rate", prompt.hr)):
        if value is not None:
            cond[key] = torch.tensor([float(value)])
    if prompt.sex is not None:
        cond["sex"] = torch.tensor([_SEX[prompt.sex]])
    return cond


def stack_conditions(conds: Sequence[dict], counts: Sequence[int]) -> dict:
    """One ``cond`` for a mixed batch: prompt ``i``'s batch-of-one ``conds[i]`` repeated ``counts[i]`` times.

    Prompts may give different attributes: where one lacks what another gives, its rows carry the missing marker
    (no report, a NaN label row, NaN age/sex/heart rate), which the conditioning stack encodes as that modality
    dropped for those samples (its null token), exactly as a prompt without it would be sampled on its own.
    """
    keys = sorted(set().union(*conds))
    out: dict = {}
    for key in keys:
        given = next(c[key] for c in conds if key in c)
        if isinstance(given, torch.Tensor):
            missing = torch.full((1, *given.shape[1:]), float("nan"))
            out[key] = torch.cat([c.get(key, missing).expand(n, *given.shape[1:]) for c, n in zip(conds, counts)])
        else:
            out[key] = [v for c, n in zip(conds, counts) for v in list(c.get(key, [None])) * n]
    return out


def _cell(row: dict, key: str) -> str | None:
    value = row.get(key)
    return None if value is None or not str(value).strip() else str(value).strip()


def _number(row: dict, key: str, source: str, kind=float):
    text = _cell(row, key)
    if text is None:
        return None
    if kind is int and re.fullmatch(r"[+-]?\d+", text):
        return int(text)  # exactly: a float would round a large seed
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{key} {text!r} is not a number", path=source) from None
    if not math.isfinite(value):
        raise DataError(f"{key} is {text}", path=source, hint="give a finite number or leave the cell empty")
    if kind is int:
        if value != int(value):
            raise DataError(f"{key} {text!r} is not a whole number", path=source)
        if abs(value) >= 2**53:
            raise DataError(f"{key} {text!r} is too large to be read exactly in this form", path=source,
                            hint="write it out in digits")
        return int(value)
    return value


def read_prompts(path: str | os.PathLike, *, default_n: int = 1, default_seed: int = 0) -> list[Prompt]:
    """Prompts from a CSV with any of the columns ``report, labels, age, sex, hr, n, seed`` (one row each).

    Empty cells are "not given"; a row without ``n`` makes ``default_n`` records; a row without ``seed`` uses
    ``default_seed + 100000 * row index`` (so rows never share noise). Unknown or repeated columns, a row with more
    cells than the header names and a cell the csv module cannot hold are refused naming the file (and row), as is a
    file that is not a regular one or is larger than :data:`synth.limits.MAX_PROMPTS_BYTES`.
    """
    import csv

    from synth.data.readers import check_input_file
    from synth.io_utils import read_text_lenient
    from synth.limits import MAX_PROMPTS_BYTES

    p = Path(path)
    if not os.path.lexists(p):
        raise MissingFileError("prompts file not found", path=p)
    check_input_file(p, limit=MAX_PROMPTS_BYTES, what="prompts file",
                     hint="split it into several files, one run each")
    reader = csv.DictReader(read_text_lenient(p).splitlines())
    rows = []
    try:
        header = [str(c).strip().lower() for c in reader.fieldnames or []]
        rows.extend(reader)
    except csv.Error as err:  # a cell over the csv module's field limit (128 K characters), which no report reaches
        too_long = "field larger than field limit" in str(err)
        problem = f"a cell holds over {csv.field_size_limit():,} characters" if too_long else f"cannot parse CSV ({err})"
        raise DataError(f"row {len(rows) + 2} (line {reader.line_num}): {problem}", path=p,
                        hint=f"reports hold at most {MAX_REPORT_CHARS:,} characters; check the quoting of this row"
                        if too_long else "check the quoting of this row") from None
    if not rows:
        raise DataError("prompts file has no rows", path=p, hint=f"write a header ({', '.join(PROMPT_COLUMNS)}) "
                                                                 "and one row per prompt")
    unknown = sorted(set(header) - set(PROMPT_COLUMNS))
    if unknown:
        raise DataError(f"unknown column(s) {unknown}", path=p, hint=f"allowed: {', '.join(PROMPT_COLUMNS)}")
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:  # a row read as a dict keeps the last of them: the first would be silently lost
        raise DataError(f"column {twice[0]!r} appears {header.count(twice[0])} times in the header", path=p,
                        hint="keep one column of each name")
    prompts = []
    for i, raw in enumerate(rows):
        where = f"{p} row {i + 2}"  # the header is line 1
        if any(str(c).strip() for c in raw.get(None) or ()):  # cells beyond the header's: an unquoted comma, say
            raise DataError(f"row has {len(header) + len(raw[None])} cells but the header names {len(header)} "
                            f"column{'s' if len(header) != 1 else ''}", path=where,
                            hint="quote a report that holds commas: \"Sinus rhythm, normal\"")
        row = {str(k).strip().lower(): v for k, v in raw.items() if k is not None}
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
    same_leads = upsampler.cfg.signal.channels == len(model_leads(model))
    if model_fs != UPSAMPLE_FROM_HZ or float(fs_hz) != to_fs or not same_leads:
        raise DataError(f"the upsampler takes 12 leads at {UPSAMPLE_FROM_HZ:g} Hz to {to_fs:g} Hz; this model makes "
                        f"{len(model_leads(model))} leads at {model_fs:g} Hz and {float(fs_hz):g} Hz was asked",
                        hint=f"use --fs {to_fs:g}, or --upsampler polyphase to resample with a filter")


def as_records(model, x: np.ndarray, *, checkpoint: str | None = None) -> np.ndarray:
    """Samples ``(N, C, T)`` as record signals: finite (else :class:`NonFiniteOutputError`), and 12 leads for a
    model of the 8 independent ones."""
    from synth.data.leads import twelve_from_eight

    check_finite_output(x, checkpoint=checkpoint)
    return twelve_from_eight(x) if model.cfg.signal.channels == 8 else x


def record_seed(seed: int, index: int) -> int:
    """The noise seed of record ``index`` of a prompt seeded ``seed``: a 64-bit hash of the pair (NumPy's
    SeedSequence), so each record's noise is its own whatever batch it is sampled in."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0])


def batches_of(prompts: Sequence[Prompt], batch_size: int) -> list[list[tuple[int, int]]]:
    """Every record to make, ``(prompt index, index within the prompt)`` in prompt order, cut into batches of
    ``batch_size`` that may span prompts (one model call each, whatever attributes the prompts give)."""
    plan = [(p, j) for p, prompt in enumerate(prompts) for j in range(prompt.n)]
    return [plan[k:k + batch_size] for k in range(0, len(plan), batch_size)]


def sample_batch(model, prompts: Sequence[Prompt], conds: Sequence[dict], items: Sequence[tuple[int, int]], *,
                 steps: int | None = None, guidance_scale: float = 1.0,
                 modality_guidance: Mapping[str, float] | None = None, fs_hz: float | None = None, upsampler=None,
                 upsample_steps: int | None = None, checkpoint: str | None = None) -> tuple[np.ndarray, list[dict]]:
    """The records ``items`` (``(prompt, index)`` pairs, see :func:`batches_of`) in one model call: ``(n, 12, T)``
    float32 mV at ``fs_hz`` and their metadata. Each record's noise comes from :func:`record_seed`, so a record is
    the same whichever batch holds it (up to floating-point rounding of the batched network). Non-finite samples
    raise :class:`NonFiniteOutputError`. ``modality_guidance``: per-modality guidance weights, applied to the
    modalities the batch gives (:func:`batch_modality_guidance`; None = the model's configured defaults).
    """
    from synth.data.transforms import resample

    model_fs = float(model.cfg.signal.fs_hz)
    out_fs = model_fs if fs_hz is None else float(fs_hz)
    how = "" if out_fs == model_fs else ("learned" if upsampler is not None else "polyphase")
    seeds = [record_seed(prompts[p].seed, j) for p, j in items]
    cond = stack_conditions([conds[p] for p, _ in items], [1] * len(items))
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    with torch.no_grad():
        x = model.sample(cond, len(items), steps=steps, guidance_scale=guidance_scale,
                         modality_guidance=batch_modality_guidance(model, modality_guidance, cond),
                         generator=generators)
    x = as_records(model, x.cpu().numpy(), checkpoint=checkpoint)
    if how == "learned":
        from synth.tasks.upsample import upsample

        x = check_finite_output(upsample(upsampler, x, model_fs, steps=upsample_steps, seed=seeds),
                                checkpoint=checkpoint)
    elif how == "polyphase":
        x = resample(x, model_fs, out_fs)
    meta = [{**prompts[p].attributes(), "prompt": p, "seed": prompts[p].seed, "index": j, "noise_seed": s,
             "steps": steps, "guidance_scale": guidance_scale,
             "modality_guidance": describe_modality_guidance(model, modality_guidance), "fs_hz": out_fs,
             "model_fs_hz": model_fs, "resampled": how} for (p, j), s in zip(items, seeds)]
    return x.astype(np.float32), meta


def describe_modality_guidance(model, asked: Mapping[str, float] | None) -> str:
    """``name=w,...`` of the per-modality guidance a record was sampled with ("" for none): ``asked``, or the
    model's configured defaults when None (each applied where the prompt gives that modality)."""
    weights = dict(model.cfg.conditioning.guidance) if asked is None else dict(asked)
    return ",".join(f"{name}={float(w):g}" for name, w in weights.items() if float(w) != 0.0)


def generate(model, prompt: Prompt, *, steps: int | None = None, guidance_scale: float = 1.0, batch_size: int = 64,
             fs_hz: float | None = None, cond: dict | None = None, progress=None, upsampler=None,
             upsample_steps: int | None = None,
             modality_guidance: Mapping[str, float] | None = None) -> tuple[np.ndarray, list[dict]]:
    """``prompt.n`` records for ``prompt``: ``(n, 12, T)`` float32 mV and one metadata dict per record.

    ``fs_hz`` other than the model's rate: with ``upsampler`` (a 100 → 500 Hz model, :mod:`synth.tasks.upsample`)
    the records are upsampled by it (``upsample_steps``; each record seeded like its noise), else
    polyphase-resampled (:func:`synth.data.transforms.resample`). ``progress`` is a tqdm bar updated per batch.
    ``modality_guidance``: per-modality guidance (:func:`sample_batch`).
    """
    conds = [build_condition(model, prompt) if cond is None else cond]
    check_output_rate(model, fs_hz, upsampler)
    chunks, meta = [], []
    for items in batches_of([prompt], batch_size):
        x, info = sample_batch(model, [prompt], conds, items, steps=steps, guidance_scale=guidance_scale,
                               modality_guidance=modality_guidance, fs_hz=fs_hz, upsampler=upsampler,
                               upsample_steps=upsample_steps)
        chunks.append(x)
        meta += info
        if progress is not None:
            progress.update(len(items))
    return np.concatenate(chunks), meta


#: Journal of a ``write_generated`` run in its (staging) folder: one JSON line per finished batch.
JOURNAL = ".synth-progress.jsonl"
METADATA_COLUMNS = ("record", "prompt", "report", "labels", "age", "sex", "hr", "seed", "index", "noise_seed",
                    "steps", "guidance_scale", "modality_guidance", "fs_hz", "model_fs_hz", "resampled", "upsampler",
                    "checkpoint")


def _finished_batches(journal: Path) -> dict[int, list[dict]]:
    """``{batch: metadata rows}`` of the batches a previous (killed) run finished; a torn last line is ignored
    (its batch is made again)."""
    import json

    done = {}
    if journal.is_file():
        for line in journal.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                done[int(entry["batch"])] = list(entry["rows"])
            except (ValueError, KeyError, TypeError):
                continue
    return done


def write_generated(model, prompts: Sequence[Prompt], out_dir: Path, *, checkpoint: str, steps: int | None = None,
                    guidance_scale: float = 1.0, batch_size: int = 64, fs_hz: float | None = None, fmt: str = "wfdb",
                    plot: int = 1, prefix: str = "ecg", progress: bool = True, upsampler=None,
                    upsampler_checkpoint: str = "", upsample_steps: int | None = None,
                    modality_guidance: Mapping[str, float] | None = None) -> list[dict]:
    """Generate every prompt into ``out_dir`` (a staging folder): records ``{prefix}_{k:05d}`` in ``fmt``, PNGs
    of the first ``plot`` records and ``metadata.csv`` (prompt, attributes, seeds, checkpoint per record).

    All prompts are turned into conditions first, so a bad row fails before any sampling. Records are made in
    batches of ``batch_size`` that mix prompts freely (one model call per batch) and written batch by batch; each
    finished batch is logged in :data:`JOURNAL`, so a run that is killed and started again on the same folder
    with the same settings continues where it stopped and writes the same records. A batch with NaN/inf samples
    stops the run (:class:`NonFiniteOutputError`) before any of it is written. ``upsampler`` (with its
    ``upsampler_checkpoint`` for the metadata), ``modality_guidance``: see :func:`generate`. Returns the rows.
    """
    import json

    from tqdm.auto import tqdm

    from synth.data.plot import plot_ecg
    from synth.data.record import Record
    from synth.data.writers import write_record

    conds = [build_condition(model, p) for p in prompts]
    check_output_rate(model, fs_hz, upsampler)
    leads = model_leads(model)
    journal = out_dir / JOURNAL
    done = _finished_batches(journal)
    total = sum(p.n for p in prompts)
    rows: list[dict] = []
    resumed = sum(len(r) for r in done.values())
    if resumed and progress:
        print(f"resuming: {resumed} of {total} records were written by an interrupted run", flush=True)
    with tqdm(total=total, desc="generating", unit="ECG", disable=not progress) as bar, \
            open(journal, "a", encoding="utf-8") as log:
        for b, items in enumerate(batches_of(prompts, batch_size)):
            if b in done:
                rows += done[b]
                bar.update(len(items))
                continue
            x, meta = sample_batch(model, prompts, conds, items, steps=steps, guidance_scale=guidance_scale,
                                   modality_guidance=modality_guidance, fs_hz=fs_hz, upsampler=upsampler,
                                   upsample_steps=upsample_steps, checkpoint=checkpoint)
            new = []
            for signal, info in zip(x, meta):
                name = f"{prefix}_{len(rows) + len(new):05d}"
                info = {**info, "checkpoint": str(checkpoint),
                        "upsampler": str(upsampler_checkpoint) if info["resampled"] == "learned" else ""}
                rec = Record(signal, info["fs_hz"], leads, metadata=info)
                write_record(rec, out_dir / f"{name}{record_suffix(fmt)}", fmt, overwrite=True)
                if len(rows) + len(new) < plot:
                    plot_ecg(rec, out_dir / f"{name}.png", title=f"{name}: {textual(prompts[info['prompt']])}")
                new.append({"record": name, **info})
            log.write(json.dumps({"batch": b, "rows": new}, default=str) + "\n")
            log.flush()
            os.fsync(log.fileno())
            rows += new
            bar.update(len(items))
    write_table([{c: r.get(c, "") for c in METADATA_COLUMNS} for r in rows], out_dir / "metadata.csv")
    journal.unlink()
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
