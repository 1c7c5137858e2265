"""The native websocket protocol (`/ws`): every message as a pydantic model. Imports nothing of the server.

Every frame is one JSON object with a `type` field. See docs/protocol.md for examples.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MAX_ROW_ID = 2**31 - 1  # the largest id an Integer column holds on every backend (PostgreSQL's int4)

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024
PING_DATA_BYTES = 1024


# --- shared vocabularies: the server, the SDK and the API use these, never bare strings -------------------


class GameStatus(StrEnum):
    """Where an episode stands: in progress, ended with a result, or ended by the arena without one."""

    RUNNING = "running"
    FINISHED = "finished"
    ABORTED = "aborted"


class GameResult(StrEnum):
    """One seat's result in a finished game."""

    WIN = "win"
    DRAW = "draw"
    LOSS = "loss"


class InvalidMoveKind(StrEnum):
    """What an invalid move costs: the game's own allowance, an instant forfeit, or N resubmits."""

    TEXTARENA = "textarena"
    FORFEIT = "forfeit"
    RETRY = "retry"


class ErrorCode(StrEnum):
    """The stable `code` of every `error` the server sends (docs/protocol.md explains each)."""

    MALFORMED_JSON = "malformed_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_MESSAGE = "invalid_message"
    BINARY_FRAME = "binary_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    HELLO_REQUIRED = "hello_required"
    ALREADY_IDENTIFIED = "already_identified"
    MISSING_TOKEN = "missing_token"
    BAD_TOKEN = "bad_token"
    NAME_TAKEN = "name_taken"
    UNKNOWN_ENV = "unknown_env"
    UNPLAYABLE_ENV = "unplayable_env"
    SHUTTING_DOWN = "shutting_down"
    UNKNOWN_GAME = "unknown_game"
    GAME_OVER = "game_over"
    NOT_YOUR_GAME = "not_your_game"
    NOT_YOUR_TURN = "not_your_turn"
    STALE_TURN = "stale_turn"
    AGENT_NOT_CONNECTED = "agent_not_connected"
    CHALLENGER_SEATED = "challenger_seated"
    WRONG_SEAT_COUNT = "wrong_seat_count"
    BAD_TOURNAMENT_GAME = "bad_tournament_game"
    TOO_MANY_GAMES = "too_many_games"
    ADMIN_REQUIRED = "admin_required"


# Codes that retrying, reconnecting or re-queueing cannot fix: a client gives up on them.
FATAL_CODES: frozenset[ErrorCode] = frozenset({
    ErrorCode.BAD_TOKEN, ErrorCode.MISSING_TOKEN, ErrorCode.NAME_TAKEN, ErrorCode.UNKNOWN_ENV,
    ErrorCode.UNPLAYABLE_ENV, ErrorCode.INVALID_MESSAGE, ErrorCode.ALREADY_IDENTIFIED,
})


def _storable(text: str) -> str:
    """Text every database stores: no NUL (PostgreSQL refuses it) and no lone surrogate (UTF-8 cannot encode it)."""
    if "\x00" in text:
        raise ValueError("text may not contain NUL (\\x00): the database cannot store it")
    try:
        text.encode()
    except UnicodeEncodeError as error:
        raise ValueError("not valid Unicode text (a lone surrogate)") from error
    return text


def _small(data: Any) -> Any:
    """Ping data the server echoes: at most PING_DATA_BYTES as JSON (a pong is no way to make it buffer)."""
    if len(json.dumps(data, default=str)) > PING_DATA_BYTES:
        raise ValueError(f"ping data is limited to {PING_DATA_BYTES} bytes of JSON")
    return data


Text = Annotated[str, AfterValidator(_storable)]  # every text a client sends: the server may store it
NAME_PATTERN = r"^[^\s\x00-\x1f\x7f](.*[^\s])?$"  # printable, no leading or trailing space
AgentName = Annotated[Text, Field(min_length=1, max_length=100, pattern=NAME_PATTERN)]  # as a client chooses it
GuestName = Annotated[Text, Field(min_length=1, max_length=40, pattern=NAME_PATTERN)]


class Message(BaseModel):
    """Base of every protocol message: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


# --- client -> server ---------------------------------------------------------------------------


class Hello(Message):
    """First message: an agent token, or a guest name for a person."""

    type: Literal["hello"] = "hello"
    token: Text | None = Field(default=None, max_length=200)
    guest: GuestName | None = None


class Queue(Message):
    """Ask for a game of one of `envs`, optionally against a named opponent."""

    type: Literal["queue"] = "queue"
    envs: list[Text] = Field(min_length=1, max_length=50)
    opponent: Text | None = None
    self_play: bool = False


class Action(Message):
    """A move in a game."""

    type: Literal["action"] = "action"
    game_id: int
    action: Text = Field(max_length=8192)


class Resume(Message):
    """Take back a seat after a dropped connection."""

    type: Literal["resume"] = "resume"
    game_id: int


class Spectate(Message):
    """Watch a game's public view."""

    type: Literal["spectate"] = "spectate"
    game_id: int


class Leave(Message):
    """Leave every queue."""

    type: Literal["leave"] = "leave"


class Ping(Message):
    """Liveness check; answered by `pong`."""

    type: Literal["ping"] = "ping"
    data: Annotated[Any, AfterValidator(_small)] = None


class Challenge(Message):
    """Start a game with exactly these agents (names, in seat order) and seed, once each of them is idle and
    queued for `env_id`; `ref` (the challenger's own number) comes back in its answers."""

    type: Literal["challenge"] = "challenge"
    ref: int
    env_id: Text
    seed: int = Field(ge=0, lt=2**63)
    seats: list[Text] = Field(min_length=1, max_length=16)
    tags: list[Text] = Field(default_factory=list, max_length=16)
    tournament_game_id: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)


ClientMessage = Annotated[Hello | Queue | Action | Resume | Spectate | Leave | Ping | Challenge,
                          Field(discriminator="type")]
CLIENT_MESSAGE = TypeAdapter(ClientMessage)


# --- server -> client ---------------------------------------------------------------------------


class Welcome(Message):
    """Answer to `hello`: who you are. Guests get a token to come back as themselves."""

    type: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL_VERSION
    name: str
    kind: str
    token: str | None = None


class Queued(Message):
    """You are waiting for a game."""

    type: Literal["queued"] = "queued"
    envs: list[str]
    position: int
    waited: float


class MatchFound(Message):
    """A game starts (or, after `resume`, continues) and you hold `seat`."""

    type: Literal["match"] = "match"
    game_id: int
    env_id: str
    seat: int
    players: list[str]
    resumed: bool = False


class GameMessage(BaseModel):
    """One game message: sender (-1 is the game), text, TextArena observation type, and whether only the
    receiving seat got it (`private`; in an `event`, true only in a seat's closing messages)."""

    sender: int
    text: str
    kind: str
    private: bool = False


class Turn(Message):
    """Your move: the observation, the wall-clock deadline (Unix seconds), the valid moves when the observation
    lists them (e.g. ["[0]", "[4]"]), and everything this seat has been shown so far as structured messages."""

    type: Literal["turn"] = "turn"
    game_id: int
    seat: int
    turn: int
    observation: str
    deadline: float
    moves: list[str] = []
    messages: list[GameMessage] = []


class Ack(Message):
    """Your action was accepted and its turn is stored; `turn` is the turn it answered (its index). `invalid`:
    the game rejected the move (`reason` says why); the game's rules decide whether you move again."""

    type: Literal["ack"] = "ack"
    game_id: int
    turn: int
    invalid: bool = False
    reason: str | None = None


class Event(Message):
    """Public game messages, for players and spectators alike; and, when a game ends, the messages only this
    seat received since its last `turn` (marked private)."""

    type: Literal["event"] = "event"
    game_id: int
    messages: list[GameMessage]


class GameOver(Message):
    """The game ended: committed to the database before this is sent."""

    type: Literal["game_over"] = "game_over"
    game_id: int
    status: GameStatus
    reason: str
    rewards: dict[int, float]
    seat: int | None = None
    reward: float | None = None
    result: GameResult | None = None
    rating_before: float | None = None
    rating_after: float | None = None
    rating_change: float | None = None
    mu_before: float | None = None
    sigma_before: float | None = None
    mu_after: float | None = None
    sigma_after: float | None = None


class ChallengeStarted(Message):
    """Your challenge `ref` is being played as game `game_id`."""

    type: Literal["challenge_started"] = "challenge_started"
    ref: int
    game_id: int


class ChallengeOver(Message):
    """Your challenge `ref` ended: committed to the database before this is sent (rewards by seat)."""

    type: Literal["challenge_over"] = "challenge_over"
    ref: int
    game_id: int
    status: GameStatus
    rewards: dict[int, float]
    reason: str | None = None


class Error(Message):
    """Something was refused: a stable `code`, a human `message`, and the `ref` of the challenge it answers."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    ref: int | None = None


class Pong(Message):
    """Answer to `ping`."""

    type: Literal["pong"] = "pong"
    data: Any = None


class Shutdown(Message):
    """The server is stopping; games in progress are aborted and not rated."""

    type: Literal["shutdown"] = "shutdown"
    message: str


ServerMessage = Annotated[
    Welcome | Queued | MatchFound | Turn | Ack | Event | GameOver | ChallengeStarted | ChallengeOver | Error | Pong
    | Shutdown,
    Field(discriminator="type"),
]
SERVER_MESSAGE = TypeAdapter(ServerMessage)


# --- HTTP answers that clients read ---------------------------------------------------------------


class OnlineAgents(BaseModel):
    """`GET /api/online`: the agents a `challenge` may seat now: connected players and house agents, by name."""

    connected: list[str]
    house: list[str]


class ProtocolError(Exception):
    """A frame that is not a valid message; `code` is what the error message carries."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)


def parse_client(text: str) -> Message:
    """Validate one client frame; ProtocolError with a stable code otherwise."""
    if len(text.encode()) > MAX_FRAME_BYTES:
        raise ProtocolError(ErrorCode.FRAME_TOO_LARGE, f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        return CLIENT_MESSAGE.validate_json(text)
    except ValidationError as error:
        return _explain(error)


def _explain(error: ValidationError) -> Message:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        raise ProtocolError(ErrorCode.MALFORMED_JSON, f"not valid JSON: {first['msg']}")
    if first["type"] in ("union_tag_invalid", "union_tag_not_found", "model_type"):
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, "'type' must be one of: hello, queue, action, resume, spectate, "
                                            "leave, ping, challenge")
    where = ".".join(str(p) for p in first["loc"][1:]) or "message"
    raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{where}: {first['msg']}")
