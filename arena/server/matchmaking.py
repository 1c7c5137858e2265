"""Pairing waiting players: per-env queues, TrueSkill match quality that widens with the wait, house fill;
and direct challenges, which seat named agents as soon as each of them waits."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import trueskill

from arena import protocol
from arena.ratings import TRUESKILL
from arena.server.players import Player

START_QUALITY = 0.4  # two new players (quality about 0.447) pair at once; worse pairs wait
MAX_CANDIDATES = 64  # opponents scored per waiting player and pass, oldest first


@dataclass(eq=False)
class Ticket:
    """One player waiting for a game of any of `envs`."""

    player: Player
    envs: list[str]
    needs: dict[str, int]  # env id -> seats a game takes
    opponent: str | None
    self_play: bool
    since: float
    ratings: dict[str, tuple[float, float]]
    told: float = 0.0  # when the player last heard its queue position

    def rating(self, env_id: str) -> trueskill.Rating:
        """This player's rating in `env_id` (defaults for a newcomer)."""
        mu, sigma = self.ratings.get(env_id, (TRUESKILL.mu, TRUESKILL.sigma))
        return trueskill.Rating(mu, sigma)


@dataclass(eq=False)
class WaitingChallenge:
    """A challenge waiting until every connected agent it names (`remote`) is idle and queued for its env."""

    challenger: Player
    request: protocol.Challenge
    remote: list[str]
    absent_since: float | None = None  # since when one of `remote` has had no connection


@dataclass(frozen=True)
class Pairing:
    """A game to start: the env, the waiting players, and the house agents that fill the other seats; for a
    challenge, the request, whose seat order and seed the game keeps."""

    env_id: str
    tickets: list[Ticket]
    house: list[str]
    challenge: WaitingChallenge | None = None


def start_challenges(challenges: Sequence[WaitingChallenge], tickets: Sequence[Ticket]) -> list[Pairing]:
    """The challenges that can start now, in the order received: each agent they name is queued for the env
    and in no game; a ticket serves one challenge."""
    idle: dict[str, list[Ticket]] = {}  # agent name -> its waiting connections that hold no seat
    for ticket in tickets:
        if not ticket.player.seats:
            idle.setdefault(ticket.player.name, []).append(ticket)
    taken: set[int] = set()
    pairings: list[Pairing] = []
    for challenge in challenges:
        env_id = challenge.request.env_id
        chosen = [next((t for t in idle.get(name, ()) if id(t) not in taken and env_id in t.envs), None)
                  for name in challenge.remote]
        if None not in chosen:
            taken.update(id(t) for t in chosen)
            house = [name for name in challenge.request.seats if name not in challenge.remote]
            pairings.append(Pairing(env_id, chosen, house, challenge))
    return pairings


def quality_1vs1(a: trueskill.Rating, b: trueskill.Rating) -> float:
    """TrueSkill's 1v1 match quality in closed form (equal to `trueskill.quality_1vs1`, far cheaper)."""
    spread = 2 * TRUESKILL.beta**2 + a.sigma**2 + b.sigma**2
    return math.sqrt(2 * TRUESKILL.beta**2 / spread) * math.exp(-((a.mu - b.mu) ** 2) / (2 * spread))


def required_quality(waited: float, widen_s: float) -> float:
    """The least match quality accepted after waiting `waited` seconds; zero once `widen_s` has passed."""
    return START_QUALITY * max(0.0, 1.0 - waited / widen_s) if widen_s > 0 else 0.0


def compatible(a: Ticket, b: Ticket, env_id: str) -> bool:
    """Whether b may join a's game of `env_id`."""
    if env_id not in b.envs:
        return False
    if a.player.agent_id == b.player.agent_id and not (a.self_play or b.self_play):
        return False
    if a.opponent and a.opponent != b.player.name:
        return False
    return not (b.opponent and b.opponent != a.player.name)


def find_matches(tickets: Sequence[Ticket], now: float, house_wait: float, house: Sequence[str],
                 rng: random.Random) -> list[Pairing]:
    """Games that can start now, oldest tickets first; each ticket is used at most once."""
    ordered = sorted(tickets, key=lambda t: t.since)
    queues: dict[str, list[Ticket]] = {}  # env id -> its waiting tickets, oldest first
    for ticket in ordered:
        for env_id in ticket.envs:
            queues.setdefault(env_id, []).append(ticket)
    taken: set[int] = set()
    pairings: list[Pairing] = []
    for ticket in ordered:
        if id(ticket) in taken:
            continue
        pairing = _pair(ticket, queues, taken, now, house_wait, house, rng)
        if pairing:
            taken.update(id(t) for t in pairing.tickets)
            pairings.append(pairing)
    return pairings


def _pair(ticket: Ticket, queues: dict[str, list[Ticket]], taken: set[int], now: float, house_wait: float,
          house: Sequence[str], rng: random.Random) -> Pairing | None:
    waited = now - ticket.since
    for env_id in ticket.envs:
        need = ticket.needs[env_id] - 1
        if need == 0:
            return Pairing(env_id, [ticket], [])
        if ticket.opponent in house:
            return Pairing(env_id, [ticket], [ticket.opponent] + [rng.choice(house) for _ in range(need - 1)])
        waiting = (t for t in queues[env_id]
                   if t is not ticket and id(t) not in taken and compatible(ticket, t, env_id))
        candidates = list(itertools.islice(waiting, max(need, MAX_CANDIDATES)))  # the oldest ones
        chosen = _best(ticket, candidates, env_id, need, max(waited, _oldest(candidates, now)), house_wait)
        if chosen is not None:
            return Pairing(env_id, [ticket, *chosen], [])
        if waited >= house_wait and house and not ticket.opponent:
            fill = candidates[:need - 1]
            return Pairing(env_id, [ticket, *fill], [rng.choice(house) for _ in range(need - len(fill))])
    return None


def _best(ticket: Ticket, candidates: list[Ticket], env_id: str, need: int, waited: float,
          widen_s: float) -> list[Ticket] | None:
    """The best opponent by match quality (1v1), or the oldest `need` candidates for bigger games."""
    if need > 1:
        return candidates[:need] if len(candidates) >= need else None
    mine = ticket.rating(env_id)
    scored = [(quality_1vs1(mine, c.rating(env_id)), c) for c in candidates[:MAX_CANDIDATES]]
    if not scored:
        return None
    quality, best = max(scored, key=lambda pair: pair[0])
    return [best] if quality >= required_quality(waited, widen_s) else None


def _oldest(candidates: list[Ticket], now: float) -> float:
    return max((now - c.since for c in candidates), default=0.0)
