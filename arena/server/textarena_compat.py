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
from typing import Any

import textarena as ta
from fastapi import APIRouter, HTTPException, Request, WebSocket
from pydantic import BaseModel
from starlette.websockets import WebSocketDisconnect

from arena import protocol
from arena.server.connection import Sent, SocketWriter
from arena.server.hub import Hub, HubError
from arena.server.players import Player
from arena.server.textarena_ids import all_numbers, env_for_number, textarena_numbers
from arena.store import agents as agent_store
from arena.store.episodes import result_of
from games import catalog

router = APIRouter(prefix="/textarena")
CLOSE_AFTER_GAME_S = 2.0  # the client reads game_over, then stops when the socket closes
PING_EVERY_S = 25.0


class Registration(BaseModel):
    """What `textarena.api.register_model` posts."""

    model_name: str
    description: str | None = None
    email: str | None = None
    model_token: str | None = None


class EnvironmentNumber(BaseModel):
    """A playable game and the number TextArena clients queue for it with."""

    id: int
    env_id: str
    players: list[int]
    source: str  # "textarena" (the client's own table) or "arena" (numbers this arena adds)


@router.post("/register_model")
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
    try:
        await hub.recorder.writer.run(lambda s: agent_store.register_model(
            s, body.model_name, body.email, body.model_token))
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


class CompatPlayer(Player):
    """A hub player whose messages are translated to TextArena's `{"command": ...}` frames."""

    def __init__(self, row: Any, hub: Hub, writer: SocketWriter, game_url: str = "") -> None:
        super().__init__(row.id, row.name, row.kind)
        self.hub, self.writer, self.game_url = hub, writer, game_url
        self.connection = writer  # type: ignore[assignment]
        self.delivered = 0  # messages of this seat's log already sent as observations
        self.holding_turn = False  # an observation was sent and its action has not come back yet

    def send(self, message: protocol.Message, text: str | None = None, on_sent: Sent | None = None) -> None:
        """Translate one native message; those TextArena's client has no word for are dropped."""
        if self.connection is None:
            return
        for frame in self._translate(message):
            self.writer.send(json.dumps(frame), on_sent)

    def _translate(self, message: protocol.Message) -> list[dict[str, Any]]:
        if isinstance(message, protocol.Error):
            return [{"command": "error", "message": message.message}]
        if isinstance(message, protocol.Shutdown):
            return [{"command": "server_shutdown", "message": message.message}]
        if self.game_url:  # the matchmaking socket: the game itself goes to the game socket
            return self._matchmaking(message)
        if isinstance(message, protocol.Turn):
            self.holding_turn = True
            return [self._observation(message.game_id, message.seat)]
        if isinstance(message, protocol.Ack):
            self.holding_turn = False
            return [{"command": "action_ack"}]
        if isinstance(message, protocol.GameOver) and message.seat is not None:
            return self._game_over(message)
        return []

    def _matchmaking(self, message: protocol.Message) -> list[dict[str, Any]]:
        if isinstance(message, protocol.Queued):
            return [{"command": "queued", "avg_queue_time": message.waited, "num_players_in_queue": message.position}]
        if isinstance(message, protocol.MatchFound):
            return [{"command": "match_found", "game_url": self.game_url, "env_id": message.env_id,
                     "environment_id": all_numbers().get(message.env_id)}]
        return []

    def _observation(self, game_id: int, seat: int) -> dict[str, Any]:
        """The seat's messages not yet sent, as [sender, text, ObservationType value] triples."""
        live = self.hub.live.get(game_id)
        log = live.game.seat_logs[seat] if live and live.game else []
        new, self.delivered = log[self.delivered:], len(log)
        return {"command": "observation", "player_id": seat,
                "observation": [[m.sender, m.text, ta.ObservationType[m.kind].value] for m in new]}

    def _game_over(self, over: protocol.GameOver) -> list[dict[str, Any]]:
        """timed_out if this seat ran out of time, a last observation if it was waiting, then game_over."""
        frames: list[dict[str, Any]] = []
        seat = over.seat if over.seat is not None else -1
        if (over.reward or 0) < 0 and "timeout" in over.reason:
            frames.append({"command": "timed_out", "message": over.reason})
        live = self.hub.live.get(over.game_id)
        moved_last = bool(live and live.game and live.game.turns and live.game.turns[-1].seat == seat)
        if not self.holding_turn and not moved_last:
            frames.append(self._observation(over.game_id, seat))  # unblocks a client waiting for its turn
        outcome = "aborted" if over.status == "aborted" else result_of(over.rewards, seat)
        frames.append({"command": "game_over", "outcome": outcome, "reason": over.reason,
                       "trueskill_change": over.rating_change or 0.0, "reward": over.reward,
                       "rewards": {str(k): v for k, v in over.rewards.items()}})
        asyncio.get_running_loop().call_later(CLOSE_AFTER_GAME_S, self.writer.close)
        return frames


def _game_url(websocket: WebSocket) -> str:
    """Where this client should open its game socket: the host it reached us on, the TLS port."""
    settings = websocket.app.state.hub.settings
    host = websocket.url.hostname or settings.host
    return f"{host}:{settings.tls_port}/textarena/game"


async def _identify(websocket: WebSocket, token: str) -> Any:
    hub: Hub = websocket.app.state.hub
    return await asyncio.to_thread(hub.read, lambda s: agent_store.by_token(s, token)) if token else None


async def _refuse(writer: SocketWriter, message: str) -> None:
    writer.send(json.dumps({"command": "error", "message": message}))
    writer.close()
    await writer.done()


@router.websocket("/ws")
async def matchmaking(websocket: WebSocket, model_name: str = "", model_token: str = "") -> None:
    """Queue a registered model; answer `match_found` with the TLS game address."""
    await websocket.accept()
    hub: Hub = websocket.app.state.hub
    writer = SocketWriter(websocket)
    row = await _identify(websocket, model_token)
    if row is None or row.name != model_name:
        await _refuse(writer, "unknown model name or token: register the model first (register_model)")
        return
    player = CompatPlayer(row, hub, writer, _game_url(websocket))
    try:
        while True:
            problem = await _matchmaking_command(hub, player, await websocket.receive_text())
            if problem:
                await _refuse(writer, problem)
                return
    except WebSocketDisconnect:
        pass
    finally:
        hub.disconnected(player, writer)  # type: ignore[arg-type]
        writer.close()


async def _matchmaking_command(hub: Hub, player: CompatPlayer, text: str) -> str | None:
    """Handle one matchmaking frame; a returned text is an error that ends the connection."""
    try:
        command = json.loads(text)
        numbers = command["environments"] if command.get("command") == "queue" else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return "malformed command: send {\"command\": \"queue\", \"environments\": [numbers]}"
    if command.get("command") == "leave":
        hub.leave(player)
        player.writer.send(json.dumps({"command": "left"}))
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
    writer = SocketWriter(websocket)
    row = await _identify(websocket, token)
    if row is None:
        await _refuse(writer, "unknown token: register the model and queue through matchmaking first")
        return
    game_id = hub.dropped_game_of(row.id)
    if game_id is None:
        await _refuse(writer, "this token has no game in progress: queue through matchmaking first")
        return
    player = CompatPlayer(row, hub, writer)
    pinger = asyncio.create_task(_ping(writer))
    try:
        hub.resume(player, game_id)
        while True:
            text = await websocket.receive_text()
            _game_command(hub, player, game_id, text, time.perf_counter())
    except (WebSocketDisconnect, HubError):
        pass
    finally:
        pinger.cancel()
        hub.disconnected(player, writer)  # type: ignore[arg-type]
        writer.close()


def _game_command(hub: Hub, player: CompatPlayer, game_id: int, text: str, arrived: float) -> None:
    try:
        command = json.loads(text)
        kind = command.get("command")
    except (ValueError, AttributeError):
        player.writer.send(json.dumps({"command": "error", "message": "malformed command: not a JSON object"}))
        return
    if kind == "ping":
        player.writer.send(json.dumps({"command": "pong"}))
    elif kind == "action" and isinstance(command.get("action"), str):
        try:
            player.send(hub.act(player, protocol.Action(game_id=game_id, action=command["action"]), arrived))
        except HubError as error:
            player.writer.send(json.dumps({"command": "error", "message": str(error)}))
    elif kind != "pong":
        player.writer.send(json.dumps({"command": "error", "message": f"malformed command: {text[:200]}"}))


async def _ping(writer: SocketWriter) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            await asyncio.sleep(PING_EVERY_S)
            writer.send(json.dumps({"command": "ping"}))
