"""Database tables: agents, episodes and their seats, turns, ratings, rating history and tournaments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

OVERALL = "*"  # the env_id of the overall rating


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A time stored in UTC and read back with its zone on every backend (SQLite's DATETIME keeps none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Aware times are stored as UTC; naive ones are taken to be UTC already."""
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Every time read back is aware, in UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base for every table."""


class AgentRow(Base):
    """A player known to the arena: a house agent, a remote agent, a guest."""

    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(50))
    spec: Mapped[str] = mapped_column(Text, default="")
    token_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class EpisodeRow(Base):
    """One game: which env, which seed, who sat where, how it ended."""

    __tablename__ = "episodes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    env_id: Mapped[str] = mapped_column(String(200), index=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    num_players: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), index=True, default="running")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    invalid_policy: Mapped[str] = mapped_column(String(50), default="textarena")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    rating_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True, nullable=True)  # rating order
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    tournament_game_id: Mapped[int | None] = mapped_column(
        ForeignKey("tournament_games.id", ondelete="SET NULL"), nullable=True, index=True)
    seats: Mapped[list[SeatRow]] = relationship(order_by="SeatRow.seat", back_populates="episode")
    __table_args__ = (  # a scheduled game is finished by one episode at most, however often it was tried
        Index("uq_episodes_finished_tournament_game", "tournament_game_id", unique=True,
              sqlite_where=text("status = 'finished'"), postgresql_where=text("status = 'finished'")),
    )


class SeatRow(Base):
    """One seat of an episode: its agent and, once finished, its reward and result."""

    __tablename__ = "episode_seats"
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), primary_key=True)
    seat: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    reward: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[str | None] = mapped_column(String(10), nullable=True)  # win / draw / loss
    invalid_moves: Mapped[int] = mapped_column(Integer, default=0)
    episode: Mapped[EpisodeRow] = relationship(back_populates="seats")
    agent: Mapped[AgentRow] = relationship()


class TurnRow(Base):
    """One action in an episode, with the observation the seat saw."""

    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("episode_id", "idx"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    seat: Mapped[int] = mapped_column(Integer)
    observation: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    invalid: Mapped[bool] = mapped_column(Boolean, default=False)
    invalid_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    elapsed: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RatingRow(Base):
    """An agent's current TrueSkill rating in one env, or overall (env_id '*')."""

    __tablename__ = "ratings"
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    env_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    mu: Mapped[float] = mapped_column(Float)
    sigma: Mapped[float] = mapped_column(Float)
    games: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class RatingHistoryRow(Base):
    """A rating before and after one episode."""

    __tablename__ = "rating_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    env_id: Mapped[str] = mapped_column(String(200))
    mu_before: Mapped[float] = mapped_column(Float)
    sigma_before: Mapped[float] = mapped_column(Float)
    mu_after: Mapped[float] = mapped_column(Float)
    sigma_after: Mapped[float] = mapped_column(Float)


class TournamentRow(Base):
    """A tournament: its name, format and settings, and whether it is still being played."""

    __tablename__ = "tournaments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    format: Mapped[str] = mapped_column(String(20))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="running")
    runner: Mapped[str | None] = mapped_column(String(300), nullable=True)  # host:pid of the process playing it
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class TournamentGameRow(Base):
    """One scheduled game of a tournament, stored before it is played; an episode that finishes it links here."""

    __tablename__ = "tournament_games"
    __table_args__ = (UniqueConstraint("tournament_id", "idx"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tournament_id: Mapped[int] = mapped_column(ForeignKey("tournaments.id", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column(Integer)  # place in the schedule: ratings are applied in this order
    round: Mapped[int] = mapped_column(Integer)
    env_id: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(BigInteger)
    seats: Mapped[list[str]] = mapped_column(JSON)  # agent names in seat order
