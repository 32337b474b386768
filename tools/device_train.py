"""Train report2ecg on a lent GPU machine for a few minutes, from the bundle tools/device_bundle.py packs.

The one call of a lease (device tool ``run``; ``.device`` and ``.whl`` carried, ~10 minutes of its 15):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \\
        .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 || exit; \\
    python3 tools/device_train.py --minutes 7 --out $OUT

It starts from the shipped ``checkpoints/report2ecg`` (warm start), trains with the project's Trainer in bf16 on
the GPU (batch 256, AdamW, EMA) for ``--minutes`` of wall time on the bundle's records, with the reports'
precomputed MiniLM embeddings preloaded (the encoder never runs there), validates on the bundle's fold-9 records,
and writes ``$OUT/model`` (config.json + float16 model.safetensors) and ``$OUT/train_log.csv`` — the files that
come back. Choose between the returned export and the shipped one on fold 9 here, as for any candidate
(``synth bench fidelity --split val``), before shipping it with tools/ship_checkpoint.py.

Runs on a CPU too (``--device cpu --minutes 1``), which is how it is checked before a lease.
"""

from __future__ import annotations

import argparse
import shutil
import sys
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


def main() -> None:
    import torch

    from synth.checkpoint import load_pretrained, save_pretrained
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
    args = ap.parse_args()
    started = time.time()
    bundle = Path(args.bundle)
    meta = np.load(bundle / "meta.npz")
    texts_npz = np.load(bundle / "texts.npz")
    texts = [str(t) for t in texts_npz["texts"]]
    train = BundleWindows(unpack_signals((bundle / "train.xz").read_bytes()), meta, "train", texts)
    val = BundleWindows(unpack_signals((bundle / "val.xz").read_bytes()), meta, "val", texts)
    model = load_pretrained(args.init)
    model.conditioning.adapters["report"].preload(texts, torch.from_numpy(texts_npz["embeddings"].astype(np.float32)))
    cuda = args.device == "cuda" and torch.cuda.is_available()
    work = Path("/tmp/device_run") if cuda else Path(args.out) / "run"
    shutil.rmtree(work, ignore_errors=True)
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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shipped = load_pretrained(export)
    for p in shipped.parameters():
        p.data = p.data.half().float()  # what ships: float16 weights
    save_pretrained(shipped, out / "model", overwrite=True)
    if (work / "train_log.csv").exists():
        shutil.copy(work / "train_log.csv", out / "train_log.csv")
    print(f"steps {trainer.step}, fold-9 loss {val_loss:.4f}, {time.time() - started:.0f} s; export in {out / 'model'}")


if __name__ == "__main__":
    main()
