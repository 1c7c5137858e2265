"""Run the real `arena serve` in a subprocess on a free port, and talk to it over real websockets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from arena.testing.ports import free_ports

ARENA = str(Path(sys.executable).parent / "arena")


class ServerProcess:
    """`arena serve` with the given flags; `url`/`ws` point at it. `cwd`: its working directory (where it
    writes its self-signed TLS pair for a non-SQLite database); `env`: variables to add to its environment."""

    def __init__(self, db_url: str, *flags: str, default_house: bool = False, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.port, self.tls_port = free_ports(2)  # picked together, so never the same port
        # the default house LLM would slow every test down: only `random`, unless asked for the default
        self.env = {k: v for k, v in os.environ.items() if k != "ARENA_HOUSE"} | (
            {} if default_house else {"ARENA_HOUSE": '["random"]'}) | (env or {})
        self.db_url, self.flags, self.cwd = db_url, flags, cwd
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/ws"
        self.process: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        self.process = subprocess.Popen(
            [ARENA, "serve", "--port", str(self.port), "--tls-port", str(self.tls_port), "--db", self.db_url,
             *self.flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env, cwd=self.cwd)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited: {self.process.stdout.read()}") from None
                time.sleep(0.2)
        raise RuntimeError("server did not start in 60 s")

    def get(self, path: str, timeout: float = 10):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.loads(response.read())

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


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
