"""Writing files so that an interrupted run never leaves a half-written output."""

from __future__ import annotations

import contextlib
import os
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
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".part{''.join(final.suffixes)}", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_path, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


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
