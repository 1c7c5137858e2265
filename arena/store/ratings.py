"""Rating rows: reading an episode's seats and the ratings they hold, writing new ratings and history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session

from arena.protocol import GameStatus
from arena.store.models import AgentRow, EpisodeRow, RatingHistoryRow, RatingRow, SeatRow, utcnow

Stored = dict[tuple[int, str], tuple[float, float, int]]  # (agent id, scope) -> (mu, sigma, games)

_SEATS = (select(SeatRow.episode_id, SeatRow.agent_id, AgentRow.name, SeatRow.reward, EpisodeRow.env_id,
                 EpisodeRow.status, EpisodeRow.rating_seq)
          .join(EpisodeRow, EpisodeRow.id == SeatRow.episode_id).join(AgentRow, AgentRow.id == SeatRow.agent_id)
          .where(SeatRow.episode_id.in_(bindparam("episode_ids", expanding=True)))
          .order_by(SeatRow.episode_id, SeatRow.seat))
_STORED = (select(RatingRow.agent_id, RatingRow.env_id, RatingRow.mu, RatingRow.sigma, RatingRow.games)
           .where(RatingRow.agent_id.in_(bindparam("agent_ids", expanding=True)),
                  RatingRow.env_id.in_(bindparam("env_ids", expanding=True))))
_UPDATE = update(RatingRow.__table__).where(RatingRow.__table__.c.agent_id == bindparam("b_agent"),
                                            RatingRow.__table__.c.env_id == bindparam("b_env"))
_INSERT = insert(RatingRow.__table__)
_HISTORY = insert(RatingHistoryRow.__table__)
_LAST_SEQ = select(func.coalesce(func.max(EpisodeRow.rating_seq), 0))
_SET_SEQ = (update(EpisodeRow.__table__).where(EpisodeRow.__table__.c.id == bindparam("b_id"))
            .values(rating_seq=bindparam("b_seq")))


def episode_seats(connection: Connection, episode_ids: Sequence[int]) -> dict[int, list[Row]]:
    """Each episode's seats in order: agent id and name, reward, env id, status and rating_seq."""
    seats: dict[int, list[Row]] = {}
    for row in connection.execute(_SEATS, {"episode_ids": list(episode_ids)}):
        seats.setdefault(row.episode_id, []).append(row)
    return seats


def stored_ratings(connection: Connection, agent_ids: Iterable[int], scopes: Iterable[str]) -> Stored:
    """The stored (mu, sigma, games) of these agents in these scopes (missing ones are absent)."""
    rows = connection.execute(_STORED, {"agent_ids": list(agent_ids), "env_ids": list(scopes)})
    return {(a, e): (mu, sigma, games) for a, e, mu, sigma, games in rows}


def last_rating_seq(connection: Connection) -> int:
    """The highest place in the rating order so far (0 when nothing was rated)."""
    return connection.execute(_LAST_SEQ).scalar_one()


def save_ratings(connection: Connection, ratings: Stored, existing: Iterable[tuple[int, str]],
                 history: Sequence[dict[str, Any]], places: Sequence[tuple[int, int]]) -> None:
    """Write new ratings (update the `existing` keys, insert the others), history rows, and the
    episodes' places in the rating order ((episode id, rating_seq) pairs)."""
    now, existing = utcnow(), set(existing)
    rows = [{"b_agent": a, "b_env": e, "mu": mu, "sigma": sigma, "games": games, "updated_at": now}
            for (a, e), (mu, sigma, games) in ratings.items()]
    updates = [r for r in rows if (r["b_agent"], r["b_env"]) in existing]
    inserts = [{"agent_id": r.pop("b_agent"), "env_id": r.pop("b_env"), **r}
               for r in rows if (r["b_agent"], r["b_env"]) not in existing]
    if updates:
        connection.execute(_UPDATE, updates)
    if inserts:
        connection.execute(_INSERT, inserts)
    if history:
        connection.execute(_HISTORY, list(history))
    if places:
        connection.execute(_SET_SEQ, [{"b_id": episode_id, "b_seq": seq} for episode_id, seq in places])


def snapshot(session: Session) -> Stored:
    """Every stored rating."""
    rows = session.execute(select(RatingRow.agent_id, RatingRow.env_id, RatingRow.mu, RatingRow.sigma,
                                  RatingRow.games))
    return {(a, e): (mu, sigma, games) for a, e, mu, sigma, games in rows}


def clear(session: Session) -> None:
    """Delete every rating and its history (before a rebuild)."""
    session.execute(delete(RatingHistoryRow))
    session.execute(delete(RatingRow))
    session.expire_all()


def rating_order(session: Session) -> list[int]:
    """Episodes whose ratings were applied, in the order they were applied."""
    return list(session.scalars(select(EpisodeRow.id).where(EpisodeRow.rating_seq.is_not(None))
                                .order_by(EpisodeRow.rating_seq)))


def unrated_finished(session: Session) -> list[int]:
    """Finished episodes whose ratings were never applied (a process stopped in between), oldest first."""
    return list(session.scalars(select(EpisodeRow.id).where(EpisodeRow.status == GameStatus.FINISHED,
                                                            EpisodeRow.rating_seq.is_(None))
                                .order_by(EpisodeRow.id)))


def ratings_in(session: Session, scope: str) -> dict[int, tuple[float, float]]:
    """(mu, sigma) per agent id in one scope (an env id, or '*' overall)."""
    query = select(RatingRow.agent_id, RatingRow.mu, RatingRow.sigma).where(RatingRow.env_id == scope)
    return {a: (mu, sigma) for a, mu, sigma in session.execute(query)}


@dataclass(frozen=True)
class RatedAgent:
    """An agent rated in some scope: its name, how it was built, and its rating there."""

    name: str
    kind: str
    spec: str
    mu: float
    sigma: float


def rated_agents(session: Session, scope: str) -> list[RatedAgent]:
    """The agents rated in one scope, with their specs, by name."""
    query = (select(AgentRow.name, AgentRow.kind, AgentRow.spec, RatingRow.mu, RatingRow.sigma)
             .join(RatingRow, RatingRow.agent_id == AgentRow.id).where(RatingRow.env_id == scope)
             .order_by(AgentRow.name))
    return [RatedAgent(*row) for row in session.execute(query)]


def ratings_of(session: Session, agent_id: int) -> dict[str, tuple[float, float]]:
    """(mu, sigma) per scope of one agent."""
    query = select(RatingRow.env_id, RatingRow.mu, RatingRow.sigma).where(RatingRow.agent_id == agent_id)
    return {env_id: (mu, sigma) for env_id, mu, sigma in session.execute(query)}


@dataclass(frozen=True)
class HistoryPoint:
    """An agent's rating in one scope before and after one episode, and when that episode ended."""

    episode_id: int
    env_id: str
    at: datetime | None
    mu_before: float
    sigma_before: float
    mu: float
    sigma: float


def rating_history(session: Session, agent_id: int, scope: str) -> list[HistoryPoint]:
    """Every rating change of an agent in one scope (an env id, or OVERALL), in the order they were applied."""
    rows = session.execute(
        select(RatingHistoryRow, EpisodeRow.ended_at).join(EpisodeRow, EpisodeRow.id == RatingHistoryRow.episode_id)
        .where(RatingHistoryRow.agent_id == agent_id, RatingHistoryRow.env_id == scope)
        .order_by(RatingHistoryRow.id))
    return [HistoryPoint(h.episode_id, h.env_id, ended, h.mu_before, h.sigma_before, h.mu_after, h.sigma_after)
            for h, ended in rows]
