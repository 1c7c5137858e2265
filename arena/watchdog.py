"""A time limit on calls into game code, so a game stuck in a loop cannot freeze the arena."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

GAME_CALL_LIMIT_S = 10.0


class GameStalled(Exception):
    """A call into a game ran past its time limit."""


@contextmanager
def time_limit(seconds: float = GAME_CALL_LIMIT_S) -> Iterator[None]:
    """Interrupt the block with GameStalled after `seconds` (main thread on Unix; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(_signum, _frame) -> None:
        raise GameStalled(f"a call into the game ran past {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
