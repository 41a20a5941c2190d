"""Writing files and folders atomically: readers see the old content or the new, never half.

Every file the suite writes (run records, caches, leaderboards, configs) goes through these:
the content is written to a temporary sibling, then renamed into place (``os.replace``, atomic
on POSIX within one filesystem). A crash leaves at most a hidden ``.<name>.*`` temporary.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_dir", "atomic_file", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]


def atomic_file(path: str | Path, write: Callable[[Path], None], *, mode: int = 0o644) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then rename it to ``path``.

    ``mode``: the permissions of the result (temporary files start private, 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int = 0o644) -> Path:
    return atomic_file(path, lambda tmp: tmp.write_bytes(data), mode=mode)


def atomic_write_text(path: str | Path, text: str, *, mode: int = 0o644) -> Path:
    return atomic_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), mode=mode)


def atomic_write_json(path: str | Path, content: Any, *, indent: int | None = 2) -> Path:
    """JSON with a trailing newline; values JSON cannot hold are written with ``str``."""
    return atomic_write_text(path, json.dumps(content, indent=indent, default=str) + "\n")


def atomic_dir(target: str | Path, write: Callable[[Path], None], *, replace: bool = False) -> Path:
    """Call ``write(tmp)`` to fill a temporary folder beside ``target``, then rename it to ``target``.

    If ``target`` appears meanwhile (another process finished first) the new folder is dropped
    and the existing one kept, unless ``replace``, which swaps it in."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        if replace and target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / "content")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, target)
            except OSError:
                if not target.exists():
                    raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
