"""The runner's view of the store: writes go through the writer process; each one's failure reaches its caller."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Sequence

from arena import ratings
from arena.engine import Game, Turn
from arena.protocol import GameStatus
from arena.ratings import RatingChange
from arena.store import agents, episodes
from arena.store.writer import Writer


def turn_row(episode_id: int, turn: Turn) -> dict:
    """A turn as TurnRow column values."""
    return {"episode_id": episode_id, "idx": turn.index, "seat": turn.seat, "observation": turn.observation,
            "action": turn.action, "invalid": turn.invalid, "invalid_reason": turn.invalid_reason,
            "elapsed": turn.elapsed, "error": turn.error, "info": turn.info}


class Recorder:
    """Writes agents, episodes, turns, outcomes and rating changes for the runner."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    async def register(self, specs: Sequence[tuple[str, str, str]]) -> list[int]:
        """Ids for (name, kind, spec) triples, creating agents that are new."""
        return await self.writer.run(agents.ensure_agents, list(specs))

    def start(self, game: Game, agent_ids: Sequence[int], tags: Sequence[str] = (),
              tournament_game_id: int | None = None) -> asyncio.Future[int]:
        """Insert the episode as running; resolves with its id."""
        return self.writer.submit(episodes.create_episode, game.env_id, game.seed, list(agent_ids),
                                  str(game.policy), list(tags), tournament_game_id)

    def add_turns(self, episode_id: int, turns: Sequence[Turn]) -> asyncio.Future[None]:
        """Insert turn rows (captured now); the future resolves once they are committed."""
        return self.writer.submit(episodes.add_turns, [turn_row(episode_id, t) for t in turns])

    async def end(self, episode_id: int, game: Game, turns: Sequence[Turn] = ()) -> None:
        """Commit the turns not yet stored and the outcome (finished with rewards, or aborted with a reason)."""
        outcome = game.outcome
        assert outcome is not None, "end() needs a game that is over"
        invalid = Counter(t.seat for t in game.turns if t.invalid)
        await self.writer.run(episodes.end_episode, episode_id, outcome.status, outcome.rewards, outcome.reason,
                              dict(invalid), [turn_row(episode_id, t) for t in turns])

    async def abort(self, episode_id: int, reason: str, turns: Sequence[Turn] = ()) -> None:
        """Commit that the arena aborted the episode (with the turns given, if any)."""
        await self.writer.run(episodes.end_episode, episode_id, GameStatus.ABORTED, {}, reason, {},
                              [turn_row(episode_id, t) for t in turns])

    def rate(self, episode_id: int) -> asyncio.Future[list[RatingChange]]:
        """Apply a finished episode's ratings next in the rating order; resolves with the changes."""
        return self.writer.submit(ratings.rate_episode, episode_id)


def _done(value: object) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


class MemoryRecorder:
    """A recorder that keeps nothing: ids from counters, no turns, no ratings (`Arena(record=False)`)."""

    writer = None

    def __init__(self) -> None:
        self._episodes, self._agents = itertools.count(1), itertools.count(1)

    async def register(self, specs: Sequence[tuple[str, str, str]]) -> list[int]:
        """A new id per agent."""
        return [next(self._agents) for _ in specs]

    def start(self, game: Game, agent_ids: Sequence[int], tags: Sequence[str] = (),
              tournament_game_id: int | None = None) -> asyncio.Future[int]:
        """The next episode id."""
        return _done(next(self._episodes))

    def add_turns(self, episode_id: int, turns: Sequence[Turn]) -> asyncio.Future[None]:
        """Nothing to store."""
        return _done(None)

    async def end(self, episode_id: int, game: Game, turns: Sequence[Turn] = ()) -> None:
        """Nothing to store."""

    async def abort(self, episode_id: int, reason: str, turns: Sequence[Turn] = ()) -> None:
        """Nothing to store."""

    def rate(self, episode_id: int) -> asyncio.Future[list[RatingChange]]:
        """No ratings without a database."""
        return _done([])
