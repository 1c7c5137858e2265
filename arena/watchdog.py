"""A time limit on calls into game code, so a game stuck in a loop cannot freeze the arena."""

from __future__ import annotations

import signal
import threading

GAME_CALL_LIMIT_S = 10.0


class GameStalled(Exception):
    """A call into a game ran past its time limit."""


class time_limit:  # noqa: N801 - used like a function: `with time_limit():`
    """Interrupt the block with GameStalled after `seconds` (main thread on Unix; a no-op elsewhere).

    The SIGALRM handler is installed on first use (and again if something replaced it); each block then
    only arms and disarms the timer."""

    __slots__ = ("seconds", "armed")
    current = GAME_CALL_LIMIT_S  # the limit of the armed block, for the error message

    def __init__(self, seconds: float = GAME_CALL_LIMIT_S) -> None:
        self.seconds, self.armed = seconds, False

    def __enter__(self) -> None:
        if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGALRM) is not _on_alarm:
            signal.signal(signal.SIGALRM, _on_alarm)
        self.armed, time_limit.current = True, self.seconds
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: object) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _on_alarm(_signum: int, _frame: object) -> None:
    raise GameStalled(f"a call into the game ran past {time_limit.current:g} s")
