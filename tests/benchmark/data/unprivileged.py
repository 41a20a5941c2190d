"""Run a check where file permissions bite, also when the tests run as root.

Root ignores ``chmod 000`` (capabilities CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), so a
permission test would pass for the wrong reason. ``call_unprivileged`` runs the function
in a forked child that first drops those two capabilities (for a non-root user they are
absent anyway), and hands back its result, or the type and message of what it raised.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import pickle
from collections.abc import Callable
from typing import Any

import pytest

_CAP_VERSION_3 = 0x20080522
_DAC_CAPABILITIES = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_file_capabilities() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _Header(_CAP_VERSION_3, 0), (_Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        return False
    data[0].effective &= ~_DAC_CAPABILITIES
    data[0].permitted &= ~_DAC_CAPABILITIES
    return libc.capset(ctypes.byref(header), data) == 0


class ChildRaised(Exception):
    """What the function raised in the child: ``kind`` is its class name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind, self.message = kind, message


def call_unprivileged(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a child process without root's file-permission override."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        try:
            if os.geteuid() == 0 and not _drop_file_capabilities():
                outcome: tuple = ("skip", "cannot drop root's file capabilities here")
            else:
                outcome = ("ok", fn())
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            outcome = ("raised", type(exc).__name__, str(exc))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(pickle.dumps(outcome))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    os.waitpid(pid, 0)
    outcome = pickle.loads(payload)
    if outcome[0] == "skip":
        pytest.skip(outcome[1])
    if outcome[0] == "raised":
        raise ChildRaised(outcome[1], outcome[2])
    return outcome[1]


def cli_unprivileged(argv: list[str]) -> tuple[int, str]:
    """``python -m benchmark ARGV`` (in process, unprivileged): exit code and stderr."""
    from benchmark.cli import main

    def run() -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        return code, err.getvalue()

    return call_unprivileged(run)
