"""Every offline 2-player game in the catalog plays to a stored end with `random` agents."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.baseline import RandomAgent
from arena.recorder import Recorder
from arena.runner import Match, Seat, play_matches
from arena.store.models import EpisodeRow, TurnRow
from arena.store.writer import Writer
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


async def play_all(engine, env_ids: list[str]) -> None:
    writer = Writer(engine)
    recorder = Recorder(writer)
    ids = await recorder.register([("r0", "random", "random?seed=0"), ("r1", "random", "random?seed=1")])
    seats = [Seat(RandomAgent(seed=0, name="r0"), ids[0]), Seat(RandomAgent(seed=1, name="r1"), ids[1])]
    matches = [Match(env_id, seed, seats, max_turns=MAX_TURNS) for env_id in env_ids for seed in SEEDS]
    await play_matches(matches, recorder, concurrency=16)
    writer.close()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_random_agents_finish_every_variant(family: str, engine) -> None:
    env_ids = FAMILIES[family]
    asyncio.run(play_all(engine, env_ids))
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
