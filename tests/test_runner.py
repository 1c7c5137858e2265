"""Running games through the library API (`arena.play.Arena`) into a real database: concurrency,
forfeits, recording, and every episode ending finished or aborted whatever fails."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from helpers import ScriptedAgent
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.base import Agent, Decision, TurnContext
from agents.baseline import FirstAgent, RandomAgent
from arena.engine import Event, Game, InvalidMovePolicy, TurnRecorded
from arena.play import Arena, GameSpec, schedule
from arena.runner import Match, MatchListener
from arena.store.database import StoreError
from arena.store.models import EpisodeRow, RatingRow, SeatRow, TurnRow


class Gauge:
    """Counts calls in flight across agents, and the most at once. The first calls wait until `gather` of them
    are in flight together (30 s at most), so that the peak needs no timing luck."""

    def __init__(self, gather: int) -> None:
        self.now = self.peak = 0
        self.gather = gather
        self.gathered = asyncio.Event()

    async def enter(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        if self.now >= self.gather:
            self.gathered.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gathered.wait(), 30)


class CountingAgent(Agent):
    """Plays like `first`, counting its calls on a shared gauge."""

    def __init__(self, name: str, gauge: Gauge) -> None:
        self.name, self.gauge = name, gauge

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        await self.gauge.enter()
        await asyncio.sleep(0.01)
        self.gauge.now -= 1
        return await FirstAgent().decide(observation, context)


class UnstorableInfo(Agent):
    """Plays like `first` but reports turn info the database cannot store (a set is not JSON)."""

    name = "unstorable"

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        return Decision((await FirstAgent().decide(observation, context)).action, {"tokens": {1, 2}})


class FailingListener(MatchListener):
    """A transport whose send breaks after the first events (a closed socket, a bug)."""

    def __init__(self) -> None:
        self.calls = 0

    def events(self, episode_id: int, events: list[Event]) -> None:
        self.calls += 1
        if self.calls == 2:
            raise ConnectionResetError("client went away")


class DurabilityProbe(MatchListener):
    """Records, each time it hears of a turn, whether that turn was already in the database."""

    def __init__(self, arena: Arena) -> None:
        self.arena, self.stored_when_told = arena, []

    def events(self, episode_id: int, events: list[Event]) -> None:
        for index in [e.turn.index for e in events if isinstance(e, TurnRecorded)]:
            stored = self.arena.read(lambda s, index=index: s.scalar(select(TurnRow.id).where(
                TurnRow.episode_id == episode_id, TurnRow.idx == index)))
            self.stored_when_told.append(stored is not None)


def episode(engine, episode_id: int) -> EpisodeRow:
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(EpisodeRow, episode_id)
        row.seats  # noqa: B018 - load the seats before the session closes
        return row


async def test_every_game_calls_its_agents_concurrently(db_url, engine) -> None:
    gauge = Gauge(gather=24)
    agents = [CountingAgent("a", gauge), CountingAgent("b", gauge)]
    async with Arena(db_url) as arena:
        results = await arena.play_all(schedule("TicTacToe-v0", agents, 24, 0), concurrency=24)
    assert len(results) == 24 and all(r.outcome.status == "finished" for r in results)
    assert [r.index for r in results] == list(range(24)), "results come in schedule order"
    assert gauge.peak == 24, "all 24 games should wait on their agents at the same time"
    with Session(engine) as session:
        assert session.scalar(select(EpisodeRow).where(EpisodeRow.status != "finished")) is None
        assert len(session.scalars(select(TurnRow)).all()) == sum(r.turns for r in results)


async def test_concurrency_limit_is_respected(db_url) -> None:
    gauge = Gauge(gather=3)
    async with Arena(db_url) as arena:
        await arena.play_all(schedule("TicTacToe-v0", [CountingAgent("a", gauge), CountingAgent("b", gauge)], 12, 0),
                             concurrency=3)
    assert gauge.peak == 3


async def test_slow_agent_forfeits_on_timeout_and_it_is_stored(db_url, engine) -> None:
    async with Arena(db_url, move_timeout=0.2) as arena:
        [result] = await arena.play_all([GameSpec("TicTacToe-v0", 1, [ScriptedAgent(["[4]"], delay=2.0, name="slow"),
                                                                        FirstAgent("quick")])])
    assert result.outcome.forfeit_seat == 0 and "timeout" in result.outcome.reason
    row = episode(engine, result.episode_id)
    assert row.status == "finished" and "timeout" in row.reason
    assert [(s.reward, s.result) for s in row.seats] == [(-1.0, "loss"), (1.0, "win")]
    with Session(engine) as session:
        turn = session.scalar(select(TurnRow).where(TurnRow.episode_id == row.id))
        assert turn.error.startswith("timeout") and turn.elapsed >= 0.2


async def test_agent_that_raises_forfeits_with_the_error_recorded(db_url, engine) -> None:
    broken = ScriptedAgent(["[4]"], error=RuntimeError("model exploded"), name="broken")
    async with Arena(db_url) as arena:
        [result] = await arena.play_all([GameSpec("TicTacToe-v0", 1, [FirstAgent("quick"), broken])])
    assert result.outcome.forfeit_seat == 1
    assert episode(engine, result.episode_id).status == "finished"
    with Session(engine) as session:
        turns = session.scalars(select(TurnRow).where(TurnRow.episode_id == result.episode_id)
                                .order_by(TurnRow.idx)).all()
        assert turns[-1].error == "RuntimeError: model exploded" and turns[-1].seat == 1
        assert turns[0].info == {} and turns[0].action == "[0]"


async def test_invalid_moves_are_counted_per_seat(db_url, engine) -> None:
    async with Arena(db_url, policy=InvalidMovePolicy.parse("retry:2")) as arena:
        [result] = await arena.play_all([GameSpec("TicTacToe-v0", 1, [ScriptedAgent(["[nope]"], name="wrong"),
                                                                        FirstAgent("quick")])])
    assert result.outcome.rewards == {0: -1.0, 1: 1.0}
    with Session(engine) as session:
        counts = {s.seat: s.invalid_moves for s in session.scalars(
            select(SeatRow).where(SeatRow.episode_id == result.episode_id))}
        assert counts == {0: 3, 1: 0}
        assert session.get(EpisodeRow, result.episode_id).invalid_policy == "retry:2"


async def test_cancelled_games_are_stored_aborted_and_unrated(db_url, engine) -> None:
    async with Arena(db_url) as arena:
        sleepy = ScriptedAgent(["[4]"], delay=30, name="sleepy")
        seats = [await arena.seat(sleepy), await arena.seat(RandomAgent(name="r"))]
        task = asyncio.create_task(arena.play_match(Match("TicTacToe-v0", 1, seats)))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    with Session(engine) as session:
        row = session.scalars(select(EpisodeRow)).one()
        assert row.status == "aborted" and "cancelled" in row.reason
        assert session.scalars(select(RatingRow)).all() == []


async def test_a_listener_hears_of_a_turn_only_once_it_is_stored(db_url) -> None:
    async with Arena(db_url) as arena:
        probe = DurabilityProbe(arena)
        seats = [await arena.seat("random"), await arena.seat("first")]
        result = await arena.play_match(Match("TicTacToe-v0", 3, seats), probe)
    assert len(probe.stored_when_told) == result.turns >= 5
    assert all(probe.stored_when_told)


async def test_a_failing_listener_aborts_its_game_with_the_reason(db_url, engine) -> None:
    async with Arena(db_url) as arena:
        seats = [await arena.seat("random"), await arena.seat("first")]
        result = await arena.play_match(Match("TicTacToe-v0", 1, seats), FailingListener())
        other = await arena.play_match(Match("TicTacToe-v0", 2, seats))
    assert result.outcome.status == "aborted" and result.rating_changes == []
    assert "arena error: ConnectionResetError: client went away" in result.outcome.reason
    row = episode(engine, result.episode_id)
    assert row.status == "aborted" and "client went away" in row.reason
    assert other.outcome.status == "finished", "one game's failure does not touch the next"


@pytest.mark.parametrize("listener", [None, MatchListener()], ids=["scheduled", "live"])
async def test_a_failing_write_aborts_the_episode_and_reaches_the_caller(db_url, engine, listener) -> None:
    async with Arena(db_url) as arena:
        seats = [await arena.seat(UnstorableInfo()), await arena.seat("random")]
        with pytest.raises(StoreError, match="JSON serializable"):
            await arena.play_match(Match("TicTacToe-v0", 1, seats), listener)
        with pytest.raises(StoreError, match="JSON serializable"):
            await arena.play_all(schedule("TicTacToe-v0", [UnstorableInfo(), "random"], 3, 1))
    with Session(engine) as session:
        rows = session.scalars(select(EpisodeRow)).all()
        assert rows and all(r.status == "aborted" and r.reason.startswith("store error") for r in rows)
        assert session.scalars(select(RatingRow)).all() == []


def test_a_game_object_is_freed_without_the_garbage_collector() -> None:
    """Finished games must not sit in reference cycles: at thousands of games a second the collector's
    passes over them cost more than the database writes."""
    import gc
    import weakref

    gc.disable()
    try:
        game = Game("TicTacToe-v0", 2, seed=1)
        game.start()
        while not game.done:
            game.act(game.pending.seat, "[0]" if "[0]" in game.pending.observation else "[4]", 0.0)
        ref = weakref.ref(game)
        del game
        assert ref() is None
    finally:
        gc.enable()
