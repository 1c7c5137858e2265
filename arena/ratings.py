"""TrueSkill ratings per env and overall, derived from the episode log and rebuildable from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import trueskill
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from arena.store.agents import agent_names
from arena.store.episodes import seat_totals
from arena.store.models import OVERALL, AgentRow, EpisodeRow, RatingHistoryRow, RatingRow, SeatRow, utcnow

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


def ranks(rewards: Sequence[float]) -> list[int]:
    """TrueSkill ranks from rewards: 0 for the highest reward, equal rewards share a rank."""
    ordered = sorted(set(rewards), reverse=True)
    return [ordered.index(r) for r in rewards]


def rate(ratings: Sequence[trueskill.Rating], rewards: Sequence[float]) -> list[trueskill.Rating]:
    """New ratings after one game: 1v1 with draws for two seats, rank of rewards for more."""
    if len(ratings) == 2:
        (a, b), (ra, rb) = ratings, rewards
        drawn = ra == rb
        if ra >= rb:
            return list(trueskill.rate_1vs1(a, b, drawn=drawn, env=TRUESKILL))
        new_b, new_a = trueskill.rate_1vs1(b, a, drawn=False, env=TRUESKILL)
        return [new_a, new_b]
    groups = TRUESKILL.rate([(r,) for r in ratings], ranks=ranks(rewards))
    return [group[0] for group in groups]


def is_rated(status: str, agent_ids: Sequence[int]) -> bool:
    """Finished games between two or more distinct agents are rated; self-play and aborts are not."""
    return status == "finished" and len(agent_ids) >= 2 and len(set(agent_ids)) == len(agent_ids)


_SEATS = (select(SeatRow.agent_id, AgentRow.name, SeatRow.reward, EpisodeRow.env_id, EpisodeRow.status)
          .join(EpisodeRow, EpisodeRow.id == SeatRow.episode_id).join(AgentRow, AgentRow.id == SeatRow.agent_id)
          .where(SeatRow.episode_id == bindparam("episode_id")).order_by(SeatRow.seat))
_STORED = (select(RatingRow.agent_id, RatingRow.env_id, RatingRow.mu, RatingRow.sigma, RatingRow.games)
           .where(RatingRow.agent_id.in_(bindparam("agent_ids", expanding=True)),
                  RatingRow.env_id.in_(bindparam("env_ids", expanding=True))))
_UPDATE = update(RatingRow.__table__).where(RatingRow.__table__.c.agent_id == bindparam("b_agent"),
                                            RatingRow.__table__.c.env_id == bindparam("b_env"))
_INSERT = insert(RatingRow.__table__)
_HISTORY = insert(RatingHistoryRow.__table__)


def apply(session: Session, episode_id: int) -> list[RatingChange]:
    """Update ratings (env and overall) for a finished episode and log the history."""
    connection = session.connection()
    seats = connection.execute(_SEATS, {"episode_id": episode_id}).all()
    agent_ids = [seat.agent_id for seat in seats]
    if not seats or not is_rated(seats[0].status, agent_ids):
        return []
    env_id, rewards = seats[0].env_id, [float(seat.reward or 0.0) for seat in seats]
    stored = {(a, e): (mu, sigma, games) for a, e, mu, sigma, games in connection.execute(
        _STORED, {"agent_ids": agent_ids, "env_ids": [env_id, OVERALL]})}
    names = {seat.agent_id: seat.name for seat in seats}
    changes: list[RatingChange] = []
    for scope in (env_id, OVERALL):
        current = [stored.get((a, scope), (TRUESKILL.mu, TRUESKILL.sigma, 0)) for a in agent_ids]
        new = rate([trueskill.Rating(mu, sigma) for mu, sigma, _ in current], rewards)
        changes += [RatingChange(a, names[a], scope, mu, sigma, r.mu, r.sigma)
                    for a, (mu, sigma, _), r in zip(agent_ids, current, new, strict=True)]
    _write(connection, episode_id, changes, stored)
    return changes


def _write(connection, episode_id: int, changes: list[RatingChange],
           stored: dict[tuple[int, str], tuple[float, float, int]]) -> None:
    """Store new ratings (update or insert) and their history rows, a statement each."""
    now = utcnow()
    rows = [{"b_agent": c.agent_id, "b_env": c.env_id, "mu": c.mu_after, "sigma": c.sigma_after,
             "games": stored.get((c.agent_id, c.env_id), (0, 0, 0))[2] + 1, "updated_at": now} for c in changes]
    existing = [r for r in rows if (r["b_agent"], r["b_env"]) in stored]
    new = [{"agent_id": r.pop("b_agent"), "env_id": r.pop("b_env"), **r}
           for r in rows if (r["b_agent"], r["b_env"]) not in stored]
    if existing:
        connection.execute(_UPDATE, existing)
    if new:
        connection.execute(_INSERT, new)
    connection.execute(_HISTORY, [
        {"episode_id": episode_id, "agent_id": c.agent_id, "env_id": c.env_id, "mu_before": c.mu_before,
         "sigma_before": c.sigma_before, "mu_after": c.mu_after, "sigma_after": c.sigma_after} for c in changes])


@dataclass(frozen=True)
class RebuildReport:
    """What `rebuild` replayed and how the result compared with the stored ratings."""

    episodes: int
    ratings: int
    mismatches: list[tuple[int, str, tuple[float, float, int] | None, tuple[float, float, int] | None]]


def _snapshot(session: Session) -> dict[tuple[int, str], tuple[float, float, int]]:
    rows = session.execute(select(RatingRow.agent_id, RatingRow.env_id, RatingRow.mu, RatingRow.sigma,
                                  RatingRow.games))
    return {(a, e): (mu, sigma, games) for a, e, mu, sigma, games in rows}


def rebuild(session: Session) -> RebuildReport:
    """Recompute every rating by replaying finished episodes in the order they finished."""
    stored = _snapshot(session)
    session.execute(delete(RatingHistoryRow))
    session.execute(delete(RatingRow))
    session.expire_all()
    episode_ids = session.scalars(
        select(EpisodeRow.id).where(EpisodeRow.status == "finished").order_by(EpisodeRow.finished_seq)
    ).all()
    for episode_id in episode_ids:
        apply(session, episode_id)
    rebuilt = _snapshot(session)
    mismatches = [(a, e, stored.get((a, e)), rebuilt.get((a, e)))
                  for a, e in sorted(set(stored) | set(rebuilt))
                  if stored.get((a, e)) != rebuilt.get((a, e))]
    return RebuildReport(episodes=len(episode_ids), ratings=len(rebuilt), mismatches=mismatches)


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
    query = select(RatingRow.agent_id, RatingRow.mu, RatingRow.sigma).where(RatingRow.env_id == scope)
    ratings = {a: (mu, sigma) for a, mu, sigma in session.execute(query)}
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
