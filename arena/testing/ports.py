"""Free TCP ports on localhost, for the tests and benchmarks that start servers."""

from __future__ import annotations

import socket
from contextlib import ExitStack


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that nothing listens on right now (all held while picked)."""
    with ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port(besides: int | None = None) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, other than `besides`."""
    return next(port for port in free_ports(2) if port != besides)
