"""Run the ``synth`` command line with a pause planted at one point, for the SIGKILL tests.

    python killpoint.py READY MODULE:ATTRIBUTE CALL -- synth arguments...

Before call number ``CALL`` (1-based) of ``MODULE.ATTRIBUTE``, the process writes the file ``READY`` and sleeps, so
the test can SIGKILL it at exactly that point: mid-work, or between two renames of a commit. Nothing in synth knows
about this; the pause is planted from outside, the way a slow disk or a power cut would strike.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def main() -> int:
    ready, target, call = sys.argv[1], sys.argv[2], int(sys.argv[3])
    argv = sys.argv[sys.argv.index("--") + 1:]
    module_name, attribute = target.split(":")
    module = importlib.import_module(module_name)
    original = getattr(module, attribute)
    calls = {"n": 0}

    def paused(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            Path(ready).write_text("paused", encoding="utf-8")
            while True:
                time.sleep(1)
        return original(*args, **kwargs)

    setattr(module, attribute, paused)
    from synth.cli import main as synth_main

    return synth_main(argv)


if __name__ == "__main__":
    sys.exit(main())
