"""One websocket connection on `/ws`: validates frames, rate-limits, and hands requests to the hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect

from arena import protocol
from arena.server.hub import Hub, HubError
from arena.server.players import Player, Sent

log = logging.getLogger(__name__)
POLICY_VIOLATION = 1008
ErrorCode = protocol.ErrorCode


class RateLimit:
    """At most `per_second` frames in each one-second window."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._window_start, self._count = time.monotonic(), 0

    def exceeded(self) -> bool:
        """Count one frame; true once this window has more than allowed."""
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._count = now, 0
        self._count += 1
        return self._count > self.per_second


@dataclass(frozen=True)
class Close:
    """The last item of a writer's queue: close the socket with this code."""

    code: int
    reason: str


class SocketWriter:
    """Sends queued frames on a websocket from its own task, so a slow reader never blocks a game.

    A client that leaves more than `limit` bytes (characters) of frames unsent is cut off at once: the frames are
    dropped and the socket closed without waiting behind a write the client is not reading (see limits.py)."""

    def __init__(self, websocket: WebSocket, limit: int) -> None:
        self.websocket, self.limit = websocket, limit
        self._queue: asyncio.Queue[tuple[str, Sent | None] | Close] = asyncio.Queue()
        self._unsent = 0  # characters queued and not yet handed to the socket
        self._cut = False
        self._task = asyncio.create_task(self._run())

    def send(self, text: str, on_sent: Sent | None = None) -> None:
        """Queue a text frame; one that takes the unsent text past `limit` cuts the client off."""
        if self._cut:
            return
        self._unsent += len(text)
        if self._unsent > self.limit:
            self._cut_off()
            return
        self._queue.put_nowait((text, on_sent))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket once everything queued before has been sent."""
        if not self._cut:
            self._queue.put_nowait(Close(code, reason))

    async def done(self) -> None:
        """Wait until the writer has closed the socket or lost it."""
        await self._task

    def cancel(self) -> None:
        """Stop sending now."""
        self._task.cancel()

    def _cut_off(self) -> None:
        """Drop what is queued, stop the writer (it may be waiting on the client) and close the socket."""
        self._cut = True
        self._task.cancel()
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._close(Close(POLICY_VIOLATION, "too many unread messages")))

    async def _run(self) -> None:
        with contextlib.suppress(Exception):
            while isinstance(item := await self._queue.get(), tuple):
                await self.websocket.send_text(item[0])
                self._unsent -= len(item[0])
                if item[1] is not None:
                    item[1]()
            await self._close(item)

    async def _close(self, close: Close) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(close.code, close.reason)


class Connection:
    """Reads frames in order and hands them to the hub; it is its player's outbox, and replies go out
    through a SocketWriter."""

    def __init__(self, websocket: WebSocket, hub: Hub) -> None:
        self.websocket, self.hub = websocket, hub
        self.player: Player | None = None
        self.writer: SocketWriter | None = None
        self._limit = RateLimit(hub.settings.max_messages_per_second)

    def send(self, message: protocol.Message, text: str | None = None, on_sent: Sent | None = None) -> None:
        """Queue a message for this client (`text`: its JSON, when already serialised)."""
        if self.writer is not None:
            self.writer.send(text or message.model_dump_json(), on_sent)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket once everything queued before has been sent."""
        if self.writer is not None:
            self.writer.close(code, reason)

    async def run(self) -> None:
        """Serve the connection until it closes; any failure ends only this connection."""
        await self.websocket.accept()
        self.writer = SocketWriter(self.websocket, self.hub.settings.outbox_bytes)
        self.hub.metrics.connections.inc()
        try:
            await self._receive_forever()
        except WebSocketDisconnect:
            pass
        except Exception:  # noqa: BLE001 - one client can never take the server down
            log.exception("connection failed")
        finally:
            self.hub.metrics.connections.dec()
            self.hub.disconnected(self.player, self)
            self.writer.cancel()

    async def _receive_forever(self) -> None:
        wait: float | None = self.hub.settings.first_message_timeout  # then no limit: keepalive pings watch
        while True:
            try:
                async with asyncio.timeout(wait):
                    frame = await self.websocket.receive()
            except TimeoutError:
                await self.websocket.close(POLICY_VIOLATION, f"no message in {wait:g} s")
                return
            wait = None
            arrived = time.perf_counter()
            if frame["type"] == "websocket.disconnect":
                return
            if self._limit.exceeded():
                await self.websocket.close(POLICY_VIOLATION, "too many messages")
                return
            if frame.get("text") is None:
                self.send(protocol.Error(code=ErrorCode.BINARY_FRAME, message="send JSON text frames, not binary"))
                continue
            await self._handle(frame["text"], arrived)

    async def _handle(self, text: str, arrived: float) -> None:
        message = None
        try:
            message = protocol.parse_client(text)
            reply = await self._dispatch(message, arrived)
        except (protocol.ProtocolError, HubError) as error:  # a refused challenge is named by its `ref`
            reply = protocol.Error(code=error.code, message=str(error), ref=getattr(message, "ref", None))
        if reply is not None:
            self.send(reply)

    async def _dispatch(self, message: protocol.Message, arrived: float) -> protocol.Message | None:
        """Hand one validated message to the hub; returns the reply, if any."""
        match message:
            case protocol.Ping(data=data):
                return protocol.Pong(data=data)
            case protocol.Hello():
                return await self._hello(message)
            case protocol.Spectate(game_id=game_id):
                self.hub.spectate(self, game_id)
            case protocol.Queue():
                return await self.hub.enqueue(self._identified(), message)
            case protocol.Action():
                self.hub.act(self._identified(), message, arrived)  # the ack follows once the turn is stored
            case protocol.Resume(game_id=game_id):
                self.hub.resume(self._identified(), game_id)
            case protocol.Leave():
                self.hub.leave(self._identified())
            case protocol.Challenge():
                await self.hub.challenge(self._identified(), message,  # challenge_started follows
                                         self.websocket.headers.get("authorization"))
            case _:
                kind = getattr(message, "type", type(message).__name__)
                raise HubError(ErrorCode.UNKNOWN_TYPE, f"the server does not take '{kind}' messages")
        return None

    def _identified(self) -> Player:
        if self.player is None:
            raise HubError(ErrorCode.HELLO_REQUIRED, "send hello (with a token or a guest name) first")
        return self.player

    async def _hello(self, hello: protocol.Hello) -> protocol.Welcome:
        if self.player is not None:
            raise HubError(ErrorCode.ALREADY_IDENTIFIED, f"this connection is already {self.player.name}")
        player, token = await self.hub.identify(hello)
        player.outbox = self
        self.player = player
        return protocol.Welcome(name=player.name, kind=player.kind, token=token)
