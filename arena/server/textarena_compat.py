"""TextArena's online protocol, served by the arena: unmodified `textarena.make_online` clients play here.

Three doors, as `textarena/api.py` (0.7.4) uses them: `POST /textarena/register_model`, the matchmaking
websocket `/textarena/ws?model_name=&model_token=`, and the game websocket, which the client always
opens over TLS as `wss://{game_url}/ws?token=`. Players from these doors are ordinary hub players.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import textarena as ta
from fastapi import APIRouter, HTTPException, Request, WebSocket
from pydantic import BaseModel, Field, ValidationError
from starlette.websockets import WebSocketDisconnect

from arena import protocol
from arena.server.connection import POLICY_VIOLATION, RateLimit, SocketWriter
from arena.server.hub import Hub, HubError
from arena.server.players import Player, RemoteSeat, Sent
from arena.server.textarena_ids import all_numbers, env_for_number, textarena_numbers
from arena.store import agents as agent_store
from arena.store.episodes import result_of
from arena.store.models import AgentRow
from games import catalog

router = APIRouter(prefix="/textarena")
CLOSE_WAIT_S = 5.0
CLOSE_AFTER_GAME_S = 2.0  # the client reads game_over, then stops when the socket closes
PING_EVERY_S = 25.0


class Registration(BaseModel):
    """What `textarena.api.register_model` posts."""

    model_name: protocol.AgentName
    description: protocol.Text | None = Field(default=None, max_length=2000)
    email: protocol.Text | None = Field(default=None, max_length=320)
    model_token: protocol.Text | None = Field(default=None, max_length=100)


class EnvironmentNumber(BaseModel):
    """A playable game and the number TextArena clients queue for it with."""

    id: int
    env_id: str
    players: list[int]
    source: str  # "textarena" (the client's own table) or "arena" (numbers this arena adds)


@router.post("/register_model", responses={400: {"description": "No token, a malformed token, or no email"},
                                           409: {"description": "The name is reserved or registered to another"}})
async def register_model(body: Registration, request: Request) -> dict[str, str]:
    """Register a model (or confirm it): 200 with the token, 409 on a conflict, 400 on a bad token."""
    if not body.model_token:
        raise HTTPException(400, "Model token is required")
    try:
        uuid.UUID(body.model_token)
    except ValueError as error:
        raise HTTPException(400, "Invalid token format: expected the UUID the client derives") from error
    if not body.email:
        raise HTTPException(400, "An email is required to register a model")
    hub: Hub = request.app.state.hub
    if body.model_name.startswith("guest:") or body.model_name in {seat.agent.name for seat in hub.house}:
        raise HTTPException(409, f"Model name '{body.model_name}' is reserved (a guest or a house agent's name)")
    try:
        await hub.arena.writer.run(agent_store.register_model, body.model_name, body.email, body.model_token)
    except agent_store.RegistrationConflict as error:
        raise HTTPException(409, str(error)) from error
    return {"model_token": body.model_token}


@router.get("/environments")
def environments() -> list[EnvironmentNumber]:
    """Every playable game with its number: TextArena's own table, plus arena numbers for the rest."""
    entries = catalog.load()
    own = textarena_numbers()
    return [EnvironmentNumber(id=number, env_id=env_id, players=list(entries[env_id].players),
                              source="textarena" if env_id in own else "arena")
            for env_id, number in sorted(all_numbers().items(), key=lambda item: item[1])
            if entries[env_id].playable]


class MatchmakingOutbox:
    """The outbox of a matchmaking socket: `queued` and `match_found` (pointing at the game socket)."""

    def __init__(self, writer: SocketWriter, game_url: str) -> None:
        self.writer, self.game_url = writer, game_url

    def send(self, message: protocol.Message, text: str | None = None, on_sent: Sent | None = None) -> None:
        """Translate one native message; those this socket has no word for are dropped."""
        match message:
            case protocol.Queued():
                frame = {"command": "queued", "avg_queue_time": message.waited,
                         "num_players_in_queue": message.position}
            case protocol.MatchFound():
                frame = {"command": "match_found", "game_url": self.game_url, "env_id": message.env_id,
                         "environment_id": all_numbers().get(message.env_id)}
            case _:
                frame = _common_frame(message)
        if frame is not None:
            self.writer.send(json.dumps(frame), on_sent)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket once everything queued before has been sent."""
        self.writer.close(code, reason)


class GameOutbox:
    """The outbox of a game socket: the seat's messages as `observation`s, `action_ack`, `game_over`.

    Observations are built from the messages the engine delivered to the seat (kept on the seat by the
    live game's listener), as TextArena's own server sends them: each carries what the seat has not seen."""

    def __init__(self, writer: SocketWriter) -> None:
        self.writer = writer
        self.player: Player | None = None  # set once the player exists
        self.sent = 0  # messages of the seat's log already sent as observations
        self.holding_turn = False  # an observation was sent and its action is not stored yet

    def send(self, message: protocol.Message, text: str | None = None, on_sent: Sent | None = None) -> None:
        """Translate one native message; those TextArena's client has no word for are dropped."""
        for frame in self._frames(message):
            self.writer.send(json.dumps(frame), on_sent)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket once everything queued before has been sent."""
        self.writer.close(code, reason)

    def _frames(self, message: protocol.Message) -> list[dict[str, Any]]:
        match message:
            case protocol.Turn(game_id=game_id, seat=seat):
                self.holding_turn = True
                return [self._observation(game_id, seat)]
            case protocol.Ack():
                self.holding_turn = False
                return [{"command": "action_ack"}]
            case protocol.GameOver(seat=int()):
                return self._game_over(message)
        frame = _common_frame(message)
        return [frame] if frame is not None else []

    def _seat(self, game_id: int) -> RemoteSeat | None:
        return self.player.seats.get(game_id) if self.player is not None else None

    def _observation(self, game_id: int, seat: int) -> dict[str, Any]:
        """The seat's messages not yet sent, as [sender, text, ObservationType value] triples."""
        remote = self._seat(game_id)
        log = remote.delivered if remote is not None else []
        new, self.sent = log[self.sent:], len(log)
        return {"command": "observation", "player_id": seat,
                "observation": [[m.sender, m.text, ta.ObservationType[m.kind].value] for m in new]}

    def _game_over(self, over: protocol.GameOver) -> list[dict[str, Any]]:
        """timed_out if this seat ran out of time, a last observation if it was waiting, then game_over."""
        frames: list[dict[str, Any]] = []
        seat = over.seat if over.seat is not None else -1
        if (over.reward or 0) < 0 and "timeout" in over.reason:
            frames.append({"command": "timed_out", "message": over.reason})
        remote = self._seat(over.game_id)
        moved_last = remote is not None and remote.moved_last
        if not self.holding_turn and not moved_last:
            frames.append(self._observation(over.game_id, seat))  # unblocks a client waiting for its turn
        outcome = (protocol.GameStatus.ABORTED if over.status == protocol.GameStatus.ABORTED
                   else result_of(over.rewards, seat))
        frames.append({"command": "game_over", "outcome": str(outcome), "reason": over.reason,
                       "trueskill_change": over.rating_change or 0.0, "reward": over.reward,
                       "rewards": {str(k): v for k, v in over.rewards.items()}})
        asyncio.get_running_loop().call_later(CLOSE_AFTER_GAME_S, self.writer.close)
        return frames


def _common_frame(message: protocol.Message) -> dict[str, Any] | None:
    """The frames both TextArena sockets send: errors and the shutdown notice."""
    match message:
        case protocol.Error():
            return {"command": "error", "message": message.message}
        case protocol.Shutdown():
            return {"command": "server_shutdown", "message": message.message}
    return None


def _game_url(websocket: WebSocket) -> str:
    """Where this client should open its game socket: the host it reached us on, the TLS port."""
    settings = websocket.app.state.hub.settings
    host = websocket.url.hostname or settings.host
    return f"{host}:{settings.tls_port}/textarena/game"


async def _identify(websocket: WebSocket, token: str) -> AgentRow | None:
    hub: Hub = websocket.app.state.hub
    return await asyncio.to_thread(hub.arena.read, partial(agent_store.by_token, token=token)) if token else None


async def _text_frames(websocket: WebSocket, writer: SocketWriter) -> AsyncIterator[str]:
    """The client's text frames, under the native socket's rate limit: a binary frame gets an error, a flood
    closes the socket (1008), a disconnect ends the frames."""
    limit = RateLimit(websocket.app.state.hub.settings.max_messages_per_second)
    while (frame := await websocket.receive())["type"] != "websocket.disconnect":
        if limit.exceeded():
            writer.close(POLICY_VIOLATION, "too many messages")
            return
        if frame.get("text") is None:
            writer.send(json.dumps({"command": "error", "message": "send JSON text frames, not binary"}))
            continue
        yield frame["text"]


async def _close(writer: SocketWriter) -> None:
    """Close after what is queued (a close queued earlier, e.g. for a flood, wins), waiting at most
    CLOSE_WAIT_S for a client that does not read."""
    writer.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_WAIT_S):
            await writer.done()
    writer.cancel()


async def _refuse(writer: SocketWriter, message: str) -> None:
    writer.send(json.dumps({"command": "error", "message": message}))
    writer.close()
    await writer.done()


@router.websocket("/ws")
async def matchmaking(websocket: WebSocket, model_name: str = "", model_token: str = "") -> None:
    """Queue a registered model; answer `match_found` with the TLS game address."""
    await websocket.accept()
    hub: Hub = websocket.app.state.hub
    writer = SocketWriter(websocket, hub.settings.outbox_bytes)
    row = await _identify(websocket, model_token)
    if row is None or row.name != model_name:
        await _refuse(writer, "unknown model name or token: register the model first (register_model)")
        return
    outbox = MatchmakingOutbox(writer, _game_url(websocket))
    player = Player(row.id, row.name, row.kind, outbox)
    try:
        async for text in _text_frames(websocket, writer):
            problem = await _matchmaking_command(hub, player, writer, text)
            if problem:
                await _refuse(writer, problem)
                return
    except WebSocketDisconnect:
        pass
    finally:
        hub.disconnected(player, outbox)
        await _close(writer)


async def _matchmaking_command(hub: Hub, player: Player, writer: SocketWriter, text: str) -> str | None:
    """Handle one matchmaking frame; a returned text is an error that ends the connection."""
    try:
        command = json.loads(text)
        numbers = command["environments"] if command.get("command") == "queue" else None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return "malformed command: send {\"command\": \"queue\", \"environments\": [numbers]}"
    if command.get("command") == "leave":
        hub.leave(player)
        writer.send(json.dumps({"command": "left"}))
        return None
    if not isinstance(numbers, list) or not numbers or not all(isinstance(n, int) for n in numbers):
        return "malformed command: 'environments' must be a list of environment numbers"
    envs = [env_for_number(n) for n in numbers]
    if None in envs:
        unknown = [n for n, e in zip(numbers, envs, strict=True) if e is None]
        return f"unknown environment id(s) {unknown}: GET /textarena/environments lists them"
    try:
        player.send(await hub.enqueue(player, protocol.Queue(envs=envs)))
    except HubError as error:
        return str(error)
    return None


@router.websocket("/game/ws")
async def game(websocket: WebSocket, token: str = "") -> None:
    """A matched model's game socket: observations out, actions in."""
    await websocket.accept()
    hub: Hub = websocket.app.state.hub
    writer = SocketWriter(websocket, hub.settings.outbox_bytes)
    row = await _identify(websocket, token)
    if row is None:
        await _refuse(writer, "unknown token: register the model and queue through matchmaking first")
        return
    game_id = hub.dropped_game_of(row.id)
    if game_id is None:
        await _refuse(writer, "this token has no game in progress: queue through matchmaking first")
        return
    outbox = GameOutbox(writer)
    player = outbox.player = Player(row.id, row.name, row.kind, outbox)
    pinger = asyncio.create_task(_ping(writer))
    try:
        hub.resume(player, game_id)
        async for text in _text_frames(websocket, writer):
            _game_command(hub, player, writer, game_id, text, time.perf_counter())
    except (WebSocketDisconnect, HubError):
        pass
    finally:
        pinger.cancel()
        hub.disconnected(player, outbox)
        await _close(writer)


def _game_command(hub: Hub, player: Player, writer: SocketWriter, game_id: int, text: str, arrived: float) -> None:
    """Handle one game-socket frame: a ping, or an action (its `action_ack` follows once the turn is stored)."""
    try:
        command = json.loads(text)
        kind = command.get("command")
    except (ValueError, AttributeError, RecursionError):
        writer.send(json.dumps({"command": "error", "message": "malformed command: not a JSON object"}))
        return
    if kind == "ping":
        writer.send(json.dumps({"command": "pong"}))
    elif kind == "action" and isinstance(command.get("action"), str):
        try:
            hub.act(player, protocol.Action(game_id=game_id, action=command["action"]), arrived)
        except HubError as error:
            player.send(protocol.Error(code=error.code, message=str(error)))
        except ValidationError as error:  # too long, or not storable text (a NUL or a lone surrogate)
            writer.send(json.dumps({"command": "error", "message": f"invalid action: {error.errors()[0]['msg']}"}))
    elif kind != "pong":
        writer.send(json.dumps({"command": "error", "message": f"malformed command: {text[:200]}"}))


async def _ping(writer: SocketWriter) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            await asyncio.sleep(PING_EVERY_S)
            writer.send(json.dumps({"command": "ping"}))
