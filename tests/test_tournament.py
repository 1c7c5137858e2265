"""Tournaments: schedules of each format, seat swaps and shared seeds, bad input, kill -9 and resume, reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from helpers import ARENA, TESTS, arena
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from arena.store.models import EpisodeRow, TournamentGameRow
from arena.tournament.config import make_config
from arena.tournament.formats import (
    Format,
    FormatError,
    fixed_schedule,
    round_robin_rounds,
    seat_count,
    swiss_pairs,
)
from arena.tournament.run import swiss_state

SLOW = "python:fixtures.slow_agents:SlowRandom?delay={delay}&seed={seed}"


def episodes_by_status(url: str) -> Counter:
    """Episodes per status (none while the database is still being created)."""
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return Counter(dict(session.execute(select(EpisodeRow.status, func.count())
                                                .group_by(EpisodeRow.status)).all()))
    except DBAPIError:
        return Counter()
    finally:
        engine.dispose()


# --- schedules ------------------------------------------------------------------------------


@pytest.mark.parametrize("agents", [4, 5, 6])
def test_a_round_robin_pairs_everyone_once_per_env_with_both_seatings_on_every_seed(agents: int) -> None:
    names = [f"a{i}" for i in range(agents)]
    seeds = [11, 22, 33]
    games = fixed_schedule(Format.ROUND_ROBIN, names, {"TicTacToe-v0": 2, "ConnectFour-v0": 2}, seeds)
    pairs = agents * (agents - 1) // 2
    assert len(games) == pairs * 2 * len(seeds) * 2
    assert [g.idx for g in games] == list(range(len(games)))
    for env_id in ("TicTacToe-v0", "ConnectFour-v0"):
        mine = [g for g in games if g.env_id == env_id]
        seatings = Counter((g.seats, g.seed) for g in mine)
        assert set(seatings.values()) == {1}, "no game twice"
        for a, b in {tuple(sorted(g.seats)) for g in mine}:
            for seed in seeds:  # both seatings of every pair on every shared seed
                assert seatings[((a, b), seed)] == seatings[((b, a), seed)] == 1
        assert len({frozenset(g.seats) for g in mine}) == pairs


def test_round_robin_rounds_seat_each_agent_at_most_once() -> None:
    for agents in range(2, 10):
        names = [str(i) for i in range(agents)]
        rounds = round_robin_rounds(names, 2)
        assert len(rounds) == (agents - 1 if agents % 2 == 0 else agents)
        for pairs in rounds:
            seated = [a for pair in pairs for a in pair]
            assert len(seated) == len(set(seated))
        assert Counter(frozenset(p) for r in rounds for p in r) == Counter(
            frozenset((a, b)) for i, a in enumerate(names) for b in names[i + 1:])


def test_a_gauntlet_plays_the_candidate_against_each_of_the_field() -> None:
    games = fixed_schedule(Format.GAUNTLET, ["cand", "f1", "f2", "f3"], {"TicTacToe-v0": 2}, [5, 6])
    assert len(games) == 3 * 2 * 2
    assert all("cand" in g.seats for g in games)
    assert Counter(g.seats[0] for g in games)["cand"] == 6, "the candidate moves first in half its games"
    assert {frozenset(g.seats) for g in games} == {frozenset(("cand", f)) for f in ("f1", "f2", "f3")}


def test_games_for_more_seats_rotate_every_group_through_every_seat() -> None:
    assert seat_count("X", (3, 4), Format.ROUND_ROBIN, 4) == 3
    games = fixed_schedule(Format.ROUND_ROBIN, list("abcd"), {"X": 3}, [1])
    assert len(games) == 4 * 3  # C(4,3) groups, each in its 3 rotations
    for group in {frozenset(g.seats) for g in games}:
        firsts = [g.seats[0] for g in games if frozenset(g.seats) == group]
        assert sorted(firsts) == sorted(group), "each agent of a group moves first once"


def test_formats_refuse_games_whose_player_count_does_not_fit() -> None:
    with pytest.raises(FormatError, match="swiss pairs two agents"):
        seat_count("X", (3, 4), Format.SWISS, 8)
    with pytest.raises(FormatError, match="takes 5 players"):
        seat_count("X", (5,), Format.ROUND_ROBIN, 4)
    with pytest.raises(FormatError, match="1 to 3 rounds"):
        make_config(Format.SWISS, ["TicTacToe-v0"], ["a=random", "b=random", "c=random", "d=first"], rounds=4)
    with pytest.raises(FormatError, match="multiple of the seatings"):
        make_config(Format.ROUND_ROBIN, ["TicTacToe-v0"], ["random", "first"], games_per_pair=3)
    with pytest.raises(FormatError, match="appears twice"):
        make_config(Format.ROUND_ROBIN, ["TicTacToe-v0"], ["random", "random"])


def test_seeds_are_shared_and_set_the_games_per_pair() -> None:
    config = make_config(Format.ROUND_ROBIN, ["TicTacToe-v0"], ["random", "first", "c=random"], seeds=[7, 9])
    assert config.seeds == [7, 9] and config.games_per_pair("TicTacToe-v0") == 4
    games = config.first_games()
    assert {frozenset(g.seats): {h.seed for h in games if frozenset(h.seats) == frozenset(g.seats)}
            for g in games} == {frozenset(p): {7, 9} for p in [("random", "first"), ("random", "c"), ("first", "c")]}
    drawn = make_config(Format.ROUND_ROBIN, ["TicTacToe-v0"], ["random", "first"], games_per_pair=6)
    assert len(drawn.seeds) == 3 and len(set(drawn.seeds)) == 3


def test_swiss_pairs_equal_scores_and_never_repeats_a_pairing() -> None:
    scores = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0, "e": 0.5, "f": 0.5}
    pairs, bye = swiss_pairs(scores, set(), set())
    assert bye is None and {frozenset(p) for p in pairs} == {frozenset("ab"), frozenset("cd"), frozenset("ef")}
    pairs, _ = swiss_pairs(scores, {frozenset("ab"), frozenset("cd")}, set())
    assert not {frozenset(p) for p in pairs} & {frozenset("ab"), frozenset("cd")}
    names = [f"p{i}" for i in range(7)]
    met: set[frozenset[str]] = set()
    byes: set[str] = set()
    for _ in range(7):  # an odd field: a different bye every round, and no repeat in n rounds
        pairs, bye = swiss_pairs(dict.fromkeys(names, 0.0), met, byes)
        assert bye not in byes and len(pairs) == 3
        met |= {frozenset(p) for p in pairs}
        byes.add(bye)
    with pytest.raises(FormatError, match="no Swiss pairing"):
        swiss_pairs(dict.fromkeys(names[:4], 0.0), {frozenset(p) for p in [("p0", "p1"), ("p0", "p2"), ("p0", "p3")]},
                    set())


def test_a_swiss_tournament_plays_its_rounds_without_repeats(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    agents = ",".join(["first", *[f"r{i}=random?seed={i}" for i in range(5)]])
    result = arena("tournament", "run", "--name", "sw", "--format", "swiss", "--envs", "TicTacToe-v0",
                   "--agents", agents, "--rounds", "3", "--seed-count", "2", "--db", url)
    assert result.returncode == 0, result.stderr
    engine = create_engine(url)
    with Session(engine) as session:
        rows = session.scalars(select(TournamentGameRow).order_by(TournamentGameRow.idx)).all()
        assert sorted({r.round for r in rows}) == [0, 1, 2]
        pairings = [(r.round, frozenset(r.seats)) for r in rows]
        assert len({p for _, p in pairings}) == len(set(pairings)) == 3 * 3, "9 pairings, none repeated"
        assert len(rows) == 3 * 3 * 2 * 2
        assert session.scalar(select(func.count()).select_from(EpisodeRow)
                              .where(EpisodeRow.status == "finished")) == len(rows)
    engine.dispose()


def test_swiss_state_scores_per_game_and_finds_byes() -> None:
    from arena.store.tournaments import PlayedGame

    games = [PlayedGame(1, 0, 0, "T", 1, ["a", "b"], 1, [1.0, -1.0]),
             PlayedGame(2, 1, 0, "T", 1, ["b", "a"], 2, [0.0, 0.0])]
    scores, met, byes = swiss_state(["a", "b", "c"], games)
    assert scores == {"a": 0.75, "b": 0.25, "c": 0.0} and met == {frozenset("ab")} and byes == {"c"}


# --- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--envs", "Nope-v0", "--agents", "random,first"], "unknown env id 'Nope-v0'"),
    (["--envs", "TicTacToe-v0", "--agents", "random,nosuch"], "unknown kind 'nosuch'"),
    (["--envs", "TicTacToe-v0", "--agents", "random,first", "--format", "swiss", "--rounds", "2"], "1 to 1 rounds"),
    (["--envs", "TicTacToe-v0", "--agents", "random,first", "--games-per-pair", "3"], "multiple of the seatings"),
    (["--envs", "TicTacToe-v0", "--agents", "random,first", "--seeds", "1,x"], "--seeds takes"),
])
def test_bad_tournaments_fail_in_one_line_before_any_game(tmp_path: Path, args: list[str], message: str) -> None:
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    result = arena("tournament", "run", "--name", "t", *args, "--db", url)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "arena.db").exists() or not episodes_by_status(url)


def test_a_taken_name_fails_before_any_game_and_resume_needs_a_known_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    assert arena("tournament", "run", "--name", "t", "--envs", "TicTacToe-v0", "--agents", "random,first",
                 "--db", url).returncode == 0
    before = episodes_by_status(url)
    again = arena("tournament", "run", "--name", "t", "--envs", "TicTacToe-v0", "--agents", "random,first",
                  "--db", url)
    assert again.returncode == 2 and "a tournament named 't' exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert episodes_by_status(url) == before
    unknown = arena("tournament", "resume", "nope", "--db", url)
    assert unknown.returncode == 2 and "no tournament named 'nope'" in unknown.stderr


def test_a_tournament_killed_with_sigkill_resumes_to_exactly_the_missing_games(tmp_path: Path, db_url: str) -> None:
    agents = ",".join([f"s{i}={SLOW.format(delay=0.01, seed=i)}" for i in range(4)] + ["first"])
    options = ["--envs", "TicTacToe-v0", "--agents", agents, "--seeds", "3,4,5", "--concurrency", "3"]
    proc = subprocess.Popen([ARENA, "tournament", "run", "--name", "cup", *options, "--db", db_url],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(TESTS)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and episodes_by_status(db_url)["finished"] < 15:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the arena and its writer, at once
    proc.wait(timeout=30)
    killed = episodes_by_status(db_url)
    scheduled = 10 * 3 * 2
    assert 15 <= killed["finished"] < scheduled, killed
    assert killed["running"] > 0, "games were in flight when it was killed"

    resumed = arena("tournament", "resume", "cup", "--db", db_url)
    assert resumed.returncode == 0, resumed.stderr
    after = episodes_by_status(db_url)
    assert after["finished"] == scheduled, "exactly the missing games were played"
    assert after["running"] == 0 and after["aborted"] == killed["running"], "interrupted tries are kept, aborted"
    engine = create_engine(db_url)
    with Session(engine) as session:
        per_game = Counter(session.scalars(select(EpisodeRow.tournament_game_id)
                                           .where(EpisodeRow.status == "finished")))
    engine.dispose()
    assert len(per_game) == scheduled and set(per_game.values()) == {1}, "no scheduled game finished twice"

    straight = f"sqlite:///{tmp_path / 'straight.db'}"
    assert arena("tournament", "run", "--name", "cup", *options, "--db", straight).returncode == 0
    mine, theirs = (json.loads(arena("tournament", "report", "cup", "--json", "--db", url).stdout)
                    for url in (db_url, straight))
    for part in ("trueskill", "bradley_terry", "head_to_head", "predictions", "per_env", "games_played"):
        assert mine[part] == theirs[part], part
    assert mine["aborted_attempts"] == killed["running"] and theirs["aborted_attempts"] == 0


def test_the_api_serves_the_same_report_as_the_command_line(db_url: str, server) -> None:
    assert arena("tournament", "run", "--name", "cup", "--envs", "TicTacToe-v0", "--agents", "random,first,c=random",
                 "--games-per-pair", "4", "--db", db_url).returncode == 0
    srv = server()
    report = srv.get("/api/tournaments/cup")
    assert report == json.loads(arena("tournament", "report", "cup", "--json", "--db", db_url).stdout)
    assert report["games_played"] == 12 and {s["agent"] for s in report["bradley_terry"]} == {"random", "first", "c"}
    for moment in (report["created_at"], report["ended_at"]):
        assert datetime.fromisoformat(moment).utcoffset() == timedelta(0), moment
    [entry] = srv.get("/api/tournaments")
    assert (entry["name"], entry["status"], entry["games_played"], entry["games_scheduled"]) == ("cup", "finished",
                                                                                                  12, 12)
    page = httpx.get(srv.url + "/tournaments/cup", timeout=30)
    assert page.status_code == 200 and "<svg" in page.text and "Tournament cup" in page.text
    missing = httpx.get(srv.url + "/api/tournaments/nope", timeout=30)
    assert missing.status_code == 404 and "no tournament named 'nope'" in missing.json()["detail"]
