"""Convert an export to a changed architecture, as the starting point of a warm-started run (``init_from``).

    python tools/warm_start.py checkpoints/report2ecg configs/model/report2ecg_8lead.yaml runs/report2ecg_8lead_init

Every parameter whose name and shape agree is copied. Two changes are mapped by name instead of left random:

- **12 → 8 leads** (I, II, V1-V6): output rows of the removed leads are dropped; on the input side the weights of
  III, aVR, aVL and aVF are folded into those of I and II by the lead laws (III = II - I, aVR = -(I + II)/2,
  aVL = I - II/2, aVF = II - I/2), so the first layer computes the same features from the 8 leads of any record
  that obeys the laws.
- **label classes**: the rows of a labels adapter's embedding follow the class names; classes the old model did not
  know keep the new model's random initialisation.
- **an added modality** (a new adapter after the old ones): the stem's weights for its concatenated channels start
  at zero and the old modalities keep their embedding and null-token rows, so the converted model computes what
  the old one did until training teaches it the new input.

Anything else that differs keeps its fresh initialisation and is listed.

``out`` must not exist, and may not lie inside (or hold) the export read; both are checked before anything loads.
A refusal is one line (``warm_start.py: error: ...``, exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth import registry  # noqa: E402
from synth.checkpoint import load_pretrained, save_pretrained  # noqa: E402
from synth.config import load_config  # noqa: E402
from synth.data.leads import LEADS_8, LEADS_12, LIMB_FROM_I_II, leads_for_channels  # noqa: E402
from synth.errors import exit_code_of  # noqa: E402
from tools.export_checkpoint import check_new  # noqa: E402


def _fold_limb_inputs(w_old: torch.Tensor, dim: int) -> torch.Tensor:
    """Input weights over 12 leads → over the 8 independent ones: ``sum_l W_l x_l`` with every limb lead written as
    a combination of I and II (:data:`LIMB_FROM_I_II`)."""
    w = w_old.movedim(dim, 0)  # (12, ...)
    limb = torch.as_tensor(LIMB_FROM_I_II, dtype=w.dtype)  # (6, 2): limb lead l = a[l, 0] I + a[l, 1] II
    i_ii = torch.einsum("lk,l...->k...", limb, w[:6])  # (2, ...)
    precordial = w[[LEADS_12.index(n) for n in LEADS_8[2:]]]  # (6, ...)
    return torch.cat([i_ii, precordial]).movedim(0, dim)


def convert(old, new) -> list[str]:
    """Copy ``old``'s weights into ``new`` where they fit or can be mapped; returns the names left as initialised."""
    old_state, new_state = old.state_dict(), new.state_dict()
    old_leads = leads_for_channels(old.cfg.signal.channels)
    new_leads = leads_for_channels(new.cfg.signal.channels)
    fresh = []
    for key, target in new_state.items():
        source = old_state.get(key)
        if source is None:
            fresh.append(f"{key} (new)")
            continue
        if source.shape == target.shape:
            target.copy_(source)
            continue
        diff = [d for d in range(source.ndim) if source.shape[d] != target.shape[d]]
        if key.endswith("labels.embedding"):
            old_classes = ["<summary>"] + list(_labels_classes(old))
            new_classes = ["<summary>"] + list(_labels_classes(new))
            for row, name in enumerate(new_classes):
                if name in old_classes:
                    target[row] = source[old_classes.index(name)]
            continue
        if (len(diff) == 1 and old_leads == LEADS_12 and new_leads == LEADS_8
                and source.shape[diff[0]] == 12 and target.shape[diff[0]] == 8):
            d = diff[0]
            if d == 0:  # output rows (a head's weight or bias): keep the 8 leads
                target.copy_(source[[LEADS_12.index(n) for n in LEADS_8]])
            else:  # input channels (a stem): fold the limb leads into I and II
                target.copy_(_fold_limb_inputs(source, d))
            continue
        if len(diff) == 1 and source.shape[diff[0]] < target.shape[diff[0]] and _appended(key, diff[0]):
            d, k = diff[0], source.shape[diff[0]]
            if key.endswith("stem.weight"):  # (out, in, kernel): channels added after the old ones read nothing yet
                target.zero_()
            target.narrow(d, 0, k).copy_(source)
            continue
        fresh.append(f"{key} {tuple(source.shape)} -> {tuple(target.shape)}")
    return fresh


def _appended(key: str, dim: int) -> bool:
    """Tensors that grow at their end when a modality is added: the stem's input channels (concatenated condition
    channels come after the signal's), the stack's per-modality rows."""
    return (key.endswith("stem.weight") and dim == 1) or (
        key in ("conditioning.modality_embedding", "conditioning.null_tokens") and dim == 0)


def _labels_classes(model) -> list[str]:
    for adapter in model.conditioning.adapters.values():
        if "labels" in adapter.keys:
            return list(adapter.classes or [])
    return []


def main(argv: list[str] | None = None) -> int:
    return exit_code_of(Path(__file__).name, lambda: _warm_start(argv))


def _warm_start(argv: list[str] | None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", help="export folder to start from")
    ap.add_argument("model_config", help="model YAML of the new architecture")
    ap.add_argument("out", help="export folder to write (the new run's init_from)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fresh initialisation")
    args = ap.parse_args(argv)
    check_new(args.out, [("old", args.old), ("model_config", args.model_config)])
    old = load_pretrained(args.old)
    torch.manual_seed(args.seed)
    new = registry.build("backbone", load_config(args.model_config))
    with torch.no_grad():
        fresh = convert(old, new)
    save_pretrained(new, args.out)
    print(f"wrote {args.out}; {len(fresh)} tensors keep their fresh initialisation")
    for line in fresh:
        print(f"  {line}")


if __name__ == "__main__":
    raise SystemExit(main())
