"""``python -m synth ...`` (also ``accelerate launch -m synth ...``, ``torchrun -m synth ...``): the ``synth`` CLI."""

import sys

from synth.cli import main

sys.exit(main())
