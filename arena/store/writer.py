"""The single database writer: a process of its own runs submitted operations in batched transactions.

An operation is a module-level function `fn(session, *args)` (sent by reference, so it must be importable)
with its arguments, captured when it is submitted. Operations queued together share one commit; if the
batch fails, each one is retried alone in its own transaction, so one bad write costs only itself and
its caller gets the error. The process keeps the game loop's core free of database work: results come
back through a pipe that the event loop watches.

A function decorated with `@batched(many)` is run for a whole batch at once: `many(session, [args, ...])`
returns one result per call, in order. Within a batch, operations of one function keep their order,
and functions run in the order they first appear; so an operation that depends on another (turns of
an episode, the rating of a finished game) must be submitted after the other's future resolved.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import pickle
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from arena.child_process import exit_description, spawn
from arena.store.database import StoreError, create

T = TypeVar("T")
log = logging.getLogger(__name__)
MAX_BATCH = 2000  # operations in one transaction at most
SEND_EVERY = 16  # operations queued before they are sent without waiting for the loop's next turn
_MANY: dict[Callable, Callable[..., list]] = {}  # operation -> its many-at-once form (see `batched`)
_STOP = None  # what the parent sends (and the child's reader queues) to end the process


def batched(many: Callable[..., list]) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Mark `fn(session, *args)` as runnable for many calls at once by `many(session, [args, ...])`."""

    def mark(fn: Callable[..., T]) -> Callable[..., T]:
        _MANY[fn] = many
        return fn

    return mark


class WriterStopped(StoreError):
    """The writer process is gone (closed, killed or crashed): nothing more can be written."""


class Writer:
    """Serialises every write in one child process; `run` resolves once the operation has committed."""

    def __init__(self, url: str, group_commit_s: float = 0.0) -> None:
        """Start the writer process for `url`. With `group_commit_s`, a batch smaller than SEND_EVERY waits
        that long for more (for a live server, whose single writes would otherwise commit one by one)."""
        self.loop = asyncio.get_running_loop()
        self._process, self._conn = spawn("arena.store.writer", url, str(group_commit_s))
        self._ids = itertools.count()
        self._pending: dict[int, asyncio.Future] = {}
        self._outbox: list[tuple[int, Callable, tuple]] = []
        self._stopped: BaseException | None = None
        self.loop.add_reader(self._conn.fileno(), self._receive)

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue `fn(session, *args)`; the future resolves once its transaction has committed."""
        if self._stopped is not None:
            raise WriterStopped(f"the database writer is not running ({self._stopped})")
        op_id = next(self._ids)
        future: asyncio.Future[T] = self.loop.create_future()
        self._pending[op_id] = future
        if not self._outbox:
            self.loop.call_soon(self._flush)
        self._outbox.append((op_id, fn, args))
        if len(self._outbox) >= SEND_EVERY:  # keep the writer busy while the loop is still playing
            self._flush()
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Submit and wait until committed."""
        return await self.submit(fn, *args)

    async def close(self) -> None:
        """Commit everything submitted so far, then stop the process. Safe to call twice."""
        if self._stopped is None:
            self._flush()
            pending = list(self._pending.values())
            self._send(_STOP)
            await asyncio.gather(*pending, return_exceptions=True)
            self._stop(WriterStopped("the writer was closed"))
        await asyncio.to_thread(self._process.wait)

    @property
    def pid(self) -> int | None:
        """The writer process's id."""
        return self._process.pid

    def _flush(self) -> None:
        batch, self._outbox = self._outbox, []
        if batch:
            self._send(batch)

    def _send(self, item: Any) -> None:
        try:
            self._conn.send(item)
        except (pickle.PicklingError, AttributeError, TypeError) as error:  # e.g. a lambda
            for op_id, *_ in item or []:
                self._resolve(op_id, False, StoreError(f"a write operation must be a module-level function: {error}"))
        except OSError as error:
            self._stop(WriterStopped(f"the writer process stopped: {error}"))

    def _receive(self) -> None:
        """Event-loop callback: resolve the futures of every committed batch waiting in the pipe."""
        try:
            while self._conn.poll():
                for op_id, ok, value in self._conn.recv():
                    self._resolve(op_id, ok, value)
        except (EOFError, OSError):
            self._stop(WriterStopped(f"the writer process stopped ({exit_description(self._process.poll())})"))

    def _resolve(self, op_id: int, ok: bool, value: Any) -> None:
        future = self._pending.pop(op_id, None)
        if future is None or future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def _stop(self, error: BaseException) -> None:
        """No more writes: every waiting operation fails with `error`."""
        if self._stopped is not None:
            return
        self._stopped = error
        self.loop.remove_reader(self._conn.fileno())
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()


# --- the child process ---------------------------------------------------------------------------


def _serve(url: str, conn: Connection, group_commit_s: float) -> None:
    """Run batches until the parent says stop or goes away; reply to each batch after its commit.

    Ctrl-C reaches the whole process group: the writer ignores it, so the parent can still commit
    (games in flight stored as aborted) before it closes the writer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    engine = create(url)
    inbox: queue.Queue[list | None] = queue.Queue()
    threading.Thread(target=_read, args=(conn, inbox), daemon=True).start()  # the parent's sends never block
    try:
        while (batch := _next_batch(inbox, group_commit_s)) is not None:
            conn.send(_commit(engine, batch))
    except (BrokenPipeError, EOFError, OSError):
        pass
    finally:
        engine.dispose()


def _read(conn: Connection, inbox: queue.Queue) -> None:
    try:
        while (item := conn.recv()) is not _STOP:
            inbox.put(item)
    except (EOFError, OSError):
        pass
    inbox.put(_STOP)


def _next_batch(inbox: queue.Queue, group_commit_s: float) -> list | None:
    """The operations waiting now, or None when told to stop with nothing left. While the batch is smaller
    than SEND_EVERY (writes trickling in), it also takes those that arrive within `group_commit_s` of the
    first: group commit, so single writes share transactions."""
    item = inbox.get()
    if item is _STOP:
        return None
    batch = list(item)
    until = time.monotonic() + group_commit_s
    while len(batch) < MAX_BATCH:
        wait = until - time.monotonic() if len(batch) < SEND_EVERY else 0.0
        try:
            item = inbox.get(timeout=wait) if wait > 0 else inbox.get_nowait()
        except queue.Empty:
            break
        if item is _STOP:
            inbox.put(_STOP)
            break
        batch.extend(item)
    return batch


def _commit(engine, batch: list) -> list[tuple[int, bool, Any]]:
    """One transaction for the batch; if it fails, each operation alone so one bad write costs one."""
    groups: dict[Callable, list[tuple[int, tuple]]] = {}
    for op_id, fn, args in batch:
        groups.setdefault(fn, []).append((op_id, args))
    replies: list[tuple[int, bool, Any]] = []
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            for fn, calls in groups.items():
                many = _MANY.get(fn)
                results = (many(session, [_with_defaults(fn, args) for _, args in calls]) if many
                           else [fn(session, *a) for _, a in calls])
                replies += [_reply(op_id, result) for (op_id, _), result in zip(calls, results, strict=True)]
    except Exception:  # noqa: BLE001 - retried one by one below
        return [_commit_one(engine, op) for op in batch]
    return replies


def _with_defaults(fn: Callable, args: tuple) -> tuple:
    """A call's arguments with the defaults it left out filled in, so a many-at-once form sees every one."""
    bound = inspect.signature(fn).bind(None, *args)
    bound.apply_defaults()
    return bound.args[1:]


def _commit_one(engine, op: tuple) -> tuple[int, bool, Any]:
    op_id, fn, args = op
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            result = fn(session, *args)
    except Exception as error:  # noqa: BLE001 - handed to whoever waits on the operation
        if not type(error).__module__.startswith("arena."):  # the arena's own errors are its callers' to report
            log.warning("database write %s failed: %s", getattr(fn, "__name__", fn), error)
        return op_id, False, _picklable_error(error)
    return _reply(op_id, result)


def _reply(op_id: int, result: Any) -> tuple[int, bool, Any]:
    """A committed operation's result, or an error when the result cannot cross the pipe."""
    try:
        pickle.dumps(result)
    except Exception as error:  # noqa: BLE001 - the operation's bug, reported to its caller
        return op_id, False, StoreError(f"committed, but the result cannot be sent back: {error}")
    return op_id, True, result


def _picklable_error(error: Exception) -> Exception:
    """The arena's own errors (AgentConflict...) as they are; anything from the database, its driver or
    Python (a value that is not JSON) as a StoreError with the type and message."""
    if type(error).__module__.startswith("arena."):
        try:
            return pickle.loads(pickle.dumps(error))
        except Exception:  # noqa: BLE001 - then it goes as text
            pass
    return StoreError(f"{type(error).__name__}: {getattr(error, 'orig', None) or error}")


if __name__ == "__main__":  # the writer process: python -m arena.store.writer FD URL GROUP_COMMIT_S
    from arena.store import writer  # this file as the module the store registers its batched forms in

    writer._serve(sys.argv[2], Connection(int(sys.argv[1])), float(sys.argv[3]))
