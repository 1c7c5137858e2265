"""The asyncio runner over a real SQLite database: concurrency, forfeits, recording, cancellation."""

from __future__ import annotations

import asyncio

import pytest
from helpers import ScriptedAgent
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.base import Agent, Decision, TurnContext
from agents.baseline import FirstAgent, RandomAgent
from arena.engine import InvalidMovePolicy
from arena.recorder import Recorder
from arena.runner import Match, Seat, play_match, play_matches
from arena.store.models import EpisodeRow, RatingRow, SeatRow, TurnRow
from arena.store.writer import Writer


class Gauge:
    """Counts calls in flight across agents, and the most at once."""

    def __init__(self) -> None:
        self.now = self.peak = 0


class CountingAgent(Agent):
    """Plays like `first`, slowly, counting its calls on a shared gauge."""

    def __init__(self, name: str, gauge: Gauge) -> None:
        self.name, self.gauge = name, gauge

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        self.gauge.now += 1
        self.gauge.peak = max(self.gauge.peak, self.gauge.now)
        await asyncio.sleep(0.05)
        self.gauge.now -= 1
        return await FirstAgent().decide(observation, context)


async def seats(recorder: Recorder, *agents: Agent) -> list[Seat]:
    ids = await recorder.register([(a.name, "test", a.name) for a in agents])
    return [Seat(a, i) for a, i in zip(agents, ids, strict=True)]


@pytest.fixture
def recorder(engine):
    writer = Writer(engine)
    yield Recorder(writer)
    writer.close()


async def test_every_game_calls_its_agents_concurrently(recorder, engine) -> None:
    gauge = Gauge()
    pair = await seats(recorder, CountingAgent("a", gauge), CountingAgent("b", gauge))
    matches = [Match("TicTacToe-v0", i, pair if i % 2 else pair[::-1]) for i in range(24)]
    results = await play_matches(matches, recorder, concurrency=24)
    assert len(results) == 24 and all(r.outcome.status == "finished" for r in results)
    assert gauge.peak == 24, "all 24 games should wait on their agents at the same time"
    with Session(engine) as session:
        assert session.scalar(select(EpisodeRow).where(EpisodeRow.status != "finished")) is None
        assert len(session.scalars(select(TurnRow)).all()) == sum(r.turns for r in results)


async def test_concurrency_limit_is_respected(recorder) -> None:
    gauge = Gauge()
    pair = await seats(recorder, CountingAgent("a", gauge), CountingAgent("b", gauge))
    await play_matches([Match("TicTacToe-v0", i, pair) for i in range(12)], recorder, concurrency=3)
    assert gauge.peak == 3


async def test_slow_agent_forfeits_on_timeout_and_it_is_stored(recorder, engine) -> None:
    pair = await seats(recorder, ScriptedAgent(["[4]"], delay=2.0, name="slow"), FirstAgent("quick"))
    result = await play_match(Match("TicTacToe-v0", 1, pair, move_timeout=0.2), recorder)
    assert result.outcome.forfeit_seat == 0 and "timeout" in result.outcome.reason
    with Session(engine) as session:
        episode = session.get(EpisodeRow, result.episode_id)
        assert episode.status == "finished" and "timeout" in episode.reason
        assert [(s.reward, s.result) for s in episode.seats] == [(-1.0, "loss"), (1.0, "win")]
        turn = session.scalar(select(TurnRow).where(TurnRow.episode_id == episode.id))
        assert turn.error.startswith("timeout") and turn.elapsed >= 0.2


async def test_agent_that_raises_forfeits_with_the_error_recorded(recorder, engine) -> None:
    broken = ScriptedAgent(["[4]"], error=RuntimeError("model exploded"), name="broken")
    pair = await seats(recorder, FirstAgent("quick"), broken)
    result = await play_match(Match("TicTacToe-v0", 1, pair), recorder)
    assert result.outcome.forfeit_seat == 1
    with Session(engine) as session:
        turns = session.scalars(select(TurnRow).where(TurnRow.episode_id == result.episode_id)
                                .order_by(TurnRow.idx)).all()
        assert turns[-1].error == "RuntimeError: model exploded" and turns[-1].seat == 1
        assert turns[0].info == {} and turns[0].action == "[0]"


async def test_invalid_moves_are_counted_per_seat(recorder, engine) -> None:
    pair = await seats(recorder, ScriptedAgent(["[nope]"], name="wrong"), FirstAgent("quick"))
    result = await play_match(Match("TicTacToe-v0", 1, pair, policy=InvalidMovePolicy.parse("retry:2")), recorder)
    assert result.outcome.rewards == {0: -1.0, 1: 1.0}
    with Session(engine) as session:
        counts = {s.seat: s.invalid_moves for s in session.scalars(
            select(SeatRow).where(SeatRow.episode_id == result.episode_id))}
        assert counts == {0: 3, 1: 0}
        assert session.get(EpisodeRow, result.episode_id).invalid_policy == "retry:2"


async def test_cancelled_games_are_stored_aborted_and_unrated(recorder, engine) -> None:
    pair = await seats(recorder, ScriptedAgent(["[4]"], delay=30, name="sleepy"), RandomAgent(name="r"))
    task = asyncio.create_task(play_match(Match("TicTacToe-v0", 1, pair), recorder))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with Session(engine) as session:
        episode = session.scalars(select(EpisodeRow)).one()
        assert episode.status == "aborted" and "cancelled" in episode.reason
        assert session.scalars(select(RatingRow)).all() == []
