"""What the trainer adapters share: one background event loop for synchronous callers, and the part of an
episode's first observation that a dataset prompt did not show."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_LOOP_LOCK = threading.Lock()


@functools.cache
def _background_loop() -> asyncio.AbstractEventLoop:
    """The one event loop, on a daemon thread, that synchronous callers run environments on."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="arena-env-loop", daemon=True).start()
    return loop


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on the background loop and wait for its result (safe from any thread but that loop's)."""
    with _LOOP_LOCK:
        loop = _background_loop()
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()


def unseen_part(observation: str, shown: str) -> str:
    """What `observation` adds to `shown` (the prompt the policy saw): its tail when it extends it, else all of
    it ('' when it shows nothing new). A game's later seats see the earlier seats' first moves this way."""
    text, seen = observation.strip(), shown.strip()
    return text[len(seen):].strip() if text.startswith(seen) else text
