"""The arena server over real sockets on localhost: play, guests, resume, timeouts, spectators, shutdown;
and the hub in process: acks after commits, every game told how it ended, the shared error codes."""

from __future__ import annotations

import ast
import asyncio
import json
import re
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import arena
from prometheus_client.parser import text_string_to_metric_families
from server_helpers import Client, ServerProcess, first_move
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from agents.base import TurnContext
from agents.baseline import FirstAgent, RandomAgent
from agents.remote import FATAL, RemoteClient, RemoteError
from arena import protocol
from arena.engine import Game
from arena.play import Arena
from arena.runner import Abandoned
from arena.server.connection import Connection
from arena.server.hub import Hub, HubError
from arena.server.matchmaking import Pairing, Ticket
from arena.server.players import Player, RemoteSeat
from arena.server.settings import ServerSettings
from arena.store import agents as agent_store
from arena.store.database import StoreError, open_database
from arena.store.episodes import episode_turns
from arena.store.models import EpisodeRow, RatingHistoryRow

ROOT = Path(__file__).resolve().parents[1]


def make_tokens(db_url: str, *names: str) -> list[str]:
    engine = open_database(db_url)
    with Session(engine) as session, session.begin():
        tokens = [agent_store.create_with_token(session, name) for name in names]
    engine.dispose()
    return tokens


def episodes(db_url: str) -> list[EpisodeRow]:
    engine = create_engine(db_url)
    with Session(engine) as session:
        rows = session.scalars(select(EpisodeRow).order_by(EpisodeRow.id)).all()
        for row in rows:
            _ = [(s.agent.name, s.reward) for s in row.seats]
    engine.dispose()
    return rows


async def test_two_sdk_agents_play_a_full_game(server, db_url: str) -> None:
    alice, bob = make_tokens(db_url, "alice", "bob")
    srv = server("--house-wait", "60")
    clients = [RemoteClient(srv.ws, FirstAgent(), ["TicTacToe-v0"], token=alice),
               RemoteClient(srv.ws, RandomAgent(seed=3), ["TicTacToe-v0"], token=bob)]
    results = await asyncio.wait_for(asyncio.gather(*(c.play(2) for c in clients)), 60)
    assert [len(r) for r in results] == [2, 2]
    assert {r.game_id for r in results[0]} == {r.game_id for r in results[1]}
    for first, second in zip(results[0], sorted(results[1], key=lambda r: r.game_id), strict=True):
        assert first.rewards == second.rewards and first.seat != second.seat
        assert first.rating_after is not None and first.rating_change == pytest.approx(
            first.rating_after - first.rating_before)
    rows = episodes(db_url)
    assert [r.status for r in rows] == ["finished", "finished"]
    assert {s.agent.name for s in rows[0].seats} == {"alice", "bob"}
    board = srv.get("/api/leaderboard?env=TicTacToe-v0")
    assert {b["agent"] for b in board} == {"alice", "bob"} and all(b["games"] == 2 for b in board)
    assert all(b["rating"] == pytest.approx(b["mu"] - 3 * b["sigma"]) for b in board)
    assert board[0]["rating"] >= board[1]["rating"]
    detail = srv.get(f"/api/episodes/{rows[0].id}")
    assert detail["turns"] and detail["turns"][0]["observation"]
    metrics = scrape(srv)
    moves = sum(len(srv.get(f"/api/episodes/{row.id}")["turns"]) for row in rows)
    assert metrics[("arena_games_total", "status=finished")] == 2 and metrics[("arena_moves_total",)] == moves
    assert metrics[("arena_move_latency_seconds_count",)] == moves - 2, "each move but a game's last has a next turn"
    assert ("arena_connections",) in metrics and ("arena_live_games",) in metrics


def scrape(srv: ServerProcess) -> dict[tuple, float]:
    """The server's /metrics: {(sample name, label=value, ...): value}."""
    with urllib.request.urlopen(srv.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, *(f"{k}={v}" for k, v in s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_guest_plays_a_house_agent_and_is_rated_as_itself(server, db_url: str) -> None:
    srv = server("--house-wait", "0.5")
    guest = await Client.open(srv.ws)
    await guest.send(type="hello", guest="ada")
    welcome = await guest.expect("welcome")
    assert welcome["name"] == "guest:ada" and welcome["token"] and welcome["protocol"] == 1
    await guest.send(type="queue", envs=["TicTacToe-v0"])
    assert (await guest.expect("queued"))["position"] == 1
    match = await guest.expect("match")
    assert "random" in match["players"] and "guest:ada" in match["players"]
    over = await guest.play_first_moves()
    assert over["status"] == "finished" and over["rating_after"] is not None
    board = srv.get("/api/leaderboard?env=TicTacToe-v0")
    assert {b["agent"] for b in board} == {"guest:ada", "random"}
    again = await Client.open(srv.ws, token=welcome["token"])
    await again.close()
    await guest.close()


async def test_queue_positions_count_each_env_queue(server) -> None:
    srv = server("--house-wait", "60")
    clients = [await Client.open(srv.ws, guest=name) for name in ("a", "b", "c", "d")]
    a, b, c, d = clients

    async def position(client: Client, *envs: str) -> int:
        await client.send(type="queue", envs=list(envs), opponent="guest:nobody")
        return (await client.expect("queued"))["position"]

    assert await position(a, "TicTacToe-v0") == 1
    assert await position(b, "TicTacToe-v0", "TicTacToe-v0") == 2, "a repeated env is one queue place"
    assert await position(c, "ConnectFour-v0", "TicTacToe-v0") == 1, "the shortest of its queues"
    await a.send(type="leave")
    assert await position(d, "TicTacToe-v0") == 3, "b, c and d wait for TicTacToe once a has left"
    assert srv.get("/health")["waiting"] == 3
    for client in clients:
        await client.close()


async def test_a_dropped_player_resumes_its_seat(server, db_url: str) -> None:
    alice, bob = make_tokens(db_url, "alice", "bob")
    srv = server("--house-wait", "60", "--resume-grace", "20")
    a = await Client.open(srv.ws, token=alice)
    b = await Client.open(srv.ws, token=bob)
    await a.send(type="queue", envs=["TicTacToe-v0"])
    await b.send(type="queue", envs=["TicTacToe-v0"])
    match_a = await a.expect("match")
    await b.expect("match")
    game_id = match_a["game_id"]
    await a.close()  # drop before or during its turn
    await asyncio.sleep(0.5)
    a = await Client.open(srv.ws, token=alice)
    await a.send(type="resume", game_id=game_id)
    resumed = await a.expect("match")
    assert resumed["resumed"] and resumed["seat"] == match_a["seat"]
    over_a, over_b = await asyncio.gather(a.play_first_moves(), b.play_first_moves())
    assert over_a["game_id"] == over_b["game_id"] == game_id and over_a["status"] == "finished"
    assert "forfeit" not in over_a["reason"]


async def test_a_player_gone_past_the_grace_period_forfeits(server, db_url: str) -> None:
    alice, bob = make_tokens(db_url, "alice", "bob")
    srv = server("--house-wait", "60", "--resume-grace", "1")
    a = await Client.open(srv.ws, token=alice)
    b = await Client.open(srv.ws, token=bob)
    for client in (a, b):
        await client.send(type="queue", envs=["TicTacToe-v0"])
    match_a = await a.expect("match")
    await b.expect("match")
    await a.close()
    over = await b.expect("game_over", timeout=30)
    assert over["reward"] == 1.0 and "disconnected" in over["reason"]
    assert over["rewards"][str(match_a["seat"])] == -1.0


async def test_a_slow_move_forfeits_on_the_deadline(server, db_url: str) -> None:
    srv = server("--house-wait", "0.2", "--move-timeout", "1")
    guest = await Client.open(srv.ws, guest="slowpoke")
    await guest.send(type="queue", envs=["TicTacToe-v0"])
    turn = await guest.expect("turn", timeout=30)
    assert turn["deadline"] > 0
    over = await guest.expect("game_over", timeout=30)
    assert over["reward"] == -1.0 and "timeout" in over["reason"]
    assert episodes(db_url)[0].status == "finished"


async def test_spectators_see_only_public_messages(server, db_url: str) -> None:
    alice, bob = make_tokens(db_url, "alice", "bob")
    srv = server("--house-wait", "60")
    a = await Client.open(srv.ws, token=alice)
    b = await Client.open(srv.ws, token=bob)
    for client in (a, b):
        await client.send(type="queue", envs=["KuhnPoker-v0"])
    game_id = (await a.expect("match"))["game_id"]
    await b.expect("match")
    watcher = await Client.open(srv.ws)
    await watcher.send(type="spectate", game_id=game_id)
    assert (await watcher.expect("match"))["seat"] == -1
    await asyncio.gather(a.play_first_moves(), b.play_first_moves())
    await watcher.expect("game_over")
    spectated = [m["text"] for msg in watcher.seen if msg["type"] == "event" for m in msg["messages"]]
    assert spectated, "the spectator saw no moves"
    assert not any("Your card" in text for text in spectated)
    observed = [msg["observation"] for c in (a, b) for msg in c.seen if msg["type"] == "turn"]
    assert any("Your card" in text for text in observed)
    assert not any(msg["type"] == "turn" for msg in watcher.seen)


async def test_bad_input_gets_error_codes_and_the_server_lives_on(server, db_url: str) -> None:
    alice, bob = make_tokens(db_url, "alice", "bob")
    srv = server("--house-wait", "60")
    raw = await Client.open(srv.ws)
    cases = [("{not json", "malformed_json"), (json.dumps({"type": "dance"}), "unknown_type"),
             (json.dumps({"type": "queue", "envs": ["TicTacToe-v0"]}), "hello_required"),
             (json.dumps({"type": "hello", "token": "nope"}), "bad_token"),
             (json.dumps({"type": "hello"}), "missing_token"),
             ("x" * (70 * 1024), "frame_too_large")]
    for frame, code in cases:
        await raw.ws.send(frame)
        assert (await raw.expect("error"))["code"] == code
    await raw.ws.send(b"\x00\x01binary")
    assert (await raw.expect("error"))["code"] == "binary_frame"

    a = await Client.open(srv.ws, token=alice)
    await a.send(type="queue", envs=["NoSuchGame-v0"])
    assert (await a.expect("error"))["code"] == "unknown_env"
    await a.send(type="queue", envs=["Wordle-v0"])
    assert (await a.expect("error"))["code"] == "unplayable_env"
    b = await Client.open(srv.ws, token=bob)
    for client in (a, b):
        await client.send(type="queue", envs=["TicTacToe-v0"])
    match_a = await a.expect("match")
    await b.expect("match")
    first, second = (a, b) if match_a["seat"] == 0 else (b, a)
    game_id = match_a["game_id"]
    await second.send(type="action", game_id=game_id, action="[4]")
    assert (await second.expect("error"))["code"] == "not_your_turn"
    outsider = await Client.open(srv.ws, guest="outsider")
    await outsider.send(type="action", game_id=game_id, action="[4]")
    assert (await outsider.expect("error"))["code"] == "not_your_game"
    await asyncio.gather(first.play_first_moves(), second.play_first_moves())
    await first.send(type="action", game_id=game_id, action="[4]")
    assert (await first.expect("error"))["code"] == "game_over"
    await a.send(type="ping", data=7)
    assert (await a.expect("pong"))["data"] == 7


async def test_a_flood_closes_only_that_connection(server, db_url: str) -> None:
    srv = server("--house-wait", "60")
    calm = await Client.open(srv.ws, guest="calm")
    flood = await Client.open(srv.ws)
    with pytest.raises(Exception) as closed:  # noqa: B017 - any close is fine, the code is checked below
        for _ in range(5000):
            await flood.ws.send(json.dumps({"type": "ping"}))
        while True:
            await flood.ws.recv()
    assert flood.ws.close_code == 1008, closed.value
    await calm.send(type="ping", data="still here")
    assert (await calm.expect("pong"))["data"] == "still here"
    assert srv.get("/health")["status"] == "ok"


async def test_sigterm_aborts_games_tells_players_and_a_restart_is_clean(server, db_url: str) -> None:
    srv = server("--house-wait", "0.2", process=True)  # the signal and the exit code are the point
    guest = await Client.open(srv.ws, guest="stuck")
    await guest.send(type="queue", envs=["TicTacToe-v0"])
    await guest.expect("turn", timeout=30)  # never answer: the game stays in flight
    assert srv.get("/api/live")[0]["env_id"] == "TicTacToe-v0"
    assert srv.terminate() == 0
    assert (await guest.expect("shutdown", timeout=10))["message"]
    over = await guest.expect("game_over", timeout=10)  # every seat hears how its game ended
    rows = episodes(db_url)
    assert [r.status for r in rows] == ["aborted"] and rows[0].reason.startswith("cancelled")
    assert over["status"] == "aborted" and over["reason"] == rows[0].reason and over["rating_after"] is None
    engine = create_engine(db_url)
    with Session(engine) as session:
        assert session.scalars(select(RatingHistoryRow)).all() == []
    engine.dispose()
    server("--house-wait", "0.2")
    assert episodes(db_url)[0].status == "aborted"


async def test_a_killed_server_leaves_running_games_aborted_on_restart(server, db_url: str) -> None:
    srv = server("--house-wait", "0.2", process=True)  # killed with SIGKILL
    guest = await Client.open(srv.ws, guest="orphan")
    await guest.send(type="queue", envs=["TicTacToe-v0"])
    await guest.expect("turn", timeout=30)
    srv.stop()  # SIGKILL: no chance to clean up
    assert [r.status for r in episodes(db_url)] == ["running"]
    server("--house-wait", "0.2")
    rows = episodes(db_url)
    assert rows[0].status == "aborted" and "server stopped" in rows[0].reason


async def test_remote_client_reports_a_bad_token(server) -> None:
    srv = server()
    with pytest.raises(RemoteError, match="bad_token"):
        await RemoteClient(srv.ws, FirstAgent(), ["TicTacToe-v0"], token="wrong").play(1)


def test_openapi_and_catalog_endpoints(server) -> None:
    srv = server("--house", "random,first")
    spec = srv.get("/openapi.json")
    assert {"/health", "/api/games", "/api/house", "/api/leaderboard", "/api/episodes", "/api/episodes/{episode_id}",
            "/api/live"} <= set(spec["paths"])
    assert srv.get("/api/house") == [{"name": "random"}, {"name": "first"}]
    games = {g["env_id"]: g for g in srv.get("/api/games", timeout=120)}  # a cold catalog check takes ~20 s
    assert games["TicTacToe-v0"]["players"] == [2] and "Wordle-v0" not in games


class CuttingAgent(FirstAgent):
    """Plays first moves; on its second move it cuts the network first (once)."""

    def __init__(self, proxy) -> None:
        super().__init__(name="cutter")
        self.proxy, self.moves, self.cut_done = proxy, 0, False

    async def decide(self, observation, context):
        self.moves += 1
        if self.moves == 2 and not self.cut_done:
            self.cut_done = True
            self.proxy.cut()
            await asyncio.sleep(0.2)
        return await super().decide(observation, context)


async def test_sdk_reconnects_and_resumes_after_a_network_drop(server, db_url: str) -> None:
    from server_helpers import CuttableProxy

    alice, bob = make_tokens(db_url, "alice", "bob")
    srv = server("--house-wait", "60", "--resume-grace", "20")
    proxy = await CuttableProxy(srv.port).start()
    cutter = CuttingAgent(proxy)
    dropped = RemoteClient(f"ws://127.0.0.1:{proxy.port}", cutter, ["TicTacToe-v0"], token=alice,
                           reconnect_delay=0.2)
    steady = RemoteClient(srv.ws, FirstAgent(), ["TicTacToe-v0"], token=bob)
    first, second = await asyncio.wait_for(asyncio.gather(dropped.play(1), steady.play(1)), 60)
    await proxy.close()
    assert cutter.cut_done and first[0].game_id == second[0].game_id
    assert first[0].status == "finished" and "disconnected" not in first[0].reason
    assert [r.status for r in episodes(db_url)] == ["finished"]


def test_arena_connect_plays_games_from_the_command_line(server, db_url: str) -> None:


    [token] = make_tokens(db_url, "cli-bot")
    srv = server("--house-wait", "0.2")
    result = arena("connect", f"ws://127.0.0.1:{srv.port}", "--token", token, "--agent", "first", "--env",
                   "TicTacToe-v0", "--games", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("reward") == 2 and "rating" in result.stdout
    bad = arena("connect", f"ws://127.0.0.1:{srv.port}", "--token", "nope", "--agent", "first", "--env",
                "TicTacToe-v0")
    assert bad.returncode == 2 and "bad_token" in bad.stderr


async def test_every_ack_stands_for_a_stored_turn_while_other_writes_fail(server, db_url: str) -> None:
    """Regression: a batch of writes in which a guest sign-up failed lost the turns queued with it, after their
    players had been told `ack`. Eight games (two rounds of four) run while eight other connections keep asking
    for a taken guest name. (With the writer's one-by-one retry skipping `add_turns`, the old bug, it fails.)"""
    srv = server("--house-wait", "60")
    owner = await Client.open(srv.ws, guest="taken")
    playing, refusals = True, []

    async def ask_for_the_taken_name() -> None:
        client = await Client.open(srv.ws)
        while playing:
            await client.send(type="hello", guest="taken")
            answer = await client.expect("welcome", "error")
            assert answer.get("code") == "name_taken", answer
            refusals.append(answer)
            await asyncio.sleep(0.01)  # below the flood limit (200 messages a second)
        await client.close()

    players = [await Client.open(srv.ws, guest=f"player{i}") for i in range(8)]
    askers = [asyncio.create_task(ask_for_the_taken_name()) for _ in range(8)]
    await asyncio.sleep(0.2)
    async def play(player: Client) -> list[dict]:
        overs = []
        for _ in range(2):
            await player.send(type="queue", envs=["TicTacToe-v0"])
            overs.append(await player.play_first_moves())
        return overs

    try:
        overs = [o for played in await asyncio.wait_for(asyncio.gather(*map(play, players)), 120) for o in played]
    finally:
        playing = False
        await asyncio.gather(*askers)
    games = {over["game_id"] for over in overs}
    assert len(games) == 8 and all(over["status"] == "finished" for over in overs)
    acked: dict[int, list[int]] = {game_id: [] for game_id in games}
    for player in players:
        for message in player.seen:
            if message["type"] == "ack":
                acked[message["game_id"]].append(message["turn"])
    for game_id in games:
        stored = [turn["index"] for turn in srv.get(f"/api/episodes/{game_id}")["turns"]]
        assert sorted(acked[game_id]) == stored, f"game {game_id}: acked {acked[game_id]}, stored {stored}"
    assert len(refusals) >= 20, "the failing sign-ups did not overlap the games"
    await owner.close()


async def test_a_house_agent_that_raises_forfeits_with_the_reason(server, db_url: str) -> None:
    srv = server("--house", "broken=python:fixtures.failing_house:Failing")
    guest = await Client.open(srv.ws, guest="lucky")
    await guest.send(type="queue", envs=["TicTacToe-v0"], opponent="broken")
    over = await guest.play_first_moves()
    assert over["status"] == "finished" and over["reward"] == 1.0
    assert "agent error: RuntimeError: the house agent broke" in over["reason"]
    [row] = episodes(db_url)
    assert (row.status, row.reason) == ("finished", over["reason"])
    await guest.close()


# --- the hub in process ------------------------------------------------------------------------------------


class Inbox:
    """An outbox that keeps what it is sent; `on_message` may act on each."""

    def __init__(self, on_message=None) -> None:
        self.messages: list[protocol.Message] = []
        self.on_message = on_message

    def send(self, message, text=None, on_sent=None) -> None:
        self.messages.append(message)
        if self.on_message:
            self.on_message(message)
        if on_sent:
            on_sent()

    def close(self, code: int = 1000, reason: str = "") -> None:
        pass

    def of(self, kind: type) -> list:
        return [m for m in self.messages if isinstance(m, kind)]


def ticket(player: Player) -> Ticket:
    return Ticket(player, ["TicTacToe-v0"], {"TicTacToe-v0": 2}, None, False, 0.0, {})


async def test_the_hub_acks_a_move_only_once_its_turn_is_stored(db_url: str) -> None:
    async with Arena(db_url) as arena:
        hub = Hub(ServerSettings(house=[]), arena)
        ids = await arena.writer.run(agent_store.ensure_agents, [("ann", "remote", ""), ("bo", "remote", "")])
        acks_stored: list[bool] = []
        players: list[Player] = []

        def play(index: int):
            def on_message(message: protocol.Message) -> None:
                if isinstance(message, protocol.Turn):  # answer on the next loop turn, as a socket would
                    action = protocol.Action(game_id=message.game_id, action=first_move(message.observation))
                    asyncio.get_running_loop().call_soon(hub.act, players[index], action, 0.0)
                elif isinstance(message, protocol.Ack):
                    stored = arena.read(lambda s: [t.idx for t in episode_turns(s, message.game_id)])
                    acks_stored.append(message.turn in stored)
            return on_message

        players += [Player(agent_id, name, "remote", Inbox(play(i)))
                    for i, (agent_id, name) in enumerate(zip(ids, ["ann", "bo"], strict=True))]
        await asyncio.wait_for(hub._launch(Pairing("TicTacToe-v0", [ticket(p) for p in players], [])), 60)
        overs = [p.outbox.of(protocol.GameOver)[0] for p in players]
        assert all(o.status == "finished" and o.rating_after is not None for o in overs)
        turns = await asyncio.to_thread(arena.read, lambda s: episode_turns(s, overs[0].game_id))
        assert acks_stored and all(acks_stored) and len(acks_stored) == len(turns)


class BrokenStoreArena:
    """Stands in for an Arena whose store fails once the game has started."""

    def __init__(self, spectator: Inbox) -> None:
        self.spectator = spectator
        self.hub: Hub | None = None

    async def play_match(self, match, listener):
        listener.started(7, Game(match.env_id, len(match.seats), match.seed))
        self.hub.spectate(self.spectator, 7)
        await asyncio.sleep(0)
        raise StoreError("the disk is full")


async def test_every_seat_and_spectator_hears_game_over_when_storing_fails() -> None:
    spectator = Inbox()
    arena = BrokenStoreArena(spectator)
    hub = arena.hub = Hub(ServerSettings(house=[]), arena)
    players = [Player(i, f"p{i}", "remote", Inbox()) for i in (1, 2)]
    await asyncio.wait_for(hub._launch(Pairing("TicTacToe-v0", [ticket(p) for p in players], [])), 10)
    for inbox in [p.outbox for p in players] + [spectator]:
        [over] = inbox.of(protocol.GameOver)
        assert (over.game_id, over.status, over.reason) == (7, "aborted", "store error: the disk is full")
    assert sorted(o.seat for p in players for o in p.outbox.of(protocol.GameOver)) == [0, 1]
    assert hub.live == {} and all(p.seats == {} for p in players)


async def test_a_remote_seat_gives_up_when_its_game_is_abandoned() -> None:
    abandon = asyncio.get_running_loop().create_future()
    inbox = Inbox()
    seat = RemoteSeat(Player(1, "p", "remote", inbox), 3, 0, 1.0, abandon, lambda game_id: None)
    context = TurnContext("TicTacToe-v0", "3", 1, 0, 0)
    deciding = asyncio.create_task(seat.decide("your move", context))
    await asyncio.sleep(0)
    assert inbox.of(protocol.Turn) and seat.turn is not None
    abandon.set_result((1, "disconnected for more than 1 s"))
    with pytest.raises(Abandoned) as abandoned:
        await asyncio.wait_for(deciding, 5)
    assert (abandoned.value.seat, abandoned.value.reason) == (1, "disconnected for more than 1 s")
    assert seat.turn is None and seat.answer(0, "[4]") == protocol.ErrorCode.NOT_YOUR_TURN


async def test_a_message_type_the_connection_does_not_take_is_an_error() -> None:
    connection = Connection(websocket=None, hub=SimpleNamespace(leave=lambda player: None, settings=ServerSettings()))
    with pytest.raises(HubError) as refused:
        await connection._dispatch(protocol.Pong(data=1), 0.0)
    assert refused.value.code == protocol.ErrorCode.UNKNOWN_TYPE
    with pytest.raises(HubError) as refused:
        await connection._dispatch(protocol.Leave(), 0.0)
    assert refused.value.code == protocol.ErrorCode.HELLO_REQUIRED


def _called_name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def test_every_error_code_the_server_sends_is_one_shared_code() -> None:
    codes = {code.value for code in protocol.ErrorCode}
    assert FATAL is protocol.FATAL_CODES
    assert FATAL.issubset(protocol.ErrorCode)
    used: set[str] = set()
    for path in [*(ROOT / "arena" / "server").glob("*.py"), ROOT / "arena" / "protocol.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _called_name(node.func) in ("HubError", "ProtocolError", "Error"):
                code = node.args[0] if node.args else next(k.value for k in node.keywords if k.arg == "code")
            elif isinstance(node, ast.Return) and node.value is not None:
                code = node.value
            else:
                continue
            if isinstance(code, ast.Constant) and isinstance(code.value, str) and code.value in codes:
                raise AssertionError(f"{path.name}:{node.lineno}: a bare code; use ErrorCode.{code.value.upper()}")
            if isinstance(code, ast.Attribute) and _called_name(code.value) == "ErrorCode":
                used.add(code.attr)
    assert used <= set(protocol.ErrorCode.__members__), used - set(protocol.ErrorCode.__members__)
    assert {"NAME_TAKEN", "BAD_TOKEN", "NOT_YOUR_TURN", "STALE_TURN", "MALFORMED_JSON"} <= used, "the scan saw little"
    with pytest.raises(ValueError):
        HubError("no_such_code", "a code outside the shared set is refused")
    docs = (ROOT / "docs" / "protocol.md").read_text().split("## Error codes")[1].strip().split("\n\n")[0]
    documented = {code for row in docs.splitlines()[2:] for code in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert documented == codes
