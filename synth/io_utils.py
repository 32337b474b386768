"""Writing files so that an interrupted run never leaves a half-written output."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from synth.errors import OutputExistsError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it.

    The temporary name keeps ``path``'s suffix so libraries that pick a format by extension still work.
    """
    final = Path(path)
    if final.exists() and not overwrite:
        raise OutputExistsError("output already exists", path=final, hint="choose another name or pass --force")
    final.parent.mkdir(parents=True, exist_ok=True)
    owner = f"{_HOST}-{os.getpid()}-"
    suffix = f".part{''.join(final.suffixes)}"
    _remove_dead_partials(final, suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.{owner}", suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_path, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


#: This machine's name in temporary names (``.STEM.HOST-PID-RANDOM.part.SUFFIX``), so that a partial file is only
#: ever judged, and removed, by a process on the machine whose process made it.
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:32] or "host"


def _remove_dead_partials(final: Path, suffix: str) -> None:
    """Remove the temporary files of ``final`` that a killed process of this machine left (SIGKILL skips the
    cleanup): those whose owner pid no longer runs. A live writer's file is left alone."""
    pattern = re.compile(rf"\.{re.escape(final.stem)}\.{re.escape(_HOST)}-(\d+)-.*{re.escape(suffix)}")
    for candidate in final.parent.glob(f".{glob.escape(final.stem)}.*{glob.escape(suffix)}"):
        match = pattern.fullmatch(candidate.name)
        if match and not _alive(int(match.group(1))) and candidate.is_file() and not candidate.is_symlink():
            with contextlib.suppress(OSError):
                candidate.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def read_text_lenient(path: str | os.PathLike) -> str:
    """Read a text file as UTF-8; fall back to Latin-1 with a warning instead of failing on stray bytes.

    Clinical CSV exports often carry reports in a legacy encoding. Latin-1 decodes every byte, so no text is lost;
    the warning names the file so the user can re-encode it.
    """
    import warnings

    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        warnings.warn(
            f"{path}: not valid UTF-8 (byte {err.start}); decoded as Latin-1. Re-encode the file as UTF-8 to silence this.",
            stacklevel=2,
        )
        return raw.decode("latin-1")


def die_with_parent(parent_pid: int | None = None) -> None:
    """Worker-process initializer: end this process when the one that started it dies, even by SIGKILL (Linux
    ``PR_SET_PDEATHSIG``), so a killed run leaves no reader processes behind holding its temporary files open.
    ``parent_pid`` (the starter's pid, passed in) closes the race where it died before this ran. Elsewhere a no-op."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)

