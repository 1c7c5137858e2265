"""Crash safety: SIGKILL the server during 200 concurrent games and restart it on the same database. Every
result and move a client was told about is stored, every other game is aborted and unrated, the stored
ratings equal the log's replay, and new games start."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from helpers import arena
from server_helpers import Client, ServerProcess, ServerUnderTest, first_move
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, selectinload
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from arena.protocol import GameStatus
from arena.store.models import OVERALL, EpisodeRow, RatingHistoryRow, TurnRow
from games import catalog

ENV = "TicTacToe-v0"
GAMES = 200  # games in flight when the server is killed
GUESTS = 2 * GAMES + 40  # spare pairs: the count of games waiting on a move reaches 200 sooner
TURNS = 7  # a TicTacToe game of first moves: X takes 0, 2, 4 and wins with 6
FINISHED_FIRST = 100  # results heard before the kill, so there are stored results to check
STALL_S = 1.0  # how long the server runs on with its writer stopped before both are killed
FLAGS = ("--house-wait", "3600", "--move-timeout", "600")  # guests play each other; held turns never time out


@pytest.fixture(scope="module", autouse=True)
def checked_catalog() -> None:
    """Check the game once here: a server's first queue requests would each check it themselves."""
    catalog.require_playable(ENV)


@dataclass
class Heard:
    """What the clients were told, all of them together."""

    players: dict[int, list[str]] = field(default_factory=dict)  # game id -> seat names, from `match`
    over: dict[int, list[dict]] = field(default_factory=lambda: defaultdict(list))  # game id -> its game_overs
    acked: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))  # game id -> turns acked
    next_turn: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # game id -> highest `turn`
    errors: list[dict] = field(default_factory=list)
    hold: bool = False  # set: each game's turns from a turn of its own on are held, which keeps it in flight
    held: dict[int, tuple[Client, dict]] = field(default_factory=dict)  # game id -> the client and its held turn
    crash: Callable[[], None] | None = None  # called once, as soon as a client hears one of `crash_on` finish
    crash_on: set[int] = field(default_factory=set)

    def note(self, message: dict) -> None:
        """Remember one message a client received."""
        match message["type"]:
            case "match":
                self.players[message["game_id"]] = message["players"]
            case "game_over":
                self.over[message["game_id"]].append(message)
                if self.crash and message["status"] == GameStatus.FINISHED and message["game_id"] in self.crash_on:
                    self.crash, crash = None, self.crash
                    crash()
            case "ack":
                self.acked[message["game_id"]].add(message["turn"])
            case "turn":
                game_id = message["game_id"]
                self.next_turn[game_id] = max(self.next_turn[game_id], message["turn"])
            case "error":
                self.errors.append(message)

    def holds(self, turn: dict) -> bool:
        """Whether to hold this turn unanswered: games stop at turns spread over a whole game, so some wait on
        their last move."""
        return self.hold and turn["turn"] >= turn["game_id"] % TURNS

    def finished(self) -> set[int]:
        """Games some client heard finish."""
        return {game_id for game_id, messages in self.over.items()
                if any(m["status"] == GameStatus.FINISHED for m in messages)}


async def open_guests(srv: ServerUnderTest, prefix: str, count: int) -> list[Client]:
    """`count` guests, connected and identified at once."""

    async def guest(index: int) -> Client:
        client = Client(await connect(srv.ws, open_timeout=120, max_queue=None))
        await client.send(type="hello", guest=f"{prefix}{index}")
        assert (await client.expect("welcome", "error", timeout=120))["type"] == "welcome"
        return client

    return list(await asyncio.gather(*(guest(i) for i in range(count))))


async def answer(client: Client, turn: dict) -> None:
    """Play the first listed move."""
    with contextlib.suppress(ConnectionClosed):
        await client.send(type="action", game_id=turn["game_id"], action=first_move(turn["observation"]))


async def keep_playing(client: Client, heard: Heard) -> None:
    """Queue, answer every turn (unless held), queue again after each game; until the server dies."""
    with contextlib.suppress(ConnectionClosed):
        await client.send(type="queue", envs=[ENV])
        while True:
            message = await client.receive(timeout=120)
            heard.note(message)
            if message["type"] == "turn" and heard.holds(message):
                heard.held[message["game_id"]] = client, message
            elif message["type"] == "turn":
                await answer(client, message)
            elif message["type"] == "game_over":
                await client.send(type="queue", envs=[ENV])


async def wait_until(condition, what: str, timeout: float = 300) -> None:
    """Poll `condition()` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def children(pid: int) -> dict[int, bytes]:
    """The processes whose parent is `pid`: id -> command line."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes()
    return found


def writer_of(srv: ServerProcess) -> int:
    """The id of the server's database writer process."""
    [pid] = [p for p, command in children(srv.process.pid).items() if b"arena.store.writer" in command]
    return pid


def gone(pid: int) -> bool:
    """Whether the process has exited (a zombie nobody reaped counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


async def play_until_killed(srv: ServerProcess, kill_writer: bool) -> Heard:
    """GUESTS guests play until FINISHED_FIRST results are heard, then hold turns until GAMES games wait on one;
    then play on, and as the first of those games finishes the server is SIGKILLed (with `kill_writer`, its writer
    too, stopped then, a moment before, while clients still move). Returns all the clients heard."""
    writer = writer_of(srv)
    heard = Heard()
    clients = await open_guests(srv, "crash", GUESTS)
    players = [asyncio.create_task(keep_playing(client, heard)) for client in clients]
    await wait_until(lambda: len(heard.finished()) >= FINISHED_FIRST, f"{FINISHED_FIRST} results")
    heard.hold = True
    await wait_until(lambda: len(heard.held) >= GAMES, f"{GAMES} games waiting on a move")
    held, heard.hold = heard.held, False
    # stopping the writes first: a server that tells of a write before its commit goes on telling of them
    heard.crash = partial(os.kill, writer, signal.SIGSTOP) if kill_writer else srv.process.kill
    heard.crash_on = set(held)
    await asyncio.gather(*(answer(client, turn) for client, turn in held.values()))
    await wait_until(lambda: heard.crash is None, "a game to finish")
    if kill_writer:
        await asyncio.sleep(STALL_S)
        srv.process.kill()
        os.kill(writer, signal.SIGKILL)  # it dies stopped: nothing commits after the server's last word
    assert srv.process.wait(timeout=30) == -signal.SIGKILL
    await asyncio.wait_for(asyncio.gather(*players), 60)  # each client reads what was sent, then the close
    await wait_until(lambda: gone(writer), "the writer process to exit", timeout=30)
    assert heard.errors == []
    return heard


def check_the_log(db_url: str, heard: Heard) -> int:
    """Every told result and move stored, every other game aborted and unrated; returns how many were aborted."""
    engine = create_engine(db_url)
    with Session(engine) as session:
        episodes = {row.id: row for row in session.scalars(select(EpisodeRow).options(selectinload(EpisodeRow.seats)))}
        turns: dict[int, list[int]] = defaultdict(list)
        for episode_id, idx in session.execute(select(TurnRow.episode_id, TurnRow.idx).order_by(TurnRow.idx)):
            turns[episode_id].append(idx)
        history: dict[tuple[int, int, str], RatingHistoryRow] = {
            (row.episode_id, row.agent_id, row.env_id): row for row in session.scalars(select(RatingHistoryRow))}
    engine.dispose()
    rated = {episode_id for episode_id, _, _ in history}
    assert heard.players.keys() <= episodes.keys(), "every game a client was matched in is stored"
    for episode_id, row in episodes.items():
        assert turns[episode_id] == list(range(len(turns[episode_id]))), f"game {episode_id}: a hole in the turns"
        assert heard.acked[episode_id] <= set(turns[episode_id]), f"game {episode_id}: an acked turn is missing"
        assert len(turns[episode_id]) >= heard.next_turn[episode_id], f"game {episode_id}: a shown move is missing"
        if row.status == GameStatus.FINISHED:  # told, or committed just before the kill and rated on restart
            assert {(episode_id, s.agent_id, scope) for s in row.seats for scope in (ENV, OVERALL)} <= history.keys()
        else:
            assert row.status == GameStatus.ABORTED and row.reason, (episode_id, row.status, row.reason)
            assert episode_id not in rated and row.rating_seq is None, f"aborted game {episode_id} was rated"
    for episode_id, messages in heard.over.items():
        row = episodes[episode_id]
        assert {m["status"] for m in messages} == {row.status}, f"game {episode_id} ended otherwise than told"
        for message in messages:
            assert message["rewards"] == {str(s.seat): s.reward for s in row.seats if s.reward is not None}
            if message.get("mu_after") is not None:
                agent_id = row.seats[message["seat"]].agent_id
                assert message["mu_after"] == history[(episode_id, agent_id, ENV)].mu_after
        if len(messages) == len(heard.players[episode_id]):  # both players heard the end: they acked every turn
            assert heard.acked[episode_id] == set(turns[episode_id]), f"game {episode_id}: turns nobody acked"
    return sum(row.status == GameStatus.ABORTED for row in episodes.values())


async def new_game_finishes(srv: ServerUnderTest) -> None:
    """Two new guests play a game to its end on the restarted server."""
    guests = await open_guests(srv, "after", 2)
    for guest in guests:
        await guest.send(type="queue", envs=[ENV])
    over = await asyncio.gather(*(guest.play_first_moves() for guest in guests))
    assert [m["status"] for m in over] == [GameStatus.FINISHED] * 2, over
    for guest in guests:
        await guest.close()


def rebuilt_ratings_equal_stored(db_url: str) -> str:
    """`arena ratings rebuild`'s report (it exits 1 when a rebuilt rating differs from the stored one)."""
    run = arena("ratings", "rebuild", "--db", db_url)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@pytest.mark.slow
@pytest.mark.parametrize("kill_writer", [True, False], ids=["with-its-writer", "alone"])
async def test_a_server_killed_during_200_games_restarts_with_every_told_result_stored(
        server, db_url: str, kill_writer: bool) -> None:
    heard = await play_until_killed(server(*FLAGS, process=True), kill_writer)  # killed with SIGKILL
    restarted = server(*FLAGS)
    aborted = check_the_log(db_url, heard)
    assert aborted >= GAMES // 2, "the kill caught the games mid-play"
    await new_game_finishes(restarted)
    assert "every rebuilt rating equals the stored one" in rebuilt_ratings_equal_stored(db_url)
