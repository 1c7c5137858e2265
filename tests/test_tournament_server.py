"""Tournaments on a running server: every game a direct `challenge` to agents connected there, checked before
anything is stored; the challenge messages over a raw socket; which challenges start together."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from helpers import ARENA, arena
from server_helpers import Client, ServerUnderTest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from arena import protocol
from arena.server.matchmaking import Ticket, WaitingChallenge, start_challenges
from arena.server.players import Player, RemoteSeat
from arena.store import agents as agent_store
from arena.store.database import open_database
from arena.store.models import EpisodeRow, TournamentGameRow, TournamentRow

ENV = "TicTacToe-v0"


def create_agents(db_url: str, *names: str) -> dict[str, str]:
    """What `arena agents create NAME` does, for each name: name -> its token."""
    engine = open_database(db_url)
    with Session(engine) as session, session.begin():
        tokens = {name: agent_store.create_with_token(session, name) for name in names}
    engine.dispose()
    return tokens


def wait_online(srv: ServerUnderTest, names: set[str]) -> None:
    deadline = time.monotonic() + 60
    while not names <= set(srv.get("/api/online")["connected"]):
        assert time.monotonic() < deadline, f"{names} did not connect"
        time.sleep(0.2)


@contextmanager
def connected(srv: ServerUnderTest, tokens: dict[str, str]) -> Iterator[None]:
    """An `arena connect ... --agent random --games 1000` process per agent, online before the body runs."""
    procs = [subprocess.Popen([ARENA, "connect", srv.ws, "--token", token, "--agent", "random", "--env", ENV,
                               "--games", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for token in tokens.values()]
    try:
        wait_online(srv, set(tokens))
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_a_tournament_on_a_server_plays_each_scheduled_game_once_as_a_challenge(server, db_url: str) -> None:
    srv = server()
    tokens = create_agents(db_url, "a", "b", "c", "organizer")
    with connected(srv, {name: tokens[name] for name in "abc"}):
        result = arena("tournament", "run", "--name", "cup", "--envs", ENV, "--agents", "a,b,c",
                       "--games-per-pair", "2", "--server", srv.ws, "--token", tokens["organizer"], "--db", db_url)
    assert result.returncode == 0, result.stderr

    engine = create_engine(db_url)
    with Session(engine) as session:
        scheduled = {g.id: g for g in session.scalars(select(TournamentGameRow))}
        played = session.scalars(select(EpisodeRow).where(EpisodeRow.tournament_game_id.is_not(None))).all()
        finished = [e for e in played if e.status == "finished"]
        assert len(scheduled) == 6 and {e.tournament_game_id for e in played} <= set(scheduled)
        assert Counter(e.tournament_game_id for e in finished) == Counter(dict.fromkeys(scheduled, 1))
        for episode in finished:
            game = scheduled[episode.tournament_game_id]
            assert {"challenge", "tournament:cup"} <= set(episode.tags), episode.tags
            assert episode.seed == game.seed
            assert [s.agent.name for s in episode.seats] == game.seats, "the scheduled seat order, not shuffled"
        assert {tuple(g.seats) for g in scheduled.values()} >= {("a", "b"), ("b", "a")}, "both seatings scheduled"
        assert session.scalar(select(TournamentRow.config))["server"] == srv.ws, "resume plays on the same server"
    engine.dispose()
    report = json.loads(arena("tournament", "report", "cup", "--json", "--db", db_url).stdout)
    assert (report["games_played"], report["status"]) == (6, "finished")


async def test_a_tournament_with_an_agent_not_connected_fails_in_one_line_and_stores_nothing(server,
                                                                                              db_url: str) -> None:
    srv = server()
    tokens = create_agents(db_url, "a", "b", "organizer")
    only_a = await Client.open(srv.ws, token=tokens["a"])
    result = await asyncio.to_thread(arena, "tournament", "run", "--name", "cup", "--envs", ENV,
                                     "--agents", "a,b,random", "--server", srv.ws, "--token", tokens["organizer"],
                                     "--db", db_url)
    await only_a.close()
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"not connected to {srv.ws}: b (" in line, "names b only: a is connected, random is a house agent"
    engine = create_engine(db_url)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(TournamentRow)) == 0
        assert session.scalar(select(func.count()).select_from(EpisodeRow)) == 0
    engine.dispose()


async def test_challenges_over_the_protocol(server, db_url: str) -> None:
    srv = server("--resume-grace", "0.5")
    tokens = create_agents(db_url, "a", "b", "organizer")
    organizer = await Client.open(srv.ws, token=tokens["organizer"])
    a = await Client.open(srv.ws, token=tokens["a"])
    assert srv.get("/api/online") == {"connected": ["a", "organizer"], "house": ["random"]}

    await organizer.send(type="challenge", ref=7, env_id=ENV, seed=5, seats=["a", "ghost"])
    refused = await organizer.expect("error")
    assert (refused["code"], refused["ref"]) == ("agent_not_connected", 7) and "ghost" in refused["message"]
    assert "a," not in refused["message"], "only the missing agent is named"
    for seats, code in ((["organizer", "a"], "challenger_seated"), (["a"], "wrong_seat_count"),
                        (["a", "a"], "invalid_message")):
        await organizer.send(type="challenge", ref=8, env_id=ENV, seed=5, seats=seats)
        assert (await organizer.expect("error"))["code"] == code and organizer.seen[-1]["ref"] == 8

    await organizer.send(type="challenge", ref=9, env_id=ENV, seed=123, seats=["random", "a"], tags=["final"])
    await a.send(type="queue", envs=[ENV])  # the challenge waits until a queues
    started = await organizer.expect("challenge_started")
    match = await a.expect("match")
    assert (started["ref"], started["game_id"]) == (9, match["game_id"])
    assert (match["seat"], match["players"]) == (1, ["random", "a"]), "the challenge's seat order"
    over = await a.play_first_moves()
    result = await organizer.expect("challenge_over")
    assert (result["ref"], result["game_id"], result["status"]) == (9, over["game_id"], "finished")
    assert (result["rewards"], result["reason"]) == (over["rewards"], over["reason"])
    [episode] = srv.get("/api/episodes")
    assert (episode["seed"], episode["tags"]) == (123, ["challenge", "final"])

    await organizer.send(type="challenge", ref=10, env_id=ENV, seed=1, seats=["a", "random"])
    await a.close()  # a never queues again and stays away past the resume grace
    dropped = await organizer.expect("error")
    assert (dropped["code"], dropped["ref"]) == ("agent_not_connected", 10) and "a" in dropped["message"]
    assert srv.get("/api/online")["connected"] == ["organizer"]
    await organizer.close()


async def test_challenges_start_in_order_and_each_waiting_agent_serves_one() -> None:
    def player(name: str) -> Player:
        return Player(len(name), name, "remote")

    def waiting(who: Player, envs: list[str]) -> Ticket:
        return Ticket(who, envs, dict.fromkeys(envs, 2), None, False, 0.0, {})

    def challenge(ref: int, *seats: str, house: tuple[str, ...] = ()) -> WaitingChallenge:
        request = protocol.Challenge(ref=ref, env_id=ENV, seed=ref, seats=list(seats))
        return WaitingChallenge(player("organizer"), request, [s for s in seats if s not in house])

    a, b, c, busy = player("a"), player("b"), player("c"), player("busy")
    busy.seats[1] = RemoteSeat(busy, 1, 0, 1.0, asyncio.get_running_loop().create_future(), lambda _: None)
    tickets = [waiting(a, [ENV]), waiting(b, [ENV]), waiting(c, ["KuhnPoker-v0"]), waiting(busy, [ENV])]
    challenges = [challenge(1, "b", "a"), challenge(2, "a", "random", house=("random",)), challenge(3, "c", "b"),
                  challenge(4, "busy", "random", house=("random",)), challenge(5, "random", "b", house=("random",))]
    [first] = start_challenges(challenges, tickets)  # a and b are taken by the first: the others wait
    assert first.challenge is challenges[0] and [t.player for t in first.tickets] == [b, a] and first.house == []
    later = start_challenges(challenges[1:], tickets)  # c waits for KuhnPoker only; busy is in a game
    assert [p.challenge for p in later] == [challenges[1], challenges[4]]
    assert [p.house for p in later] == [["random"], ["random"]]
