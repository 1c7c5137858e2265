"""TrueSkill ratings: 1v1 with draws, N-player by rank, unrated games, and rebuild from the log."""

from __future__ import annotations

import asyncio
import random

import pytest
import trueskill
from helpers import ScriptedAgent, play_games
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.baseline import FirstAgent, RandomAgent
from arena import ratings
from arena.play import Arena, schedule
from arena.runner import Match, play_match
from arena.store.models import OVERALL, RatingHistoryRow, RatingRow


def test_ranks_share_places_for_equal_rewards() -> None:
    assert ratings.ranks([1.0, -1.0, 1.0, 0.0]) == [0, 2, 0, 1]


def test_closed_form_1vs1_equals_the_trueskill_package_to_1e9_including_draws() -> None:
    rng = random.Random(7)
    compared = draws = 0
    for _ in range(3000):
        a = trueskill.Rating(rng.uniform(-10, 60), rng.uniform(0.05, 12))
        b = trueskill.Rating(rng.uniform(-10, 60), rng.uniform(0.05, 12))
        drawn = rng.random() < 0.3
        try:
            expected = trueskill.rate_1vs1(a, b, drawn=drawn, env=ratings.TRUESKILL)
        except FloatingPointError:
            with pytest.raises(FloatingPointError):
                ratings.rate_1vs1(a, b, drawn=drawn)
            continue
        got = ratings.rate_1vs1(a, b, drawn=drawn)
        for mine, theirs in zip(got, expected, strict=True):
            assert mine.mu == pytest.approx(theirs.mu, abs=1e-9) and mine.sigma == pytest.approx(theirs.sigma, abs=1e-9)
        compared, draws = compared + 1, draws + drawn
    assert compared > 2500 and draws > 500


def test_two_player_rating_uses_the_winner_first() -> None:
    a, b = trueskill.Rating(), trueskill.Rating()
    won = ratings.rate([a, b], [-1.0, 1.0])
    expected_b, expected_a = trueskill.rate_1vs1(b, a, env=ratings.TRUESKILL)
    assert won[0].mu == pytest.approx(expected_a.mu, abs=1e-9) and won[1].mu == pytest.approx(expected_b.mu, abs=1e-9)
    drawn = ratings.rate([a, b], [0.0, 0.0])
    assert drawn[0].mu == pytest.approx(drawn[1].mu) and drawn[0].sigma < a.sigma


def test_n_player_rating_orders_by_reward() -> None:
    new = ratings.rate([trueskill.Rating()] * 4, [0.0, 1.0, -1.0, 0.5])
    order = sorted(range(4), key=lambda i: -new[i].mu)
    assert order == [1, 3, 0, 2]


def play(db_url: str, env_id: str, names: list[str], games: int, same_agent: bool = False,
         agents: list | None = None) -> list:
    """Play `games` games of `env_id` with seats rotating, through the library API."""
    agents = agents or [RandomAgent(seed=i, name=n) for i, n in enumerate(names)]
    if same_agent:
        agents = [agents[0]] * len(agents)
    return asyncio.run(play_games(db_url, schedule(env_id, agents, games, 0)))


def test_rebuild_reproduces_stored_ratings_exactly(db_url, engine) -> None:
    play(db_url, "TicTacToe-v0", ["a", "b"], 30)
    play(db_url, "KuhnPoker-v0", ["a", "c"], 20)
    play(db_url, "LiarsDice-v0", ["a", "b", "c"], 6)
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


def test_rebuild_reports_and_repairs_tampered_ratings(db_url, engine) -> None:
    play(db_url, "TicTacToe-v0", ["a", "b"], 6)
    with Session(engine) as session, session.begin():
        session.scalars(select(RatingRow)).first().mu = 99.0
    with Session(engine) as session, session.begin():
        assert len(ratings.rebuild(session).mismatches) == 1
    with Session(engine) as session, session.begin():
        assert ratings.rebuild(session).mismatches == []


def test_self_play_is_stored_but_not_rated(db_url, engine) -> None:
    play(db_url, "TicTacToe-v0", ["a", "b"], 4, same_agent=True)
    with Session(engine) as session:
        assert session.scalars(select(RatingRow)).all() == []
        board = ratings.leaderboard(session, "TicTacToe-v0")
        assert [s.games for s in board] == [8]  # both seats count as games played


def test_leaderboard_sorts_by_conservative_rating(db_url, engine) -> None:
    loser = ScriptedAgent(["[nope]"], name="loser")
    play(db_url, "TicTacToe-v0", ["first", "loser"], 20, agents=[FirstAgent("first"), loser])
    with Session(engine) as session:
        board = ratings.leaderboard(session, "TicTacToe-v0")
        overall = ratings.leaderboard(session)
    assert [s.agent for s in board] == ["first", "loser"]
    assert (board[0].wins, board[1].losses, board[1].invalid_moves) == (20, 20, 40)
    assert board[0].rating == pytest.approx(board[0].mu - 3 * board[0].sigma)
    assert board[0].wins + board[0].draws + board[0].losses == 20
    assert board[0].wins == board[1].losses
    assert [(s.agent, s.mu) for s in overall] == [(s.agent, s.mu) for s in board]


async def _board_after(db_url: str, concurrency: int) -> list[ratings.Standing]:
    """60 games whose finishing order depends on the concurrency (the second agent is slow on odd seeds)."""

    class Uneven(RandomAgent):
        async def decide(self, observation, context):
            if context.seed % 2:
                await asyncio.sleep(0.002 * (context.seed % 7))
            return await super().decide(observation, context)

    async with Arena(db_url) as arena:
        results = await arena.play_all(schedule("TicTacToe-v0", [Uneven(seed=1, name="u"), "first"], 60, 7),
                                       concurrency)
        assert [r.index for r in results] == list(range(60))
        return arena.leaderboard("TicTacToe-v0")


def test_scheduled_ratings_do_not_depend_on_concurrency(tmp_path) -> None:
    one = asyncio.run(_board_after(f"sqlite:///{tmp_path / 'one.db'}", 1))
    many = asyncio.run(_board_after(f"sqlite:///{tmp_path / 'many.db'}", 60))
    assert one == many


async def _live_games(db_url: str) -> list[int]:
    """Games rated as they end (the server's door), in an order set by the agents' speed."""

    class Slow(RandomAgent):
        async def decide(self, observation, context):
            await asyncio.sleep(0.001 * (20 - context.seed))
            return await super().decide(observation, context)

    async with Arena(db_url) as arena:
        seats = [await arena.seat(Slow(name="slow")), await arena.seat("first")]
        results = await asyncio.gather(*[arena.play_match(Match("TicTacToe-v0", seed, seats)) for seed in range(20)])
        return [r.episode_id for r in results]


def test_rebuild_replays_the_live_finishing_order(db_url, engine) -> None:
    ids = asyncio.run(_live_games(db_url))
    with Session(engine) as session:
        order = list(session.scalars(select(RatingHistoryRow.episode_id).order_by(RatingHistoryRow.id)))
    assert list(dict.fromkeys(order)) != sorted(ids), "the games should have finished out of start order"
    with Session(engine) as session, session.begin():
        assert ratings.rebuild(session).mismatches == []


async def test_a_finished_game_left_unrated_is_rated_when_the_next_arena_opens(db_url, engine) -> None:
    async with Arena(db_url) as arena:  # a process that stopped between a game's end and its rating
        seats = [await arena.seat("random"), await arena.seat("first")]
        result = await play_match(Match("TicTacToe-v0", 5, seats), arena.recorder, rate=False)
    with Session(engine) as session:
        assert session.scalars(select(RatingRow)).all() == []
    async with Arena(db_url):
        pass
    with Session(engine) as session:
        rated = session.scalars(select(RatingHistoryRow.episode_id)).all()
        assert set(rated) == {result.episode_id} and len(session.scalars(select(RatingRow)).all()) == 4
