"""User-facing errors: the CLI prints them as one paragraph and exits with code 2."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager


class BenchmarkError(Exception):
    """A problem with the user's input (files, names, options), not a bug in the suite."""


class DataFormatError(BenchmarkError):
    """A raw data file does not have the expected format."""

    def __init__(self, path: object, line: int | None, expected: str, found: str | None = None, hint: str = "") -> None:
        where = f"{path}" + (f", line {line}" if line is not None else "")
        message = f"{where}: expected {expected}"
        if found is not None:
            message += f", found {found!r}"
        super().__init__(message + "." + (f" {hint}" if hint else ""))
        self.path = path
        self.line = line


# errno values that describe the user's environment (permissions, a full or read-only
# disk), not a bug: they become one-paragraph errors; any other OSError stays a traceback.
ENVIRONMENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def cannot_read(path: object, exc: OSError) -> BenchmarkError:
    """A raw data file or folder the operating system refuses to read, and what to do."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        advice = "Make it readable by this user (chmod u+r for a file, u+rx for a folder) or pass --raw-dir with a readable copy."
    else:
        advice = "Check the disk, or copy the file again."
    return BenchmarkError(f"{path}: cannot read it ({_reason(exc)}). {advice}")


def cannot_write(path: object, exc: OSError, what: str = "the cache") -> BenchmarkError:
    """A cache folder that cannot be written (permissions, read-only or full disk), and what to do."""
    return BenchmarkError(
        f"{path}: cannot write {what} there ({_reason(exc)}). Make the folder writable (or free space), or set "
        "BENCHMARK_CACHE to a writable folder."
    )


@contextmanager
def reading(path: object) -> Iterator[None]:
    """Turn a permission (or full/read-only disk) error raised while reading raw files under
    ``path`` into ``cannot_read`` naming the file the OS refused (``path`` when unknown)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        raise cannot_read(exc.filename or path, exc) from None
