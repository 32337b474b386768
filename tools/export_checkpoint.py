"""Export the EMA weights of a training checkpoint (a run still going, or an earlier step) as a model export.

    python tools/export_checkpoint.py runs/report2ecg_8lead runs/report2ecg_8lead_step10000 [--step 10000]

The model is rebuilt from the run's ``train_config.json`` (its model YAML), the checkpoint's ``ema.safetensors``
(plain tensors) is swapped in, and ``config.json`` + ``model.safetensors`` are written with
``synth.checkpoint.save_pretrained``: what the trainer's own export at that step would have been, so candidates
can be scored on fold 9 while training goes on. Default step: the newest checkpoint.

The export folder must not exist, and may not lie inside (or hold) the run's folder; both are checked before
anything loads. A refusal is one line (``export_checkpoint.py: error: ...``, exit status 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth.checkpoint import save_pretrained  # noqa: E402
from synth.errors import (
    OutputExistsError,  # noqa: E402
    exit_code_of,  # noqa: E402
)
from synth.outputs import check_apart  # noqa: E402
from synth.training import state as ckpt  # noqa: E402
from synth.training.config import TrainConfig  # noqa: E402
from synth.training.trainer import build_registry_model  # noqa: E402


def check_new(out: str, inputs) -> None:
    """Refuse, before anything loads, an export folder that exists (save_pretrained would refuse it only after the
    model is built) or that lies inside, or holds, what the run reads."""
    check_apart(out, inputs)
    if Path(out).exists() or Path(out).is_symlink():
        raise OutputExistsError("checkpoint folder already exists", path=out, hint="choose a new folder")


def main(argv: list[str] | None = None) -> int:
    return exit_code_of(Path(__file__).name, lambda: _export(argv))


def _export(argv: list[str] | None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="the run's out_dir (holds train_config.json and checkpoints/)")
    ap.add_argument("out", help="export folder to write")
    ap.add_argument("--step", type=int, help="checkpoint step (default: the newest)")
    args = ap.parse_args(argv)
    run = Path(args.run)
    check_new(args.out, [("run", run)])
    data = json.loads((run / "train_config.json").read_text())
    cfg = TrainConfig(**{k: v for k, v in data.items() if k not in ("data",)})
    root = run / ckpt.CHECKPOINTS_DIR
    folder = root / ckpt.checkpoint_name(args.step) if args.step is not None else ckpt.latest_checkpoint(root)
    if folder is None or not folder.is_dir():
        raise SystemExit(f"no checkpoint {'at step ' + str(args.step) if args.step else ''} under {root}")
    model = build_registry_model(cfg, Path("."))
    ema = ckpt.load_tensors(folder / ckpt.EMA_FILE)
    state = model.state_dict()
    missing = [k for k in ema if k not in state]
    if missing:
        raise SystemExit(f"EMA weights do not fit the run's model: {missing[:3]}")
    state.update(ema)
    model.load_state_dict(state)
    save_pretrained(model, args.out)
    print(f"exported the EMA weights of {folder} to {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
