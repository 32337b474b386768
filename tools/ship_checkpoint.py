"""Copy a trained export into ``checkpoints/`` with its float weights stored as float16 (half the bytes; the model
loads them into float32 parameters, so inference still runs in float32).

    python tools/ship_checkpoint.py runs/echo_maskgit/model checkpoints/echo_maskgit
    python tools/ship_checkpoint.py runs/echo_encoder checkpoints/echo_encoder
    python tools/ship_checkpoint.py runs/upsample500/model checkpoints/upsample500

Sub-folders (the frozen tokenizer under the prior) are converted too. The model card (README.md) is written by hand
from the measured figures.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth.outputs import staged_folder  # noqa: E402


def convert(src: Path, dst: Path) -> None:
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.name == "model.safetensors":
            state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in load_file(str(path)).items()}
            save_file(state, str(target), metadata={"format": "pt", "stored_dtype": "float16"})
        elif path.suffix in (".json", ".md") and not path.name.startswith("."):  # not a run folder's marks
            shutil.copy2(path, target)


def shipped_checkpoint_refusal(folder: Path) -> str | None:
    """A shipped checkpoint folder (config.json + model.safetensors, model card, metrics; frozen parts in
    sub-folders) may be replaced; anything else is refused (None = may be replaced)."""
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        return "it is not a checkpoint folder (no config.json and model.safetensors)"
    odd = [p.name for p in folder.rglob("*") if p.is_file() and p.suffix not in (".json", ".md", ".safetensors",
                                                                                  ".csv")]
    return f"it holds files a checkpoint does not ({', '.join(odd[:3])})" if odd else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    readme = Path(args.dst) / "README.md"
    card = readme.read_text(encoding="utf-8") if readme.is_file() else None  # keep a hand-written card
    with staged_folder(args.dst, overwrite=args.force, owned=shipped_checkpoint_refusal, mark=False) as tmp:
        convert(Path(args.src), tmp)
        if card is not None:
            (tmp / "README.md").write_text(card, encoding="utf-8")
        for path in tmp.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)  # shipped files are readable by everyone
    size = sum(p.stat().st_size for p in Path(args.dst).rglob("*") if p.is_file())
    print(f"wrote {args.dst} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
