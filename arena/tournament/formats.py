"""Tournament formats as pure functions: who meets whom, and the games that makes (seatings x shared seeds).

Every group of agents plays every seed once in each rotation of its seats, so first-player advantage
cancels out and every group faces the same deals. Round-robin and gauntlet schedules are known up
front; Swiss pairs each round from the standings so far (see `swiss_pairs`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import networkx as nx


class Format(StrEnum):
    """How agents are grouped into games."""

    ROUND_ROBIN = "round-robin"
    SWISS = "swiss"
    GAUNTLET = "gauntlet"


class FormatError(ValueError):
    """The agents, envs or rounds do not fit the format."""


@dataclass(frozen=True)
class ScheduledGame:
    """One game of a schedule: its place, its round, the env and seed, and the agents in seat order."""

    idx: int
    round: int
    env_id: str
    seed: int
    seats: tuple[str, ...]


def seat_count(env_id: str, players: Sequence[int], fmt: Format, agents: int) -> int:
    """The seats per game of `env_id` in this format: two where the game allows it; FormatError if none fits."""
    if 2 in players:
        return 2
    if fmt is not Format.ROUND_ROBIN:
        raise FormatError(f"{fmt} pairs two agents, but {env_id} takes {_players_text(players)} players")
    fitting = [p for p in players if 2 <= p <= agents]
    if not fitting:
        raise FormatError(f"{env_id} takes {_players_text(players)} players; "
                          f"a round-robin of {agents} agents needs a game for 2 to {agents}")
    return fitting[0]


def _players_text(players: Sequence[int]) -> str:
    return ",".join(map(str, players)) or "no"


def rotations(group: Sequence[str]) -> list[tuple[str, ...]]:
    """Every seating of a group in which each agent takes each seat once (rotations)."""
    return [(*group[i:], *group[:i]) for i in range(len(group))]


def round_robin_rounds(agents: Sequence[str], seats: int) -> list[list[tuple[str, ...]]]:
    """Every group of `seats` agents once. Pairs come in rounds where each agent plays at most once
    (the circle method); larger groups all come in one round."""
    if seats != 2:
        return [list(itertools.combinations(agents, seats))]
    circle = [*agents, None] if len(agents) % 2 else list(agents)
    rounds = []
    for _ in range(len(circle) - 1):
        half = len(circle) // 2
        pairs = [(a, b) for a, b in zip(circle[:half], reversed(circle[half:]), strict=True)]
        rounds.append([(a, b) for a, b in pairs if a is not None and b is not None])
        circle = [circle[0], circle[-1], *circle[1:-1]]
    return rounds


def gauntlet_round(agents: Sequence[str]) -> list[tuple[str, str]]:
    """The candidate (the first agent) against each agent of the field."""
    candidate, *field = agents
    return [(candidate, opponent) for opponent in field]


def swiss_pairs(scores: Mapping[str, float], met: set[frozenset[str]], byes: set[str]
                ) -> tuple[list[tuple[str, str]], str | None]:
    """One Swiss round: pairs of agents with scores as close as possible who have not met, and a bye
    for an odd agent out (the lowest-scored one without a bye yet).

    A maximum-weight perfect matching (networkx's blossom algorithm) over the pairs that have not met,
    each weighted by minus the squared score difference, pairs everyone with the closest scores the
    repeat rule allows. Ties go to the order of `scores` (seeding). FormatError if no pairing without
    a repeat exists (more rounds than the field allows)."""
    order = list(scores)
    bye = None
    if len(order) % 2:
        candidates = [a for a in order if a not in byes] or order
        bye = min(reversed(candidates), key=lambda a: scores[a])  # the lowest score; the last seeded on ties
        order.remove(bye)
    graph = nx.Graph()
    graph.add_nodes_from(order)
    spread = max(scores.values(), default=0) - min(scores.values(), default=0) + 1
    for (i, a), (j, b) in itertools.combinations(enumerate(order), 2):
        if frozenset((a, b)) not in met:  # closer scores weigh more; seeding order breaks ties
            graph.add_edge(a, b, weight=(spread**2 - (scores[a] - scores[b]) ** 2) * len(order) ** 2 - abs(i - j))
    matching = nx.max_weight_matching(graph, maxcardinality=True)
    if 2 * len(matching) < len(order):
        raise FormatError("no Swiss pairing without a repeat is left: use fewer rounds")
    pairs = [tuple(sorted(pair, key=order.index)) for pair in matching]
    return sorted(pairs, key=lambda pair: order.index(pair[0])), bye


def games_of(groups: Sequence[tuple[str, ...]], env_id: str, seeds: Sequence[int], round_: int,
             start: int) -> list[ScheduledGame]:
    """The games of some groups in one env and round: each seed in every seating, numbered from `start`."""
    games = []
    for group in groups:
        for seed in seeds:
            for seating in rotations(group):
                games.append(ScheduledGame(start + len(games), round_, env_id, seed, seating))
    return games


def fixed_schedule(fmt: Format, agents: Sequence[str], seats: Mapping[str, int], seeds: Sequence[int]
                   ) -> list[ScheduledGame]:
    """The whole schedule of a round-robin or a gauntlet: round by round, env by env."""
    by_env = {env_id: (round_robin_rounds(agents, k) if fmt is Format.ROUND_ROBIN else [gauntlet_round(agents)])
              for env_id, k in seats.items()}
    games: list[ScheduledGame] = []
    for round_ in range(max(len(rounds) for rounds in by_env.values())):
        for env_id, rounds in by_env.items():
            if round_ < len(rounds):
                games += games_of(rounds[round_], env_id, seeds, round_, len(games))
    return games


def swiss_round(agents: Sequence[str], envs: Sequence[str], seeds: Sequence[int], round_: int, start: int,
                scores: Mapping[str, float], met: set[frozenset[str]], byes: set[str]
                ) -> tuple[list[ScheduledGame], str | None]:
    """The games of one Swiss round (every env, every seed, both seatings) and who sits it out."""
    pairs, bye = swiss_pairs({a: scores.get(a, 0.0) for a in agents}, met, byes)
    games: list[ScheduledGame] = []
    for env_id in envs:
        games += games_of(pairs, env_id, seeds, round_, start + len(games))
    return games, bye
