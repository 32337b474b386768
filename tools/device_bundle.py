"""Pack what a lent GPU machine needs to train report2ecg into ``.device/`` (under the 64 MiB a call carries).

    python tools/device_bundle.py [--records 8000] [--step-uv 4] [--force]   # here, once (minutes, one core)
    # then, on a session with a device lease, one call (see tools/device_train.py for the command):
    #   run(command=..., carry=[".device"], timeout_s=600)

The GPU machine has PyTorch but not this project's data, the MiniLM wheel (too big to carry) or a few packages, so:

- ``signals.xz``: lead I, II, V1-V6 of ``--records`` training records (every one when they fit) as int16 steps of
  ``--step-uv`` µV (PTB-XL stores 1 µV; 4 µV is below the recordings' noise), delta-coded along time and
  LZMA-compressed; ``val.xz`` likewise for 512 fold-9 records (the validation loss);
- ``meta.npz``: per record its labels (the 38 statements the 8-lead report2ecg knows), age, sex, measured heart
  rate and the index of its own report and of its English one in ``texts``;
- ``texts.npz``: every distinct report's MiniLM sentence embedding (float16), precomputed here;
- ``wheels/``: wheels of the packages the machine lacks (omegaconf, diffusers, importlib-metadata), pure Python,
  downloaded into the bundle itself (nothing is written into the working directory).

Records are taken in a fixed random order (seed 0), so a bundle is the same every time it is built.

``--out`` is a new folder, or with ``--force`` a bundle this script made, unchanged (synth.outputs): any other
folder, and one inside (or holding) the ``--data`` or the checkpoint it reads, is refused before anything loads.
The bundle is assembled beside it and appears by a rename when complete.
"""

from __future__ import annotations

import argparse
import io
import lzma
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LEADS_8_INDEX = [0, 1, 6, 7, 8, 9, 10, 11]  # I, II, V1-V6 in canonical 12-lead order
MAX_BYTES = 60 * 1024**2
WHEELS = ("omegaconf==2.4.0", "diffusers==0.42.1", "importlib-metadata==8.7.0")
#: The bundle's folder of wheels (installed on the device machine from ``.device/wheels/*.whl``).
WHEEL_DIR = "wheels"
#: Recorded in the bundle's marker: ``--force`` replaces a bundle of this script, no other synth output.
MADE_BY = "tools/device_bundle.py"


def pack_signals(x: np.ndarray, step_uv: float) -> bytes:
    """(N, 8, T) mV → delta-coded int16 steps of ``step_uv`` µV, LZMA-compressed (with a small header)."""
    q = np.clip(np.round(x * (1000.0 / step_uv)), -32767, 32767).astype(np.int16)
    delta = np.diff(q, axis=-1, prepend=np.zeros_like(q[..., :1])).astype(np.int16)
    head = io.BytesIO()
    np.save(head, np.array([*q.shape, step_uv], dtype=np.float64))
    return lzma.compress(head.getvalue() + delta.tobytes(), preset=6)


def unpack_signals(blob: bytes) -> np.ndarray:
    """The inverse of :func:`pack_signals`: (N, 8, T) float32 mV."""
    raw = lzma.decompress(blob)
    head = io.BytesIO(raw)
    n, c, t, step = np.load(head)
    delta = np.frombuffer(raw[head.tell():], dtype=np.int16).reshape(int(n), int(c), int(t))
    return (np.cumsum(delta, axis=-1, dtype=np.int64) * (step / 1000.0)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    from synth.errors import exit_code_of

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/ptbxl")
    ap.add_argument("--records", type=int, default=8000)
    ap.add_argument("--step-uv", type=float, default=4.0)
    ap.add_argument("--out", default=".device", help="the bundle: a new folder (or, with --force, one this made)")
    ap.add_argument("--force", action="store_true", help="replace a bundle this script made, unchanged")
    ap.add_argument("--no-wheels", action="store_true")
    args = ap.parse_args(argv)
    return exit_code_of(Path(__file__).name, lambda: _pack(args))


def bundle_refusal(folder: Path) -> str | None:
    """Why ``--force`` may not replace ``folder`` (None when it is a bundle this script made, unchanged)."""
    from synth.outputs import made_by_refusal

    return made_by_refusal(folder, MADE_BY, "bundle")


def _pack(args: argparse.Namespace) -> None:
    from synth.checkpoint import load_pretrained
    from synth.data.ptbxl import PTBXL
    from synth.outputs import OutputRefusedError, check_output_folder, staged_folder
    from synth.tasks.common import checkpoint_path, checkpoints_root

    out = Path(args.out)
    inputs = [("--data", args.data), ("report2ecg", checkpoints_root() / "report2ecg")]
    check_output_folder(out, overwrite=args.force, inputs=inputs)  # before the model and the records load
    reason = bundle_refusal(out) if out.exists() or out.is_symlink() else None
    if reason:
        raise OutputRefusedError(f"--force will not replace it: {reason}", path=out,
                                 hint="choose another output, or move it away yourself if you mean to lose it")
    with staged_folder(out, overwrite=args.force, inputs=inputs, owned=bundle_refusal,
                       marker={"made_by": MADE_BY}) as stage:
        parts, strings = _write_bundle(stage, args, load_pretrained(checkpoint_path("report2ecg")),
                                       PTBXL(args.data, 100))
    sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    total = sum(sizes.values())
    for name, size in sizes.items():
        print(f"{name:<50} {size / 1e6:7.2f} MB")
    print(f"total {total / 1e6:.1f} MB for {len(parts['train']['x'])} training records, {len(strings)} texts")
    if total > MAX_BYTES:
        raise SystemExit(f"{total / 1e6:.1f} MB is over the {MAX_BYTES / 1e6:.0f} MB a call may carry: "
                         "use fewer --records or a larger --step-uv")


def _write_bundle(out: Path, args: argparse.Namespace, model, ptbxl) -> tuple[dict, list[str]]:
    """Every file of the bundle into ``out`` (the staging folder): the wheels (first: a download that fails ends
    the run before the minutes of packing), the records, the texts."""
    if not args.no_wheels:
        wheel_dir = out / WHEEL_DIR
        wheel_dir.mkdir()
        for spec in WHEELS:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            "--python-version", "3.12", "--implementation", "cp", "--platform",
                            "manylinux_2_17_x86_64", "--platform", "any", "-d", str(wheel_dir), spec], check=True)
    text = model.conditioning.adapters["report"]
    classes = list(model.conditioning.adapters["labels"].classes)
    english = ptbxl.english_reports()
    parts, texts = {}, {}
    for split, n in (("train", args.records), ("val", 512)):
        view = ptbxl.split(split)
        order = np.sort(np.random.default_rng(0).permutation(len(view))[:n])
        x = np.asarray(view.load_signals(cache_dir=".cache/ptbxl", progress=True))[order][:, LEADS_8_INDEX]
        hr = view.heart_rates(cache_dir=".cache/ptbxl")[order]
        labels, _ = view.multi_hot("superclasses+subclasses+rhythm", classes)
        ids = [int(view.ecg_ids[i]) for i in order]
        own = [str(view.table.loc[i, "report"]) for i in ids]
        eng = [english[i] for i in ids]
        for t in own + eng:
            texts.setdefault(t, len(texts))
        parts[split] = {"x": x, "hr": hr, "labels": labels[order].astype(np.uint8), "ids": np.array(ids),
                        "age": view.table.loc[ids, "age"].to_numpy(np.float32),
                        "sex": view.table.loc[ids, "sex"].map({"M": 0.0, "F": 1.0}).to_numpy(np.float32),
                        "own": np.array([texts[t] for t in own]), "english": np.array([texts[t] for t in eng])}
    strings = list(texts)
    embeddings = np.concatenate([np.stack([e[0].numpy() for e in text.embed_texts(strings[i:i + 512])])
                                 for i in range(0, len(strings), 512)]).astype(np.float16)
    np.savez_compressed(out / "texts.npz", texts=np.array(strings), embeddings=embeddings)
    meta = {f"{split}_{k}": v for split, p in parts.items() for k, v in p.items() if k != "x"}
    np.savez_compressed(out / "meta.npz", classes=np.array(classes), **meta)
    for split, p in parts.items():
        (out / f"{split}.xz").write_bytes(pack_signals(p["x"], args.step_uv))
    return parts, strings


if __name__ == "__main__":
    raise SystemExit(main())
