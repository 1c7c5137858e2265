"""Tournaments: their settings, their stored schedules, and the episodes that played them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, func, insert, select, update
from sqlalchemy.orm import Session

from arena.protocol import GameStatus
from arena.store.models import AgentRow, EpisodeRow, SeatRow, TournamentGameRow, TournamentRow, TurnRow, utcnow

INTERRUPTED = "aborted: the tournament's process stopped during the game; resume plays it again"


class TournamentExists(ValueError):
    """A tournament of that name is already stored."""


@dataclass(frozen=True)
class PlayedGame:
    """A scheduled game and, once an episode finished it, that episode's rewards per seat."""

    id: int
    idx: int
    round: int
    env_id: str
    seed: int
    seats: list[str]
    episode_id: int | None
    rewards: list[float] | None


def create_tournament(session: Session, name: str, fmt: str, config: dict[str, Any],
                      games: Sequence[dict[str, Any]]) -> int:
    """Store a tournament and the first part of its schedule; TournamentExists if the name is taken."""
    if session.scalar(select(TournamentRow.id).where(TournamentRow.name == name)) is not None:
        raise TournamentExists(f"a tournament named '{name}' exists: pick another name, or "
                               f"`arena tournament resume {name}`")
    row = TournamentRow(name=name, format=fmt, config=config, status="running")
    session.add(row)
    session.flush()
    add_games(session, row.id, games)
    return row.id


def add_games(session: Session, tournament_id: int, games: Sequence[dict[str, Any]]) -> None:
    """Store scheduled games (dicts of idx, round, env_id, seed, seats) before they are played."""
    if games:
        session.connection().execute(insert(TournamentGameRow.__table__),
                                     [{**game, "tournament_id": tournament_id} for game in games])


def claim(session: Session, tournament_id: int, runner: str) -> int:
    """Note which process plays the tournament now, and abort the episodes a stopped one left running;
    returns how many were aborted."""
    session.execute(update(TournamentRow).where(TournamentRow.id == tournament_id)
                    .values(runner=runner, status="running", ended_at=None))
    scheduled = select(TournamentGameRow.id).where(TournamentGameRow.tournament_id == tournament_id)
    aborted = session.execute(update(EpisodeRow)
                              .where(EpisodeRow.tournament_game_id.in_(scheduled),
                                     EpisodeRow.status == GameStatus.RUNNING)
                              .values(status=GameStatus.ABORTED, reason=INTERRUPTED, ended_at=utcnow()))
    return aborted.rowcount


def finish(session: Session, tournament_id: int) -> None:
    """Mark a tournament whose every game is played as finished."""
    session.execute(update(TournamentRow).where(TournamentRow.id == tournament_id)
                    .values(status="finished", runner=None, ended_at=utcnow()))


def release(session: Session, tournament_id: int) -> None:
    """Forget the process playing a tournament (it stopped before the end)."""
    session.execute(update(TournamentRow).where(TournamentRow.id == tournament_id).values(runner=None))


def get_tournament(session: Session, name: str) -> TournamentRow | None:
    """The tournament of that name, or None."""
    return session.scalar(select(TournamentRow).where(TournamentRow.name == name))


def tournament_names(session: Session) -> list[str]:
    """Every stored tournament's name, oldest first."""
    return list(session.scalars(select(TournamentRow.name).order_by(TournamentRow.id)))


def played_games(session: Session, tournament_id: int) -> list[PlayedGame]:
    """The schedule in order, each game with the episode that finished it (if any) and its rewards."""
    finished = (select(EpisodeRow.id, EpisodeRow.tournament_game_id)
                .where(EpisodeRow.status == GameStatus.FINISHED, EpisodeRow.tournament_game_id.is_not(None))
                .subquery())
    rows = session.execute(
        select(TournamentGameRow, finished.c.id)
        .outerjoin(finished, finished.c.tournament_game_id == TournamentGameRow.id)
        .where(TournamentGameRow.tournament_id == tournament_id).order_by(TournamentGameRow.idx)).all()
    episode_ids = [episode_id for _, episode_id in rows if episode_id is not None]
    rewards: dict[int, dict[int, float]] = {}
    for episode_id, seat, reward in session.execute(
            select(SeatRow.episode_id, SeatRow.seat, SeatRow.reward).where(SeatRow.episode_id.in_(episode_ids))):
        rewards.setdefault(episode_id, {})[seat] = float(reward or 0.0)
    return [PlayedGame(g.id, g.idx, g.round, g.env_id, g.seed, list(g.seats), episode_id,
                       None if episode_id is None else [rewards[episode_id][s] for s in range(len(g.seats))])
            for g, episode_id in rows]


def attempts(session: Session, tournament_id: int) -> dict[str, int]:
    """How many episodes tried the tournament's games, by status (aborted tries were played again)."""
    scheduled = select(TournamentGameRow.id).where(TournamentGameRow.tournament_id == tournament_id)
    return dict(session.execute(select(EpisodeRow.status, func.count()).where(
        EpisodeRow.tournament_game_id.in_(scheduled)).group_by(EpisodeRow.status)).all())


@dataclass(frozen=True)
class Conduct:
    """What an agent's turns in a tournament cost and how they went."""

    turns: int
    invalid: int
    timeouts: int
    errors: int
    seconds: float
    prompt_tokens: int
    completion_tokens: int


def conduct(session: Session, episode_ids: Sequence[int]) -> dict[str, Conduct]:
    """Per agent name, over the turns of some episodes: moves, invalid moves, timeouts, other failures,
    time and tokens (as the agents reported them)."""
    timeout = TurnRow.error.like("timeout:%")
    query = (
        select(AgentRow.name, func.count(), func.sum(TurnRow.invalid.cast(Integer)),
               func.sum(timeout.cast(Integer)), func.sum((TurnRow.error.is_not(None) & ~timeout).cast(Integer)),
               func.sum(TurnRow.elapsed), func.sum(TurnRow.info["prompt_tokens"].as_integer()),
               func.sum(TurnRow.info["completion_tokens"].as_integer()))
        .select_from(TurnRow)
        .join(SeatRow, (SeatRow.episode_id == TurnRow.episode_id) & (SeatRow.seat == TurnRow.seat))
        .join(AgentRow, AgentRow.id == SeatRow.agent_id)
        .where(TurnRow.episode_id.in_(episode_ids))
        .group_by(AgentRow.name))
    return {name: Conduct(turns, int(invalid or 0), int(timeouts or 0), int(errors or 0), float(seconds or 0.0),
                          int(prompt or 0), int(completion or 0))
            for name, turns, invalid, timeouts, errors, seconds, prompt, completion in session.execute(query)}
