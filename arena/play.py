"""The library API for running games: the one way every door (CLI, server, benchmarks, tests) plays.

    from arena.play import Arena, schedule

    async with Arena(db="sqlite:///arena.db") as arena:
        async for result in arena.play(schedule("TicTacToe-v0", ["random", "first"], games=100, seed=1)):
            print(result.episode_id, result.outcome.rewards)

A schedule is a list of `GameSpec`s (env, seed, seats as agent spec strings, parsed specs or agent
objects). Games run concurrently up to a limit, every turn is stored, and ratings are applied in
schedule order, so the same schedule gives the same ratings at any concurrency. `play_match` runs
one game rated as soon as it ends (finishing order), for the live server. `db=None` keeps everything
in a temporary database that is deleted on exit; `record=False` stores nothing at all (no ratings), for
RL rollouts and benchmarks that only need the games.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agents.base import Agent
from agents.specs import AgentSpec, build_agent, parse_spec
from arena import ratings
from arena.engine import DEFAULT_MAX_TURNS, InvalidMovePolicy, Outcome, Turn
from arena.ratings import RatingChange, Standing
from arena.recorder import MemoryRecorder, Recorder
from arena.runner import Match, MatchListener, MatchResult, Seat, play_match
from arena.store import ratings as rating_rows
from arena.store.agents import AgentConflict
from arena.store.database import open_database
from arena.store.writer import Writer

SeatLike = str | AgentSpec | Agent
T = TypeVar("T")


class AgentStartError(Exception):
    """An agent could not start (a missing model, an unreachable endpoint)."""


@dataclass(frozen=True)
class GameSpec:
    """One game of a schedule: the env, its seed, who sits where (in seat order), tags to store, and the
    stored tournament game it plays, if any."""

    env_id: str
    seed: int
    seats: Sequence[SeatLike]
    tags: Sequence[str] = ()
    tournament_game_id: int | None = None


@dataclass
class GameResult:
    """A played game: its place in the schedule, the stored episode, the outcome and the rating changes."""

    index: int
    episode_id: int
    env_id: str
    seed: int
    agents: list[str]
    outcome: Outcome
    turns: int
    rating_changes: list[RatingChange]
    log: list[Turn] = field(default_factory=list)  # the turns as played


def schedule(env_id: str, agents: Sequence[SeatLike], games: int, seed: int,
             tags: Sequence[str] = ()) -> list[GameSpec]:
    """`games` games on seeds seed, seed+1, ...; game i rotates the seats by i, so each agent plays each seat."""
    n = len(agents)
    return [GameSpec(env_id, seed + i, [*agents[i % n:], *agents[:i % n]], tags) for i in range(games)]


class Arena:
    """A database (or a temporary one), its writer, and the agents seated so far."""

    def __init__(self, db: str | None = None, *, policy: InvalidMovePolicy | None = None,
                 move_timeout: float | None = 60.0, max_turns: int = DEFAULT_MAX_TURNS,
                 group_commit_s: float = 0.0, record: bool = True, keep_turns: bool = False) -> None:
        if db is not None and not record:
            raise ValueError("an arena that records nothing takes no database")
        self.url, self.policy, self.group_commit_s = db, policy or InvalidMovePolicy(), group_commit_s
        self.record, self.keep_turns = record, keep_turns  # keep_turns: results carry their turns (`log`)
        self.move_timeout, self.max_turns = move_timeout, max_turns
        self.engine: Engine | None = None
        self.recorder: Recorder | MemoryRecorder | None = None
        self._seats: dict[str, Seat] = {}  # agent name -> its seat
        self._kinds: dict[str, tuple[str, str]] = {}  # agent name -> (kind, spec) it was registered with
        self._built: list[Agent] = []  # agents this arena built from specs: it starts and closes them
        self._tmp: Path | None = None

    async def __aenter__(self) -> Arena:
        if not self.record:
            self.recorder = MemoryRecorder()
            return self
        url = self.url
        if url is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="arena-"))
            url = f"sqlite:///{self._tmp / 'arena.db'}"
        self.engine = await asyncio.to_thread(open_database, url)
        self.recorder = Recorder(Writer(self.engine.url.render_as_string(hide_password=False), self.group_commit_s))
        await self._rate_left_over()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the agents built here, commit every write, stop the writer, forget a temporary database."""
        for agent in self._built:
            await agent.close()
        self._built.clear()
        if self.recorder is not None and self.recorder.writer is not None:
            await self.recorder.writer.close()
        if self.engine is not None:
            self.engine.dispose()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def writer(self) -> Writer:
        """The writer every write of this arena goes through."""
        return self._recorder.writer

    async def seat(self, who: SeatLike, built: Agent | None = None) -> Seat:
        """The seat for an agent spec (built, unless `built` is given, and started once per name) or an agent
        object (used as it is), registered in the database."""
        if isinstance(who, Agent):
            return await self._register(who, "object", f"{type(who).__module__}.{type(who).__qualname__}")
        spec = who if isinstance(who, AgentSpec) else parse_spec(who)
        if spec.name in self._seats:
            return await self._register(self._seats[spec.name].agent, spec.kind, spec.text)
        agent = built or build_agent(spec)
        await start_agent(agent)
        self._built.append(agent)
        return await self._register(agent, spec.kind, spec.text)

    async def _register(self, agent: Agent, kind: str, text: str) -> Seat:
        """Store the agent's name (once); AgentConflict when the name already stands for another spec."""
        known = self._kinds.get(agent.name)
        if known is None:
            [agent_id] = await self._recorder.register([(agent.name, kind, text)])
            self._kinds[agent.name] = (kind, text)
            self._seats[agent.name] = Seat(agent, agent_id)
        elif known != (kind, text):
            raise AgentConflict(f"agent name '{agent.name}' is already used by spec '{known[1]}'; "
                                f"name this one NAME={text}")
        return self._seats[agent.name]

    async def play(self, games: Iterable[GameSpec], concurrency: int = 256) -> AsyncIterator[GameResult]:
        """Play every game, at most `concurrency` at once; yield results in schedule order, each once its
        ratings (applied in schedule order) are committed. A failure is raised here; the games still
        running are then aborted."""
        specs = list(games)
        seats = [[await self.seat(who) for who in spec.seats] for spec in specs]
        ordered: asyncio.Queue[tuple[GameResult, asyncio.Future] | BaseException] = asyncio.Queue()
        runner = asyncio.create_task(self._run(specs, seats, max(1, concurrency), ordered))
        try:
            for _ in specs:
                item = await ordered.get()
                if isinstance(item, BaseException):
                    raise item
                result, rated = item
                result.rating_changes = await rated
                yield result
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    async def play_all(self, games: Iterable[GameSpec], concurrency: int = 256) -> list[GameResult]:
        """`play`, collected into a list (schedule order)."""
        return [result async for result in self.play(games, concurrency)]

    async def play_match(self, match: Match, listener: MatchListener | None = None) -> MatchResult:
        """Play one game rated as soon as it ends (the live server's finishing order)."""
        return await play_match(match, self._recorder, listener, rate=True)

    def leaderboard(self, env_id: str | None = None, agent_ids: Sequence[int] | None = None,
                    episode_ids: Sequence[int] | None = None) -> list[Standing]:
        """The standings in one env (or overall), optionally limited to some agents and episodes."""
        return self.read(lambda session: ratings.leaderboard(session, env_id, agent_ids, episode_ids))

    def read(self, query: Callable[[Session], T]) -> T:
        """Run a read-only `query(session)` on this arena's database (blocking: use a thread from async code)."""
        if self.engine is None:
            raise RuntimeError("this arena has no database (record=False)" if not self.record
                               else "use the arena inside `async with Arena(...)`")
        with Session(self.engine) as session:
            return query(session)

    @property
    def _recorder(self) -> Recorder | MemoryRecorder:
        if self.recorder is None:
            raise RuntimeError("use the arena inside `async with Arena(...)`")
        return self.recorder

    async def _run(self, specs: list[GameSpec], seats: list[list[Seat]], concurrency: int,
                   ordered: asyncio.Queue) -> None:
        """Worker tasks play the games; finished games are released for rating in schedule order."""
        todo = iter(range(len(specs)))
        finished: dict[int, GameResult] = {}
        next_index = 0

        def release(result: GameResult) -> None:
            nonlocal next_index
            finished[result.index] = result
            while next_index in finished:
                done = finished.pop(next_index)
                ordered.put_nowait((done, self._recorder.rate(done.episode_id)))
                next_index += 1

        async def worker() -> None:
            for index in todo:
                spec = specs[index]
                match = Match(spec.env_id, spec.seed, seats[index], self.policy, self.move_timeout, spec.tags,
                              self.max_turns, spec.tournament_game_id)
                played = await play_match(match, self._recorder, rate=False)
                release(GameResult(index, played.episode_id, spec.env_id, spec.seed,
                                   [s.agent.name for s in seats[index]], played.outcome, played.turns, [],
                                   played.log if self.keep_turns else []))

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(concurrency, len(specs))):
                    group.create_task(worker())
        except BaseExceptionGroup as errors:
            ordered.put_nowait(errors.exceptions[0])

    async def _rate_left_over(self) -> None:
        """Rate finished episodes a stopped process left unrated, oldest first."""
        left = await asyncio.to_thread(self.read, rating_rows.unrated_finished)
        await asyncio.gather(*[self._recorder.rate(episode_id) for episode_id in left])


async def start_agent(agent: Agent) -> None:
    """Start an agent; AgentStartError names it when it cannot run."""
    try:
        await agent.start()
    except Exception as error:  # noqa: BLE001 - reported naming the agent
        raise AgentStartError(f"agent '{agent.name}' cannot start: {error}") from error


def play(games: Iterable[GameSpec], db: str | None = None, concurrency: int = 256,
         policy: InvalidMovePolicy | None = None, move_timeout: float | None = 60.0) -> list[GameResult]:
    """Synchronous convenience: play a schedule in a new event loop and return the results."""

    async def run() -> list[GameResult]:
        async with Arena(db, policy=policy, move_timeout=move_timeout) as arena:
            return await arena.play_all(games, concurrency)

    return asyncio.run(run())
