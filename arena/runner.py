"""Asyncio runner: plays many engines at once, every agent call concurrent, writes via the recorder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agents.base import Agent, TurnContext
from arena.engine import DEFAULT_MAX_TURNS, Event, Game, InvalidMovePolicy, Outcome, TurnRecorded
from arena.ratings import RatingChange
from arena.recorder import Recorder
from arena.watchdog import time_limit


@dataclass(frozen=True)
class Seat:
    """An agent and its database id, in one seat of a match."""

    agent: Agent
    agent_id: int


@dataclass
class Match:
    """One game to play."""

    env_id: str
    seed: int
    seats: Sequence[Seat]
    policy: InvalidMovePolicy = field(default_factory=InvalidMovePolicy)
    move_timeout: float | None = 60.0
    tags: Sequence[str] = ()
    max_turns: int = DEFAULT_MAX_TURNS


@dataclass
class MatchResult:
    """A played game as stored."""

    episode_id: int
    outcome: Outcome
    turns: int
    rating_changes: list[RatingChange]


async def play_match(match: Match, recorder: Recorder) -> MatchResult:
    """Play one game to the end, recording every turn; aborted (unrated) if cancelled."""
    game = Game(match.env_id, len(match.seats), match.seed, match.policy, match.move_timeout, match.max_turns,
                guard=time_limit)
    episode_id = await recorder.start(game, [s.agent_id for s in match.seats], match.tags)
    try:
        events = game.start()
        while not game.done:
            recorder.add_turns(episode_id, _turns(events))
            events = await _next_move(game, match, episode_id)
        recorder.add_turns(episode_id, _turns(events))
    except asyncio.CancelledError:
        game.abort("cancelled: the arena stopped before the game ended")
        await asyncio.shield(recorder.finish(episode_id, game))
        raise
    finally:
        for seat in match.seats:
            seat.agent.end_game(str(episode_id))
    changes = await recorder.finish(episode_id, game)
    return MatchResult(episode_id, game.outcome, len(game.turns), changes)  # type: ignore[arg-type]


async def _next_move(game: Game, match: Match, episode_id: int) -> list[Event]:
    """Ask the seat to move, under the deadline; a timeout or an exception forfeits."""
    pending = game.pending
    assert pending is not None
    agent = match.seats[pending.seat].agent
    context = TurnContext(match.env_id, str(episode_id), match.seed, pending.seat, len(game.turns))
    started = time.perf_counter()
    try:
        decision = await asyncio.wait_for(agent.decide(pending.observation, context), match.move_timeout)
    except TimeoutError:
        return game.time_out(pending.seat, time.perf_counter() - started)
    except Exception as error:  # noqa: BLE001 - any agent failure forfeits, and is recorded
        return game.fail(pending.seat, f"{type(error).__name__}: {error}", time.perf_counter() - started)
    return game.act(pending.seat, decision.action, time.perf_counter() - started, decision.info)


def _turns(events: list[Event]) -> list:
    return [e.turn for e in events if isinstance(e, TurnRecorded)]


async def play_matches(matches: Sequence[Match], recorder: Recorder, concurrency: int = 16,
                       on_result: Callable[[MatchResult], None] | None = None) -> list[MatchResult]:
    """Play every match, at most `concurrency` at once; results in match order."""
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(match: Match) -> MatchResult:
        async with limit:
            result = await play_match(match, recorder)
        if on_result:
            on_result(result)
        return result

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(m)) for m in matches]
    return [task.result() for task in tasks]
