"""Streaming reads for exports: the selected episodes in a stable order, a chunk at a time, each with its seats
(marked when a seat filter picks them), turns and rating history, in a few queries per chunk."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, bindparam, exists, func, select, true
from sqlalchemy.engine import Connection, Row

from arena.protocol import GameStatus
from arena.store.models import (
    AgentRow,
    EpisodeRow,
    RatingHistoryRow,
    RatingRow,
    SeatRow,
    TournamentGameRow,
    TournamentRow,
    TurnRow,
)

CHUNK = 256  # episodes read together: their seats, turns and history take one query each


@dataclass(frozen=True)
class Selection:
    """Which episodes and seats to read, as plain values: empty fields select everything."""

    env_ids: tuple[str, ...] = ()
    agent_ids: tuple[int, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    min_rating: float | None = None  # conservative rating (mu - 3 sigma) of the seat's agent in the episode's env
    result: str | None = None
    tournament: str | None = None
    statuses: tuple[str, ...] = (GameStatus.FINISHED,)
    by_position: bool = False  # order by (env id, seed, id), so games of one seed come together; else by id


@dataclass(slots=True)
class StoredSeat:
    """One seat of a stored episode: its agent, result, current rating in the env, and whether a filter picked it."""

    seat: int
    agent_id: int
    agent: str
    reward: float | None
    result: str | None
    invalid_moves: int
    rating: float | None
    selected: bool


@dataclass(slots=True)
class StoredEpisode:
    """One stored episode with its seats, turns (rows in order) and rating history (rows)."""

    id: int
    env_id: str
    seed: int
    num_players: int
    status: str
    reason: str | None
    invalid_policy: str
    started_at: datetime
    ended_at: datetime | None
    tags: list[str]
    tournament: str | None
    seats: list[StoredSeat] = field(default_factory=list)
    turns: list[Row] = field(default_factory=list)
    history: list[Row] = field(default_factory=list)


_RATING = RatingRow.mu - 3 * RatingRow.sigma
_RATED_IN_ENV = and_(RatingRow.agent_id == SeatRow.agent_id, RatingRow.env_id == EpisodeRow.env_id)
_IDS = bindparam("ids", expanding=True)
_TURNS = (select(TurnRow.episode_id, TurnRow.idx, TurnRow.seat, TurnRow.observation, TurnRow.action, TurnRow.invalid,
                 TurnRow.invalid_reason, TurnRow.elapsed, TurnRow.error, TurnRow.info)
          .where(TurnRow.episode_id.in_(_IDS)).order_by(TurnRow.episode_id, TurnRow.idx))
_HISTORY = (select(RatingHistoryRow.episode_id, RatingHistoryRow.agent_id, AgentRow.name.label("agent"),
                   RatingHistoryRow.env_id, RatingHistoryRow.mu_before, RatingHistoryRow.sigma_before,
                   RatingHistoryRow.mu_after, RatingHistoryRow.sigma_after)
            .join(AgentRow, AgentRow.id == RatingHistoryRow.agent_id)
            .where(RatingHistoryRow.episode_id.in_(_IDS)).order_by(RatingHistoryRow.episode_id, RatingHistoryRow.id))


def _seat_filter(selection: Selection) -> ColumnElement[bool]:
    """True for a seat the seat filters pick (the ratings table joined on the seat's agent and env)."""
    conditions: list[ColumnElement[bool]] = []
    if selection.agent_ids:
        conditions.append(SeatRow.agent_id.in_(selection.agent_ids))
    if selection.result:
        conditions.append(SeatRow.result == selection.result)
    if selection.min_rating is not None:
        conditions.append(selection.min_rating <= _RATING)
    return and_(true(), *conditions)


def _has_seat_filter(selection: Selection) -> bool:
    return bool(selection.agent_ids or selection.result or selection.min_rating is not None)


def _episode_filter(selection: Selection) -> list[ColumnElement[bool]]:
    """The conditions on episodes: status, envs, start times, tournament, and a seat the seat filters pick."""
    conditions = [EpisodeRow.status.in_(selection.statuses)]
    if selection.env_ids:
        conditions.append(EpisodeRow.env_id.in_(selection.env_ids))
    if selection.since is not None:
        conditions.append(EpisodeRow.started_at >= selection.since)
    if selection.until is not None:
        conditions.append(EpisodeRow.started_at < selection.until)
    if selection.tournament is not None:
        conditions.append(EpisodeRow.tournament_game_id.in_(
            select(TournamentGameRow.id).join(TournamentRow, TournamentRow.id == TournamentGameRow.tournament_id)
            .where(TournamentRow.name == selection.tournament)))
    if _has_seat_filter(selection):
        conditions.append(exists(select(SeatRow.seat).outerjoin(RatingRow, _RATED_IN_ENV)
                                 .where(SeatRow.episode_id == EpisodeRow.id, _seat_filter(selection))))
    return conditions


def _headers(selection: Selection) -> Select:
    order = (EpisodeRow.env_id, EpisodeRow.seed, EpisodeRow.id) if selection.by_position else (EpisodeRow.id,)
    return (select(EpisodeRow.id, EpisodeRow.env_id, EpisodeRow.seed, EpisodeRow.num_players, EpisodeRow.status,
                   EpisodeRow.reason, EpisodeRow.invalid_policy, EpisodeRow.started_at, EpisodeRow.ended_at,
                   EpisodeRow.tags, TournamentRow.name.label("tournament"))
            .outerjoin(TournamentGameRow, TournamentGameRow.id == EpisodeRow.tournament_game_id)
            .outerjoin(TournamentRow, TournamentRow.id == TournamentGameRow.tournament_id)
            .where(*_episode_filter(selection)).order_by(*order))


def _seats(selection: Selection) -> Select:
    return (select(SeatRow.episode_id, SeatRow.seat, SeatRow.agent_id, AgentRow.name.label("agent"), SeatRow.reward,
                   SeatRow.result, SeatRow.invalid_moves, _RATING.label("rating"),
                   _seat_filter(selection).label("selected"))
            .join(AgentRow, AgentRow.id == SeatRow.agent_id)
            .join(EpisodeRow, EpisodeRow.id == SeatRow.episode_id)
            .outerjoin(RatingRow, _RATED_IN_ENV)
            .where(SeatRow.episode_id.in_(_IDS)).order_by(SeatRow.episode_id, SeatRow.seat))


def count_episodes(connection: Connection, selection: Selection) -> int:
    """How many episodes the selection reads."""
    return connection.execute(select(func.count()).select_from(EpisodeRow)
                              .where(*_episode_filter(selection))).scalar_one()


def read_episodes(connection: Connection, selection: Selection, chunk: int = CHUNK) -> Iterator[list[StoredEpisode]]:
    """The selected episodes in order, `chunk` at a time, each with its seats, turns and rating history."""
    headers = connection.execute(_headers(selection).execution_options(stream_results=True, yield_per=chunk))
    seats = _seats(selection)
    for rows in headers.partitions():
        episodes = {row.id: StoredEpisode(*row) for row in rows}
        ids = {"ids": list(episodes)}
        for row in connection.execute(seats, ids).all():
            episodes[row.episode_id].seats.append(StoredSeat(
                row.seat, row.agent_id, row.agent, row.reward, row.result, row.invalid_moves, row.rating,
                bool(row.selected)))
        for row in connection.execute(_TURNS, ids).all():
            episodes[row.episode_id].turns.append(row)
        for row in connection.execute(_HISTORY, ids).all():
            episodes[row.episode_id].history.append(row)
        yield list(episodes.values())


def unknown_agents(connection: Connection, names: Sequence[str]) -> list[str]:
    """The names in `names` that no stored agent has, in the order given."""
    known = set(connection.execute(select(AgentRow.name).where(AgentRow.name.in_(names))).scalars())
    return [name for name in names if name not in known]


def agent_ids(connection: Connection, names: Sequence[str]) -> tuple[int, ...]:
    """The ids of the stored agents with these names, in id order."""
    return tuple(connection.execute(select(AgentRow.id).where(AgentRow.name.in_(names)).order_by(AgentRow.id))
                 .scalars())


def stored_envs(connection: Connection, env_ids: Sequence[str]) -> set[str]:
    """Which of `env_ids` have stored episodes."""
    return set(connection.execute(select(EpisodeRow.env_id).where(EpisodeRow.env_id.in_(env_ids)).distinct())
               .scalars())


def tournament_exists(connection: Connection, name: str) -> bool:
    """Whether a tournament of that name is stored."""
    return connection.execute(select(TournamentRow.id).where(TournamentRow.name == name)).first() is not None

