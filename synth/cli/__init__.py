"""The ``synth`` command line: a thin shell over the library, one module per command group.

User errors print one line, ``synth: error: FILE: problem (what to do)``, and exit with status 2, without a
traceback: bad arguments (every number is checked for finiteness and range when it is parsed, see
:mod:`synth.limits`), bad files (:class:`synth.errors.SynthError`), and what the operating system refuses
(permission, read-only or full disks). A bug still shows its traceback.
"""

from __future__ import annotations

import argparse
import errno
import sys
import warnings

from synth import __version__
from synth.errors import SynthError

EXIT_USER_ERROR = 2

#: Operating-system refusals that come from where the user pointed synth, with what to do about them.
_OS_ERRORS: dict[int, tuple[str, str]] = {
    errno.EACCES: ("permission denied", "check the permissions, or choose another location"),
    errno.EPERM: ("operation not permitted", "check the permissions, or choose another location"),
    errno.EROFS: ("read-only file system", "choose an output on a writable disk"),
    errno.ENOSPC: ("no space left on the disk", "free some space or choose another disk; nothing half-written "
                                                 "reached the output, and the same command resumes or cleans up"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose another disk; nothing half-written reached "
                                          "the output, and the same command resumes or cleans up"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter name"),
    errno.ENOTDIR: ("a part of the path is not a folder", "check the path"),
    errno.EISDIR: ("is a folder, not a file", "give a file name"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.ELOOP: ("too many levels of symbolic links", "check the path"),
    errno.EEXIST: ("a file is in the way (a folder was expected there)", "check the path"),
}


class UsageError(SynthError):
    """A bad command line (unknown option, a number outside its range, ...)."""


class Parser(argparse.ArgumentParser):
    """argparse with the one-line error contract: ``synth: error: COMMAND: problem (see COMMAND --help)``;
    ``main`` prints it and returns 2 (``--help`` and ``--version`` still exit 0)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        raise UsageError(f"{self.prog}: {message}", hint=f"see '{self.prog} --help'")


def build_parser() -> argparse.ArgumentParser:
    from synth.cli import bench, data, models, tasks

    parser = Parser(prog="synth", description="Realistic synthetic cardiac signals.")
    parser.add_argument("--version", action="version", version=f"synth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    data.add_parsers(sub)
    models.add_parsers(sub)
    tasks.add_parsers(sub)
    bench.add_parsers(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"synth: warning: {message}", file=sys.stderr)


def os_error_line(err: OSError, output: str | None = None) -> str | None:
    """The one-line message of an operating-system refusal caused by the user's paths (None for anything else).

    A full disk is reported against the file being written, or ``output`` (the command's) when the system does not
    say which; other refusals need the file named by the system.
    """
    known = _OS_ERRORS.get(err.errno or -1)
    where = err.filename or (output if err.errno in (errno.ENOSPC, errno.EDQUOT) else None)
    if known is None or not where:
        return None
    problem, hint = known
    return f"{where}: {problem} ({hint})"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as err:
        print(f"synth: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    if not hasattr(args, "func"):
        (parser if args.command is None else parser._subparsers._group_actions[0].choices[args.command]).print_help()
        return EXIT_USER_ERROR
    warnings.showwarning = _show_warning
    try:
        return int(args.func(args) or 0)
    except SynthError as err:
        print(f"synth: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as err:
        line = os_error_line(err, getattr(args, "out", None) or getattr(args, "output", None))
        if line is None:
            raise
        print(f"synth: error: {line}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (MemoryError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and not out_of_memory(err):
            raise
        print("synth: error: out of memory (ask for less: fewer records, a smaller --batch-size or a shorter "
              "record)", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("synth: interrupted (nothing half-written was left; run the same command again)", file=sys.stderr)
        return 130


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation that failed: Python's MemoryError, or torch's (a RuntimeError from its CPU
    allocator, ``torch.OutOfMemoryError`` on a GPU), which a batch too large for the machine raises."""
    if isinstance(err, MemoryError):
        return True
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom is not None and isinstance(err, oom):
        return True
    text = str(err)
    return "can't allocate memory" in text or "DefaultCPUAllocator" in text or "out of memory" in text.lower()


__all__ = ["main", "build_parser", "EXIT_USER_ERROR"]
