"""Input a hostile or careless client sends: ids past a database integer, names that are reserved, empty, huge or
not text, a stored name that clashes with a house agent, and a player who drops before its game has started."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta

import pytest
from helpers import play_games
from server_helpers import Client, InProcessServer, ServerUnderTest, first_move
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from arena.play import schedule


def request(url: str, body: bytes | None = None) -> tuple[int, dict]:
    """(status, JSON body) of a GET, or of a POST of `body`."""
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def registration(name: str, email: str = "ada@example.org") -> bytes:
    """What `textarena.api.register_model` posts (json.dumps keeps a lone surrogate as its escape)."""
    return json.dumps({"model_name": name, "description": "", "email": email,
                       "model_token": str(uuid.uuid4())}).encode()


@pytest.mark.parametrize("path", ["/api/episodes/2147483648", "/api/episodes/9223372036854775808",
                                  "/api/episodes?offset=9223372036854775808", "/api/episodes/0",
                                  "/api/episodes?limit=100000"])
def test_ids_a_database_cannot_hold_are_refused_not_a_server_error(server, path: str) -> None:
    srv = server()
    status, body = request(srv.url + path)
    assert status == 422 and body["detail"], (status, body)
    assert request(srv.url + "/api/episodes/2147483647")[0] == 404  # the largest id an Integer column holds
    assert request(srv.url + "/api/episodes?offset=9223372036854775807")[0] == 200


@pytest.mark.parametrize(("name", "email", "status"), [
    ("first", "ada@example.org", 409), ("guest:ada", "ada@example.org", 409), ("", "ada@example.org", 422),
    (" padded", "ada@example.org", 422), ("x" * 100_000, "ada@example.org", 422), ("bad\ud800", "ada@example.org", 422),
    ("line\nbreak", "ada@example.org", 422), ("ada-bot", "a" * 100_000 + "@example.org", 422),
    ("ada-bot", "ada@example.org", 200)])
def test_registration_refuses_reserved_and_malformed_names(server, name: str, email: str, status: int) -> None:
    srv = server("--house", "random,first")
    got, body = request(srv.url + "/textarena/register_model", registration(name, email))
    assert got == status, body
    assert request(srv.url + "/health")[0] == 200


async def test_a_stored_name_that_clashes_with_a_house_agent_does_not_stop_the_server(db_url: str) -> None:
    srv = InProcessServer(db_url, "--house", "random").start()
    try:
        assert request(srv.url + "/textarena/register_model", registration("first"))[0] == 200
    finally:
        srv.stop()
    srv = InProcessServer(db_url, "--house", "random,first", "--house-wait", "60").start()
    try:
        assert srv.get("/api/house") == [{"name": "random"}], "the clashing house agent is left out, and said so"
        guest = await Client.open(srv.ws, guest="ada")
        await guest.send(type="queue", envs=["TicTacToe-v0"], opponent="random")
        assert (await guest.play_first_moves())["status"] == "finished"
        await guest.close()
    finally:
        srv.stop()
    assert "house agent 'first' is not seated" in srv.output()


async def test_a_player_who_drops_before_its_game_starts_gets_the_resume_grace_not_the_move_timeout(server) -> None:
    srv = server("--house-wait", "60", "--resume-grace", "1", "--move-timeout", "60")
    for name in ("ann", "bob", "cat"):
        guest = await Client.open(srv.ws, guest=name)
        await guest.send(type="queue", envs=["TicTacToe-v0"], opponent="random")
        await guest.expect("queued")
        await guest.close()  # the match is made and its episode is being stored: no seat is held yet
    started = time.monotonic()
    while time.monotonic() - started < 30:
        episodes = srv.get("/api/episodes")
        if len(episodes) == 3 and all(e["status"] != "running" for e in episodes):
            break
        await asyncio.sleep(0.2)
    assert [e["status"] for e in episodes] == ["finished"] * 3, episodes
    assert all("disconnected for more than 1 s" in e["reason"] for e in episodes), [e["reason"] for e in episodes]


async def test_times_carry_their_zone_and_the_api_documents_its_errors(server, db_url: str) -> None:
    await play_games(db_url, schedule("TicTacToe-v0", ["random", "first"], 1, 1))
    srv = server("--house", "random,first")
    [episode] = srv.get("/api/episodes")
    assert datetime.fromisoformat(episode["started_at"]).utcoffset() == timedelta(0), episode["started_at"]
    assert datetime.fromisoformat(episode["ended_at"]).utcoffset() == timedelta(0)
    [point] = srv.get("/api/agents/first/history?env=TicTacToe-v0")
    assert datetime.fromisoformat(point["at"]).utcoffset() == timedelta(0)
    spec = srv.get("/openapi.json")
    for path in ("/api/episodes/{episode_id}", "/api/agents/{name}/history", "/api/tournaments/{name}"):
        assert "404" in spec["paths"][path]["get"]["responses"], path
    assert {"400", "409", "422"} <= set(spec["paths"]["/textarena/register_model"]["post"]["responses"])
    assert {"400", "403", "422"} <= set(spec["paths"]["/api/export"]["get"]["responses"])
    started = spec["components"]["schemas"]["EpisodeSummary"]["properties"]["started_at"]
    assert started["format"] == "date-time"


async def matchmaking_socket(srv: ServerUnderTest, name: str):
    """A TextArena matchmaking socket for a freshly registered model `name`."""
    body = json.loads(registration(name))
    assert request(srv.url + "/textarena/register_model", json.dumps(body).encode())[0] == 200
    return await connect(f"{srv.ws.removesuffix('/ws')}/textarena/ws?model_name={name}&model_token="
                         f"{body['model_token']}")


async def test_textarena_sockets_answer_binary_and_deeply_nested_frames_and_cut_off_a_flood(db_url: str) -> None:
    srv = InProcessServer(db_url, env={"ARENA_MAX_MESSAGES_PER_SECOND": "50"}).start()
    ws = await matchmaking_socket(srv, "bin-bot")
    await ws.send(b"\x00\x01binary")
    assert json.loads(await ws.recv())["message"] == "send JSON text frames, not binary"
    await ws.send(json.dumps({"command": "leave"}))
    assert json.loads(await ws.recv()) == {"command": "left"}, "the socket lives on after a binary frame"
    await ws.send("[" * 100_000 + "]" * 100_000)
    assert "malformed command" in json.loads(await ws.recv())["message"]
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000, "closed with a close frame"

    ws = await matchmaking_socket(srv, "flood-bot")
    for _ in range(2_000):
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"command": "leave"}))
    answered = 0
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            answered += json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"command": "left"}
    assert closed.value.rcvd.code == 1008 and answered <= 100, answered
    assert request(srv.url + "/health")[0] == 200
    srv.stop()
    assert "Exception in ASGI application" not in srv.output()


async def test_ping_data_is_capped_so_pongs_cannot_fill_the_outbox(server) -> None:
    srv = server()
    client = await Client.open(srv.ws)
    await client.send(type="ping", data="A" * 1000)
    assert (await client.expect("pong"))["data"] == "A" * 1000
    await client.send(type="ping", data="A" * 60_000)
    error = await client.expect("error", "pong")
    assert error["type"] == "error" and error["code"] == "invalid_message" and "1024 bytes" in error["message"]
    assert len(json.dumps(error)) < 2_000, "the refusal does not echo the payload"
    await client.close()


async def test_a_connection_that_never_speaks_is_closed_and_one_that_did_stays(db_url: str) -> None:
    srv = InProcessServer(db_url, env={"ARENA_FIRST_MESSAGE_TIMEOUT": "1"}).start()
    try:
        silent, talker = await connect(srv.ws), await Client.open(srv.ws, guest="ada")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(silent.recv(), 10)
        assert closed.value.rcvd.code == 1008 and "no message in 1 s" in closed.value.rcvd.reason
        await asyncio.sleep(1.5)
        await talker.send(type="ping", data=7)
        assert (await talker.expect("pong"))["data"] == 7, "a client that said hello may stay quiet"
        await talker.close()
    finally:
        srv.stop()


@pytest.mark.parametrize("path", ["/api/export?format=prompt-completion&env=%00s", "/api/leaderboard?env=a%00",
                                  "/api/episodes?agent=%00", "/api/agents/a%00b/history", "/api/tournaments/a%00",
                                  "/tournaments/a%00"])
def test_text_with_a_nul_is_refused_not_a_server_error(server, path: str) -> None:
    srv = server()
    status, body = request(srv.url + path)
    assert status == 422 and "NUL" in json.dumps(body), (status, body)  # PostgreSQL cannot hold a NUL in text


async def test_a_move_with_a_nul_is_refused_and_the_game_goes_on(server) -> None:
    srv = server()
    guest = await Client.open(srv.ws, guest="ada")
    await guest.send(type="queue", envs=["TicTacToe-v0"], opponent="ran\x00dom")
    assert (await guest.expect("error", "queued"))["code"] == "invalid_message"
    await guest.send(type="queue", envs=["TicTacToe-v0"], opponent="random")
    turn = await guest.expect("turn")
    await guest.send(type="action", game_id=turn["game_id"], action="[4]\x00")
    error = await guest.expect("error", "turn", "game_over")
    assert error["type"] == "error" and error["code"] == "invalid_message" and "NUL" in error["message"], error
    await guest.send(type="action", game_id=turn["game_id"], action=first_move(turn["observation"]))
    assert (await guest.play_first_moves())["status"] == "finished"
    await guest.close()
    [episode] = srv.get("/api/episodes")
    turns = srv.get(f"/api/episodes/{episode['id']}")["turns"]
    assert episode["status"] == "finished" and not any("\x00" in t["action"] for t in turns), turns
