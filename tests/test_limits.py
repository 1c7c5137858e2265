"""Limits a hostile client meets: a websocket that does not read is cut off with the server's memory bounded, one
address opens only so many connections (half-sent requests included, and dropped after the header timeout), and
a player has only so many games at once, through the native and the TextArena door, while the house plays any
number. Small limits come from ARENA_* variables, which an older server ignores, so these tests fail there."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import Client, InProcessServer, ServerProcess, ServerUnderTest, first_move
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from arena.server.textarena_ids import all_numbers

ENV = "TicTacToe-v0"
MIB = 2**20


@contextlib.contextmanager
def limited_server(db_url: str, tmp_path: Path, env: dict[str, str], *flags: str,
                   process: bool = False) -> Iterator[ServerUnderTest]:
    """The server with `flags` and the ARENA_* variables in `env` (`process`: `arena serve` in a subprocess),
    stopped afterwards."""
    srv = (ServerProcess if process else InProcessServer)(db_url, *flags, env=env, cwd=tmp_path).start()
    try:
        yield srv
    finally:
        srv.stop()


def rss(pid: int) -> int:
    """The resident memory of process `pid`, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


async def play_house_games(client: Client, finished: list[float]) -> None:
    """Play TicTacToe against the house `random`, game after game; note when each one finished."""
    while True:
        await client.send(type="queue", envs=[ENV], opponent="random")
        over = await client.play_first_moves()
        assert over["status"] == "finished", over
        finished.append(time.monotonic())


async def flood_without_reading(port: int, pid: int, seconds: float) -> tuple[float | None, int]:
    """Send 1 KiB pings and read nothing (a tiny receive buffer, no keepalive pings) until the server cuts the
    connection off; (seconds it took, or None if it did not within `seconds`; the server's peak memory)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ping = json.dumps({"type": "ping", "data": "A" * 1000})
    peak, started = rss(pid), time.monotonic()
    ws = await connect(f"ws://127.0.0.1:{port}/ws", sock=sock, ping_interval=None)
    try:
        async with asyncio.timeout(seconds):  # a server that stops reading but holds on blocks the sends
            while True:
                for _ in range(20):
                    await ws.send(ping)
                await asyncio.sleep(0.02)
                peak = max(peak, rss(pid))
    except ConnectionClosed:
        return time.monotonic() - started, peak
    except TimeoutError:
        return None, peak
    finally:
        ws.transport.abort()


@pytest.mark.sqlite_only
async def test_a_client_that_does_not_read_is_cut_off_and_memory_stays_bounded_while_games_go_on(
        db_url: str, tmp_path: Path) -> None:
    env = {"ARENA_OUTBOX_BYTES": str(256 * 1024), "ARENA_MAX_MESSAGES_PER_SECOND": "100000"}
    with limited_server(db_url, tmp_path, env, "--house-wait", "60", process=True) as srv:  # its memory alone
        steady = await Client.open(srv.ws, guest="steady")
        finished: list[float] = []
        games = asyncio.create_task(play_house_games(steady, finished))
        try:
            before = rss(srv.process.pid)
            took, peak = await flood_without_reading(srv.port, srv.process.pid, seconds=60)
            assert took is not None, "a client that reads nothing was still connected after 60 s"
            assert peak - before < 64 * MIB, f"the server grew by {(peak - before) / MIB:.0f} MiB"
            cut_at, deadline = time.monotonic(), time.monotonic() + 60
            while not [t for t in finished if t > cut_at] and time.monotonic() < deadline and not games.done():
                await asyncio.sleep(0.1)
            assert finished and finished[-1] > cut_at, f"no game finished after the cut-off ({len(finished)} before)"
            assert srv.get("/health")
        finally:
            games.cancel()


def half_sent_request(port: int) -> socket.socket:
    """A connection that sends part of a request's headers, and nothing more."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return sock


async def refused(url: str) -> bool:
    """Whether the server refuses a websocket at `url` (503, or a connection closed before any response)."""
    try:
        async with connect(url, open_timeout=10):
            return False
    except InvalidStatus as error:
        return error.response.status_code == 503
    except (InvalidMessage, OSError):
        return True


def http_status(url: str) -> int | None:
    """The status of a GET, or None when the connection was closed before a response."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError):
        return None


async def admitted(url: str, guest: str) -> Client:
    """A signed-in client, once the server has room for it (a closed connection frees its place soon after)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return await Client.open(url, guest=guest)
        except (InvalidStatus, InvalidMessage, OSError):
            assert time.monotonic() < deadline, "no place for a new connection"
            await asyncio.sleep(0.1)


@pytest.mark.sqlite_only
async def test_one_address_opens_only_so_many_connections_and_half_sent_requests_are_dropped(
        db_url: str, tmp_path: Path) -> None:
    env = {"ARENA_MAX_CONNECTIONS_PER_IP": "4", "ARENA_HEADER_TIMEOUT": "2"}
    with limited_server(db_url, tmp_path, env) as srv:
        players = [await Client.open(srv.ws, guest=f"p{i}") for i in range(2)]
        slow = [half_sent_request(srv.port) for _ in range(2)]
        assert await refused(srv.ws), "a fifth connection: two websockets and two half-sent requests are open"
        assert http_status(srv.url + "/health") in (503, None)
        await players[0].send(type="ping", data=1)
        assert (await players[0].expect("pong"))["data"] == 1, "the admitted connections work on"

        for sock in slow:
            sock.settimeout(30)
            assert sock.recv(100) == b"", "a request whose headers never end is closed after the header timeout"
            sock.close()
        players += [await admitted(srv.ws, f"q{i}") for i in range(2)]
        assert await refused(srv.ws), "the places the half-sent requests left are taken again"

        for i in range(6):  # a websocket gives its place back when it closes, however often
            await players.pop().close()
            players.append(await admitted(srv.ws, f"r{i}"))
        assert http_status(srv.url + "/health") in (503, None)
        await players.pop().close()
        deadline = time.monotonic() + 10
        while http_status(srv.url + "/health") != 200:
            assert time.monotonic() < deadline, "plain HTTP never got the freed place"
            await asyncio.sleep(0.1)


async def test_a_player_past_its_game_limit_is_refused_while_the_house_plays_any_number(
        db_url: str, tmp_path: Path) -> None:
    env = {"ARENA_MAX_GAMES_PER_PLAYER": "2"}
    with limited_server(db_url, tmp_path, env, "--house-wait", "60", "--move-timeout", "120") as srv:
        ann = await Client.open(srv.ws, guest="ann")
        for _ in range(2):
            await ann.send(type="queue", envs=[ENV], opponent="random")
            await ann.expect("match", timeout=60)  # the first waits for the server's catalog check
        await ann.send(type="queue", envs=[ENV], opponent="random")
        refusal = await ann.expect("error", "queued", "match")
        assert (refusal["type"], refusal.get("code")) == ("error", "too_many_games"), refusal
        assert "at the limit of games at once (2" in refusal["message"]

        bob = await Client.open(srv.ws, guest="bob")  # online, not queued: a challenge naming bob waits
        await ann.send(type="challenge", ref=1, env_id=ENV, seed=1, seats=["guest:bob", "random"])
        refusal = await ann.expect("error")
        assert (refusal["code"], refusal["ref"]) == ("too_many_games", 1), refusal
        cat = await Client.open(srv.ws, guest="cat")
        for ref in (1, 2, 3):
            await cat.send(type="challenge", ref=ref, env_id=ENV, seed=ref, seats=["guest:bob", "random"])
        refusal = await cat.expect("error")
        assert (refusal["code"], refusal["ref"]) == ("too_many_games", 3), "two waiting challenges count as games"

        others = [await Client.open(srv.ws, guest=name) for name in ("dan", "eve", "fay")]
        for other in others:
            await other.send(type="queue", envs=[ENV], opponent="random")
            assert (await other.expect("match", "error"))["type"] == "match"
        running = srv.get("/api/episodes?status=running")
        assert sum("random" in [seat["agent"] for seat in e["seats"]] for e in running) == 5, running

        for turn in {m["game_id"]: m for m in ann.seen if m["type"] == "turn"}.values():  # skipped above
            await ann.send(type="action", game_id=turn["game_id"], action=first_move(turn["observation"]))
        assert (await ann.play_first_moves())["status"] == "finished"
        await ann.send(type="queue", envs=[ENV], opponent="random")
        assert (await ann.expect("match", "error"))["type"] == "match", "a finished game frees its place"
        for client in [ann, bob, cat, *others]:
            await client.close()


async def test_the_textarena_door_refuses_a_queue_past_the_game_limit(db_url: str, tmp_path: Path) -> None:
    env = {"ARENA_MAX_GAMES_PER_PLAYER": "1"}
    with limited_server(db_url, tmp_path, env, "--house-wait", "0.2", "--move-timeout", "120") as srv:
        token = str(uuid.uuid4())
        body = json.dumps({"model_name": "busy-bot", "email": "b@example.org", "model_token": token}).encode()
        registration = urllib.request.Request(srv.url + "/textarena/register_model", data=body,
                                              headers={"content-type": "application/json"})
        with urllib.request.urlopen(registration, timeout=30) as response:
            assert response.status == 200
        queue = json.dumps({"command": "queue", "environments": [all_numbers()[ENV]]})
        url = f"ws://127.0.0.1:{srv.port}/textarena/ws?model_name=busy-bot&model_token={token}"
        async with connect(url) as ws:
            await ws.send(queue)
            while (frame := json.loads(await asyncio.wait_for(ws.recv(), 30)))["command"] != "match_found":
                assert frame["command"] == "queued", frame
            await ws.send(queue)
            reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert reply["command"] == "error" and "at the limit of games at once (1" in reply["message"], reply
