"""Copy a trained export into ``checkpoints/`` with its float weights stored as float16 (half the bytes; the model
loads them into float32 parameters, so inference still runs in float32).

    python tools/ship_checkpoint.py runs/echo_maskgit/model checkpoints/echo_maskgit
    python tools/ship_checkpoint.py runs/echo_encoder checkpoints/echo_encoder
    python tools/ship_checkpoint.py runs/upsample500/model checkpoints/upsample500

Sub-folders (the frozen tokenizer under the prior) are converted too. The model card (README.md) is written by hand
from the measured figures.

``--force`` replaces a shipped checkpoint folder without losing any of its files: each file of ``DST`` that ``SRC``
does not bring under the same name (its metrics, selection, training log, notes, the hand-written card, which wins
over ``SRC``'s) is carried into the new folder and named on the way. The new folder is assembled beside ``DST`` and
swapped in by renames (synth.outputs.staged_folder), so an interrupted run leaves ``DST`` as it was.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth.errors import MissingFileError, exit_code_of  # noqa: E402
from synth.outputs import staged_folder  # noqa: E402

#: Kept from the replaced checkpoint even when ``SRC`` brings one: written by hand.
KEEP = ("README.md",)


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
    links = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_symlink()]
    if links:
        return f"it holds links ({', '.join(links[:3])})"
    odd = [p.name for p in folder.rglob("*") if p.is_file() and p.suffix not in (".json", ".md", ".safetensors",
                                                                                  ".csv")]
    return f"it holds files a checkpoint does not ({', '.join(odd[:3])})" if odd else None


def carry_over(old: Path, new: Path) -> list[str]:
    """Copy into ``new`` every file of ``old`` that ``new`` lacks (and those in :data:`KEEP`), so replacing ``old``
    by ``new`` loses nothing that was not replaced by a file of the same name; the paths carried."""
    carried = []
    for path in sorted(old.rglob("*")):
        rel = path.relative_to(old)
        target = new / rel
        if path.is_file() and (not target.exists() or rel.as_posix() in KEEP):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            carried.append(rel.as_posix())
    return carried


def lost_files(old: Path, new: Path) -> list[str]:
    """The files of ``old`` with no file of the same name in ``new`` (what the swap would delete)."""
    return [p.relative_to(old).as_posix() for p in sorted(old.rglob("*"))
            if p.is_file() and not (new / p.relative_to(old)).is_file()]


def check_source(src: Path) -> None:
    """Refuse, before any work, a ``SRC`` that is not an export (its folder would ship as an empty checkpoint)."""
    for name in ("config.json", "model.safetensors"):
        if not (src / name).is_file():
            raise MissingFileError(f"not a checkpoint export (no {name})", path=src,
                                   hint="give the export folder, e.g. runs/NAME/model")


def ship(src: Path, dst: Path, *, force: bool = False) -> list[str]:
    """Convert ``src`` into ``dst`` (replaced only with ``force``, and only a shipped checkpoint); the files carried
    over from the replaced ``dst``."""
    check_source(src)
    stage: list[Path] = []  # the staging folder, once known: the check before the swap compares against it

    def owned(folder: Path) -> str | None:
        lost = lost_files(folder, stage[0]) if stage else []
        reason = shipped_checkpoint_refusal(folder)
        return reason or (f"the new checkpoint would not keep its {', '.join(lost[:3])}" if lost else None)

    with staged_folder(dst, overwrite=force, owned=owned, mark=False) as tmp:
        stage.append(tmp)
        convert(src, tmp)
        carried = carry_over(dst, tmp) if dst.is_dir() else []
        for path in tmp.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)  # shipped files are readable by everyone
    return carried


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--force", action="store_true",
                    help="replace a shipped checkpoint folder (its files SRC does not bring are kept)")
    args = ap.parse_args(argv)
    dst = Path(args.dst)
    carried: list[str] = []
    if exit_code_of(Path(__file__).name, lambda: carried.extend(ship(Path(args.src), dst, force=args.force))):
        return 2
    if carried:
        print(f"kept from the replaced {dst}: {', '.join(carried)} (written for the old weights: update what "
              f"describes them)")
    size = sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())
    print(f"wrote {dst} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
