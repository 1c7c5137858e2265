"""Client SDK: play queued games on an arena server with any agent, reconnecting and resuming on drops.

    results = await RemoteClient("ws://127.0.0.1:8000", agent, ["TicTacToe-v0"], token=TOKEN).play(games=3)
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection, connect

from agents.base import Agent, TurnContext
from arena import protocol

log = logging.getLogger(__name__)
FATAL = protocol.FATAL_CODES  # errors retrying cannot fix: the client gives up


class RemoteError(Exception):
    """The server refused something that retrying cannot fix (bad token, unknown env...)."""

    def __init__(self, code: protocol.ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def ws_url(url: str) -> str:
    """`ws://host:port` -> `ws://host:port/ws` (a URL with a path is kept as it is)."""
    return url if urlsplit(url).path not in ("", "/") else url.rstrip("/") + "/ws"


class RemoteClient:
    """One identity on a server, playing `games` queued games of `envs` with `agent`."""

    def __init__(self, url: str, agent: Agent, envs: list[str], token: str | None = None,
                 guest: str | None = None, opponent: str | None = None, reconnect_delay: float = 0.5,
                 max_reconnects: int = 20) -> None:
        self.url, self.agent, self.envs = ws_url(url), agent, envs
        self.hello = protocol.Hello(token=token, guest=guest)
        self.opponent = opponent
        self.reconnect_delay, self.max_reconnects = reconnect_delay, max_reconnects
        self.results: list[protocol.GameOver] = []
        self.game: protocol.MatchFound | None = None
        self._target = 0

    async def play(self, games: int = 1) -> list[protocol.GameOver]:
        """Play until `games` games have ended; reconnect (and resume) after dropped connections."""
        self._target = len(self.results) + games
        failures = 0
        while len(self.results) < self._target:
            try:
                async with connect(self.url, max_size=2**22) as ws:
                    failures = 0
                    await self._session(ws)
            except (TimeoutError, OSError, websockets.ConnectionClosed) as error:
                failures += 1
                if failures > self.max_reconnects:
                    raise
                log.warning("connection lost (%s); reconnecting", error)
                await asyncio.sleep(min(self.reconnect_delay * failures, 5.0))
        return self.results

    async def _session(self, ws: ClientConnection) -> None:
        """Sign in, then resume the game in progress or queue, and play until the target is reached."""
        await self._send(ws, self.hello)
        welcome = await self._receive(ws)
        if isinstance(welcome, protocol.Error):
            raise RemoteError(welcome.code, welcome.message)
        if isinstance(welcome, protocol.Welcome) and welcome.token:
            self.hello = protocol.Hello(token=welcome.token)  # a guest comes back as itself
        await self._send(ws, protocol.Resume(game_id=self.game.game_id) if self.game else self._queue())
        while len(self.results) < self._target:
            await self._handle(ws, await self._receive(ws))

    async def _handle(self, ws: ClientConnection, message: protocol.Message) -> None:
        if isinstance(message, protocol.MatchFound):
            self.game = message
        elif isinstance(message, protocol.Turn):
            await self._move(ws, message)
        elif isinstance(message, protocol.GameOver) and message.seat is not None:
            self._finish(message)
            if len(self.results) < self._target:
                await self._send(ws, self._queue())
        elif isinstance(message, protocol.Error):
            await self._error(ws, message)
        elif isinstance(message, protocol.Shutdown):
            raise websockets.ConnectionClosedOK(None, None)

    async def _move(self, ws: ClientConnection, turn: protocol.Turn) -> None:
        env_id = self.game.env_id if self.game else ""
        context = TurnContext(env_id, str(turn.game_id), turn.game_id, turn.seat, turn.turn, turn.deadline)
        decision = await self.agent.decide(turn.observation, context)
        await self._send(ws, protocol.Action(game_id=turn.game_id, action=decision.action))

    def _finish(self, over: protocol.GameOver) -> None:
        self.results.append(over)
        self.agent.end_game(str(over.game_id))
        self.game = None

    async def _error(self, ws: ClientConnection, error: protocol.Error) -> None:
        if error.code in FATAL:
            raise RemoteError(error.code, error.message)
        if self.game is not None and error.code in (protocol.ErrorCode.UNKNOWN_GAME, protocol.ErrorCode.NOT_YOUR_GAME):
            log.warning("game %s could not be resumed (%s); queueing again", self.game.game_id, error.message)
            self.game = None
            await self._send(ws, self._queue())
        else:
            log.warning("server error %s: %s", error.code, error.message)

    def _queue(self) -> protocol.Queue:
        return protocol.Queue(envs=self.envs, opponent=self.opponent)

    @staticmethod
    async def _send(ws: ClientConnection, message: protocol.Message) -> None:
        await ws.send(message.model_dump_json())

    @staticmethod
    async def _receive(ws: ClientConnection) -> protocol.Message:
        return protocol.SERVER_MESSAGE.validate_json(await ws.recv())
