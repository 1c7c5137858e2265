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
    abandon: asyncio.Future[tuple[int, str]] | None = None  # set (seat, reason) to forfeit a seat now


class MatchListener:
    """Hooks a transport uses to follow a match; the defaults do nothing."""

    def started(self, episode_id: int, game: Game) -> None:
        """The episode exists and the game is about to start."""

    def events(self, episode_id: int, events: list[Event]) -> None:
        """The engine produced `events`."""


@dataclass
class MatchResult:
    """A played game as stored."""

    episode_id: int
    outcome: Outcome
    turns: int
    rating_changes: list[RatingChange]


async def play_match(match: Match, recorder: Recorder, listener: MatchListener | None = None) -> MatchResult:
    """Play one game to the end, recording every turn; aborted (unrated) if cancelled."""
    listener = listener or MatchListener()
    game = Game(match.env_id, len(match.seats), match.seed, match.policy, match.move_timeout, match.max_turns,
                guard=time_limit)
    episode_id = await recorder.start(game, [s.agent_id for s in match.seats], match.tags)
    try:
        listener.started(episode_id, game)
        events = game.start()
        while not game.done:
            recorder.add_turns(episode_id, _turns(events))
            listener.events(episode_id, events)
            events = await _next_move(game, match, episode_id)
        recorder.add_turns(episode_id, _turns(events))
        listener.events(episode_id, events)
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
    deadline = time.time() + match.move_timeout if match.move_timeout is not None else None
    context = TurnContext(match.env_id, str(episode_id), match.seed, pending.seat, len(game.turns), deadline)
    started = time.perf_counter()
    try:
        decision = await _decide_or_abandon(agent.decide(pending.observation, context), match)
    except Abandoned as abandoned:
        return game.forfeit(abandoned.seat, abandoned.reason)
    except TimeoutError:
        return game.time_out(pending.seat, time.perf_counter() - started)
    except Exception as error:  # noqa: BLE001 - any agent failure forfeits, and is recorded
        return game.fail(pending.seat, f"{type(error).__name__}: {error}", time.perf_counter() - started)
    return game.act(pending.seat, decision.action, time.perf_counter() - started, decision.info)


class Abandoned(Exception):
    """A seat was abandoned (its player left for good) while the game waited on a move."""

    def __init__(self, seat: int, reason: str) -> None:
        super().__init__(reason)
        self.seat, self.reason = seat, reason


async def _decide_or_abandon(decision, match: Match):
    """Await the agent under the move deadline, unless the match's `abandon` future fires first."""
    decide = asyncio.ensure_future(asyncio.wait_for(decision, match.move_timeout))
    if match.abandon is None:
        return await decide
    try:
        done, _ = await asyncio.wait({decide, match.abandon}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        decide.cancel()
        raise
    if decide in done:
        return decide.result()
    decide.cancel()
    raise Abandoned(*match.abandon.result())


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
