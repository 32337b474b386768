"""What the script tests share: load a script under benchmarks/ or tools/ as a module, run its ``main`` as the
command line would, and read a folder back."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def script(relpath: str, prefix: str = "script_"):
    """A fresh copy of the script module at ``ROOT / relpath`` (registered as ``prefix`` + its path)."""
    name = prefix + relpath.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run(module, argv, monkeypatch, capsys) -> tuple[int | None, str, str]:
    """``module.main()`` as the command line ``argv`` runs it: exit status, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", [module.__file__, *map(str, argv)])
    try:
        code = module.main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (hidden ones included)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def no_work(*args, **kwargs):
    raise AssertionError("no work may start")
