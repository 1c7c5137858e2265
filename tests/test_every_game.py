"""Every offline 2-player game in the catalog plays to a stored end with `random` agents."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import defaultdict

import pytest
from helpers import play_games
from sqlalchemy import select
from sqlalchemy.orm import Session

from arena.play import GameSpec
from arena.store.models import EpisodeRow, TurnRow
from games import catalog

SEEDS = (1, 2, 3)
MAX_TURNS = 300


def two_player_families() -> dict[str, list[str]]:
    families: dict[str, list[str]] = defaultdict(list)
    for entry in catalog.load().values():
        if entry.playable and 2 in entry.players:
            families[entry.family].append(entry.env_id)
    return dict(families)


FAMILIES = two_player_families()


def test_the_catalog_offers_many_two_player_games() -> None:
    assert len(FAMILIES) > 100 and sum(map(len, FAMILIES.values())) > 300
    assert {"TicTacToe-v0", "Chess-v0", "KuhnPoker-v0", "Battleship-v0"} <= set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_random_agents_finish_every_variant(family: str, db_url: str, engine) -> None:
    env_ids = FAMILIES[family]
    games = [GameSpec(env_id, seed, ["r0=random?seed=0", "r1=random?seed=1"]) for env_id in env_ids for seed in SEEDS]
    asyncio.run(play_games(db_url, games, concurrency=16, max_turns=MAX_TURNS))
    with Session(engine) as session:
        episodes = session.scalars(select(EpisodeRow)).all()
        assert len(episodes) == len(env_ids) * len(SEEDS)
        for episode in episodes:
            label = f"{episode.env_id} seed {episode.seed}"
            turns = session.scalars(select(TurnRow.idx).where(TurnRow.episode_id == episode.id)).all()
            assert turns == list(range(len(turns))), f"{label}: turn log has gaps"
            if episode.status == "aborted":  # no end in sight, or a bug in the game (see the reason)
                assert episode.reason.startswith(("turn limit", "game error")), f"{label}: {episode.reason}"
                continue
            assert episode.status == "finished", label
            assert episode.reason and episode.reason.strip(), f"{label}: no reason"
            assert all(seat.reward is not None and seat.result for seat in episode.seats), label


def test_a_game_too_slow_on_a_busy_machine_is_checked_again_by_the_next_process(tmp_path) -> None:
    probe = [sys.executable, "-c", "from games import catalog; print(catalog.load(['TicTacToe-v0'])['TicTacToe-v0'])"]
    env = {**os.environ, "ARENA_CACHE_DIR": str(tmp_path)}
    busy = subprocess.run(probe, env={**env, "ARENA_PROBE_TIMEOUT": "0.001"}, capture_output=True, text=True)
    assert "too slow" in busy.stdout, busy.stdout + busy.stderr
    calm = subprocess.run(probe, env=env, capture_output=True, text=True)
    assert "playable=True" in calm.stdout, calm.stdout + calm.stderr


def test_a_game_that_ignores_the_asked_player_count_is_listed_with_the_count_it_seats() -> None:
    from games.probe import probe

    assert probe("QuantumTicTacToe-v0")["players"] == [2]
    assert probe("Poker-v0")["players"][:3] == [2, 3, 4]


def test_too_slow_is_kept_for_a_game_slow_among_quick_ones_and_checked_again_when_many_were() -> None:
    quick, slow = {"players": [2], "reason": None}, {"players": [], "reason": f"{catalog.TOO_SLOW}: past 20 s"}
    alone = catalog._mark_busy_verdicts({**{f"Quick{i}-v0": quick for i in range(40)}, "Sudoku-v0-hard": slow})
    assert not alone["Sudoku-v0-hard"].get(catalog.RECHECK)
    busy = catalog._mark_busy_verdicts({**{f"Quick{i}-v0": quick for i in range(40)},
                                        **{f"Slow{i}-v0": slow for i in range(10)}})
    assert all(busy[f"Slow{i}-v0"][catalog.RECHECK] for i in range(10)) and not busy["Quick0-v0"].get(catalog.RECHECK)
