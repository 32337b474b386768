"""``python -m synth.training CONFIG [key=value ...]`` (or under ``accelerate launch -m synth.training ...``).

Trains, or resumes when ``out_dir`` already holds a checkpoint, and prints the export folder. User errors print
one line and exit with status 2, like the ``synth`` command.
"""

from __future__ import annotations

import argparse
import sys

from synth.errors import SynthError
from synth.training.trainer import train_from_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth.training", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="training YAML, e.g. configs/train/default.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted-key overrides, e.g. steps=1000 out_dir=runs/x data.cache_dir=/tmp/cache")
    args = parser.parse_args(argv)
    try:
        export = train_from_config(args.config, args.overrides)
    except SynthError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    print(export)
    return 0


if __name__ == "__main__":
    sys.exit(main())
