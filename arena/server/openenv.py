"""OpenEnv's environment protocol, served by the arena: `openenv-core` clients play any game here.

An `EnvClient` built with base URL `http://HOST:PORT/openenv` opens the websocket `/openenv/ws`; with
`http://HOST:PORT/openenv/{env_id}` it opens `/openenv/{env_id}/ws`, and that game is the session's default.
One connection is one session: `reset` seats the client in one seat of a new game, house agents take the
others, and the hub plays it like any other game, so it is stored and rated. Frames: docs/openenv.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from enum import StrEnum
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from starlette.websockets import WebSocketDisconnect, WebSocketState

from agents.specs import SpecError, parse_spec
from arena import protocol
from arena.engine import Message
from arena.runner import Match, Seat
from arena.server.hub import Hub, HubError, LiveGame
from arena.server.players import HouseOutbox, Player, RemoteSeat, Sent
from arena.store import agents as agent_store

log = logging.getLogger(__name__)
router = APIRouter(prefix="/openenv")
AGENT_KIND = "openenv"  # the kind of the agents OpenEnv sessions create
DEFAULT_AGENT = "openenv"
DEFAULT_OPPONENT = "random"
BASELINE_OPPONENTS = ("random", "first")  # opponents any server can seat, house agent or not
TAGS = ["openenv"]
_RNG = random.Random()
FIRST_FRAME_S = 10.0  # how long a refused (over capacity) session waits for the frame its error answers


class ErrorCode(StrEnum):
    """The `code` of every `error` frame: OpenEnv's own codes, then the arena's (docs/openenv.md)."""

    INVALID_JSON = "INVALID_JSON"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    EXECUTION_ERROR = "EXECUTION_ERROR"
    CAPACITY_REACHED = "CAPACITY_REACHED"
    FRAME_TOO_LARGE = "FRAME_TOO_LARGE"
    MISSING_ENV_ID = "MISSING_ENV_ID"
    UNKNOWN_ENV = "UNKNOWN_ENV"
    UNPLAYABLE_ENV = "UNPLAYABLE_ENV"
    BAD_NUM_PLAYERS = "BAD_NUM_PLAYERS"
    BAD_SEAT = "BAD_SEAT"
    BAD_OPPONENT = "BAD_OPPONENT"
    OPPONENT_UNAVAILABLE = "OPPONENT_UNAVAILABLE"
    NAME_TAKEN = "NAME_TAKEN"
    BAD_TOKEN = "BAD_TOKEN"
    NO_EPISODE = "NO_EPISODE"
    EPISODE_OVER = "EPISODE_OVER"
    SHUTTING_DOWN = "SHUTTING_DOWN"


class OpenEnvError(Exception):
    """A frame the session refuses; the connection answers it with an `error` frame and goes on."""

    def __init__(self, code: ErrorCode, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code, self.errors = code, errors


# --- client -> server ---------------------------------------------------------------------------


class Frame(BaseModel):
    """Base of the frames this door parses: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class ResetOptions(Frame):
    """`reset` data (`env.reset(**options)`): every field is optional."""

    env_id: protocol.Text | None = Field(default=None, min_length=1, max_length=200)  # default: the one in the URL
    seed: int | None = Field(default=None, ge=0, lt=2**63)  # default: random
    seat: int | None = Field(default=None, ge=0)  # default: drawn from the seed
    num_players: int | None = Field(default=None, ge=1, le=16)  # default: 2 where the game allows it
    opponent: protocol.Text | None = Field(default=None, min_length=1, max_length=200)  # every other seat's agent spec
    agent: str = Field(default=DEFAULT_AGENT, pattern=r"^[A-Za-z0-9_.@:-]{1,100}$")  # the seat's agent name
    token: protocol.Text | None = Field(default=None, min_length=1, max_length=200)  # play as this registered agent
    episode_id: protocol.Text | None = Field(default=None, max_length=255)  # OpenEnv's own field: echoed in `state`

    @model_validator(mode="after")
    def _one_identity(self) -> ResetOptions:
        if self.token is not None and "agent" in self.model_fields_set:
            raise ValueError("give either agent (a name) or token (a registered agent), not both")
        return self


class StepAction(Frame):
    """`step` data: the action shape of OpenEnv's TextArena environment."""

    message: protocol.Text = Field(max_length=8192)
    metadata: dict[str, Any] = Field(default_factory=dict)  # accepted (OpenEnv's Action has it) and ignored


class ResetFrame(Frame):
    """Start a new episode (forfeiting the one in progress)."""

    type: Literal["reset"]
    data: ResetOptions = Field(default_factory=ResetOptions)


class StepFrame(Frame):
    """Play the seat's move."""

    type: Literal["step"]
    data: StepAction


class StateFrame(Frame):
    """Ask for the episode state."""

    type: Literal["state"]


class CloseFrame(Frame):
    """End the session (forfeiting the episode in progress)."""

    type: Literal["close"]


IncomingFrame = Annotated[ResetFrame | StepFrame | StateFrame | CloseFrame, Field(discriminator="type")]
INCOMING = TypeAdapter(IncomingFrame)


# --- server -> client ---------------------------------------------------------------------------


class GameMessage(BaseModel):
    """One message the seat received, as OpenEnv's TextArena environment shapes it."""

    sender_id: int  # -1 is the game
    content: str
    category: str  # TextArena's observation type name: PROMPT, GAME_BOARD, PLAYER_ACTION...


class Observation(BaseModel):
    """What the seat sees: `prompt` is the text the arena's own agents act on."""

    prompt: str
    messages: list[GameMessage]  # messages the seat received since the previous reply
    current_player_id: int  # the client's seat
    legal_players: list[int]
    info: dict[str, Any]


class ObservationData(BaseModel):
    """The reply to `reset` and `step`: reward 0 until the game ends, then the seat's reward."""

    observation: Observation
    reward: float | None
    done: bool


class ObservationReply(BaseModel):
    """OpenEnv's `observation` frame."""

    type: Literal["observation"] = "observation"
    data: ObservationData


class EpisodeState(BaseModel):
    """The reply to `state` (the fields of OpenEnv's TextArenaState, and the arena's)."""

    episode_id: str | None = None  # the arena's episode id: GET /api/episodes/{episode_id}
    step_count: int = 0  # the client's moves
    env_id: str | None = None
    num_players: int | None = None
    seat: int | None = None  # the client's seat
    seed: int | None = None
    players: list[str] = Field(default_factory=list)  # agent names, by seat
    agent: str | None = None  # the client's agent
    turn: int = 0  # the game's turns so far, every seat's
    done: bool = False
    status: protocol.GameStatus | None = None
    reason: str | None = None
    last_reward: float = 0.0
    rewards: dict[int, float] = Field(default_factory=dict)
    client_episode_id: str | None = None  # the `episode_id` given to `reset`, if any


class StateReply(BaseModel):
    """OpenEnv's `state` frame."""

    type: Literal["state"] = "state"
    data: EpisodeState


class ErrorData(BaseModel):
    """What went wrong; `errors` lists the fields a VALIDATION_ERROR refused."""

    message: str
    code: ErrorCode
    errors: list[dict[str, Any]] | None = None


class ErrorReply(BaseModel):
    """OpenEnv's `error` frame: the client raises `RuntimeError("Server error: ... (code: CODE)")`."""

    type: Literal["error"] = "error"
    data: ErrorData


Reply = ObservationReply | StateReply | ErrorReply


def parse_frame(text: str) -> ResetFrame | StepFrame | StateFrame | CloseFrame:
    """Validate one client frame; OpenEnvError with a stable code otherwise."""
    if len(text.encode()) > protocol.MAX_FRAME_BYTES:
        raise OpenEnvError(ErrorCode.FRAME_TOO_LARGE, f"frames are limited to {protocol.MAX_FRAME_BYTES} bytes")
    try:
        return INCOMING.validate_json(text)
    except ValidationError as error:
        first = error.errors()[0]
        if first["type"] == "json_invalid":
            raise OpenEnvError(ErrorCode.INVALID_JSON, first["msg"]) from None
        if first["type"] in ("union_tag_invalid", "union_tag_not_found", "model_type"):
            raise OpenEnvError(ErrorCode.UNKNOWN_TYPE, "'type' must be one of: reset, step, state, close") from None
        fields = [{"loc": list(e["loc"][1:]), "msg": e["msg"]} for e in error.errors()]
        where = ".".join(str(p) for p in first["loc"][1:]) or "frame"
        raise OpenEnvError(ErrorCode.VALIDATION_ERROR, f"{where}: {first['msg']}", fields) from None


# --- one episode ----------------------------------------------------------------------------------


class Episode:
    """One game as the client's seat sees it; the hub reaches the seat through it (it is the player's outbox)."""

    def __init__(self, env_id: str, seed: int, seat: int, num_players: int, client_episode_id: str | None) -> None:
        self.env_id, self.seed, self.seat, self.num_players = env_id, seed, seat, num_players
        self.client_episode_id = client_episode_id
        self.player: Player | None = None
        self.live: LiveGame | None = None
        self.game_id: int | None = None
        self.players: list[str] = []
        self.remote: RemoteSeat | None = None
        self.turn: protocol.Turn | None = None  # the move the seat owes, once announced
        self.turn_sent: Sent | None = None
        self.over: protocol.GameOver | None = None
        self.told_done = False
        self.steps = 0
        self.sent = 0  # messages of the seat's log already in a reply
        self._changed = asyncio.Event()

    def send(self, message: protocol.Message, text: str | None = None, on_sent: Sent | None = None) -> None:
        """Keep what the seat's replies need: the game id, the pending turn, the result."""
        match message:
            case protocol.MatchFound(game_id=game_id, players=players):
                self.game_id, self.players = game_id, players
                self.remote = self.player.seats.get(game_id) if self.player else None
            case protocol.Turn():
                self.turn, self.turn_sent = message, on_sent
                self._changed.set()
            case protocol.GameOver(seat=int()):
                self.over = message
                self._changed.set()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """The session owns the socket: nothing to close here."""

    async def next_stop(self) -> None:
        """Wait until the seat must move or the game is over."""
        while self.turn is None and self.over is None:
            self._changed.clear()
            await self._changed.wait()

    def forfeit(self, reason: str) -> None:
        """Give up the seat now if the game still runs (the runner records the forfeit and rates it)."""
        if self.live is not None and not self.live.abandon.done() and self.over is None:
            self.live.abandon.set_result((self.seat, reason))

    def reply(self) -> ObservationReply:
        """The seat's observation now; the first reply after the game ended is the last (done)."""
        new = self._new_messages()
        info: dict[str, Any] = {"episode_id": self.game_id, "env_id": self.env_id, "seat": self.seat,
                                "players": self.players, "status": protocol.GameStatus.RUNNING}
        if self.over is None:
            assert self.turn is not None, "replies wait for a turn or the end"
            prompt, reward, done = self.turn.observation, 0.0, False
            info["turn"] = self.turn.turn
            if self.turn_sent is not None:
                self.turn_sent()
                self.turn_sent = None
        else:
            prompt, reward, done = _final_text(new, self.over), self.over.reward or 0.0, True
            info |= self.over.model_dump(include={"status", "reason", "rewards", "rating_before", "rating_after",
                                                  "rating_change"})
            self.told_done = True
        observation = Observation(prompt=prompt, messages=[_message(m) for m in new], current_player_id=self.seat,
                                  legal_players=list(range(self.num_players)), info=info)
        return ObservationReply(data=ObservationData(observation=observation, reward=reward, done=done))

    def state(self) -> EpisodeState:
        """The episode as `state` reports it."""
        over = self.over
        return EpisodeState(
            episode_id=str(self.game_id) if self.game_id else None, step_count=self.steps, env_id=self.env_id,
            num_players=self.num_players, seat=self.seat, seed=self.seed, players=self.players,
            agent=self.player.name if self.player else None,
            turn=self.live.turns if self.live else 0, done=over is not None,
            status=over.status if over else protocol.GameStatus.RUNNING, reason=over.reason if over else None,
            last_reward=(over.reward or 0.0) if over else 0.0, rewards=over.rewards if over else {},
            client_episode_id=self.client_episode_id)

    def _new_messages(self) -> list[Message]:
        log = self.remote.delivered if self.remote is not None else []
        new, self.sent = log[self.sent:], len(log)
        return new


def _message(message: Message) -> GameMessage:
    return GameMessage(sender_id=message.sender, content=message.text, category=message.kind)


def _final_text(messages: list[Message], over: protocol.GameOver) -> str:
    """The last observation: what the seat received since its last move, then the result."""
    lines = [f"[{'GAME' if m.sender < 0 else f'Player {m.sender}'}] {m.text}" for m in messages]
    return "\n".join([*lines, f"[GAME] Game over ({over.status}): {over.reason}"])


# --- one session ----------------------------------------------------------------------------------


class Session:
    """One websocket: frames in order, one reply each; it holds at most one episode at a time."""

    def __init__(self, websocket: WebSocket, hub: Hub, env_id: str | None) -> None:
        self.websocket, self.hub, self.default_env = websocket, hub, env_id
        self.episode: Episode | None = None
        self.identities: dict[tuple[str, str | None], Player] = {}  # (agent, token) -> who plays

    async def run(self) -> None:
        """Serve frames until the client closes; the episode in progress is forfeited then."""
        try:
            while (text := await self._receive()) is not None:
                reply = await self._answer(text)
                if reply is None:
                    return
                await self.websocket.send_text(frame_json(reply))
        except WebSocketDisconnect:
            pass
        finally:
            self._leave("disconnected: an OpenEnv session cannot resume")

    async def _receive(self) -> str | bytes | None:
        """The next frame's text (or bytes, for a binary frame); None once the client is gone."""
        frame = await self.websocket.receive()
        if frame["type"] == "websocket.disconnect":
            return None
        return frame["text"] if frame.get("text") is not None else frame.get("bytes") or b""

    async def _answer(self, text: str | bytes) -> Reply | None:
        """The reply to one frame (None for `close`); refusals become `error` frames."""
        try:
            if isinstance(text, bytes):
                raise OpenEnvError(ErrorCode.INVALID_JSON, "send JSON text frames, not binary ones")
            frame = parse_frame(text)
            match frame:
                case ResetFrame(data=options):
                    return await self._reset(options)
                case StepFrame(data=action):
                    return await self._step(action)
                case StateFrame():
                    return self._state()
                case CloseFrame():
                    return None
        except OpenEnvError as error:
            return _error(error.code, str(error), error.errors)
        except HubError as error:
            return _error(_code_of(error), str(error))
        except Exception as error:  # noqa: BLE001 - one client can never take the server down
            log.exception("OpenEnv frame failed")
            return _error(ErrorCode.EXECUTION_ERROR, f"{type(error).__name__}: {error}")

    async def _reset(self, options: ResetOptions) -> ObservationReply:
        """Check the options, forfeit the episode in progress, start a new game and wait for the seat's turn."""
        episode, opponent = await self._plan(options)
        player = await self._identity(options)
        self._leave("reset: the client started a new episode")
        self.episode = episode
        episode.player = Player(player.agent_id, player.name, player.kind, episode)
        episode.live = _start_game(self.hub, episode, episode.player, opponent)
        await episode.next_stop()
        return episode.reply()

    async def _plan(self, options: ResetOptions) -> tuple[Episode, Seat | None]:
        """The episode the options ask for and the opponent's seat, checked; nothing is started yet."""
        if not self.hub.accepting:
            raise OpenEnvError(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
        env_id = options.env_id or self.default_env
        if env_id is None:
            raise OpenEnvError(ErrorCode.MISSING_ENV_ID, "reset needs env_id, or connect with a base URL that names "
                                                         "the game: http://HOST:PORT/openenv/TicTacToe-v0")
        info = await self.hub.game_info(env_id)  # HubError UNKNOWN_ENV / UNPLAYABLE_ENV
        num_players = options.num_players or (2 if 2 in info.players else min(info.players))
        if num_players not in info.players:
            raise OpenEnvError(ErrorCode.BAD_NUM_PLAYERS, f"{env_id} takes {info.players_text()} players, "
                                                          f"not {num_players}")
        seed = options.seed if options.seed is not None else _RNG.randrange(2**31)
        seat = options.seat if options.seat is not None else random.Random(seed).randrange(num_players)
        if seat >= num_players:
            raise OpenEnvError(ErrorCode.BAD_SEAT, f"seat must be 0..{num_players - 1} in a {num_players}-player game")
        opponent = await self._opponent(options.opponent) if num_players > 1 else None
        return Episode(env_id, seed, seat, num_players, options.episode_id), opponent

    async def _step(self, action: StepAction) -> ObservationReply:
        """Play the seat's move and answer once the seat must move again or the game is over."""
        episode = self.episode
        if episode is None:
            raise OpenEnvError(ErrorCode.NO_EPISODE, "no episode: send reset first")
        if episode.told_done:
            raise OpenEnvError(ErrorCode.EPISODE_OVER, "the episode is over: send reset to start a new one")
        if episode.over is None and episode.turn is not None:
            turn, episode.turn = episode.turn, None
            try:
                self.hub.act(episode.player, protocol.Action(game_id=turn.game_id, action=action.message),
                             time.perf_counter())
                episode.steps += 1
            except HubError:
                pass  # the game ended meanwhile (the seat timed out): its game_over is on its way
        await episode.next_stop()
        return episode.reply()

    def _state(self) -> StateReply:
        """The episode state (before any reset: an empty one for the URL's game)."""
        if self.episode is None:
            return StateReply(data=EpisodeState(env_id=self.default_env))
        return StateReply(data=self.episode.state())

    async def _opponent(self, text: str | None) -> Seat:
        """The seat of the agent that fills the other seats: a house agent, or a baseline agent."""
        house = {seat.agent.name: seat for seat in self.hub.house}
        if text is None:
            text = DEFAULT_OPPONENT if DEFAULT_OPPONENT in house or not house else next(iter(house))
        try:
            spec = parse_spec(text)
        except SpecError as error:
            raise OpenEnvError(ErrorCode.BAD_OPPONENT, str(error)) from error
        if spec.name in house:
            return house[spec.name]
        if spec.name in BASELINE_OPPONENTS:
            return await self.hub.arena.seat(spec)
        allowed = sorted({*house, *BASELINE_OPPONENTS})
        raise OpenEnvError(ErrorCode.OPPONENT_UNAVAILABLE, f"opponent '{spec.name}' is not available here: "
                                                           f"use one of {', '.join(allowed)}")

    async def _identity(self, options: ResetOptions) -> Player:
        """The agent the client plays as: a registered agent's token, or an OpenEnv agent name (made on first use)."""
        key = (options.agent, options.token)
        if key not in self.identities:
            found = self._by_token(options.token) if options.token else self._named(options.agent)
            self.identities[key] = await found
        return self.identities[key]

    async def _by_token(self, token: str) -> Player:
        row = await asyncio.to_thread(self.hub.arena.read, partial(agent_store.by_token, token=token))
        if row is None:
            raise OpenEnvError(ErrorCode.BAD_TOKEN, "unknown token: create one with `arena agents create NAME`")
        return Player(row.id, row.name, row.kind)

    async def _named(self, name: str) -> Player:
        try:
            agent_id = await self.hub.arena.writer.run(agent_store.ensure_agent, name, AGENT_KIND, "")
        except agent_store.AgentConflict as error:
            raise OpenEnvError(ErrorCode.NAME_TAKEN, f"the agent name '{name}' belongs to another kind of agent: "
                                                     "pick another name, or pass its token") from error
        return Player(agent_id, name, AGENT_KIND)

    def _leave(self, reason: str) -> None:
        """Let go of the episode in progress: the hub's bookkeeping for a dropped player, then forfeit at once
        (an OpenEnv session has no way back to its seat)."""
        episode = self.episode
        if episode is None or episode.player is None:
            return
        self.hub.disconnected(episode.player, episode)
        episode.forfeit(reason)


def _start_game(hub: Hub, episode: Episode, player: Player, opponent: Seat | None) -> LiveGame:
    """Seat the client and the opponent as the hub seats players and house agents, and run the game on the hub
    (stored, announced and rated like every server game; aborted by a shutdown)."""
    live = LiveGame(episode.env_id, asyncio.get_running_loop().create_future())
    remote = RemoteSeat(player, 0, episode.seat, hub.settings.resume_grace, live.abandon, hub.metrics.turn_sent)
    seats: list[Seat] = []
    for index in range(episode.num_players):
        if index == episode.seat:
            live.remote[index] = remote
            seats.append(Seat(remote, player.agent_id))
        else:
            assert opponent is not None, "games of more than one player have an opponent"
            live.house[index] = Player(opponent.agent_id, opponent.agent.name, "house", HouseOutbox())
            seats.append(opponent)
    live.names = [seat.agent.name for seat in seats]
    match = Match(episode.env_id, episode.seed, seats, move_timeout=hub.settings.move_timeout, tags=TAGS)
    hub.run_game(live, match)
    return live


def frame_json(reply: Reply) -> str:
    """A reply as the text frame sent (error frames leave out empty fields)."""
    return reply.model_dump_json(exclude_none=isinstance(reply, ErrorReply))


def _error(code: ErrorCode, message: str, errors: list[dict[str, Any]] | None = None) -> ErrorReply:
    return ErrorReply(data=ErrorData(message=message, code=code, errors=errors))


def _code_of(error: HubError) -> ErrorCode:
    """The OpenEnv code of a hub refusal (the same name, upper case)."""
    return ErrorCode.__members__.get(error.code.name, ErrorCode.EXECUTION_ERROR)


# --- the routes -------------------------------------------------------------------------------------


class Capacity:
    """How many sessions are open, out of how many allowed (one count per application)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.open = limit, 0


def _capacity(websocket: WebSocket) -> Capacity:
    state = websocket.app.state
    if getattr(state, "openenv_capacity", None) is None:
        state.openenv_capacity = Capacity(websocket.app.state.hub.settings.openenv_max_sessions)
    return state.openenv_capacity


async def _serve(websocket: WebSocket, env_id: str | None) -> None:
    """Accept, count, and run one session; over capacity, answer the first frame with CAPACITY_REACHED."""
    await websocket.accept()
    capacity = _capacity(websocket)
    if capacity.open >= capacity.limit:
        await _refuse(websocket, capacity)
        return
    capacity.open += 1
    try:
        await Session(websocket, websocket.app.state.hub, env_id).run()
    finally:
        capacity.open -= 1
    await _close(websocket)


async def _refuse(websocket: WebSocket, capacity: Capacity) -> None:
    """Answer the client's first frame (so that its `reset` raises with the code), then close."""
    try:
        async with asyncio.timeout(FIRST_FRAME_S):
            await websocket.receive()
        reply = _error(ErrorCode.CAPACITY_REACHED, f"the server runs {capacity.limit} OpenEnv sessions at most; "
                                                   "try again later")
        await websocket.send_text(frame_json(reply))
    except (TimeoutError, WebSocketDisconnect, RuntimeError):
        pass
    await _close(websocket)


async def _close(websocket: WebSocket) -> None:
    """Close the socket unless the client is gone already."""
    if websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # gone meanwhile
            await websocket.close()


@router.websocket("/ws")
async def session(websocket: WebSocket) -> None:
    """An OpenEnv session; `reset` names the game (`env_id`)."""
    await _serve(websocket, None)


@router.websocket("/{env_id}/ws")
async def session_for_env(websocket: WebSocket, env_id: str) -> None:
    """An OpenEnv session whose game is `env_id` unless `reset` names another."""
    await _serve(websocket, env_id)

