"""A tournament's report: TrueSkill and Bradley–Terry standings, head-to-head, per env, conduct, predictions.

The same `build_report` serves `arena tournament report` (text, JSON, HTML) and `GET /api/tournaments/NAME`.
TrueSkill standings replay the tournament's own games in schedule order from fresh ratings, so they do
not depend on concurrency, on a resume, or on games played outside the tournament.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import trueskill
from pydantic import BaseModel
from sqlalchemy.orm import Session

from arena import ratings
from arena.protocol import GameResult, GameStatus
from arena.store import tournaments as store
from arena.store.episodes import result_of
from arena.tournament.bradley_terry import bradley_terry, elo, pairwise
from arena.tournament.config import TournamentConfig
from arena.tournament.run import UnknownTournament

BOOTSTRAP_ROUNDS = 1000


class TrueSkillStanding(BaseModel):
    """An agent's TrueSkill rating over the tournament's games; `rating` is mu - 3 sigma."""

    agent: str
    rating: float
    mu: float
    sigma: float
    games: int
    wins: int
    draws: int
    losses: int


class BradleyTerryStanding(BaseModel):
    """An agent's Bradley–Terry rating (Elo-like scale, 1000 = the field's average) with its 95% interval."""

    agent: str
    rating: float
    low: float
    high: float


class HeadToHead(BaseModel):
    """One agent's results against one opponent (draws count half in `score`)."""

    agent: str
    opponent: str
    games: int
    wins: int
    draws: int
    losses: int
    score: float


class Prediction(BaseModel):
    """A pairing's observed score next to what each rating system predicts for it."""

    agent: str
    opponent: str
    games: int
    observed: float
    trueskill: float
    bradley_terry: float


class EnvStandings(BaseModel):
    """The results in one env: games played and the TrueSkill standings over them."""

    env_id: str
    games: int
    standings: list[TrueSkillStanding]


class Conduct(BaseModel):
    """How an agent's moves went: invalid moves, timeouts, failures, time and tokens (from the turn records)."""

    agent: str
    moves: int
    invalid_moves: int
    invalid_rate: float
    timeouts: int
    timeout_rate: float
    errors: int
    seconds: float
    seconds_per_move: float
    prompt_tokens: int
    completion_tokens: int


class TournamentReport(BaseModel):
    """Everything `arena tournament report` shows."""

    name: str
    format: str
    status: str
    created_at: datetime
    ended_at: datetime | None
    envs: list[str]
    agents: list[str]
    rounds: int
    seeds: list[int]
    games_scheduled: int
    games_played: int
    aborted_attempts: int
    trueskill: list[TrueSkillStanding]
    bradley_terry: list[BradleyTerryStanding]
    first_move_advantage: float  # Bradley–Terry points for moving first
    bootstrap_rounds: int
    head_to_head: list[HeadToHead]
    predictions: list[Prediction]
    per_env: list[EnvStandings]
    conduct: list[Conduct]


def build_report(session: Session, name: str, bootstrap_rounds: int = BOOTSTRAP_ROUNDS) -> TournamentReport:
    """The report of a stored tournament, from its finished games; UnknownTournament if there is none."""
    row = store.get_tournament(session, name)
    if row is None:
        raise UnknownTournament(f"no tournament named '{name}' in this database")
    config = TournamentConfig.model_validate(row.config)
    names = config.names
    schedule = store.played_games(session, row.id)
    played = [g for g in schedule if g.rewards is not None]
    total = max(config.total_games(), len(schedule))
    overall = _trueskill(names, played)
    comparisons = pairwise(names, played)
    bt = bradley_terry(len(names), comparisons, rounds=bootstrap_rounds, seed=0)
    return TournamentReport(
        name=row.name, format=row.format, status=row.status, created_at=row.created_at, ended_at=row.ended_at,
        envs=config.envs, agents=names, rounds=config.rounds, seeds=config.seeds, games_scheduled=total,
        games_played=len(played), aborted_attempts=store.attempts(session, row.id).get(GameStatus.ABORTED, 0),
        trueskill=overall,
        bradley_terry=sorted((BradleyTerryStanding(agent=n, rating=float(elo(bt.strengths[i])),
                                                   low=float(elo(bt.low[i])), high=float(elo(bt.high[i])))
                              for i, n in enumerate(names)), key=lambda s: (-s.rating, s.agent)),
        first_move_advantage=float(elo(bt.first_move)) - 1000.0, bootstrap_rounds=bootstrap_rounds,
        head_to_head=_head_to_head(names, comparisons),
        predictions=_predictions(names, comparisons, overall, bt),
        per_env=[EnvStandings(env_id=env, games=sum(g.env_id == env for g in played),
                              standings=_trueskill(names, [g for g in played if g.env_id == env]))
                 for env in config.envs],
        conduct=_conduct(session, names, [g.episode_id for g in played if g.episode_id is not None]),
    )


def _trueskill(names: Sequence[str], games: Sequence[store.PlayedGame]) -> list[TrueSkillStanding]:
    """Replay the games in schedule order with the arena's rating code, from fresh ratings."""
    current = {n: trueskill.Rating(ratings.TRUESKILL.mu, ratings.TRUESKILL.sigma) for n in names}
    tally = {n: {GameResult.WIN: 0, GameResult.DRAW: 0, GameResult.LOSS: 0} for n in names}
    for game in sorted(games, key=lambda g: g.idx):
        rewards = game.rewards or []
        for seat, agent in enumerate(game.seats):
            tally[agent][result_of(dict(enumerate(rewards)), seat)] += 1
        for agent, new in zip(game.seats, ratings.rate([current[a] for a in game.seats], rewards), strict=True):
            current[agent] = new
    standings = [TrueSkillStanding(agent=n, rating=r.mu - 3 * r.sigma, mu=r.mu, sigma=r.sigma,
                                   games=sum(tally[n].values()), wins=tally[n][GameResult.WIN],
                                   draws=tally[n][GameResult.DRAW], losses=tally[n][GameResult.LOSS])
                 for n, r in current.items()]
    return sorted(standings, key=lambda s: (-s.rating, s.agent))


def _pair_totals(names: Sequence[str], comparisons: Sequence[tuple[int, int, float]]) -> dict[tuple[int, int], list]:
    """(agent, opponent) -> [games, wins, draws, losses, points] from the agent's side, both ways."""
    totals: dict[tuple[int, int], list] = {}
    for first, second, score in comparisons:
        for me, other, mine in ((first, second, score), (second, first, 1.0 - score)):
            entry = totals.setdefault((me, other), [0, 0, 0, 0, 0.0])
            entry[0] += 1
            entry[1 if mine == 1.0 else 2 if mine == 0.5 else 3] += 1
            entry[4] += mine
    return totals


def _head_to_head(names: Sequence[str], comparisons: Sequence[tuple[int, int, float]]) -> list[HeadToHead]:
    return [HeadToHead(agent=names[a], opponent=names[b], games=g, wins=w, draws=d, losses=lo, score=p / g)
            for (a, b), (g, w, d, lo, p) in sorted(_pair_totals(names, comparisons).items())]


def _predictions(names: Sequence[str], comparisons: Sequence[tuple[int, int, float]],
                 standings: Sequence[TrueSkillStanding], bt) -> list[Prediction]:
    """For each pairing that met (agent listed first in the tournament's order): observed score and both
    systems' predicted win probability."""
    by_name = {s.agent: trueskill.Rating(s.mu, s.sigma) for s in standings}
    return [Prediction(agent=names[a], opponent=names[b], games=g, observed=p / g,
                       trueskill=ratings.win_probability(by_name[names[a]], by_name[names[b]]),
                       bradley_terry=bt.win_probability(a, b))
            for (a, b), (g, _w, _d, _l, p) in sorted(_pair_totals(names, comparisons).items()) if a < b]


def _conduct(session: Session, names: Sequence[str], episode_ids: Sequence[int]) -> list[Conduct]:
    found = store.conduct(session, episode_ids)
    out = []
    for name in names:
        c = found.get(name) or store.Conduct(0, 0, 0, 0, 0.0, 0, 0)
        per = max(c.turns, 1)
        out.append(Conduct(agent=name, moves=c.turns, invalid_moves=c.invalid, invalid_rate=c.invalid / per,
                           timeouts=c.timeouts, timeout_rate=c.timeouts / per, errors=c.errors, seconds=c.seconds,
                           seconds_per_move=c.seconds / per, prompt_tokens=c.prompt_tokens,
                           completion_tokens=c.completion_tokens))
    return out


def build_summary(session: Session, name: str) -> tuple[str, str, int, int, list[str], list[str]]:
    """A tournament in one line: format, status, games played and scheduled, envs, agents."""
    row = store.get_tournament(session, name)
    if row is None:
        raise UnknownTournament(f"no tournament named '{name}' in this database")
    config = TournamentConfig.model_validate(row.config)
    schedule = store.played_games(session, row.id)
    played = sum(g.rewards is not None for g in schedule)
    return row.format, row.status, played, max(config.total_games(), len(schedule)), config.envs, config.names
