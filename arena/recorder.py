"""The runner's view of the store: async calls that go through the single writer."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Sequence

from sqlalchemy.orm import Session

from arena import ratings
from arena.engine import Game, Turn
from arena.ratings import RatingChange
from arena.store import agents, episodes
from arena.store.writer import Writer


def turn_row(turn: Turn) -> dict:
    """A turn as TurnRow column values."""
    row = dataclasses.asdict(turn)
    row["idx"] = row.pop("index")
    return row


class Recorder:
    """Writes agents, episodes, turns and rating changes; turns stream, finishes are awaited."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self._turns: list[dict] = []  # rows waiting for the next flush, from every game
        self._lock = threading.Lock()
        self._flush_queued = False

    async def register(self, specs: Sequence[tuple[str, str, str]]) -> list[int]:
        """Ids for (name, kind, spec) triples, creating agents that are new."""
        return await self.writer.run(
            lambda s: [agents.ensure_agent(s, name, kind, spec) for name, kind, spec in specs]
        )

    async def start(self, game: Game, agent_ids: Sequence[int], tags: Sequence[str] = ()) -> int:
        """Insert the episode as running; returns its id."""
        return await self.writer.run(lambda s: episodes.create_episode(
            s, game.env_id, game.seed, agent_ids, str(game.policy), tags))

    def add_turns(self, episode_id: int, turns: Sequence[Turn]) -> None:
        """Queue turn rows; one writer operation inserts every row queued until it runs."""
        if not turns:
            return
        with self._lock:
            self._turns.extend({"episode_id": episode_id, **turn_row(t)} for t in turns)
            if self._flush_queued:
                return
            self._flush_queued = True
        self.writer.submit(self._flush_turns)

    def _flush_turns(self, session: Session) -> None:
        """Writer side: take every queued row and insert them in one statement."""
        with self._lock:
            rows, self._turns, self._flush_queued = self._turns, [], False
        episodes.add_turns(session, rows)

    async def finish(self, episode_id: int, game: Game) -> list[RatingChange]:
        """Commit the outcome and the rating changes together; returns the changes."""
        outcome = game.outcome
        assert outcome is not None, "finish() needs a game that is over"
        invalid = Counter(t.seat for t in game.turns if t.invalid)

        def write(session: Session) -> list[RatingChange]:
            if outcome.status == "aborted":
                episodes.abort_episode(session, episode_id, outcome.reason)
                return []
            episodes.finish_episode(session, episode_id, outcome.rewards, outcome.reason, dict(invalid))
            return ratings.apply(session, episode_id)

        return await self.writer.run(write)
