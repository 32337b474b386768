"""Do free-text prompts alone steer the report → 12-lead model? English and German prompts, no labels.

For each prompt the model generates ``--n`` records from the text only (labels, age, sex and heart rate absent);
the shipped PTB-XL classifier (``checkpoints/ecg_classifier_ptbxl``, trained on real records only) then scores
them. A prompt steers the output when the classifier's mean probability of the class the prompt names is higher
than for the same class under the "normal ECG" prompt of the same language. Writes a JSON and a Markdown table.

    python benchmarks/prompt_steering.py --n 64 --out benchmarks/results/prompt_steering.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

# (class the prompt names, English prompt, German prompt in PTB-XL's own wording)
PROMPTS: tuple[tuple[str, str, str], ...] = (
    ("NORM", "sinus rhythm, normal ECG", "sinusrhythmus normales ekg"),
    ("MI", "sinus rhythm, inferior myocardial infarction", "sinusrhythmus inferiorer infarkt"),
    ("STTC", "sinus rhythm, non-specific ST changes, T-wave abnormality",
     "sinusrhythmus st-senkung t-abflachung"),
    ("CD", "sinus rhythm, complete left bundle branch block", "sinusrhythmus linksschenkelblock"),
    ("HYP", "sinus rhythm, left ventricular hypertrophy", "sinusrhythmus linksventrikulÄre hypertrophie"),
)


def main() -> None:
    from evaluation.classifier import ClassifierFeatures, load_classifier
    from synth.checkpoint import load_pretrained
    from synth.tasks.common import checkpoints_root

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(checkpoints_root() / "report2ecg"))
    parser.add_argument("--classifier", default=str(checkpoints_root() / "ecg_classifier_ptbxl"))
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--guidance-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/prompt_steering.json")
    args = parser.parse_args()

    model = load_pretrained(args.model)
    clf = ClassifierFeatures(load_classifier(args.classifier))
    classes = list(clf.model.cfg.classes)
    started = time.perf_counter()
    rows = []
    for language, column in (("English", 1), ("German", 2)):
        for k, prompt in enumerate(PROMPTS):
            text = prompt[column]
            gen = torch.Generator().manual_seed(args.seed + k)
            with torch.no_grad():
                x = model.sample({"report": [text]}, args.n, steps=args.steps, guidance_scale=args.guidance_scale,
                                 generator=gen).numpy()
            probs = clf.predict(x).mean(axis=0)
            rows.append({"language": language, "names": prompt[0], "prompt": text,
                         "mean_probability": dict(zip(classes, probs.round(4).tolist()))})
            print(f"{language:<8} {prompt[0]:<5} {text[:55]:<55} " + " ".join(f"{c} {p:.2f}" for c, p in
                                                                            zip(classes, probs)), flush=True)
    # steering: P(named class | prompt) - P(named class | normal prompt), same language
    for row in rows:
        base = next(r for r in rows if r["language"] == row["language"] and r["names"] == "NORM")
        c = row["names"]
        row["gain_over_normal_prompt"] = None if c == "NORM" else round(
            row["mean_probability"][c] - base["mean_probability"][c], 4)
    result = {"model": args.model, "classifier": args.classifier, "n_per_prompt": args.n, "steps": args.steps,
              "guidance_scale": args.guidance_scale, "seed": args.seed, "wall_s": time.perf_counter() - started,
              "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    lines = ["| language | prompt | " + " | ".join(f"P({c})" for c in classes) + " | gain |",
             "|---|---|" + "---|" * (len(classes) + 1)]
    for r in rows:
        gain = "" if r["gain_over_normal_prompt"] is None else f"{r['gain_over_normal_prompt']:+.2f}"
        lines.append(f"| {r['language']} | {r['prompt']} | " + " | ".join(
            f"**{v:.2f}**" if c == r["names"] else f"{v:.2f}" for c, v in r["mean_probability"].items()) + f" | {gain} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written {out} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
