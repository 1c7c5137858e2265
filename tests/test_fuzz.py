"""Fuzzing over real sockets: random JSON, wrong types, huge numbers, deep nesting, odd Unicode, binary and truncated
frames and requests out of order, sent to the native socket (`/ws`) and to both TextArena-compatible sockets. The
server never dies, each bad frame gets an error (or the documented close), and a game played on another connection
meanwhile finishes. Schemathesis, from the server's own OpenAPI document, finds no 500 in the HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from server_helpers import Client, ServerUnderTest, first_move
from test_hostile_input import registration, request
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from arena import protocol
from arena.server.textarena_ids import env_for_number
from games import catalog

ErrorCode = protocol.ErrorCode
FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])
OVER_THE_LIBRARY_LIMIT = 1024 * 1024 + 1  # frames past 1 MiB are closed with 1009 (message too big)
TICTACTOE = 35  # its number in TextArena's table

# --- what a hostile client sends -------------------------------------------------------------------------------

ODD_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\x00", "\u202e\u0644\u0627", "\ufeff", "\U0001f600" * 3, "\U0010ffff", "e\u0301",
                     "\ud800", "[4]\udfff", "guest:random", "random", "TicTacToe-v0", "\\", '"', "null"]),
    st.integers(8190, 8200).map(lambda size: "x" * size))  # around the longest action
HUGE_NUMBERS = st.one_of(st.integers(), st.sampled_from([2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**64]),
                         st.integers(300, 4000).map(lambda digits: -(10**digits)), st.floats())
SCALARS = st.one_of(st.none(), st.booleans(), HUGE_NUMBERS, ODD_TEXT)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner,
                                                                                                max_size=4),
                           max_leaves=12)


def dumps(value: Any) -> str:
    """JSON text as a careless client writes it: NaN as is, lone surrogates as escapes."""
    return json.dumps(value)


def nested(depth: int, prefix: str = "", suffix: str = "") -> str:
    """A frame nested `depth` arrays deep, inside `prefix` ... `suffix`."""
    return prefix + "[" * depth + "]" * depth + suffix


def truncated(frames: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Frames cut short."""
    return frames.flatmap(lambda text: st.integers(0, max(0, len(text) - 1)).map(lambda cut: text[:cut]))


def frames(requests: st.SearchStrategy[str], deep_prefix: str) -> st.SearchStrategy[str | bytes]:
    """Every kind of bad frame, around `requests` (well-formed requests of the socket's own protocol)."""
    return st.one_of(
        requests, requests, truncated(requests), JSON_VALUES.map(dumps), st.text(max_size=200),
        st.binary(max_size=100), st.integers(1, 100_000).map(nested),
        st.integers(1, 100_000).map(lambda depth: nested(depth, deep_prefix, "}")))


# --- the native protocol -----------------------------------------------------------------------------------------

GAME_IDS = st.integers(max_value=0) | st.integers(min_value=2**31)  # never a game of this server
NATIVE_FIELDS = ["token", "guest", "envs", "opponent", "self_play", "game_id", "action", "data", "ref", "env_id",
                 "seed", "seats", "tags", "tournament_game_id"]
NATIVE_TYPES = ["hello", "queue", "action", "resume", "spectate", "leave", "ping", "challenge", "welcome", "Hello"]
NATIVE_REQUESTS = st.one_of(
    st.fixed_dictionaries({"type": st.just("hello")}, optional={"token": ODD_TEXT, "guest": ODD_TEXT}),
    st.fixed_dictionaries({"type": st.just("queue"), "envs": st.lists(ODD_TEXT, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"type": st.just("action"), "game_id": GAME_IDS, "action": ODD_TEXT}),
    st.fixed_dictionaries({"type": st.sampled_from(["resume", "spectate"]), "game_id": GAME_IDS}),
    st.just({"type": "leave"}),
    st.fixed_dictionaries({"type": st.just("ping"), "data": JSON_VALUES}),
    st.fixed_dictionaries({"type": st.just("challenge"), "ref": HUGE_NUMBERS, "env_id": ODD_TEXT,
                           "seed": st.integers(0, 2**63 - 1), "seats": st.lists(ODD_TEXT, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"type": st.sampled_from(NATIVE_TYPES) | JSON_VALUES},
                          optional=dict.fromkeys(NATIVE_FIELDS, JSON_VALUES)),
    st.integers(64 * 1024 + 1, 70_000).map(lambda size: "x" * size),  # over 64 KiB
).map(lambda request: request if isinstance(request, str) else dumps(request))
NATIVE_FRAMES = frames(NATIVE_REQUESTS, '{"type": "ping", "data": ')


def native_replies(frame: str | bytes, identified: bool) -> set[str]:
    """What the protocol promises for `frame`: one reply, of one of these types or error codes (none: no reply)."""
    if isinstance(frame, bytes):
        return {ErrorCode.BINARY_FRAME}
    try:
        message = protocol.parse_client(frame)
    except protocol.ProtocolError as error:
        return {error.code}
    match message:
        case protocol.Ping():
            return {"pong"}
        case protocol.Hello() if identified:
            return {ErrorCode.ALREADY_IDENTIFIED}
        case protocol.Hello(token=str() as token) if token:
            return {ErrorCode.BAD_TOKEN}
        case protocol.Hello(guest=str()):
            return {"welcome", ErrorCode.NAME_TAKEN}
        case protocol.Hello():
            return {ErrorCode.MISSING_TOKEN}
        case protocol.Spectate():
            return {ErrorCode.UNKNOWN_GAME}
        case _ if not identified:
            return {ErrorCode.HELLO_REQUIRED}
        case protocol.Leave():
            return set()
        case protocol.Action() | protocol.Resume():
            return {ErrorCode.UNKNOWN_GAME}
        case protocol.Challenge(seats=seats) if len(set(seats)) < len(seats):
            return {ErrorCode.INVALID_MESSAGE}
    return {ErrorCode.UNKNOWN_ENV}  # a queue or a challenge for a game no one has heard of


async def native_exchange(client: Client, frame: str | bytes) -> list[str]:
    """Send `frame`, then a ping: the types (error codes for errors) of what came back before the pong."""
    nonce = uuid.uuid4().hex
    await client.ws.send(frame)
    await client.send(type="ping", data=nonce)
    replies = []
    while (reply := await client.receive())["type"] != "pong" or reply["data"] != nonce:
        protocol.SERVER_MESSAGE.validate_python(reply)  # the server speaks the protocol, error codes included
        replies.append(reply["code"] if reply["type"] == "error" else reply["type"])
    return replies


async def native_example(srv: ServerUnderTest, hello: bool, frames: list[str | bytes]) -> None:
    """One connection's frames, each answered as promised."""
    client = await Client.open(srv.ws, **({"guest": f"fuzz-{uuid.uuid4().hex[:12]}"} if hello else {}))
    identified = hello
    for frame in frames:
        promised = native_replies(frame, identified)
        replies = await native_exchange(client, frame)
        assert (replies == []) if not promised else (len(replies) == 1 and replies[0] in promised), (frame, replies)
        identified = identified or replies == ["welcome"]
    await client.close()


@settings(FUZZ, max_examples=150)
@given(hello=st.booleans(), frames=st.lists(NATIVE_FRAMES, min_size=1, max_size=6))
def fuzz_native(srv: ServerUnderTest, hello: bool, frames: list[str | bytes]) -> None:
    """Fuzz `/ws` one fresh connection at a time; the server answers /health after each."""
    asyncio.run(native_example(srv, hello, frames))
    assert request(srv.url + "/health")[0] == 200


# --- TextArena's matchmaking socket ------------------------------------------------------------------------------

NUMBERS = st.lists(st.integers(-5, 2000) | HUGE_NUMBERS, min_size=0, max_size=3)
MATCHMAKING_REQUESTS = st.one_of(
    st.just({"command": "leave"}),
    st.fixed_dictionaries({"command": st.just("queue"), "environments": NUMBERS | JSON_VALUES}),
    st.fixed_dictionaries({"command": st.sampled_from(["queue", "leave", "ping", "action"]) | JSON_VALUES},
                          optional={"environments": JSON_VALUES, "action": JSON_VALUES}),
).map(dumps)
MATCHMAKING_FRAMES = frames(MATCHMAKING_REQUESTS, '{"command": "queue", "environments": ')


def matchmaking_reply(frame: str | bytes) -> str:
    """The `command` of the reply `frame` gets: `left`, `queued`, or `error` (which closes the socket after a text
    frame)."""
    try:
        command = json.loads(frame) if isinstance(frame, str) else None
    except (ValueError, RecursionError):
        return "error"
    if not isinstance(command, dict):
        return "error"
    numbers = command.get("environments")
    if command.get("command") == "queue" and isinstance(numbers, list) and numbers and all(
            isinstance(n, int) and env_for_number(n) and catalog.lookup(env_for_number(n)).playable for n in numbers):
        return "queued"
    return "left" if command.get("command") == "leave" else "error"


async def matchmaking_example(srv: ServerUnderTest, model: dict[str, str], frames: list[str | bytes]) -> None:
    """One matchmaking connection's frames: each answered, and the socket closed (1000) after a bad text frame."""
    query = urllib.parse.urlencode(model)
    ws = await connect(f"{srv.ws.removesuffix('/ws')}/textarena/ws?{query}")
    for frame in frames:
        promised = matchmaking_reply(frame)
        await ws.send(frame)
        reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
        while reply["command"] == "queued" and promised != "queued":  # a queued model hears its place now and then
            reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert reply["command"] == promised and isinstance(reply.get("message", ""), str), (frame, reply)
        if promised == "error" and isinstance(frame, str):
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 20)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
            return
    await ws.close()


@settings(FUZZ, max_examples=100)
@given(frames=st.lists(MATCHMAKING_FRAMES, min_size=1, max_size=5))
def fuzz_matchmaking(srv: ServerUnderTest, model: dict[str, str], frames: list[str | bytes]) -> None:
    """Fuzz the matchmaking socket one connection at a time; the server answers /health after each."""
    asyncio.run(matchmaking_example(srv, model, frames))
    assert request(srv.url + "/health")[0] == 200


def register(srv: ServerUnderTest) -> dict[str, str]:
    """A freshly registered model: the matchmaking socket's query."""
    body = json.loads(registration(f"fuzz-{uuid.uuid4().hex[:12]}"))
    status, answer = request(srv.url + "/textarena/register_model", json.dumps(body).encode())
    assert status == 200, answer
    return {"model_name": body["model_name"], "model_token": body["model_token"]}


# --- TextArena's game socket -------------------------------------------------------------------------------------

GAME_REQUESTS = st.one_of(
    st.fixed_dictionaries({"command": st.just("action"), "action": ODD_TEXT | JSON_VALUES}),
    st.sampled_from([{"command": "ping"}, {"command": "pong"}]),
    st.fixed_dictionaries({"command": st.sampled_from(["action", "ping", "queue", "observation"]) | JSON_VALUES},
                          optional={"action": JSON_VALUES, "player_id": JSON_VALUES}),
).map(dumps)
GAME_FRAMES = frames(GAME_REQUESTS, '{"command": "action", "action": ')
NO_VERIFY = ssl.create_default_context()
NO_VERIFY.check_hostname, NO_VERIFY.verify_mode = False, ssl.CERT_NONE  # the server's self-signed certificate


def game_replies(frame: str | bytes) -> set[str]:
    """The commands one of which answers `frame` (none: no answer)."""
    try:
        command = json.loads(frame) if isinstance(frame, str) else None
    except (ValueError, RecursionError):
        return {"error"}
    kind = command.get("command") if isinstance(command, dict) else None
    if kind == "ping":
        return {"pong"}
    if kind == "pong":
        return set()
    if kind == "action" and isinstance(command.get("action"), str):
        return {"action_ack", "error"}  # stored (valid or not), or refused out of turn
    return {"error"}


async def game_socket(srv: ServerUnderTest) -> ClientConnection:
    """A game socket for a fresh model matched with the house `random` (the model may have to move first)."""
    model = register(srv)
    lobby = await connect(f"{srv.ws.removesuffix('/ws')}/textarena/ws?{urllib.parse.urlencode(model)}")
    await lobby.send(json.dumps({"command": "queue", "environments": [TICTACTOE]}))
    while (found := json.loads(await asyncio.wait_for(lobby.recv(), 30)))["command"] != "match_found":
        assert found["command"] == "queued", found
    await lobby.close()
    return await connect(f"wss://{found['game_url']}/ws?token={model['model_token']}", ssl=NO_VERIFY)


async def game_exchange(ws: ClientConnection, frame: str | bytes) -> list[str] | None:
    """Send `frame`, then a ping: the commands that answered `frame` (None once the game is over)."""
    pongs = 2 if "pong" in game_replies(frame) else 1
    await ws.send(frame)
    replies = []
    if "action_ack" in game_replies(frame):  # acked once the turn is stored: after the pong, maybe
        replies.append(await game_command(ws))
    with contextlib.suppress(ConnectionClosed):  # closed after a game_over, which is read below
        await ws.send(json.dumps({"command": "ping"}))
    while replies.count("pong") < pongs:
        if (command := await game_command(ws)) is None:
            return None
        replies.append(command)
    replies.remove("pong")
    return replies


async def game_command(ws: ClientConnection) -> str | None:
    """The next answer (`pong`, `action_ack`, `error`), None at the game's end; observations and keepalive pings
    are skipped. A game does not end aborted: storing a move never fails."""
    while (frame := json.loads(await asyncio.wait_for(ws.recv(), 20)))["command"] in ("observation", "ping"):
        pass
    if frame["command"] in ("game_over", "timed_out"):
        assert frame.get("outcome") != "aborted", frame
        return None
    assert frame["command"] in ("pong", "action_ack", "error") and isinstance(frame.get("message", ""), str), frame
    return frame["command"]


async def game_example(srv: ServerUnderTest, frames: list[str | bytes]) -> None:
    """One model's game socket: each frame answered as promised, until the game ends."""
    ws = await game_socket(srv)
    for frame in frames:
        promised = game_replies(frame)
        replies = await game_exchange(ws, frame)
        if replies is None:
            break
        assert (replies == []) if not promised else (len(replies) == 1 and replies[0] in promised), (frame, replies)
    await ws.close()


@settings(FUZZ, max_examples=30)
@given(frames=st.lists(GAME_FRAMES, min_size=1, max_size=6))
@example(frames=[dumps({"command": "action", "action": "[4]\ud800"})])  # not text a database can store
@example(frames=[dumps({"command": "action", "action": "x" * 8193})])  # longer than an action may be
def fuzz_game(srv: ServerUnderTest, frames: list[str | bytes]) -> None:
    """Fuzz game sockets, a fresh game for each; the server answers /health after each."""
    asyncio.run(game_example(srv, frames))
    assert request(srv.url + "/health")[0] == 200


# --- a game on another connection meanwhile ----------------------------------------------------------------------


@contextlib.contextmanager
def games_alongside(srv: ServerUnderTest) -> Iterator[list[str]]:
    """A guest plays TicTacToe against the house `random`, game after game, on a thread of its own until the block
    ends; yields the status of each game it finished (its failure is raised at the end)."""
    stop, statuses = threading.Event(), []
    with ThreadPoolExecutor(1) as pool:
        playing = pool.submit(asyncio.run, play_until(srv, stop, statuses))
        try:
            yield statuses
        finally:
            stop.set()
        playing.result(timeout=120)


async def play_until(srv: ServerUnderTest, stop: threading.Event, statuses: list[str]) -> None:
    """Play games, at a person's pace, until `stop` is set."""
    client = Client(await connect(srv.ws, ping_interval=None))  # no keepalive: its random data would puzzle Hypothesis
    await client.send(type="hello", guest=f"bystander-{uuid.uuid4().hex[:8]}")
    await client.expect("welcome")
    while not stop.is_set():
        await client.send(type="queue", envs=["TicTacToe-v0"], opponent="random")
        while (message := await client.expect("turn", "game_over", "error", timeout=60))["type"] == "turn":
            await asyncio.sleep(0.05)
            await client.send(type="action", game_id=message["game_id"], action=first_move(message["observation"]))
        assert message["type"] == "game_over", message
        statuses.append(message["status"])
    await client.close()


@pytest.fixture
def srv(server) -> ServerUnderTest:
    """A server whose house agent plays at once when asked by name, and fills a TextArena model's seat soon."""
    return server("--house-wait", "0.2", "--resume-grace", "1")


def test_the_native_socket_answers_every_bad_frame_and_a_game_beside_it_finishes(srv: ServerUnderTest) -> None:
    with games_alongside(srv) as statuses:
        fuzz_native(srv)
    assert statuses and set(statuses) == {"finished"}, statuses


def test_the_matchmaking_socket_answers_every_bad_frame_and_a_game_beside_it_finishes(server) -> None:
    srv = server("--house-wait", "600")  # a queued model stays queued
    model = register(srv)
    with games_alongside(srv) as statuses:
        fuzz_matchmaking(srv, model)
    assert statuses and set(statuses) == {"finished"}, statuses


def test_the_game_socket_answers_every_bad_frame_and_a_game_beside_it_finishes(srv: ServerUnderTest) -> None:
    with games_alongside(srv) as statuses:
        fuzz_game(srv)
    assert statuses and set(statuses) == {"finished"}, statuses


async def test_frames_over_the_library_limit_are_closed_with_1009(srv: ServerUnderTest) -> None:
    lobby = f"{srv.ws.removesuffix('/ws')}/textarena/ws?{urllib.parse.urlencode(register(srv))}"
    sockets = [await connect(srv.ws), await connect(lobby), await game_socket(srv)]
    for ws in sockets:
        await ws.send("x" * OVER_THE_LIBRARY_LIMIT)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 20)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value
    assert request(srv.url + "/health")[0] == 200


# --- the HTTP API, from its OpenAPI document ---------------------------------------------------------------------


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def fuzz_operation(cases: st.SearchStrategy[schemathesis.Case], data: st.DataObject) -> None:
    """Requests for one operation, valid and not: none is answered with a server error."""
    data.draw(cases, label="case").call_and_validate(checks=[not_a_server_error])


def test_no_http_operation_answers_with_a_server_error(server) -> None:
    schema = schemathesis.openapi.from_url(server().url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [operation.label for operation in operations]
    for operation in operations:
        fuzz_operation(st.one_of(operation.as_strategy(mode) for mode in schemathesis.GenerationMode))
