"""A model in a child process, so that its native code (llama.cpp...) cannot take the arena down with it.

`ModelProcess(load, *args)` runs `load(*args)` in a child process; `run(fn, *args)` then calls `fn(model,
*args)` there and returns the result. Functions go by reference (module-level, importable by the child),
as the database writer's operations do. Calls may run at once, each on a thread of the child: a caller
serialises what its model cannot do concurrently. If the child dies (a segfault, an out-of-memory kill,
SIGKILL), every call waiting on it raises `AgentCrashed` naming how it died, and the next call starts a
fresh child.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from agents.base import AgentCrashed
from arena.child_process import exit_description, spawn

READY = "ready"
_STOP = None  # what the parent sends to end the child


class ModelError(Exception):
    """An exception the model's code raised in the child, carried back as its type name and message."""


class ModelProcess:
    """A child process holding one loaded model; calls may come from any thread or event loop."""

    def __init__(self, load: Callable[..., Any], *args: Any) -> None:
        self.load, self.args = load, args
        self.starts = 0  # processes started so far (the first, then one per restart)
        self._process: Any = None
        self._conn: Connection | None = None
        self._pending: dict[int, concurrent.futures.Future] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()  # guards starting, sending and the pending calls
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Start the child and load the model; a load that fails raises here, with the child's message."""
        await asyncio.to_thread(self._ensure_started)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(model, *args)` in the child (started again first if it died)."""
        await asyncio.to_thread(self._ensure_started)
        return await asyncio.wrap_future(self._submit(fn, args))

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`run`, blocking: for quick calls from synchronous code (a tokenizer's)."""
        self._ensure_started()
        return self._submit(fn, args).result()

    async def close(self) -> None:
        """Stop the child (it finishes nothing more); safe to call twice."""
        await asyncio.to_thread(self._close)

    # --- the parent's side -----------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        with self._lock:
            if self._closed:
                raise AgentCrashed("the model process was closed")
            if self._process is None:
                self._start_locked()

    def _start_locked(self) -> None:
        """Spawn the child and wait for its model; raises RuntimeError (it could not load) or AgentCrashed."""
        process, conn = spawn("agents.model_process")
        self.starts += 1
        try:
            conn.send_bytes(pickle.dumps((self.load, self.args)))
            status, detail = conn.recv()
        except (EOFError, OSError):
            conn.close()
            raise AgentCrashed(f"the model process died while loading ({exit_description(process.wait())})") \
                from None
        except BaseException:  # a load function that does not pickle, or we were interrupted
            conn.close()
            process.kill()
            process.wait()
            raise
        if status != READY:
            conn.close()
            process.wait()
            raise RuntimeError(detail)
        self._process, self._conn = process, conn
        threading.Thread(target=self._receive, args=(process, conn), daemon=True,
                         name=f"model-process-{process.pid}").start()

    def _submit(self, fn: Callable[..., Any], args: tuple) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._conn is None:
                raise AgentCrashed("the model process is not running")
            try:
                payload = pickle.dumps((fn, args))
            except (pickle.PicklingError, AttributeError, TypeError) as error:  # e.g. a lambda
                raise TypeError(f"a model call must be a module-level function: {error}") from error
            call_id = next(self._ids)
            self._pending[call_id] = future
            with contextlib.suppress(OSError):  # if the child is gone, the reader fails this call with how it died
                self._conn.send((call_id, payload))
        return future

    def _receive(self, process: Any, conn: Connection) -> None:
        """Reader thread: resolve each call as its reply arrives; when the child dies, fail the rest."""
        try:
            while True:
                self._resolve(*conn.recv())
        except (EOFError, OSError):
            pass
        how = exit_description(process.wait())
        with self._lock:
            if self._process is not process:
                return
            self._process, self._conn = None, None
            pending, self._pending = self._pending, {}
        conn.close()
        error = AgentCrashed("the model process was closed" if self._closed else f"the model process died ({how})")
        for future in pending.values():
            self._settle(future, exception=error)

    def _resolve(self, call_id: int, ok: bool, payload: bytes) -> None:
        with self._lock:
            future = self._pending.pop(call_id, None)
        if future is None:
            return
        try:
            value = pickle.loads(payload)
        except Exception as error:  # noqa: BLE001 - e.g. an exception class this process cannot import
            ok, value = False, ModelError(f"the reply cannot be read here: {type(error).__name__}: {error}")
        self._settle(future, value if ok else None, None if ok else value)

    @staticmethod
    def _settle(future: concurrent.futures.Future, result: Any = None, exception: BaseException | None = None) -> None:
        if future.done():  # its caller stopped waiting (a move's deadline)
            return
        try:
            if exception is not None:
                future.set_exception(exception)
            else:
                future.set_result(result)
        except concurrent.futures.InvalidStateError:
            pass

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            process, conn = self._process, self._conn
        if process is None:
            return
        with contextlib.suppress(OSError):
            conn.send(_STOP)
        try:
            process.wait(timeout=10)
        except Exception:  # noqa: BLE001 - a child stuck in native code is killed
            process.kill()
            process.wait()


# --- the child process ---------------------------------------------------------------------------------


def _serve(conn: Connection) -> None:
    """Load the model, say so, then run calls (each on a thread) until told to stop or the parent goes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it closes us
    try:
        load, args = pickle.loads(conn.recv_bytes())
        model = load(*args)
    except (EOFError, OSError):
        return
    except BaseException as error:  # noqa: BLE001 - told to the parent, which raises it at start
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    conn.send((READY, None))
    sending = threading.Lock()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        try:
            while (item := conn.recv()) is not _STOP:
                pool.submit(_call, model, conn, sending, *item)
        except (EOFError, OSError):
            pass


def _call(model: Any, conn: Connection, sending: threading.Lock, call_id: int, payload: bytes) -> None:
    """Run one call and send its result, or the error it raised, back under its id."""
    try:
        fn, args = pickle.loads(payload)
        ok, value = True, fn(model, *args)
    except BaseException as error:  # noqa: BLE001 - the caller's to handle
        ok, value = False, error
    try:
        reply = pickle.dumps(value if ok else _carried(value))
    except Exception as error:  # noqa: BLE001 - the call's bug, reported to its caller
        ok, reply = False, pickle.dumps(ModelError(f"the result cannot be sent back: {error}"))
    with contextlib.suppress(OSError), sending:
        conn.send((call_id, ok, reply))


def _carried(error: BaseException) -> BaseException:
    """`error` as it is when it pickles, else a ModelError with its type, message and where it was raised."""
    try:
        return pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - then it goes as text
        where = "".join(traceback.format_exception(error)[-2:]).strip()
        return ModelError(f"{type(error).__name__}: {error} ({where})")


if __name__ == "__main__":  # the child: python -m agents.model_process FD
    from agents import model_process  # this file as the module its errors are pickled from

    model_process._serve(Connection(int(sys.argv[1])))
