"""TrueSkill ratings per env and overall, derived from the episode log and rebuildable from it."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import trueskill
from sqlalchemy import update
from sqlalchemy.orm import Session

from arena.protocol import GameStatus
from arena.store import ratings as rating_rows
from arena.store.agents import agent_names
from arena.store.episodes import seat_totals
from arena.store.models import OVERALL, EpisodeRow
from arena.store.writer import batched

TRUESKILL = trueskill.TrueSkill()  # the package defaults: mu 25, sigma 25/3, draw probability 0.1


@dataclass(frozen=True)
class RatingChange:
    """One agent's rating in one scope (an env or overall) before and after an episode."""

    agent_id: int
    agent: str
    env_id: str
    mu_before: float
    sigma_before: float
    mu_after: float
    sigma_after: float

    @property
    def before(self) -> float:
        """Conservative rating (mu - 3 sigma) before."""
        return self.mu_before - 3 * self.sigma_before

    @property
    def after(self) -> float:
        """Conservative rating (mu - 3 sigma) after."""
        return self.mu_after - 3 * self.sigma_after

    @property
    def change(self) -> float:
        """How much the conservative rating moved."""
        return self.after - self.before


_DRAW_MARGIN = trueskill.calc_draw_margin(TRUESKILL.draw_probability, 2, env=TRUESKILL)


def rate_1vs1(first: trueskill.Rating, second: trueskill.Rating, drawn: bool = False,
              ) -> tuple[trueskill.Rating, trueskill.Rating]:
    """`trueskill.rate_1vs1` in closed form (first beat second, or they drew): equal to it, far cheaper.

    Two players make a factor graph without loops, so one pass of the package's message passing is
    exact; this is that pass written out, with the package's own v/w functions and its dynamics (tau)."""
    var_first = first.sigma**2 + TRUESKILL.tau**2
    var_second = second.sigma**2 + TRUESKILL.tau**2
    c2 = 2 * TRUESKILL.beta**2 + var_first + var_second
    c = math.sqrt(c2)
    t, margin = (first.mu - second.mu) / c, _DRAW_MARGIN / c
    if drawn:
        v, w = TRUESKILL.v_draw(t, margin), TRUESKILL.w_draw(t, margin)
    else:
        v, w = TRUESKILL.v_win(t, margin), TRUESKILL.w_win(t, margin)
    return (trueskill.Rating(first.mu + var_first / c * v, math.sqrt(var_first * (1 - var_first / c2 * w))),
            trueskill.Rating(second.mu - var_second / c * v, math.sqrt(var_second * (1 - var_second / c2 * w))))


def ranks(rewards: Sequence[float]) -> list[int]:
    """TrueSkill ranks from rewards: 0 for the highest reward, equal rewards share a rank."""
    ordered = sorted(set(rewards), reverse=True)
    return [ordered.index(r) for r in rewards]


def rate(ratings: Sequence[trueskill.Rating], rewards: Sequence[float]) -> list[trueskill.Rating]:
    """New ratings after one game: 1v1 with draws for two seats, rank of rewards (the package) for more."""
    if len(ratings) == 2:
        (a, b), (ra, rb) = ratings, rewards
        if ra >= rb:
            return list(rate_1vs1(a, b, drawn=ra == rb))
        new_b, new_a = rate_1vs1(b, a)
        return [new_a, new_b]
    groups = TRUESKILL.rate([(r,) for r in ratings], ranks=ranks(rewards))
    return [group[0] for group in groups]


def rated_agents(status: str, agent_ids: Sequence[int]) -> set[int]:
    """The agents a game rates (the one rule, for live updates and rebuilds alike): in a finished game of two
    or more distinct agents, each agent that holds one seat. An agent holding several seats (the house filling
    a table) is an unrated opponent: its seats take part at its current rating, which the game leaves as it
    was. Aborted games, single-player games and self-play rate nobody."""
    seats = Counter(agent_ids)
    if status != GameStatus.FINISHED or len(seats) < 2:
        return set()
    return {agent_id for agent_id, count in seats.items() if count == 1}


def rate_episodes(session: Session, calls: Sequence[tuple[int]]) -> list[list[RatingChange]]:
    """`rate_episode` for many episodes, in call order, with the ratings held in memory meanwhile."""
    connection = session.connection()
    episode_ids = [episode_id for (episode_id,) in calls]
    seats = rating_rows.episode_seats(connection, episode_ids)
    agent_ids = {seat.agent_id for rows in seats.values() for seat in rows}
    scopes = {rows[0].env_id for rows in seats.values()} | {OVERALL}
    stored = rating_rows.stored_ratings(connection, agent_ids, scopes)
    current, seq, places, history, done = dict(stored), rating_rows.last_rating_seq(connection), [], [], set()
    results: list[list[RatingChange]] = []
    for episode_id in episode_ids:
        rows = seats.get(episode_id, [])
        if not rows or rows[0].rating_seq is not None or rows[0].status == GameStatus.RUNNING or episode_id in done:
            results.append([])  # unknown, already rated, or not over yet
            continue
        done.add(episode_id)
        seq += 1
        places.append((episode_id, seq))
        changes = _rate(rows, current, rated_agents(rows[0].status, [r.agent_id for r in rows]))
        history += [{"episode_id": episode_id, "agent_id": c.agent_id, "env_id": c.env_id, "mu_before": c.mu_before,
                     "sigma_before": c.sigma_before, "mu_after": c.mu_after, "sigma_after": c.sigma_after}
                    for c in changes]
        results.append(changes)
    changed = {key: value for key, value in current.items() if stored.get(key) != value}
    rating_rows.save_ratings(connection, changed, stored, history, places)
    return results


def _rate(seats: Sequence, current: dict[tuple[int, str], tuple[float, float, int]],
          rated: set[int]) -> list[RatingChange]:
    """Rate the `rated` agents of one episode (env and overall) against `current`, which it updates; the other
    seats play at their current ratings and keep them."""
    if not rated:
        return []
    agent_ids, rewards = [s.agent_id for s in seats], [float(s.reward or 0.0) for s in seats]
    changes: list[RatingChange] = []
    for scope in (seats[0].env_id, OVERALL):
        before = [current.get((a, scope), (TRUESKILL.mu, TRUESKILL.sigma, 0)) for a in agent_ids]
        after = rate([trueskill.Rating(mu, sigma) for mu, sigma, _ in before], rewards)
        for seat, (mu, sigma, games), new in zip(seats, before, after, strict=True):
            if seat.agent_id not in rated:
                continue
            current[(seat.agent_id, scope)] = (new.mu, new.sigma, games + 1)
            changes.append(RatingChange(seat.agent_id, seat.name, scope, mu, sigma, new.mu, new.sigma))
    return changes


@batched(rate_episodes)
def rate_episode(session: Session, episode_id: int) -> list[RatingChange]:
    """A write operation: apply an ended episode's ratings (env and overall), log the history, and give
    the episode the next place in the rating order. Only `rated_agents` change rating."""
    return rate_episodes(session, [(episode_id,)])[0]


@dataclass(frozen=True)
class RebuildReport:
    """What `rebuild` replayed and how the result compared with the stored ratings."""

    episodes: int
    ratings: int
    mismatches: list[tuple[int, str, tuple[float, float, int] | None, tuple[float, float, int] | None]]


def rebuild(session: Session) -> RebuildReport:
    """Recompute every rating by replaying the rated episodes in the order they were rated."""
    stored = rating_rows.snapshot(session)
    order = rating_rows.rating_order(session)
    rating_rows.clear(session)
    session.execute(update(EpisodeRow).values(rating_seq=None))
    for episode_id in order:
        rate_episode(session, episode_id)
    rebuilt = rating_rows.snapshot(session)
    mismatches = [(a, e, stored.get((a, e)), rebuilt.get((a, e)))
                  for a, e in sorted(set(stored) | set(rebuilt))
                  if stored.get((a, e)) != rebuilt.get((a, e))]
    return RebuildReport(episodes=len(order), ratings=len(rebuilt), mismatches=mismatches)


@dataclass(frozen=True)
class Standing:
    """One leaderboard line; `rating` is the conservative mu - 3 sigma the board is sorted by."""

    agent: str
    rating: float
    mu: float
    sigma: float
    games: int
    wins: int
    draws: int
    losses: int
    invalid_moves: int


def leaderboard(session: Session, env_id: str | None = None, agent_ids: Sequence[int] | None = None,
                episode_ids: Sequence[int] | None = None) -> list[Standing]:
    """Agents by conservative rating in one env (or overall), with their game totals."""
    scope = env_id or OVERALL
    ratings = rating_rows.ratings_in(session, scope)
    totals = seat_totals(session, env_id, agent_ids, episode_ids)
    ids = set(totals) | (set(ratings) if agent_ids is None else set(ratings) & set(agent_ids))
    names = agent_names(session, list(ids))
    standings = []
    for agent_id in ids:
        mu, sigma = ratings.get(agent_id, (TRUESKILL.mu, TRUESKILL.sigma))
        t = totals.get(agent_id, {"games": 0, "win": 0, "draw": 0, "loss": 0, "invalid": 0})
        standings.append(Standing(names[agent_id], mu - 3 * sigma, mu, sigma, t["games"], t["win"], t["draw"],
                                  t["loss"], t["invalid"]))
    return sorted(standings, key=lambda s: (-s.rating, s.agent))


def win_probability(first: trueskill.Rating, second: trueskill.Rating) -> float:
    """TrueSkill's chance that `first` beats `second` (draws split evenly): Phi(dmu / sqrt(2 beta^2 + s1^2 + s2^2))."""
    spread = math.sqrt(2 * TRUESKILL.beta**2 + first.sigma**2 + second.sigma**2)
    return TRUESKILL.cdf((first.mu - second.mu) / spread)
