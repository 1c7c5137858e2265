"""Bradley–Terry: recovers known strengths and the first-move advantage, finite for an unbeaten agent, seeded."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trueskill
from scipy.special import expit

from arena import ratings
from arena.tournament.bradley_terry import BradleyTerry, bradley_terry, elo, fit

TRUE = np.linspace(-1.5, 1.5, 6)  # neighbours 0.6 log-odds apart: a 65/35 head-to-head
FIRST_MOVE = 0.35


def simulate(strengths: np.ndarray, first_move: float, games_per_pair: int, seed: int) -> list[tuple[int, int, float]]:
    """Every pair in both seatings; draws 20% between equals, a draw worth half a win (expected score exact)."""
    n, rng = len(strengths), np.random.default_rng(seed)
    seats = np.array([(i, j) for i in range(n) for j in range(n) if i != j] * (games_per_pair // 2))
    expected = expit(strengths[seats[:, 0]] - strengths[seats[:, 1]] + first_move)
    draw, u = 0.2 * 4 * expected * (1 - expected), rng.random(len(seats))
    scores = np.where(u < expected - draw / 2, 1.0, np.where(u < expected + draw / 2, 0.5, 0.0))
    return [(int(f), int(s), float(y)) for (f, s), y in zip(seats, scores, strict=True)]


@pytest.fixture(scope="module")
def tournaments() -> list[BradleyTerry]:
    """Forty simulated tournaments of 450 games between six agents of known strength, each with intervals."""
    return [bradley_terry(len(TRUE), simulate(TRUE, FIRST_MOVE, 30, seed=k), rounds=200, seed=k) for k in range(40)]


def test_fitted_order_is_the_true_order() -> None:
    strengths, _ = fit(len(TRUE), simulate(TRUE, FIRST_MOVE, 60, seed=3))
    assert list(np.argsort(strengths)) == list(range(len(TRUE)))
    assert strengths.mean() == pytest.approx(0.0, abs=1e-9)


def test_the_95_intervals_cover_the_true_strengths_and_are_as_wide_as_the_fits_vary(
        tournaments: list[BradleyTerry]) -> None:
    covered = [(t.low <= TRUE) & (t.high >= TRUE) for t in tournaments]
    assert np.mean(covered) >= 0.85  # 0.94 expected; intervals 30% too narrow would cover about 0.83
    width = np.mean([t.high - t.low for t in tournaments])
    spread = np.std([t.strengths for t in tournaments], axis=0).mean()
    assert 0.8 < width / (2 * 1.96 * spread) < 1.25


def test_first_move_advantage_is_recovered(tournaments: list[BradleyTerry]) -> None:
    _, first_move = fit(len(TRUE), simulate(TRUE, FIRST_MOVE, 60, seed=3))
    assert first_move == pytest.approx(FIRST_MOVE, abs=0.2)
    assert np.mean([t.first_move for t in tournaments]) == pytest.approx(FIRST_MOVE, abs=0.06)
    known = tournaments[0]
    assert known.first_move_probability(2, 3) > known.win_probability(2, 3) > 1 - known.first_move_probability(3, 2)


def test_each_agent_expected_score_equals_its_actual_score() -> None:
    games = simulate(TRUE, FIRST_MOVE, 20, seed=5)
    strengths, first_move = fit(len(TRUE), games)
    actual, expected = np.zeros(len(TRUE)), np.zeros(len(TRUE))
    for first, second, score in games:
        p = expit(strengths[first] - strengths[second] + first_move)
        actual[[first, second]] += score, 1 - score
        expected[[first, second]] += p, 1 - p
    assert actual == pytest.approx(expected, abs=0.15)  # the MLE's score equations, up to the weak prior


def test_an_agent_that_wins_every_game_gets_a_finite_rating_above_the_others() -> None:
    others = [(f + 1, s + 1, y) for f, s, y in simulate(np.zeros(3), 0.0, 10, seed=1)]
    unbeaten = [(0, o, 1.0) for o in (1, 2, 3)] * 5 + [(o, 0, 0.0) for o in (1, 2, 3)] * 5
    result = bradley_terry(4, others + unbeaten, rounds=200)
    assert np.all(np.isfinite(result.strengths)) and np.all(np.isfinite(result.high))
    assert result.strengths[0] > result.strengths[1:].max() + 2
    assert result.strengths[0] < 12  # the prior's sd is 4 log-odds


def test_the_same_seed_gives_identical_intervals_and_another_seed_others() -> None:
    games = simulate(TRUE, FIRST_MOVE, 10, seed=7)
    first, again, other = (bradley_terry(len(TRUE), games, rounds=300, seed=s) for s in (11, 11, 12))
    assert np.array_equal(first.low, again.low) and np.array_equal(first.high, again.high)
    assert not np.array_equal(first.low, other.low)


def test_no_games_no_rounds_and_an_agent_without_games() -> None:
    empty = bradley_terry(3, [])
    assert np.array_equal(empty.strengths, np.zeros(3)) and empty.first_move == 0.0
    unrounded = bradley_terry(3, [(0, 1, 1.0), (1, 0, 0.5)], rounds=0)
    assert np.array_equal(unrounded.low, unrounded.strengths) and np.array_equal(unrounded.high, unrounded.strengths)
    idle = bradley_terry(3, [(0, 1, 1.0), (1, 0, 0.0), (0, 1, 0.5)] * 5, rounds=100)
    assert np.all(np.isfinite(idle.low)) and np.all(np.isfinite(idle.high))
    assert idle.strengths[2] == pytest.approx(0.0, abs=1e-3)


def test_elo_scale() -> None:
    assert elo(0.0) == 1000
    assert elo(math.log(10)) == pytest.approx(1400)
    assert elo(np.array([-math.log(10), 0.0])) == pytest.approx([600, 1000])


def test_trueskill_win_probability_matches_the_usual_formula_by_hand() -> None:
    strong, weak = trueskill.Rating(30, 4), trueskill.Rating(25, 3)
    # beta = 25/6: sqrt(2 * 17.3611 + 16 + 9) = 7.7280; z = 5 / 7.7280 = 0.6470; Phi(0.6470) = 0.7412
    assert ratings.win_probability(strong, weak) == pytest.approx(0.7412, abs=1e-4)
    assert ratings.win_probability(strong, weak) + ratings.win_probability(weak, strong) == pytest.approx(1.0)
