"""TrueSkill ratings per env and overall, derived from the episode log and rebuildable from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import trueskill
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from arena.store.agents import agent_names
from arena.store.episodes import seat_totals
from arena.store.models import OVERALL, EpisodeRow, RatingHistoryRow, RatingRow, utcnow

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


def is_rated(episode: EpisodeRow) -> bool:
    """Finished games between two or more distinct agents are rated; self-play and aborts are not."""
    agents = [seat.agent_id for seat in episode.seats]
    return episode.status == "finished" and len(agents) >= 2 and len(set(agents)) == len(agents)


def apply(session: Session, episode_id: int) -> list[RatingChange]:
    """Update ratings (env and overall) for a finished episode and log the history."""
    episode = session.get_one(EpisodeRow, episode_id)
    if not is_rated(episode):
        return []
    agent_ids = [seat.agent_id for seat in episode.seats]
    rewards = [float(seat.reward or 0.0) for seat in episode.seats]
    names = agent_names(session, agent_ids)
    changes: list[RatingChange] = []
    for scope in (episode.env_id, OVERALL):
        rows = [_rating_row(session, agent_id, scope) for agent_id in agent_ids]
        new = rate([trueskill.Rating(row.mu, row.sigma) for row in rows], rewards)
        for row, rating in zip(rows, new, strict=True):
            change = RatingChange(row.agent_id, names[row.agent_id], scope, row.mu, row.sigma,
                                  rating.mu, rating.sigma)
            row.mu, row.sigma, row.games, row.updated_at = rating.mu, rating.sigma, row.games + 1, utcnow()
            session.add(RatingHistoryRow(episode_id=episode_id, agent_id=row.agent_id, env_id=scope,
                                         mu_before=change.mu_before, sigma_before=change.sigma_before,
                                         mu_after=change.mu_after, sigma_after=change.sigma_after))
            changes.append(change)
    session.flush()
    return changes


def _rating_row(session: Session, agent_id: int, env_id: str) -> RatingRow:
    row = session.get(RatingRow, (agent_id, env_id))
    if row is None:
        row = RatingRow(agent_id=agent_id, env_id=env_id, mu=TRUESKILL.mu, sigma=TRUESKILL.sigma, games=0)
        session.add(row)
    return row


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
    """One leaderboard line."""

    agent: str
    mu: float
    sigma: float
    games: int
    wins: int
    draws: int
    losses: int
    invalid_moves: int

    @property
    def rating(self) -> float:
        """The conservative rating the board is sorted by: mu - 3 sigma."""
        return self.mu - 3 * self.sigma


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
        standings.append(Standing(names[agent_id], mu, sigma, t["games"], t["win"], t["draw"], t["loss"],
                                  t["invalid"]))
    return sorted(standings, key=lambda s: (-s.rating, s.agent))
