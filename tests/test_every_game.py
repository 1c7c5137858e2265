"""Every offline 2-player game in the catalog plays to a stored end with `random` agents: in every family some game
finishes, and every game that does not is aborted for a reason named below, game by game."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from functools import partial

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.orm import Session

from arena.play import Arena, GameSpec
from arena.store.models import EpisodeRow, TurnRow
from games import catalog

SEEDS = (1, 2, 3)
MAX_TURNS = 300
LONG_TURNS = 510  # for the games below, which end after their own N turns, up to 500
LONG_GAMES = {*(f"PigDice-v0-{n}" for n in (300, 350, 400, 450, 500)), "PigDice-v0-long"}
TURN_LIMIT, GAME_ERROR = "turn limit", "game error"
# family -> {how its games may be aborted (reason prefix): why}; any other abort fails the test
ALLOWED_ABORTS = {
    "Chess-v0": {TURN_LIMIT: "`random` seldom mates within 300 actions, and TextArena 0.7.4 has no 50-move draw"},
    "Chess-v0-long": {TURN_LIMIT: "as Chess-v0"},
    "HighSociety-v0": {TURN_LIMIT: "-raw lists no moves: both `random`s bid the one amount they read, tie, rebid"},
    "Poker-v0": {TURN_LIMIT: "-raw lists no moves: `random` checks into a bet again and again, which Poker refuses"},
    "Poker-v0-extreme": {TURN_LIMIT: "as Poker-v0"},
    "Poker-v0-long": {TURN_LIMIT: "as Poker-v0"},
    "Poker-v0-small": {TURN_LIMIT: "as Poker-v0"},
    "PublicGoodsGame-v0": {
        TURN_LIMIT: "it lists no moves, only its format '[X]', which `random` sends; TextArena 0.7.4 asks an "
                    "eliminated player to move on and on",
        "game error: GameStalled": "once every player is eliminated TextArena 0.7.4 loops inside one call, until "
                                   "the arena's guard (10 s) stops it"},
    "SpiteAndMalice-v0": {TURN_LIMIT: "a deal can leave `[draw]` the only move with no cards left to draw"},
    "SantoriniBaseFixed-v0": {TURN_LIMIT: "`random` does not climb to the third level (no game ends in 3,000 "
                                          "actions)"},
    "Stratego-v0": {TURN_LIMIT: "`random` does not find the flag in 300 actions",
                    "game error: TypeError": "TextArena 0.7.4's Stratego raises TypeError on some moves into an "
                                             "empty square"},
}
NEVER_FINISH = {"SantoriniBaseFixed-v0", "Stratego-v0"}  # for the reasons above


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


def test_the_allowed_aborts_name_families_of_the_catalog() -> None:
    assert set(ALLOWED_ABORTS) | LONG_GAMES <= set(FAMILIES) and set(ALLOWED_ABORTS) >= NEVER_FINISH


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def arenas(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[int, Arena]]:
    """The module's arenas by turn limit, each with a database and a writer process (one per module, not per test)."""
    folder = tmp_path_factory.mktemp("every-game")
    async with Arena(f"sqlite:///{folder / 'short.db'}", max_turns=MAX_TURNS) as short, \
            Arena(f"sqlite:///{folder / 'long.db'}", max_turns=LONG_TURNS) as long:
        yield {MAX_TURNS: short, LONG_TURNS: long}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.asyncio(loop_scope="module")
async def test_random_agents_finish_every_variant(family: str, arenas: dict[int, Arena]) -> None:
    arena = arenas[LONG_TURNS if family in LONG_GAMES else MAX_TURNS]
    games = [GameSpec(env_id, seed, ["r0=random?seed=0", "r1=random?seed=1"])
             for env_id in FAMILIES[family] for seed in SEEDS]
    results = await arena.play_all(games, concurrency=16)
    problems = await asyncio.to_thread(arena.read, partial(check_stored, family, [r.episode_id for r in results]))
    assert not problems, "\n".join(problems)


def check_stored(family: str, episode_ids: list[int], session: Session) -> list[str]:
    """What is wrong with the stored games: gaps in a turn log, an abort not named for the family, a finished game
    without a reason or a result, or no game finished where some must."""
    problems, allowed = [], tuple(ALLOWED_ABORTS.get(family, {}))
    episodes = session.scalars(select(EpisodeRow).where(EpisodeRow.id.in_(episode_ids))).all()
    for episode in episodes:
        label = f"{episode.env_id} seed {episode.seed}"
        turns = session.scalars(select(TurnRow.idx).where(TurnRow.episode_id == episode.id)).all()
        if turns != list(range(len(turns))):
            problems.append(f"{label}: turn log has gaps")
        if episode.status == "aborted" and not episode.reason.startswith(allowed):
            problems.append(f"{label}: aborted, and not as named: {episode.reason}")
        elif episode.status == "finished" and not (episode.reason or "").strip():
            problems.append(f"{label}: finished with no reason")
        elif episode.status == "finished" and not all(s.reward is not None and s.result for s in episode.seats):
            problems.append(f"{label}: finished with a seat that has no result")
        elif episode.status not in ("finished", "aborted"):
            problems.append(f"{label}: {episode.status}")
    if len(episodes) != len(episode_ids):
        problems.append(f"{len(episodes)} of {len(episode_ids)} games stored")
    if family not in NEVER_FINISH and not any(episode.status == "finished" for episode in episodes):
        problems.append(f"no {family} game finished")
    return problems


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
