"""Train report2ecg on a lent GPU machine for a few minutes, from the bundle tools/device_bundle.py packs.

The one call of a lease (device tool ``run``; ``.device`` carried, with its wheels, ~10 minutes of its 15):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \\
        .device/wheels/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 || exit; \\
    python3 tools/device_train.py --minutes 7 --out $OUT

It starts from the shipped ``checkpoints/report2ecg`` (warm start), trains with the project's Trainer in bf16 on
the GPU (batch 256, AdamW, EMA) for ``--minutes`` of wall time on the bundle's records, with the reports'
precomputed MiniLM embeddings preloaded (the encoder never runs there), validates on the bundle's fold-9 records,
and writes ``$OUT/model`` (config.json + float16 model.safetensors) and ``$OUT/train_log.csv`` — the files that
come back. Choose between the returned export and the shipped one on fold 9 here, as for any candidate
(``synth bench fidelity --split val``), before shipping it with tools/ship_checkpoint.py.

Runs on a CPU too (``--device cpu --minutes 1``), which is how it is checked before a lease.

The training run itself works in a new temporary folder that is removed afterwards, so no folder that was there
before is ever deleted; ``$OUT/model`` and ``$OUT/train_log.csv`` must not exist yet (checked before any work) and
land by renames.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class BundleWindows:
    """The bundle's records as training items, each record twice (its own report, its English one), like
    :class:`synth.training.tasks.ReportWindows`: ``x`` (8, 1000) mV, ``cond`` report, labels, age, sex, HR."""

    def __init__(self, x: np.ndarray, meta, split: str, texts: list[str]):
        self.x = x
        self.labels = meta[f"{split}_labels"].astype(np.float32)
        self.age, self.sex, self.hr = meta[f"{split}_age"], meta[f"{split}_sex"], meta[f"{split}_hr"]
        self.own, self.english, self.texts = meta[f"{split}_own"], meta[f"{split}_english"], texts
        self.sample_shape = x.shape[1:]

    def __len__(self) -> int:
        return 2 * len(self.x)

    def __getitem__(self, index: int):
        i = index // 2
        report = self.texts[int((self.english if index % 2 else self.own)[i])]
        return self.x[i], {"report": report, "labels": self.labels[i], "age": np.float32(self.age[i]),
                           "sex": np.float32(self.sex[i]), "heart_rate": np.float32(self.hr[i])}


def check_out(out: Path) -> None:
    """Refuse, before the bundle or the model loads, an ``--out`` that already holds what this script writes: the
    export and the log land there by renames, never over a file that was there."""
    from synth.errors import OutputExistsError

    for path in (out / "model", out / "train_log.csv"):
        if path.exists() or path.is_symlink():
            raise OutputExistsError("already exists", path=path, hint="choose an --out folder without it")


def check_bundle(bundle: Path) -> None:
    """Refuse, before torch and the model load, a ``--bundle`` that is not one tools/device_bundle.py packed."""
    from synth.errors import MissingFileError

    for name in ("meta.npz", "texts.npz", "train.xz", "val.xz"):
        if not (bundle / name).is_file():
            raise MissingFileError(f"not a device bundle (no {name})", path=bundle,
                                   hint="pack one with tools/device_bundle.py, or pass --bundle")


def main(argv: list[str] | None = None) -> int:
    from synth.errors import exit_code_of

    return exit_code_of(Path(__file__).name, lambda: _train(argv))


def _train(argv: list[str] | None) -> None:
    import torch

    from synth.checkpoint import load_pretrained, save_pretrained
    from synth.io_utils import atomic_path
    from synth.training.config import TrainConfig
    from synth.training.trainer import Trainer
    from tools.device_bundle import unpack_signals

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=".device")
    ap.add_argument("--init", default="checkpoints/report2ecg")
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    started = time.time()
    out = Path(args.out)
    check_out(out)
    bundle = Path(args.bundle)
    check_bundle(bundle)
    meta = np.load(bundle / "meta.npz")
    texts_npz = np.load(bundle / "texts.npz")
    texts = [str(t) for t in texts_npz["texts"]]
    train = BundleWindows(unpack_signals((bundle / "train.xz").read_bytes()), meta, "train", texts)
    val = BundleWindows(unpack_signals((bundle / "val.xz").read_bytes()), meta, "val", texts)
    model = load_pretrained(args.init)
    model.conditioning.adapters["report"].preload(texts, torch.from_numpy(texts_npz["embeddings"].astype(np.float32)))
    cuda = args.device == "cuda" and torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="device_run-") as scratch:  # made here: removed with all it holds
        work = Path(scratch) / "run"
        cfg = TrainConfig(model="", out_dir=str(work), steps=1_000_000, batch_size=args.batch_size, lr=args.lr,
                          min_lr_ratio=1.0, warmup_steps=100, ema_decay=0.999,
                          mixed_precision="bf16" if cuda else "no", log_every=50, val_every=0, sample_every=0,
                          ckpt_every=1_000_000, keep_last=1, num_workers=4 if cuda else 0, progress=True)
        trainer = Trainer(model, cfg, train, val)
        # Time the first steps, then train to the step the remaining minutes allow (a checkpoint is saved there).
        probe = 30
        t0 = time.time()
        trainer.fit(stop_at_step=probe)
        per_step = (time.time() - t0) / probe
        budget = args.minutes * 60 - (time.time() - started) - 30  # leave time to validate and export
        target = probe + max(0, int(budget / per_step))
        print(f"{per_step * 1000:.0f} ms/step at batch {args.batch_size}: training to step {target}", flush=True)
        export = trainer.fit(stop_at_step=target)
        val_loss = trainer.validate()
        shipped = load_pretrained(export)
        for p in shipped.parameters():
            p.data = p.data.half().float()  # what ships: float16 weights
        check_out(out)  # what appeared there while we trained is not replaced either
        save_pretrained(shipped, out / "model")  # staged beside and renamed
        if (work / "train_log.csv").exists():
            with atomic_path(out / "train_log.csv", overwrite=False) as tmp:
                shutil.copyfile(work / "train_log.csv", tmp)
    print(f"steps {trainer.step}, fold-9 loss {val_loss:.4f}, {time.time() - started:.0f} s; export in {out / 'model'}")


if __name__ == "__main__":
    raise SystemExit(main())
