"""Asyncio runner: plays one engine to the end, calling its agents and recording every turn.

Whatever an agent, a listener, the store or the game raises, the episode ends `finished` or `aborted`
with a reason. Agent failures forfeit (they are the agent's doing); anything else aborts; a write that
failed is raised to the caller after the episode is marked aborted (when the store still can).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from agents.base import Agent, AgentCrashed, TurnContext
from arena.engine import DEFAULT_MAX_TURNS, Event, Game, InvalidMovePolicy, Outcome, Turn, TurnRecorded
from arena.ratings import RatingChange
from arena.recorder import Recorder
from arena.store.database import StoreError
from arena.watchdog import time_limit

log = logging.getLogger(__name__)
CANCELLED = "cancelled: the arena stopped before the game ended"


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
    tournament_game_id: int | None = None  # the scheduled tournament game this match plays


class MatchListener:
    """Hooks a transport uses to follow a match; the defaults do nothing.

    `events` is called only once the turns among the events are committed, so a transport tells
    its clients about a move only when it is durable. Without a listener, turns are committed
    with the outcome."""

    def started(self, episode_id: int, game: Game) -> None:
        """The episode exists and the game is about to start."""

    def events(self, episode_id: int, events: list[Event]) -> None:
        """The engine produced `events` (their turns are stored)."""


@dataclass
class MatchResult:
    """A played game as stored."""

    episode_id: int
    outcome: Outcome
    turns: int
    rating_changes: list[RatingChange]
    log: list[Turn] = field(default_factory=list)  # the turns as played


class Abandoned(Exception):
    """An agent gives up its seat for good (its player left); the seat forfeits."""

    def __init__(self, seat: int, reason: str) -> None:
        super().__init__(reason)
        self.seat, self.reason = seat, reason


async def play_match(match: Match, recorder: Recorder, listener: MatchListener | None = None,
                     rate: bool = True) -> MatchResult:
    """Play one game to the end, recording every turn; `rate` applies its ratings at once (finishing order)."""
    game = Game(match.env_id, len(match.seats), match.seed, match.policy, match.move_timeout, match.max_turns,
                guard=time_limit)
    started = recorder.start(game, [s.agent_id for s in match.seats], match.tags, match.tournament_game_id)
    try:
        episode_id = await asyncio.shield(started)
    except asyncio.CancelledError:  # the episode is created all the same: store it aborted
        await _record_abort(recorder, await started, CANCELLED)
        raise
    try:
        await _play_and_record(game, match, recorder, episode_id, listener)
        changes = await recorder.rate(episode_id) if rate else []
    finally:
        for seat in match.seats:
            seat.agent.end_game(str(episode_id))
    assert game.outcome is not None, "every way out of _play_and_record ends the game"
    return MatchResult(episode_id, game.outcome, len(game.turns), changes, game.turns)


async def _play_and_record(game: Game, match: Match, recorder: Recorder, episode_id: int,
                           listener: MatchListener | None) -> None:
    """Play, then commit the outcome; every way out leaves the episode finished or aborted."""
    unsaved: list[Turn] = []  # turns nobody was told about yet: they are stored with the outcome
    try:
        await _play(game, match, recorder, episode_id, listener, unsaved)
    except asyncio.CancelledError:
        game.abort(CANCELLED)
        await asyncio.shield(_record_abort(recorder, episode_id, CANCELLED, unsaved))
        raise
    except StoreError as error:
        await _record_abort(recorder, episode_id, f"store error: {error}")
        raise
    except Exception as error:  # noqa: BLE001 - a listener's or the arena's bug aborts this game only
        log.exception("game %s failed", episode_id)
        game.abort(f"arena error: {type(error).__name__}: {error}")
    try:
        await recorder.end(episode_id, game, unsaved)
    except StoreError as error:
        await _record_abort(recorder, episode_id, f"store error: {error}")
        raise


async def _record_abort(recorder: Recorder, episode_id: int, reason: str, turns: Sequence[Turn] = ()) -> None:
    """Mark the episode aborted if the store still takes writes (else it stays running until a restart)."""
    try:
        await recorder.abort(episode_id, reason, turns)
    except StoreError:
        log.exception("could not record that episode %s was aborted", episode_id)


async def _play(game: Game, match: Match, recorder: Recorder, episode_id: int, listener: MatchListener | None,
                unsaved: list[Turn]) -> None:
    """Drive the game; with a listener, each turn is committed before the listener hears of it."""
    if listener is not None:
        listener.started(episode_id, game)
    events = game.start()
    while True:
        turns = [e.turn for e in events if isinstance(e, TurnRecorded)]
        if listener is None:
            unsaved += turns
        else:
            if turns:
                await recorder.add_turns(episode_id, turns)
            listener.events(episode_id, events)
        if game.done:
            return
        events = await _next_move(game, match, episode_id)


async def _next_move(game: Game, match: Match, episode_id: int) -> list[Event]:
    """Ask the seat to move, under the deadline; a timeout, an exception or abandoning the seat forfeits."""
    pending = game.pending
    assert pending is not None
    agent = match.seats[pending.seat].agent
    timeout = match.move_timeout
    context = TurnContext(match.env_id, str(episode_id), match.seed, pending.seat, len(game.turns),
                          time.time() + timeout if timeout is not None else None)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            decision = await agent.decide(pending.observation, context)
    except Abandoned as abandoned:
        return game.forfeit(abandoned.seat, abandoned.reason)
    except AgentCrashed as error:  # not the seat's doing: nobody wins a game its opponent's machine lost
        return game.abort(f"agent crashed: {agent.name}: {error}")
    except TimeoutError:
        return game.time_out(pending.seat, time.perf_counter() - started)
    except Exception as error:  # noqa: BLE001 - any agent failure forfeits, and is recorded
        return game.fail(pending.seat, f"{type(error).__name__}: {error}", time.perf_counter() - started)
    return game.act(pending.seat, decision.action, time.perf_counter() - started, decision.info)
