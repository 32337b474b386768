"""User-facing errors: one line that names the file, the problem and what to do.

The CLI prints ``str(error)`` of any :class:`SynthError` and exits non-zero without a traceback; library users can
catch them as :class:`ValueError` (bad content) or :class:`FileNotFoundError` (missing input).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class SynthError(Exception):
    """Base class of every error caused by the user's input rather than by a bug."""

    def __init__(self, problem: str, *, path: str | os.PathLike | None = None, hint: str | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = self.problem if self.path is None else f"{self.path}: {self.problem}"
        text = text if not self.hint else f"{text} ({self.hint})"
        text = _ESCAPES.sub("", text)  # colour codes some libraries put in their messages
        text = _CONTROLS.sub(" ", text)
        return " ".join(text.split()).strip()  # one line, whatever a library put in its message


class DataError(SynthError, ValueError):
    """Input data that cannot be used as it is: bad header, truncated file, unknown lead, NaN, ..."""


class MissingFileError(SynthError, FileNotFoundError):
    """An input file or folder that does not exist."""


class OutputExistsError(SynthError, FileExistsError):
    """An output that already exists and would be overwritten."""


def exit_code_of(prog: str, run: Callable[[], object]) -> int:
    """Run a script's body: 0 when it returns, 2 with one line ``PROG: error: PATH: problem (hint)`` on standard
    error when it raises a :class:`SynthError` (what ``synth`` itself does for its commands)."""
    try:
        run()
    except SynthError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return 0

