"""A tournament's settings: validated before any game starts, stored with it, and read back to resume."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from agents.specs import AgentSpec, parse_spec
from arena.engine import InvalidMovePolicy
from arena.tournament.formats import Format, FormatError, ScheduledGame, fixed_schedule, seat_count, swiss_round
from games import catalog

REMOTE = "remote"  # the kind of a tournament's agents on a server: an agent connected there, by name


class TournamentConfig(BaseModel):
    """Everything needed to play (and resume) a tournament the same way."""

    model_config = ConfigDict(extra="forbid")

    format: Format
    envs: list[str] = Field(min_length=1)
    agents: list[str] = Field(min_length=2)  # agent specs as given (NAME=SPEC or SPEC); names with `server`
    seats: dict[str, int]  # env id -> seats per game
    seeds: list[int] = Field(min_length=1)  # every group plays every seed in every seating
    rounds: int = Field(ge=1)
    move_timeout: float | None = 60.0
    invalid_moves: str = "textarena"
    server: str | None = None  # ws://HOST:PORT of the arena whose connected agents play it, by name

    @property
    def specs(self) -> list[AgentSpec]:
        """The parsed agent specs, in the order given (on a server: kind `remote`, the agent of that name)."""
        if self.server:
            return [AgentSpec(name=name, kind=REMOTE) for name in self.agents]
        return [parse_spec(text) for text in self.agents]

    @property
    def names(self) -> list[str]:
        """The agents' names, in the order given (a gauntlet's candidate first)."""
        return [spec.name for spec in self.specs]

    @property
    def policy(self) -> InvalidMovePolicy:
        """The invalid-move policy every game is played with."""
        return InvalidMovePolicy.parse(self.invalid_moves)

    def games_per_pair(self, env_id: str) -> int:
        """Games each group plays in one env (and round): every seed in every seating."""
        return len(self.seeds) * self.seats[env_id]

    def total_games(self) -> int:
        """How many games the whole tournament plays."""
        if self.format is Format.SWISS:
            return self.rounds * sum(len(self.agents) // 2 * self.games_per_pair(env) for env in self.envs)
        return len(fixed_schedule(self.format, self.names, self.seats, self.seeds))

    def first_games(self) -> list[ScheduledGame]:
        """The games stored before play starts: the whole schedule, or a Swiss tournament's first round."""
        if self.format is Format.SWISS:
            return swiss_round(self.names, self.envs, self.seeds, 0, 0, {}, set(), set())[0]
        return fixed_schedule(self.format, self.names, self.seats, self.seeds)


def make_config(fmt: Format, envs: Sequence[str], agents: Sequence[str], games_per_pair: int | None = None,
                rounds: int | None = None, seeds: Sequence[int] | None = None, seed_count: int | None = None,
                move_timeout: float | None = 60.0, invalid_moves: str = "textarena",
                rng: random.Random | None = None, server: str | None = None) -> TournamentConfig:
    """Check the envs, agents (specs; names of connected agents with `server`) and counts against the format
    (FormatError or GameError saying what is wrong) and draw the seeds; nothing is stored or played."""
    names = list(agents) if server else [parse_spec(text).name for text in agents]
    if len(names) < 2:
        raise FormatError("a tournament needs at least two agents")
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise FormatError(f"agent names must differ: {', '.join(twice)} appears twice (name them NAME=SPEC)")
    if len(set(envs)) < len(envs):
        raise FormatError("an env is listed twice")
    seats = {env_id: seat_count(env_id, catalog.require_playable(env_id).players, fmt, len(names)) for env_id in envs}
    rounds = _rounds(fmt, len(names), rounds)
    seeds = _seeds(seats, games_per_pair, seeds, seed_count, rng or random.Random())
    return TournamentConfig(format=fmt, envs=list(envs), agents=list(agents), seats=seats, seeds=seeds,
                            rounds=rounds, move_timeout=move_timeout, invalid_moves=invalid_moves, server=server)


def _rounds(fmt: Format, agents: int, rounds: int | None) -> int:
    """Swiss: the rounds asked for (default ceil(log2 agents)), at most what avoids repeats; others: 1."""
    if fmt is not Format.SWISS:
        if rounds not in (None, 1):
            raise FormatError(f"--rounds is for Swiss tournaments; a {fmt} plays every pairing once "
                              "(play more games per pair instead)")
        return 1
    most = agents - 1 if agents % 2 == 0 else agents
    rounds = rounds if rounds is not None else min(most, max(1, math.ceil(math.log2(agents))))
    if not 1 <= rounds <= most:
        raise FormatError(f"a Swiss tournament of {agents} agents has 1 to {most} rounds without repeat pairings")
    return rounds


def _seeds(seats: dict[str, int], games_per_pair: int | None, seeds: Sequence[int] | None,
           seed_count: int | None, rng: random.Random) -> list[int]:
    """The shared seeds: given, or drawn; their count times the seatings is the games per pair."""
    if seeds is not None and seed_count is not None:
        raise FormatError("give --seeds or --seed-count, not both")
    seatings = set(seats.values())
    if seeds is None:
        if seed_count is None:
            per_pair = games_per_pair if games_per_pair is not None else max(seatings)
            bad = [k for k in seatings if per_pair % k]
            if per_pair < 1 or bad:
                raise FormatError(f"--games-per-pair must be a positive multiple of the seatings per group "
                                  f"({', '.join(map(str, sorted(seatings)))}), so every seating plays each seed")
            seed_count = per_pair // max(seatings)
        if seed_count < 1:
            raise FormatError("--seed-count must be at least 1")
        seeds = rng.sample(range(2**31), seed_count)
    elif len(set(seeds)) < len(seeds) or not seeds:
        raise FormatError("--seeds must be distinct, and at least one")
    if games_per_pair is not None and any(len(seeds) * k != games_per_pair for k in seatings):
        raise FormatError(f"--games-per-pair {games_per_pair} does not match {len(seeds)} seeds "
                          f"x {max(seatings)} seatings")
    return list(seeds)
