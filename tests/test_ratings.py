"""TrueSkill ratings: 1v1 with draws, N-player by rank, unrated games, and rebuild from the log."""

from __future__ import annotations

import asyncio

import pytest
import trueskill
from helpers import ScriptedAgent
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.baseline import FirstAgent, RandomAgent
from arena import ratings
from arena.recorder import Recorder
from arena.runner import Match, Seat, play_matches
from arena.store.models import OVERALL, RatingHistoryRow, RatingRow
from arena.store.writer import Writer


def test_ranks_share_places_for_equal_rewards() -> None:
    assert ratings.ranks([1.0, -1.0, 1.0, 0.0]) == [0, 2, 0, 1]


def test_two_player_rating_matches_trueskill_1vs1_including_draws() -> None:
    a, b = trueskill.Rating(), trueskill.Rating()
    won = ratings.rate([a, b], [-1.0, 1.0])
    expected_b, expected_a = trueskill.rate_1vs1(b, a)
    assert (won[0], won[1]) == (expected_a, expected_b)
    drawn = ratings.rate([a, b], [0.0, 0.0])
    assert drawn[0].mu == pytest.approx(drawn[1].mu) and drawn[0].sigma < a.sigma


def test_n_player_rating_orders_by_reward() -> None:
    new = ratings.rate([trueskill.Rating()] * 4, [0.0, 1.0, -1.0, 0.5])
    order = sorted(range(4), key=lambda i: -new[i].mu)
    assert order == [1, 3, 0, 2]


async def play(engine, env_id: str, names: list[str], games: int, same_agent: bool = False,
               agents: list | None = None) -> None:
    writer = Writer(engine)
    recorder = Recorder(writer)
    agents = agents or [RandomAgent(seed=i, name=n) for i, n in enumerate(names)]
    ids = await recorder.register([(n, "test", n) for n in names])
    seats = [Seat(a, ids[0] if same_agent else i) for a, i in zip(agents, ids, strict=True)]
    matches = [Match(env_id, s, seats[s % len(seats):] + seats[:s % len(seats)]) for s in range(games)]
    await play_matches(matches, recorder, concurrency=8)
    writer.close()


def test_rebuild_reproduces_stored_ratings_exactly(engine) -> None:
    asyncio.run(play(engine, "TicTacToe-v0", ["a", "b"], 30))
    asyncio.run(play(engine, "KuhnPoker-v0", ["a", "c"], 20))
    asyncio.run(play(engine, "LiarsDice-v0", ["a", "b", "c"], 6))
    with Session(engine) as session:
        before = session.execute(select(RatingRow.agent_id, RatingRow.env_id, RatingRow.mu,
                                        RatingRow.sigma, RatingRow.games)).all()
        history = session.scalar(select(RatingHistoryRow.id).order_by(RatingHistoryRow.id.desc()))
        assert {row.env_id for row in before} == {"TicTacToe-v0", "KuhnPoker-v0", "LiarsDice-v0", OVERALL}
        assert history is not None
        session.rollback()
        with session.begin():
            report = ratings.rebuild(session)
        assert report.mismatches == [] and report.episodes == 56
        after = session.execute(select(RatingRow.agent_id, RatingRow.env_id, RatingRow.mu,
                                       RatingRow.sigma, RatingRow.games)).all()
    assert sorted(after) == sorted(before)


def test_rebuild_reports_and_repairs_tampered_ratings(engine) -> None:
    asyncio.run(play(engine, "TicTacToe-v0", ["a", "b"], 6))
    with Session(engine) as session, session.begin():
        session.scalars(select(RatingRow)).first().mu = 99.0
    with Session(engine) as session, session.begin():
        assert len(ratings.rebuild(session).mismatches) == 1
    with Session(engine) as session, session.begin():
        assert ratings.rebuild(session).mismatches == []


def test_self_play_is_stored_but_not_rated(engine) -> None:
    asyncio.run(play(engine, "TicTacToe-v0", ["a", "b"], 4, same_agent=True))
    with Session(engine) as session:
        assert session.scalars(select(RatingRow)).all() == []
        board = ratings.leaderboard(session, "TicTacToe-v0")
        assert [s.games for s in board] == [8]  # both seats count as games played


def test_leaderboard_sorts_by_conservative_rating(engine) -> None:
    loser = ScriptedAgent(["[nope]"], name="loser")
    asyncio.run(play(engine, "TicTacToe-v0", ["first", "loser"], 20, agents=[FirstAgent("first"), loser]))
    with Session(engine) as session:
        board = ratings.leaderboard(session, "TicTacToe-v0")
        overall = ratings.leaderboard(session)
    assert [s.agent for s in board] == ["first", "loser"]
    assert (board[0].wins, board[1].losses, board[1].invalid_moves) == (20, 20, 40)
    assert board[0].rating == pytest.approx(board[0].mu - 3 * board[0].sigma)
    assert board[0].wins + board[0].draws + board[0].losses == 20
    assert board[0].wins == board[1].losses
    assert [(s.agent, s.mu) for s in overall] == [(s.agent, s.mu) for s in board]
