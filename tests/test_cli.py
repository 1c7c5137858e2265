"""The `arena` command as a user runs it: play, leaderboard, games, db upgrade, ratings rebuild, bad input.

Commands run in this process through `arena.cli.main` (what the console script calls), except where the process
is the point: one smoke test of the installed script, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import ARENA, TESTS, arena
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from arena.store.models import EpisodeRow, TurnRow


def count(url: str, model) -> int:
    engine = create_engine(url)
    with Session(engine) as session:
        n = session.scalar(select(func.count()).select_from(model))
    engine.dispose()
    return n


def test_play_stores_games_and_prints_the_table(db_url: str) -> None:
    result = arena("play", "TicTacToe-v0", "--agents", "random,first", "--games", "6", "--seed", "3",
                   "--db", db_url, process=True)  # once, the installed console script as a user runs it
    assert result.returncode == 0, result.stderr
    assert "TicTacToe-v0: 6 games (seeds 3..8)" in result.stdout
    for column in ("agent", "wins", "draws", "losses", "invalid", "rating"):
        assert column in result.stdout
    assert "random" in result.stdout and "first" in result.stdout
    assert count(db_url, EpisodeRow) == 6 and count(db_url, TurnRow) > 6

    board = json.loads(arena("leaderboard", "--env", "TicTacToe-v0", "--json", "--db", db_url).stdout)
    assert {b["agent"] for b in board} == {"random", "first"}
    assert sum(b["wins"] + b["draws"] + b["losses"] for b in board) == 12
    assert board[0]["rating"] >= board[1]["rating"]

    rebuilt = arena("ratings", "rebuild", "--db", db_url)
    assert rebuilt.returncode == 0 and "every rebuilt rating equals the stored one" in rebuilt.stdout


def test_play_rotates_seats_and_is_reproducible(tmp_path: Path) -> None:
    outputs = []
    for name in ("a.db", "b.db"):
        url = f"sqlite:///{tmp_path / name}"
        assert arena("play", "KuhnPoker-v0", "--agents", "random,first", "--games", "4", "--seed", "11",
                     "--db", url).returncode == 0
        engine = create_engine(url)
        with Session(engine) as session:
            episodes = session.scalars(select(EpisodeRow).order_by(EpisodeRow.seed)).all()
            outputs.append([(e.seed, [s.agent.name for s in e.seats], [s.reward for s in e.seats])
                            for e in episodes])
        engine.dispose()
    assert outputs[0] == outputs[1]
    assert [seats for _, seats, _ in outputs[0]] == [["random", "first"], ["first", "random"]] * 2


def test_the_leaderboard_is_the_same_at_any_concurrency_and_after_a_rebuild(tmp_path: Path) -> None:
    boards = []
    for concurrency in ("1", "200"):
        url = f"sqlite:///{tmp_path / f'c{concurrency}.db'}"
        assert arena("play", "TicTacToe-v0", "--agents", "random,first", "--games", "60", "--seed", "7",
                     "--concurrency", concurrency, "--db", url).returncode == 0
        boards.append(arena("leaderboard", "--json", "--db", url).stdout)
    rebuilt = arena("ratings", "rebuild", "--db", url)
    assert rebuilt.returncode == 0 and "every rebuilt rating equals the stored one" in rebuilt.stdout
    assert boards[0] == boards[1] == arena("leaderboard", "--json", "--db", url).stdout
    assert [s["games"] for s in json.loads(boards[0])] == [60, 60]


def test_default_database_is_arena_db_in_the_working_directory(tmp_path: Path) -> None:
    result = arena("play", "Nim-v0", "--agents", "random,first", "--seed", "1", cwd=tmp_path, env={"ARENA_DB": None})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "arena.db").exists()


def test_arena_db_environment_variable_is_used(tmp_path: Path) -> None:
    path = tmp_path / "from-env.db"
    result = arena("db", "upgrade", env={"ARENA_DB": f"sqlite:///{path}"})
    assert result.returncode == 0 and "upgraded" in result.stdout
    again = arena("db", "upgrade", env={"ARENA_DB": f"sqlite:///{path}"})
    assert "already at the newest schema" in again.stdout


@pytest.mark.parametrize("args, message", [
    (["play", "TicTacToo-v0", "--agents", "random,first"], "unknown env id 'TicTacToo-v0'; did you mean TicTacToe-v0"),
    (["play", "Wordle-v0", "--agents", "random"], "Wordle-v0 cannot be played here: corpus download"),
    (["play", "TicTacToe-v0", "--agents", "random,first,random"], "takes 2 players, but 3 agents were given"),
    (["play", "TicTacToe-v0", "--agents", "random,gpt9"], "bad agent spec 'gpt9'"),
    (["play", "TicTacToe-v0", "--agents", "random,python:no_such_mod:X"], "cannot import 'no_such_mod'"),
    (["play", "TicTacToe-v0", "--agents", "random,first", "--invalid-moves", "sometimes"],
     "textarena, forfeit or retry:N"),
    (["leaderboard", "--env", "Nope-v0"], "unknown env id 'Nope-v0'"),
    (["serve", "--port", "8123", "--tls-port", "8123"], "--port and --tls-port are both 8123"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args: list[str], message: str, tmp_path: Path) -> None:
    db = tmp_path / "untouched.db"
    result = arena(*args, "--db", f"sqlite:///{db}")
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 or "usage:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not db.exists(), "bad input must not create or change the database"


@pytest.mark.parametrize("make_url, message", [
    (lambda tmp: f"sqlite:///{tmp}/missing/dir/arena.db", "unable to open database file"),
    (lambda tmp: "postgresql://nobody@127.0.0.1:9/none", "cannot use database"),
    (lambda tmp: "this is not a url", "cannot use database URL"),
])
def test_unusable_database_is_one_line_exit_2(make_url, message: str, tmp_path: Path) -> None:
    result = arena("play", "TicTacToe-v0", "--agents", "random,first", "--db", make_url(tmp_path))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "README.txt"
    path.write_text("hello\n" * 100)
    result = arena("play", "TicTacToe-v0", "--agents", "random,first", "--db", f"sqlite:///{path}")
    assert result.returncode == 2 and "file is not a database" in result.stderr
    assert path.read_text() == "hello\n" * 100


def test_games_lists_playable_games_and_all_with_reasons() -> None:
    playable = json.loads(arena("games", "--json").stdout)
    by_id = {g["env_id"]: g for g in playable}
    assert by_id["TicTacToe-v0"]["players"] == [2] and "Wordle-v0" not in by_id
    everything = {g["env_id"]: g for g in json.loads(arena("games", "--json", "--all").stdout)}
    assert len(everything) == 712
    assert everything["Wordle-v0"]["reason"].startswith("corpus download")
    assert everything["GuessWho-v0"]["reason"].startswith("API key needed")
    assert everything["Klondike-v0"]["reason"].startswith("Python syntax")
    assert everything["BabyAiText-v0"]["reason"].startswith("missing dependency")
    assert everything["UsedCarNegotiation-v0"]["reason"].startswith("missing data")
    table = arena("games", "--all")
    assert "Wordle-v0" in table.stdout and "env ids run here" in table.stdout


def test_self_play_is_stored_but_unrated(db_url: str) -> None:
    result = arena("play", "TicTacToe-v0", "--agents", "random,random", "--games", "2", "--db", db_url)
    assert result.returncode == 0 and "it is not rated by these games" in " ".join(result.stdout.split())
    assert json.loads(arena("leaderboard", "--json", "--db", db_url).stdout)[0]["games"] == 4


def test_ctrl_c_stops_play_with_no_episode_left_running(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    # a slow seat keeps games mid-play: with two instant agents all 256 games may be between moves and
    # commits at once, and then none is in flight to abort
    slow = "python:fixtures.slow_agents:SlowRandom?delay=0.05"
    proc = subprocess.Popen([ARENA, "play", "TicTacToe-v0", "--agents", f"{slow},first", "--games", "1000000",
                             "--db", url], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(TESTS)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not (tmp_path / "arena.db").exists() or count(url, EpisodeRow) < 500):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the arena and its writer process
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    engine = create_engine(url)
    with Session(engine) as session:
        statuses = dict(session.execute(select(EpisodeRow.status, func.count()).group_by(EpisodeRow.status)).all())
    engine.dispose()
    assert "running" not in statuses, "every episode ends finished or aborted"
    assert statuses.get("finished", 0) > 0 and statuses.get("aborted", 0) > 0, "games in flight are stored aborted"
