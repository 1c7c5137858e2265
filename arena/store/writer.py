"""The single database writer: one thread runs submitted operations in batched transactions."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

T = TypeVar("T")
Operation = Callable[[Session], Any]
log = logging.getLogger(__name__)
_STOP = object()


class Writer:
    """Serialises every write; operations queued together share one commit."""

    def __init__(self, engine: Engine, max_batch: int = 1000) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="arena-db-writer", daemon=True)
        self._thread.start()

    def submit(self, operation: Callable[[Session], T]) -> Future[T]:
        """Queue `operation(session)`; the future resolves once its transaction has committed."""
        future: Future[T] = Future()
        self._queue.put((operation, future))
        return future

    async def run(self, operation: Callable[[Session], T]) -> T:
        """Submit and wait, from async code, until committed."""
        return await asyncio.wrap_future(self.submit(operation))

    def close(self) -> None:
        """Commit everything queued so far, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch:
                self._commit(batch)
            if stop:
                return

    def _next_batch(self) -> tuple[list[tuple[Operation, Future]], bool]:
        item = self._queue.get()
        batch: list[tuple[Operation, Future]] = []
        while True:
            if item is _STOP:
                return batch, True
            batch.append(item)
            if len(batch) >= self.max_batch:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False

    def _commit(self, batch: list[tuple[Operation, Future]]) -> None:
        """One transaction for the batch; if it fails, each operation alone so one bad write costs one."""
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                results = [operation(session) for operation, _ in batch]
        except Exception:  # noqa: BLE001 - retried one by one below
            for operation, future in batch:
                self._commit_one(operation, future)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    def _commit_one(self, operation: Operation, future: Future) -> None:
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                result = operation(session)
        except Exception as error:  # noqa: BLE001 - handed to whoever waits on the future
            log.warning("database write failed: %s", error)
            future.set_exception(error)
        else:
            future.set_result(result)
