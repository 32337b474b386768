"""``synth registry`` and ``synth train``."""

from __future__ import annotations

import argparse


def cmd_registry(args: argparse.Namespace) -> int:
    from synth.registry import list_registered

    for kind, names in list_registered().items():
        print(f"{kind + 's':<10} {', '.join(names) if names else '(none)'}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from synth.training.trainer import train_from_config

    export = train_from_config(args.config, args.overrides)
    print(f"exported {export}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("registry", help="list the registered backbones, networks, conditioning adapters and samplers")
    p.set_defaults(func=cmd_registry)

    p = sub.add_parser("train", help="train (or resume, when OUT_DIR holds a checkpoint) from a training YAML")
    p.add_argument("config", help="training YAML, e.g. configs/train/tiny.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted-key overrides, e.g. steps=1000 out_dir=runs/x data.cache_dir=.cache")
    p.set_defaults(func=cmd_train)
