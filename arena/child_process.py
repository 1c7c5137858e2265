"""A Python child process joined to this one by a pipe: the database writer and model processes run in one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection


def spawn(module: str, *args: str) -> tuple[subprocess.Popen, Connection]:
    """Run `python -m module FD *args`, FD being its end of a new pipe; returns the process and our end."""
    mine, theirs = socket.socketpair()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # it imports what we can
    try:
        process = subprocess.Popen([sys.executable, "-m", module, str(theirs.fileno()), *args],
                                   pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
    finally:
        theirs.close()
    return process, Connection(mine.detach())


def exit_description(code: int | None) -> str:
    """How a process ended, in words: 'killed by SIGSEGV', 'exit code 1', or 'still running'."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
