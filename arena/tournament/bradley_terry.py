"""Bradley–Terry strengths with a first-move advantage, fitted by maximum likelihood, with bootstrap intervals.

A game is `(first, second, score)`: agent indices 0..n-1, `first` had seat 0, and `score` is 1 if first won,
0.5 for a draw and 0 if first lost. First's expected score is sigmoid(s_first - s_second + h), where h is the
first-move advantage; a draw counts as half a win (the fractional logistic likelihood Chatbot Arena uses).
Strengths are natural log-odds, centred to mean 0. A weak Gaussian prior, sd 4 log-odds (PRIOR_SD), on each
strength and on h keeps an agent that wins (or loses) every game finite; with tens of games per pair it moves
the estimates by well under 1%. Intervals (Chatbot Arena's method): resample the games with replacement, refit,
and take the 2.5th and 97.5th percentiles of each agent's strength.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import sparse
from scipy.optimize import minimize
from scipy.special import expit

PRIOR_SD = 4.0  # sd of the Gaussian prior (log-odds) on every strength and on h


@dataclass(frozen=True)
class BradleyTerry:
    """Fitted strengths (log-odds, mean 0), the first-move advantage h, and 95% bootstrap intervals."""

    strengths: np.ndarray
    first_move: float
    low: np.ndarray
    high: np.ndarray

    def win_probability(self, i: int, j: int) -> float:
        """i's expected score against j, averaged over both seatings."""
        return (self.first_move_probability(i, j) + 1 - self.first_move_probability(j, i)) / 2

    def first_move_probability(self, i: int, j: int) -> float:
        """i's expected score against j when i moves first."""
        return float(expit(self.strengths[i] - self.strengths[j] + self.first_move))


class Played(Protocol):
    """A finished game: agent names by seat and their rewards."""

    seats: Sequence[str]
    rewards: Sequence[float] | None


def pairwise(names: Sequence[str], games: Sequence[Played]) -> list[tuple[int, int, float]]:
    """Every game as pairwise results (first, second, first's score): one for two seats, every pair of seats
    for more, the earlier seat first; agents are indices into `names`."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for game in games:
        rewards = game.rewards or []
        for a, b in itertools.combinations(range(len(game.seats)), 2):
            score = 1.0 if rewards[a] > rewards[b] else 0.5 if rewards[a] == rewards[b] else 0.0
            out.append((index[game.seats[a]], index[game.seats[b]], score))
    return out


@dataclass(frozen=True)
class _Games:
    """Distinct (first, second, score) triples: sparse design rows (+1 first, -1 second, 1 for h), scores, counts."""

    design: sparse.csr_array
    scores: np.ndarray
    counts: np.ndarray


def _aggregate(n: int, games: Sequence[tuple[int, int, float]]) -> _Games:
    """Merge identical games into one row with a count, so a resample is a multinomial draw of counts."""
    triples, counts = np.unique(np.asarray(games, dtype=float).reshape(-1, 3), axis=0, return_counts=True)
    rows = np.repeat(np.arange(len(triples)), 3)
    columns = np.column_stack([triples[:, :2].astype(int), np.full(len(triples), n)]).ravel()
    values = np.tile([1.0, -1.0, 1.0], len(triples))
    design = sparse.csr_array((values, (rows, columns)), shape=(len(triples), n + 1))
    return _Games(design, triples[:, 2:], counts.astype(float))


def _fit_many(data: _Games, weights: np.ndarray) -> np.ndarray:
    """MAP parameters (strengths then h) for each row of `weights` (counts per distinct game), in one L-BFGS run.

    The rounds are independent problems summed into one objective, so one L-BFGS run fits them all."""
    size, rounds = data.design.shape[1], len(weights)
    weights, transposed = weights.T, data.design.T.tocsr()

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        theta = flat.reshape(size, rounds)
        margin = data.design @ theta
        nll = (weights * (np.logaddexp(0.0, margin) - data.scores * margin)).sum()
        grad = transposed @ (weights * (expit(margin) - data.scores)) + theta / PRIOR_SD**2
        return float(nll + (theta**2).sum() / (2 * PRIOR_SD**2)), grad.ravel()

    result = minimize(loss, np.zeros(size * rounds), jac=True, method="L-BFGS-B",
                      options={"maxiter": 10_000, "ftol": 0.0, "gtol": 1e-7})
    theta = result.x.reshape(size, rounds).T
    return np.column_stack([theta[:, :-1] - theta[:, :-1].mean(axis=1, keepdims=True), theta[:, -1]])


def fit(n: int, games: Sequence[tuple[int, int, float]]) -> tuple[np.ndarray, float]:
    """MLE strengths (mean 0) and h, under the weak prior (sd PRIOR_SD)."""
    if len(games) == 0:
        return np.zeros(n), 0.0
    data = _aggregate(n, games)
    theta = _fit_many(data, data.counts[None, :])[0]
    return theta[:-1], float(theta[-1])


def bradley_terry(n: int, games: Sequence[tuple[int, int, float]], rounds: int = 1000,
                  seed: int = 0) -> BradleyTerry:
    """Fit plus bootstrap intervals; deterministic for a given seed."""
    strengths, first_move = fit(n, games)
    if len(games) == 0 or rounds == 0:
        return BradleyTerry(strengths, first_move, strengths.copy(), strengths.copy())
    data = _aggregate(n, games)
    weights = np.random.default_rng(seed).multinomial(len(games), data.counts / len(games), size=rounds)
    boot = _fit_many(data, weights.astype(float))[:, :-1]
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return BradleyTerry(strengths, first_move, low, high)


def elo(strength: float | np.ndarray) -> float | np.ndarray:
    """Log-odds strength on the Elo-like scale people know: 1000 + 400 * s / ln 10."""
    return 1000 + 400 * strength / math.log(10)
