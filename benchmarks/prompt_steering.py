"""Do free-text prompts alone steer the report → 12-lead model? English and German prompts, no labels.

For each prompt the model generates ``--n`` records from the text only (labels, age, sex and heart rate absent);
the shipped PTB-XL statement classifier (``checkpoints/ecg_classifier_ptbxl_statements``, trained on real records
only: 5 superclasses, 21 subclasses, 12 rhythms) then scores them, and the heart rate is measured. A prompt steers
the output when the classifier's mean probability of the statement the prompt names is higher than for the same
statement under the "normal ECG" prompt of the same language. Prompts cover diagnoses (superclass and subclass)
and rhythms (atrial fibrillation, sinus bradycardia, sinus tachycardia). Writes a JSON and a Markdown table.

    python benchmarks/prompt_steering.py --n 64 --guidance-scale 2 --out benchmarks/results/prompt_steering.json

``--out`` and the ``.md`` beside it are new files, claimed before the model loads (never inside or equal to the
``--model`` or ``--classifier`` it reads), and land together by renames when the run completes
(synth.outputs.staged_files).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

# (statements the prompt names, English prompt, German prompt in PTB-XL's own wording)
PROMPTS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("NORM", "SR"), "sinus rhythm, normal ECG", "sinusrhythmus normales ekg"),
    (("MI", "IMI"), "sinus rhythm, inferior myocardial infarction", "sinusrhythmus inferiorer infarkt"),
    (("STTC", "NST_"), "sinus rhythm, non-specific ST changes, T-wave abnormality",
     "sinusrhythmus st-senkung t-abflachung"),
    (("CD", "CLBBB"), "sinus rhythm, complete left bundle branch block", "sinusrhythmus linksschenkelblock"),
    (("CD", "CRBBB"), "sinus rhythm, complete right bundle branch block", "sinusrhythmus rechtsschenkelblock"),
    (("HYP", "LVH"), "sinus rhythm, left ventricular hypertrophy", "sinusrhythmus linksventrikulÄre hypertrophie"),
    (("AFIB",), "atrial fibrillation", "vorhofflimmern"),
    (("SBRAD",), "sinus bradycardia, otherwise normal ECG", "sinusbradykardie sonst normales ekg"),
    (("STACH",), "sinus tachycardia, otherwise normal ECG", "sinustachykardie sonst normales ekg"),
)
FS_HZ = 100


def main(argv: list[str] | None = None) -> int:
    from synth.errors import exit_code_of
    from synth.tasks.common import checkpoints_root

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(checkpoints_root() / "report2ecg"))
    parser.add_argument("--classifier", default=str(checkpoints_root() / "ecg_classifier_ptbxl_statements"))
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--guidance-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/prompt_steering.json",
                        help="JSON report (a new file; the Markdown table goes beside it as .md, also new)")
    args = parser.parse_args(argv)
    if Path(args.out).suffix.lower() == ".md":
        parser.error("--out names the JSON report; its Markdown table is written beside it as .md")
    return exit_code_of(Path(__file__).name, lambda: _run(args))


def _run(args: argparse.Namespace) -> None:
    """Claim ``--out`` and its ``.md`` (new files, apart from the inputs), measure, and write both as one unit."""
    from synth.outputs import WRITER, check_apart, staged_files

    out = Path(args.out)
    md = out.with_suffix(".md")
    inputs = [("--model", args.model), ("--classifier", args.classifier)]
    for path in (out, md):
        check_apart(path, inputs)
    with staged_files([md, out], inputs=inputs) as stage:  # refused here, before the model loads, if either exists
        result, lines = _measure(args)
        (stage / md.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        (stage / out.name).write_text(json.dumps({"writer": WRITER, **result}, indent=2), encoding="utf-8")
    print("\n".join(lines))
    print(f"written {out} and {md} ({result['wall_s']:.0f} s)")


def _measure(args: argparse.Namespace) -> tuple[dict, list[str]]:
    """Every prompt sampled and scored: the JSON result and the lines of the Markdown table."""
    from evaluation.classifier import ClassifierFeatures, load_classifier
    from evaluation.physiology import heart_rate
    from synth.checkpoint import load_pretrained
    from synth.tasks.generate import as_records

    model = load_pretrained(args.model)
    clf = ClassifierFeatures(load_classifier(args.classifier))
    classes = list(clf.model.cfg.classes)
    missing = sorted({c for p in PROMPTS for c in p[0]} - set(classes))
    if missing:
        raise SystemExit(f"{args.classifier}: classifier lacks {missing}; use the statement classifier")
    started = time.perf_counter()
    rows = []
    for language, column in (("English", 1), ("German", 2)):
        for k, prompt in enumerate(PROMPTS):
            text = prompt[column]
            gen = torch.Generator().manual_seed(args.seed + k)
            with torch.no_grad():
                x = model.sample({"report": [text]}, args.n, steps=args.steps, guidance_scale=args.guidance_scale,
                                 generator=gen).numpy()
            x = as_records(model, x)
            probs = dict(zip(classes, clf.predict(x).mean(axis=0).round(4).tolist()))
            hr = heart_rate(x, FS_HZ)
            rows.append({"language": language, "names": list(prompt[0]), "prompt": text,
                         "mean_probability": {c: probs[c] for c in prompt[0]},
                         "heart_rate_median": round(float(np.nanmedian(hr)), 1),
                         "heart_rate_iqr": [round(float(v), 1) for v in np.nanpercentile(hr, [25, 75])],
                         "all_probabilities": probs})
            print(f"{language:<8} {text[:55]:<55} " + " ".join(f"{c} {probs[c]:.2f}" for c in prompt[0])
                  + f"  HR {rows[-1]['heart_rate_median']:.0f}", flush=True)
    # steering: P(named statement | prompt) - P(named statement | normal prompt), same language
    for row in rows:
        base = next(r for r in rows if r["language"] == row["language"] and r["names"][0] == "NORM")
        row["gain_over_normal_prompt"] = None if row is base else {
            c: round(row["mean_probability"][c] - base["all_probabilities"][c], 4) for c in row["names"]}
    result = {"model": args.model, "classifier": args.classifier, "n_per_prompt": args.n, "steps": args.steps,
              "guidance_scale": args.guidance_scale, "seed": args.seed, "wall_s": time.perf_counter() - started,
              "rows": rows}
    lines = [f"n = {args.n} per prompt, guidance scale {args.guidance_scale:g}, classifier {args.classifier}", "",
             "| language | prompt | P(named) under this prompt | P(named) under the normal prompt | HR median [IQR] |",
             "|---|---|---|---|---|"]
    for r in rows:
        base = next(b for b in rows if b["language"] == r["language"] and b["names"][0] == "NORM")
        now = ", ".join(f"{c} {r['mean_probability'][c]:.2f}" for c in r["names"])
        ref = ", ".join(f"{c} {base['all_probabilities'][c]:.2f}" for c in r["names"])
        lo, hi = r["heart_rate_iqr"]
        lines.append(f"| {r['language']} | {r['prompt']} | {now} | {'—' if r is base else ref} | "
                     f"{r['heart_rate_median']:.0f} [{lo:.0f}, {hi:.0f}] |")
    return result, lines


if __name__ == "__main__":
    raise SystemExit(main())
