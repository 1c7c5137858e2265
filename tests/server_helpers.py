"""The real arena server for tests: in this process (`InProcessServer`, most tests) or as `arena serve` in a
subprocess (`ServerProcess`, where the process itself is the point), on free ports, with real websockets."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from helpers import ARENA, patched_environment
from websockets.asyncio.client import ClientConnection, connect

from arena.cli import build_parser, serve_settings
from arena.server.app import ArenaServer, build_server
from arena.server.tls import self_signed
from arena.testing.ports import free_ports

# A server started by a test process that is then killed dies with it (util-linux's setpriv, where there is one).
DIE_WITH_US = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []
LOGGERS = ("", "uvicorn")  # the root logger (the arena's), and uvicorn's, which does not pass records on


class ServerUnderTest:
    """What both kinds share: free ports, the flags and environment, and the URLs to reach the server."""

    def __init__(self, db_url: str, *flags: str, default_house: bool = False, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        """`flags` are `arena serve`'s; `env` adds ARENA_* variables; `cwd` is the server's working directory
        (where it keeps a self-signed TLS pair for a non-SQLite database). The default house LLM would slow
        every test down: the house is `random` only, unless `default_house`."""
        self.port, self.tls_port = free_ports(2)  # picked together, so never the same port
        self.env = {k: v for k, v in os.environ.items() if k != "ARENA_HOUSE"} | (
            {} if default_house else {"ARENA_HOUSE": '["random"]'}) | (env or {})
        self.db_url, self.flags, self.cwd = db_url, flags, cwd
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/ws"

    def arguments(self) -> list[str]:
        """`arena serve`'s arguments: the ports, the database, then the test's flags."""
        return ["serve", "--port", str(self.port), "--tls-port", str(self.tls_port), "--db", self.db_url, *self.flags]

    def get(self, path: str, timeout: float = 10):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.loads(response.read())

    def wait_until_healthy(self, alive, timeout: float = 60) -> None:
        """Poll `/health` until it answers 200; RuntimeError if `alive()` turns false or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                if not alive():
                    raise RuntimeError(f"server exited: {self.output()}") from None
                time.sleep(0.05)
        raise RuntimeError(f"server did not start in {timeout:.0f} s")

    def output(self) -> str:
        """What the server has logged so far."""
        raise NotImplementedError


class InProcessServer(ServerUnderTest):
    """The server `arena serve` runs (settings from the same flags, the app, uvicorn with the arena's limits, the
    TLS port), in a thread of this process with its own event loop: started in a fraction of a second."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.server: ArenaServer | None = None
        self._thread: threading.Thread | None = None
        self._log = LogCapture()
        self._failure: BaseException | None = None

    def start(self) -> InProcessServer:
        with patched_environment(self.env):
            settings = serve_settings(build_parser().parse_args(self.arguments()))
        if not (settings.tls_cert and settings.tls_key):  # next to the database would be the test's own folder
            folder = self.cwd or Path(tempfile.mkdtemp(prefix="arena-tls-"))
            cert, key = self_signed(folder, settings.host)
            settings = settings.model_copy(update={"tls_cert": str(cert), "tls_key": str(key)})
        self.settings = settings
        self.server = build_server(settings, log_level="warning")
        for logger in LOGGERS:
            logging.getLogger(logger).addHandler(self._log)
        self._thread = threading.Thread(target=self._run, name=f"arena-server-{self.port}", daemon=True)
        self._thread.start()
        self.wait_until_healthy(self._thread.is_alive)
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as error:  # noqa: BLE001 - reported by start() and stop()
            self._failure = error

    @property
    def hub(self):
        """The running server's hub (matchmaking, live games, house agents)."""
        return self.server.arena_app.state.hub

    def stop(self) -> None:
        """Shut down as SIGTERM would: players told, live games stored aborted, every write committed."""
        if self._thread is None:
            return
        self.server.should_exit = True
        self._thread.join(timeout=60)
        for logger in LOGGERS:
            logging.getLogger(logger).removeHandler(self._log)
        thread, self._thread = self._thread, None
        if thread.is_alive():
            raise RuntimeError(f"the in-process server on port {self.port} did not stop in 60 s")
        if self._failure is not None and not isinstance(self._failure, SystemExit):
            raise RuntimeError(f"the in-process server failed: {self._failure!r}") from self._failure

    def output(self) -> str:
        return self._log.text()


class ServerProcess(ServerUnderTest):
    """`arena serve` in a subprocess: for what only a real process shows (signals, kill -9, exit codes, its own
    output). Its output goes to a file, so a chatty server never stalls on a full pipe."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.process: subprocess.Popen | None = None
        self._output = tempfile.TemporaryFile(mode="w+", prefix="arena-serve-")  # noqa: SIM115 - read any time

    def start(self) -> ServerProcess:
        self.process = subprocess.Popen([*DIE_WITH_US, ARENA, *self.arguments()], stdout=self._output,
                                        stderr=subprocess.STDOUT, text=True, env=self.env, cwd=self.cwd)
        self.wait_until_healthy(lambda: self.process.poll() is None)
        return self

    def output(self) -> str:
        """Everything the server printed so far."""
        self._output.seek(0)
        return self._output.read()

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class LogCapture(logging.Handler):
    """Keeps the text of every log record (with its exception) while installed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def text(self) -> str:
        return "\n".join(self.lines)


class Client:
    """A raw protocol client that records every message it receives."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict] = []

    @classmethod
    async def open(cls, url: str, **hello) -> Client:
        client = cls(await connect(url))
        if hello:
            await client.send(type="hello", **hello)
            welcome = await client.expect("welcome", "error")
            assert welcome["type"] == "welcome", welcome
        return client

    async def send(self, **message) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, timeout: float = 20) -> dict:
        message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.seen.append(message)
        return message

    async def expect(self, *types: str, timeout: float = 20) -> dict:
        """The next message of one of `types`, skipping others (queued, event...)."""
        end = time.monotonic() + timeout
        while True:
            message = await self.receive(max(0.1, end - time.monotonic()))
            if message["type"] in types:
                return message

    async def play_first_moves(self) -> dict:
        """Answer every turn with the first listed move until game_over; returns it."""
        while True:
            message = await self.expect("turn", "game_over", timeout=60)
            if message["type"] == "game_over":
                return message
            await self.send(type="action", game_id=message["game_id"], action=first_move(message["observation"]))

    async def close(self) -> None:
        await self.ws.close()


def first_move(observation: str) -> str:
    """The first move TicTacToe or KuhnPoker lists."""
    listed = re.split(r"Available Moves:|available actions are:", observation)[-1]
    return re.findall(r"\[[^\]]+\]", listed)[0]


class CuttableProxy:
    """A TCP proxy on localhost whose live connections the test can cut, to simulate a network drop."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def cut(self) -> None:
        """Drop every connection through the proxy (new ones still work)."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        self._server.close()
