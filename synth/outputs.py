"""Outputs that never destroy a user's data, and never lose or half-write synth's own.

Every output a command writes (a folder, or a unit of files such as an MP4 and its PNG filmstrip, or a WFDB
``.hea`` + ``.dat``) goes through :func:`staged_folder` or :func:`staged_files`:

1. **One writer per output.** A lock file ``.NAME.synth-lock`` beside the output is held (``flock``) for the whole
   run; the operating system releases it when the process ends, even by SIGKILL. A second run for the same output
   fails at once with :class:`OutputLockedError` naming the holder (pid, host, command, start time).
2. **Replacing (``--force``) only what synth wrote.** A folder qualifies when it holds the marker
   ``.synth-output.json`` (written last, listing every file with its size and modification time) and nothing else
   than those files, unchanged in size and modification time; a file when it carries synth's mark (:func:`file_is_synth_output`: a PNG text chunk, an MP4
   comment, a WFDB header comment, an NPZ ``writer`` entry, a CSV first comment line). Never the filesystem root,
   the home folder, the working directory or a folder above it, or a repository root.
3. **Nothing half-written, nothing piling up.** The work happens in ``.NAME.synth-staging`` beside the output and
   appears by renames only when complete. A folder replaced with ``--force`` is first renamed to
   ``.NAME.synth-old``; a file unit writes ``.synth-commit.json`` into its staging folder before its files move.
   The next run for the same output, holding the lock, finds what a killed run left: it restores or removes
   ``.synth-old``, finishes the moves of a committed file unit, and removes (or, with a matching ``resume_key``,
   reuses) stale staging, so a rerun succeeds and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import stat
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from synth import __version__
from synth.errors import OutputExistsError, SynthError

#: Marker written last into every output folder synth completes.
MARKER = ".synth-output.json"
#: Marker of a staging folder (who made it, and the resume key).
STAGING_MARKER = ".synth-staging.json"
#: Written into a file unit's staging folder when its files are complete: from then on they are moved, not lost.
COMMIT = ".synth-commit.json"
#: The mark synth embeds in the files it writes (see :func:`file_is_synth_output`).
WRITER = f"synth {__version__}"
#: Header comment binding a WFDB ``.dat`` to the ``.hea`` synth wrote with it: ``# synth-dat-sha256: HEX``.
DAT_SEAL = "synth-dat-sha256"


class OutputLockedError(SynthError, RuntimeError):
    """Another synth run is writing the same output."""


class OutputRefusedError(SynthError, PermissionError):
    """An output that synth will not replace: not written by synth, changed since, or a protected folder."""


# -- names beside an output ----------------------------------------------------------------------------------
def _sibling(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.synth-{kind}"


def command_line() -> str:
    """What is running, for lock files and markers: ``synth generate --n 8 ...`` (shortened)."""
    text = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    return text if len(text) <= 200 else text[:197] + "..."


# -- locking ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def output_lock(target: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of output ``target`` (see the module doc); raises :class:`OutputLockedError` at once when
    another process holds it. The lock file is removed on release."""
    target = Path(target)
    path = _sibling(target, "lock")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(path, target)
    except OSError as err:  # report the output the user named, not synth's lock file beside it
        if isinstance(err, SynthError):
            raise
        raise type(err)(err.errno, err.strerror, str(target)) from None
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command_line(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still holding it: a run waiting on the old inode re-opens (see _acquire)
        os.close(fd)


def _acquire(path: Path, target: Path) -> int:
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks; staging and markers still protect the data
        return _open_lock_file(path, target)
    for _ in range(100):
        fd = _open_lock_file(path, target)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise OutputLockedError(f"being written by another synth run ({holder})", path=target,
                                    hint="wait for it to finish or choose another output; the lock is freed when "
                                         "that process ends") from None
        try:  # the holder before us may have unlinked the file we opened: lock the one at `path` instead
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
    raise OutputLockedError("could not take the output lock", path=target, hint="try again")


def _open_lock_file(path: Path, target: Path) -> int:
    """Open (or create) the lock file itself, never what a link in its place points to: the lock is truncated and
    written, so a symbolic link or a second hard link planted at ``.NAME.synth-lock`` would have synth overwrite
    another file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError:
        if path.is_symlink():
            raise OutputRefusedError(f"{path.name} beside it is a link, not synth's lock file", path=target,
                                     hint="remove that link; synth keeps its lock under this name") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise OutputRefusedError(f"{path.name} beside it is not a plain file of its own (a hard link or a special "
                                 "file), so synth will not write its lock into it", path=target,
                                 hint="remove it; synth keeps its lock under this name")
    return fd


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {info['pid']} on {info['host']}, {info['command']!r}, since {info['since']}"
    except (OSError, ValueError, KeyError):
        return "a process that has just started"


# -- what synth wrote ------------------------------------------------------------------------------------------
def protected_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` must never be replaced or deleted by synth (None if nothing forbids it)."""
    p = Path(path).expanduser().resolve()
    if p == Path(p.anchor):
        return "it is the filesystem root"
    with contextlib.suppress(RuntimeError, KeyError):
        if p == Path.home().resolve():
            return "it is your home folder"
    cwd = Path.cwd().resolve()
    if p == cwd or p in cwd.parents:
        return "it is the working directory or a folder above it"
    if (p / ".git").exists():
        return "it is a repository root"
    return None


def _files_in(folder: Path) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """``{relative path: (size, mtime in ns)}`` of the regular files under ``folder`` (marker excluded) and its
    links/specials."""
    files, odd = {}, []
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            p = Path(root) / name
            rel = p.relative_to(folder).as_posix()
            if p.is_symlink() or not (p.is_dir() or p.is_file()):
                odd.append(rel)
            elif p.is_file() and rel != MARKER:
                st = p.stat()
                files[rel] = (st.st_size, st.st_mtime_ns)
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
    return files, odd


def folder_refusal(folder: str | os.PathLike) -> str | None:
    """Why synth may not replace ``folder`` (None when it may: a complete synth output, unchanged)."""
    folder = Path(folder)
    reason = protected_reason(folder)
    if reason:
        return reason
    if not folder.is_dir() or folder.is_symlink():
        return "it is not a folder synth wrote"
    marker = folder / MARKER
    if not marker.is_file():
        return f"synth did not write it (no {MARKER} inside)"
    try:
        meta = json.loads(marker.read_text(encoding="utf-8"))
        listed = {str(k): int(v) for k, v in meta["files"].items()}
        # Markers written before synth recorded modification times list sizes only: they are checked by size.
        mtimes = {str(k): int(v) for k, v in meta.get("mtimes_ns", {}).items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"its {MARKER} is unreadable"
    files, odd = _files_in(folder)
    if odd:
        return f"it holds links or special files ({', '.join(sorted(odd)[:3])})"
    extra = sorted(set(files) - set(listed))
    if extra:
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        return f"it holds files synth did not write ({', '.join(extra[:3])}{more})"
    # An edit that keeps a file's size still changes its modification time.
    changed = sorted(k for k, (size, mtime) in files.items()
                     if size != listed[k] or (k in mtimes and mtime != mtimes[k]))
    if changed:
        return f"files changed since synth wrote them ({', '.join(changed[:3])})"
    return None


def made_by_refusal(folder: str | os.PathLike, made_by: str, what: str) -> str | None:
    """Why a script may not replace ``folder`` (None when it is a synth output, unchanged, whose marker names
    ``made_by``: ``staged_folder(..., marker={"made_by": made_by})`` wrote it). ``what``: the kind of folder the
    script makes, for the message ("scratch folder", "bundle")."""
    reason = folder_refusal(folder)
    if reason:
        return reason
    try:
        mine = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8")).get("made_by")
    except (OSError, ValueError, AttributeError):
        mine = None
    return None if mine == made_by else f"it is a synth output, but not a {what} of {made_by}"


def write_marker(folder: Path, **extra) -> Path:
    """Write :data:`MARKER` into a finished ``folder``: every file with its size, the writer and the command."""
    files, _ = _files_in(folder)
    files.pop(STAGING_MARKER, None)
    meta = {"writer": WRITER, "command": command_line(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **extra, "files": {k: size for k, (size, _) in sorted(files.items())},
            "mtimes_ns": {k: mtime for k, (_, mtime) in sorted(files.items())}}
    tmp = folder / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp, folder / MARKER)
    return folder / MARKER


#: The mark exactly as :data:`WRITER` writes it (any version): "synth 0.1.0", not "synthwave 1.0" or "synthetic".
_MARK = re.compile(r"synth \d+(\.\d+)*([.+-][0-9A-Za-z.]+)?")


def is_mark(text: str) -> bool:
    """Whether ``text`` is synth's mark (:data:`WRITER` of some version), exactly."""
    return bool(_MARK.fullmatch(str(text).strip()))


def file_is_synth_output(path: str | os.PathLike) -> bool:
    """Whether ``path`` carries the mark synth embeds in what it writes (by format, from the name): a PNG
    ``Software`` text chunk, an MP4 ``comment``, an NPZ ``writer`` entry, a CSV's first line ``# synth X.Y.Z``, a
    WFDB header whose first comment is that line; a ``.dat`` when its header is synth's and records the ``.dat``'s
    SHA-256 unchanged."""
    p = Path(path)
    if p.is_symlink() or not p.is_file():
        return False
    name = p.name.lower()
    try:
        if name.endswith(".png"):
            return is_mark(_png_text(p).get("Software", ""))
        if name.endswith(".mp4"):
            import av

            with av.open(str(p)) as container:
                return is_mark(container.metadata.get("comment", ""))
        if name.endswith(".npz"):
            with zipfile.ZipFile(p) as z:
                if "writer.npy" not in z.namelist():
                    return False
            import numpy as np

            with np.load(p, allow_pickle=False) as data:
                return is_mark(data["writer"])
        if name.endswith(".csv"):
            with open(p, "rb") as fh:
                first = fh.readline(256).decode("utf-8", errors="replace").strip()
            return first.startswith("#") and is_mark(first[1:])
        if name.endswith(".dat"):
            return _dat_sealed(p)
        if name.endswith(".hea"):
            comments = _header_comments(p)
            return bool(comments) and is_mark(comments[0])
    except Exception:  # noqa: BLE001 - an unreadable or damaged file is not one synth can vouch for
        return False
    return False


def _header_comments(hea: Path) -> list[str]:
    """The ``#`` comment lines of a WFDB header, without the ``#``."""
    with open(hea, encoding="utf-8", errors="replace") as fh:
        return [line.strip()[1:].strip() for line in fh if line.strip().startswith("#")]


def _dat_sealed(dat: Path) -> bool:
    """A ``.dat`` beside a synth header that records its SHA-256 (:data:`DAT_SEAL`), and still has it."""
    import hashlib

    hea = dat.with_suffix(".hea")
    if not file_is_synth_output(hea):
        return False
    seals = [c.split(":", 1)[1].strip() for c in _header_comments(hea) if c.startswith(f"{DAT_SEAL}:")]
    if len(seals) != 1:
        return False
    digest = hashlib.sha256()
    with open(dat, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == seals[0]


def _png_text(path: Path) -> dict[str, str]:
    """The ``tEXt`` chunks before the image data of a PNG file."""
    import struct

    out = {}
    with open(path, "rb") as fh:
        if fh.read(8) != b"\x89PNG\r\n\x1a\n":
            return out
        while True:
            head = fh.read(8)
            if len(head) < 8:
                return out
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IDAT" or length > 1 << 20:
                return out
            data = fh.read(length)
            fh.read(4)  # CRC
            if kind == b"tEXt" and b"\x00" in data:
                key, _, value = data.partition(b"\x00")
                out[key.decode("latin-1")] = value.decode("latin-1")


def _refuse_existing(path: Path, overwrite: bool, *, is_folder: bool,
                     owned: Callable[[Path], str | None] | None = None) -> None:
    if not (path.exists() or path.is_symlink()):
        return
    what = "output folder" if is_folder else "output"
    if not overwrite:
        raise OutputExistsError(f"{what} already exists", path=path, hint="choose another name or pass --force")
    if is_folder:
        reason = (owned or folder_refusal)(path) or _unremovable(path)
    else:
        reason = protected_reason(path) or (
            None if file_is_synth_output(path) else "synth did not write it (it carries no synth mark)")
    if reason:
        raise OutputRefusedError(f"--force will not replace it: {reason}", path=path,
                                 hint="choose another output, or move it away yourself if you mean to lose it")


def _unremovable(folder: Path) -> str | None:
    """Why this process could not delete ``folder`` once replaced (a read-only folder in it), else None."""
    for root, dirs, _ in os.walk(folder):
        if not os.access(root, os.W_OK | os.X_OK):
            where = Path(root).relative_to(folder).as_posix()
            return f"synth could not delete it afterwards ({'it' if where == '.' else where} is read-only to you)"
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
    return None


def _remove_ours(folder: Path, *markers: str) -> None:
    """Delete a staging/old folder of synth's own (it holds one of ``markers``); anything else is left, reported."""
    if not folder.exists():
        return
    if folder.is_symlink() or not any((folder / m).is_file() for m in markers):
        raise OutputRefusedError(f"{folder.name} is in the way and synth did not make it", path=folder,
                                 hint="move it away; synth uses this name for its staging")
    try:
        shutil.rmtree(folder)
    except OSError as err:
        raise OutputRefusedError(f"synth's leftover folder cannot be removed ({err.strerror or err})", path=folder,
                                 hint="fix its permissions or remove it yourself") from None


# -- staged outputs ----------------------------------------------------------------------------------------------
#: What a run reads: paths, or ``(label, path)`` pairs (``("--data", root)``) for messages that name the option;
#: None paths are skipped.
Inputs = Sequence["str | os.PathLike | tuple[str, str | os.PathLike | None] | None"]


def _labelled(inputs: Inputs) -> Iterator[tuple[str, str | os.PathLike]]:
    for item in inputs:
        what, given = item if isinstance(item, tuple) else ("", item)
        if given is not None:
            yield (f" ({what})" if what else ""), given


def check_apart(output: str | os.PathLike, inputs: Inputs) -> None:
    """Refuse an output that is one of the run's ``inputs``, holds one (``--force`` would replace it with the run's
    result) or lies inside an input folder (synth never writes into what it reads)."""
    out = Path(output).expanduser().resolve()
    for label, given in _labelled(inputs):
        src = Path(given).expanduser().resolve()
        if src == out or out in src.parents:
            verb = "is" if src == out else "holds"
            raise OutputRefusedError(f"it {verb} this run's input{label} {given}", path=output,
                                     hint="write the output somewhere else than the input")
        if src.is_dir() and src in out.parents:
            raise OutputRefusedError(f"it lies inside this run's input folder{label} {given}", path=output,
                                     hint="write the output outside the folders the run reads")


_WFDB = (".hea", ".dat")


def _check_not_an_input(output: Path, inputs: Inputs) -> None:
    """Refuse an output file that is one of the run's input files (a WFDB record's ``.hea`` and ``.dat`` alike,
    whichever of them, or the bare record name, was given)."""
    out = output.expanduser().resolve()
    for _, given in _labelled(inputs):
        src = Path(given).expanduser().resolve()
        same_record = (out.suffix.lower() in _WFDB and src.suffix.lower() in ("", *_WFDB)
                       and out.with_suffix("") == src.with_suffix(""))
        if src == out or same_record:
            raise OutputRefusedError(f"it is this run's input {given}", path=output,
                                     hint="write the output under another name than the input")


def check_output_folder(path: str | os.PathLike, *, overwrite: bool = False, inputs: Inputs = ()) -> None:
    """Refuse, before any work, an output folder that :func:`staged_folder` would refuse (protected, existing
    without ``overwrite``, not a synth output, or overlapping the run's ``inputs``)."""
    final = Path(path)
    reason = protected_reason(final)
    if reason:
        raise OutputRefusedError(f"synth will not write into it: {reason}", path=final,
                                 hint="give a new folder name for the output")
    check_apart(final, inputs)
    _refuse_existing(final, overwrite, is_folder=True)


#: Output folders this process has claimed, with their staging folders: a nested claim of the same output (a
#: command that claims its output before calling a library function that claims it again) reuses the staging.
_ACTIVE: dict[Path, Path] = {}


def _new_staging(staging: Path, resume_key: str | None) -> None:
    staging.mkdir(mode=0o700)
    info = {"writer": WRITER, "pid": os.getpid(), "command": command_line(), "resume_key": resume_key}
    (staging / STAGING_MARKER).write_text(json.dumps(info), encoding="utf-8")


def _staging_key(staging: Path) -> str | None:
    try:
        return json.loads((staging / STAGING_MARKER).read_text(encoding="utf-8")).get("resume_key")
    except (OSError, ValueError, AttributeError):
        return None


def _staged_work(staging: Path) -> list[str]:
    """The files a run wrote into its staging folder (its staging marker aside)."""
    return sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*")
                  if p.is_file() and p.name != STAGING_MARKER)


def _recover_folder(final: Path, staging: Path, old: Path, resume_key: str | None, overwrite: bool) -> bool:
    """Undo or finish what a killed run left beside ``final``; True when ``staging`` is kept to be resumed.

    The finished work of a resumable run (its staging carries a resume key) that this run cannot resume, because
    its settings differ, is only discarded with ``overwrite``: hours of sampling are not lost to a changed option.
    """
    if old.exists():
        if final.exists():
            _remove_ours(old, MARKER)  # the replacement had finished; only the old copy was left
        else:
            _move(old, final)  # killed between the two renames: the previous output comes back
    if staging.exists():
        theirs = None if staging.is_symlink() else _staging_key(staging)
        if resume_key is not None and theirs == resume_key:
            return True
        if theirs is not None and not overwrite and (staging / STAGING_MARKER).is_file():
            work = _staged_work(staging)
            if work:
                raise OutputRefusedError(
                    f"an unfinished run with other settings left {len(work):,} finished file(s) for this output "
                    f"in {staging.name}", path=final,
                    hint="rerun that run's exact command to finish it, or pass --force to discard its work")
        _remove_ours(staging, STAGING_MARKER, MARKER)
    return False


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike, *, overwrite: bool = False, resume_key: str | None = None,
                  owned: Callable[[Path], str | None] | None = None, marker: dict | None = None,
                  mark: bool = True, inputs: Inputs = ()) -> Iterator[Path]:
    """Yield a staging folder for the output folder ``path``; on success it replaces ``path`` (see module doc).

    Args:
        overwrite: replace an existing ``path`` (``--force``), which must be a synth output (or pass ``owned``).
        resume_key: when the staging folder of a killed run carries the same key, it is yielded again with what
            that run wrote (the caller skips the finished parts); otherwise stale staging is removed.
        owned: ``owned(folder) -> reason or None``: a different test of what may be replaced (tools that replace
            checkpoint folders, which carry no marker).
        marker: extra fields for the :data:`MARKER` file.
        mark: write the marker (tools that ship checkpoints into the repository, with their own ``owned``, do not).
        inputs: what the run reads: an output that is, holds or lies inside one of them is refused.

    An exception inside the block leaves ``path`` as it was and removes the staging folder (kept when
    ``resume_key`` is set, so the rerun continues).
    """
    final = Path(path)
    key = final.resolve()
    if key in _ACTIVE:  # claimed further up this call stack: write into the same staging, the outer run commits
        yield _ACTIVE[key]
        return
    reason = protected_reason(final)
    if reason:
        raise OutputRefusedError(f"synth will not write into it: {reason}", path=final,
                                 hint="give a new folder name for the output")
    check_apart(final, inputs)
    staging, old = _sibling(final, "staging"), _sibling(final, "old")
    with output_lock(final), _claimed(key, staging):
        resumed = _recover_folder(final, staging, old, resume_key, overwrite)  # first: it may bring an output back
        _refuse_existing(final, overwrite, is_folder=True, owned=owned)
        if not resumed:
            _new_staging(staging, resume_key)
        try:
            yield staging
        except BaseException:
            # Work a resumable run made survives any failure (kill, Ctrl-C, full disk, a bad value met halfway) for
            # the rerun; a run that cannot resume, or an empty staging folder, leaves nothing behind.
            if resume_key is None or not _staged_work(staging):
                shutil.rmtree(staging, ignore_errors=True)
            raise
        try:  # changed by hand while we worked? Checked while the staging is still marked as synth's own
            _refuse_existing(final, overwrite, is_folder=True, owned=owned)
        except SynthError:
            if resume_key is None or not _staged_work(staging):
                shutil.rmtree(staging, ignore_errors=True)
            raise
        if mark:
            write_marker(staging, **(marker or {}))  # before the staging marker goes: one of them is always there
        (staging / STAGING_MARKER).unlink(missing_ok=True)
        os.chmod(staging, 0o777 & ~_umask())
        if final.exists():
            _move(final, old)
            _move(staging, final)
            try:  # it passed _refuse_existing above: ours to delete
                shutil.rmtree(old)
            except OSError as err:
                raise OutputRefusedError(f"the replaced output's old copy cannot be removed ({err.strerror or err})",
                                         path=old, hint="the new output is in place; remove the old copy yourself"
                                         ) from None
        else:
            _move(staging, final)


@contextlib.contextmanager
def staged_files(paths: Sequence[str | os.PathLike], *, overwrite: bool = False, inputs: Inputs = ()
                 ) -> Iterator[Path]:
    """Yield a staging folder; write each of ``paths`` into it under its own name (``staging / path.name``). On
    success they move into place as one unit, in the order given: the last is the main file (a WFDB ``.hea`` after
    its ``.dat``, an MP4 after its filmstrip), which names the lock and staging folder.

    All ``paths`` share one folder. Existing ones are refused unless ``overwrite``, and then only when synth wrote
    them. A unit whose moves were cut short is completed by the next run for the same output.
    """
    finals = [Path(p) for p in paths]
    if not finals or len({p.parent.resolve() for p in finals}) != 1:
        raise ValueError("staged_files needs one or more paths in one folder")
    for p in finals:
        if p.is_dir():
            raise OutputRefusedError("is a folder, not a file", path=p, hint="give a file name for the output")
    for p in finals:
        check_apart(p, inputs)  # not an input, nor inside an input folder
        _check_not_an_input(p, inputs)
    anchor = finals[-1]
    staging = _sibling(anchor, "staging")
    with contextlib.ExitStack() as locks:
        for p in sorted(finals):  # every file of the unit: no other synth run writes any of them meanwhile
            locks.enter_context(output_lock(p))
        _recover_files(anchor.parent, staging)  # first: it may finish a unit a killed run had committed
        for p in finals:
            _refuse_existing(p, overwrite, is_folder=False)
        _new_staging(staging, None)
        try:
            yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        missing = [p.name for p in finals if not (staging / p.name).is_file()]
        if missing:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(f"staged_files: {missing} were not written")
        try:
            for p in finals:  # a file put there by hand while we worked is not replaced without --force
                _refuse_existing(p, overwrite, is_folder=False)
        except SynthError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        mode = 0o666 & ~_umask()
        for p in finals:
            os.chmod(staging / p.name, mode)
        tmp = staging / f"{COMMIT}.tmp"
        tmp.write_text(json.dumps([p.name for p in finals]), encoding="utf-8")
        os.replace(tmp, staging / COMMIT)  # the point of no return: from here on a rerun finishes the moves
        _recover_files(anchor.parent, staging)


@contextlib.contextmanager
def _claimed(key: Path, staging: Path) -> Iterator[None]:
    _ACTIVE[key] = staging
    try:
        yield
    finally:
        _ACTIVE.pop(key, None)


def _recover_files(folder: Path, staging: Path) -> None:
    """Finish the moves of a committed unit, or discard an uncommitted one."""
    if not staging.exists():
        return
    commit = staging / COMMIT
    if commit.is_file() and not staging.is_symlink():
        for name in json.loads(commit.read_text(encoding="utf-8")):
            src = staging / name
            if src.exists():
                _move(src, folder / name)
        shutil.rmtree(staging)
        return
    _remove_ours(staging, STAGING_MARKER, COMMIT)


def _move(src: Path, dst: Path) -> None:
    """One rename of a commit (atomic on one filesystem; the staging folder sits beside the output for that)."""
    os.replace(src, dst)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
