"""Reading and writing agents, episodes and turns (plain values in, rows out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session, selectinload

from arena.protocol import GameResult, GameStatus
from arena.store.models import AgentRow, EpisodeRow, SeatRow, TurnRow, utcnow
from arena.store.writer import batched

_NEW_EPISODE = insert(EpisodeRow.__table__).returning(EpisodeRow.__table__.c.id, sort_by_parameter_order=True)
_NEW_SEATS = insert(SeatRow.__table__)
_NEW_TURNS = insert(TurnRow.__table__)
_FINISH = (update(EpisodeRow.__table__).where(EpisodeRow.__table__.c.id == bindparam("b_id"))
           .values(status=bindparam("b_status"), reason=bindparam("b_reason"), ended_at=bindparam("b_ended")))
_SEAT_RESULT = (update(SeatRow.__table__)
                .where(SeatRow.__table__.c.episode_id == bindparam("b_episode"),
                       SeatRow.__table__.c.seat == bindparam("b_seat"))
                .values(reward=bindparam("b_reward"), result=bindparam("b_result"),
                        invalid_moves=bindparam("b_invalid")))


def create_episodes(session: Session, calls: Sequence[tuple]) -> list[int]:
    """`create_episode` for many episodes in two statements; ids in call order."""
    connection, now = session.connection(), utcnow()
    ids = list(connection.execute(_NEW_EPISODE, [
        {"env_id": env_id, "seed": seed, "num_players": len(agent_ids), "status": GameStatus.RUNNING,
         "invalid_policy": policy, "tags": list(tags), "tournament_game_id": slot, "started_at": now}
        for env_id, seed, agent_ids, policy, tags, slot in calls]).scalars())
    connection.execute(_NEW_SEATS, [
        {"episode_id": episode_id, "seat": seat, "agent_id": agent_id, "invalid_moves": 0}
        for episode_id, (_, _, agent_ids, _, _, _) in zip(ids, calls, strict=True)
        for seat, agent_id in enumerate(agent_ids)])
    return ids


@batched(create_episodes)
def create_episode(session: Session, env_id: str, seed: int, agent_ids: Sequence[int],
                   invalid_policy: str, tags: Sequence[str] = (), tournament_game_id: int | None = None) -> int:
    """Insert a running episode with its seats (and the scheduled tournament game it plays); returns its id."""
    return create_episodes(session, [(env_id, seed, agent_ids, invalid_policy, tags, tournament_game_id)])[0]


def add_turns_many(session: Session, calls: Sequence[tuple]) -> list[None]:
    """`add_turns` for many calls in one statement."""
    rows = [row for (call_rows,) in calls for row in call_rows]
    if rows:
        session.connection().execute(_NEW_TURNS, rows)
    return [None] * len(calls)


@batched(add_turns_many)
def add_turns(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert turn rows (dicts with every TurnRow column but id)."""
    add_turns_many(session, [(rows,)])


def result_of(rewards: Mapping[int, float], seat: int) -> GameResult:
    """The one rule for a seat's label: 'draw' when every seat has the same reward, else 'win' at the top
    reward (alone or with teammates) and 'loss' below it. A lone seat wins above 0 and loses below it."""
    mine, values = rewards[seat], list(rewards.values())
    if len(values) == 1:
        return GameResult.WIN if mine > 0 else GameResult.DRAW if mine == 0 else GameResult.LOSS
    if min(values) == max(values):
        return GameResult.DRAW
    return GameResult.WIN if mine == max(values) else GameResult.LOSS


def end_episodes(session: Session, calls: Sequence[tuple]) -> list[None]:
    """`end_episode` for many episodes: their last turns, then their outcomes, a statement each."""
    connection, now = session.connection(), utcnow()
    add_turns_many(session, [(rows,) for *_, rows in calls])
    connection.execute(_FINISH, [{"b_id": episode_id, "b_status": status, "b_reason": reason, "b_ended": now}
                                 for episode_id, status, _, reason, _, _ in calls])
    seats = [{"b_episode": episode_id, "b_seat": seat, "b_reward": reward, "b_result": result_of(rewards, seat),
              "b_invalid": invalid.get(seat, 0)}
             for episode_id, status, rewards, _, invalid, _ in calls if status == GameStatus.FINISHED
             for seat, reward in rewards.items()]
    if seats:
        connection.execute(_SEAT_RESULT, seats)
    return [None] * len(calls)


@batched(end_episodes)
def end_episode(session: Session, episode_id: int, status: str, rewards: dict[int, float], reason: str,
                invalid_moves: dict[int, int], turn_rows: Sequence[dict[str, Any]] = ()) -> None:
    """Store the turns not yet stored and the outcome: 'finished' with rewards per seat (rated separately),
    or 'aborted' by the arena with its reason (never rated)."""
    end_episodes(session, [(episode_id, status, rewards, reason, invalid_moves, turn_rows)])


def mark_running_aborted(session: Session, reason: str) -> int:
    """Abort every episode still 'running' (left by a process that stopped); returns how many."""
    rows = session.scalars(select(EpisodeRow).where(EpisodeRow.status == GameStatus.RUNNING)).all()
    for row in rows:
        row.status, row.reason, row.ended_at = GameStatus.ABORTED, reason, utcnow()
    return len(rows)


def list_episodes(session: Session, env_id: str | None = None, agent: str | None = None,
                  status: GameStatus | None = None, limit: int = 50, offset: int = 0) -> list[EpisodeRow]:
    """Episodes, newest first, optionally for one env, one agent name or one status (seats loaded)."""
    query = select(EpisodeRow).options(selectinload(EpisodeRow.seats).selectinload(SeatRow.agent))
    if env_id:
        query = query.where(EpisodeRow.env_id == env_id)
    if status:
        query = query.where(EpisodeRow.status == status)
    if agent:
        query = query.where(EpisodeRow.seats.any(SeatRow.agent.has(AgentRow.name == agent)))
    return list(session.scalars(query.order_by(EpisodeRow.id.desc()).limit(limit).offset(offset)))


def get_episode(session: Session, episode_id: int) -> EpisodeRow | None:
    """One episode with its seats and their agents, or None."""
    return session.get(EpisodeRow, episode_id, options=[selectinload(EpisodeRow.seats).selectinload(SeatRow.agent)])


def episode_turns(session: Session, episode_id: int) -> list[TurnRow]:
    """The whole turn log of one episode, in order."""
    return list(session.scalars(select(TurnRow).where(TurnRow.episode_id == episode_id).order_by(TurnRow.idx)))


def seat_totals(session: Session, env_id: str | None, agent_ids: Sequence[int] | None = None,
                episode_ids: Sequence[int] | None = None) -> dict[int, dict[str, int]]:
    """Per agent: finished games, wins, draws, losses and invalid moves (optionally filtered)."""
    query = (
        select(SeatRow.agent_id, SeatRow.result, func.count(), func.sum(SeatRow.invalid_moves))
        .join(EpisodeRow)
        .where(EpisodeRow.status == GameStatus.FINISHED)
        .group_by(SeatRow.agent_id, SeatRow.result)
    )
    if env_id:
        query = query.where(EpisodeRow.env_id == env_id)
    if agent_ids is not None:
        query = query.where(SeatRow.agent_id.in_(agent_ids))
    if episode_ids is not None:
        query = query.where(EpisodeRow.id.in_(episode_ids))
    totals: dict[int, dict[str, int]] = {}
    for agent_id, result, count, invalid in session.execute(query):
        entry = totals.setdefault(agent_id, {"games": 0, "win": 0, "draw": 0, "loss": 0, "invalid": 0})
        entry["games"] += count
        entry[result] += count
        entry["invalid"] += int(invalid or 0)
    return totals


class FinishedGame(NamedTuple):
    """A finished episode's agents by seat and their rewards."""

    seats: list[str]
    rewards: list[float]


def finished_games(session: Session, env_id: str | None = None,
                   episode_ids: Sequence[int] | None = None) -> list[FinishedGame]:
    """Finished episodes (in one env, or among `episode_ids`), oldest first: who sat where and their rewards."""
    query = (select(SeatRow.episode_id, SeatRow.seat, AgentRow.name, SeatRow.reward).join(EpisodeRow)
             .join(AgentRow, AgentRow.id == SeatRow.agent_id).where(EpisodeRow.status == GameStatus.FINISHED)
             .order_by(SeatRow.episode_id, SeatRow.seat))
    if env_id:
        query = query.where(EpisodeRow.env_id == env_id)
    if episode_ids is not None:
        query = query.where(EpisodeRow.id.in_(episode_ids))
    games: dict[int, FinishedGame] = {}
    for episode_id, _, name, reward in session.execute(query):
        game = games.setdefault(episode_id, FinishedGame([], []))
        game.seats.append(name)
        game.rewards.append(float(reward or 0.0))
    return list(games.values())
