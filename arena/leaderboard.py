"""The leaderboard the server shows: TrueSkill standings per env or overall, optionally within one tournament,
with Bradley–Terry ratings and their 95% intervals where a tournament or enough games exist."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from arena import ratings
from arena.store import episodes
from arena.store import tournaments as tournament_store
from arena.store.models import AgentRow
from arena.tournament.bradley_terry import bradley_terry, elo, pairwise
from arena.tournament.config import TournamentConfig
from arena.tournament.run import UnknownTournament

MIN_BT_COMPARISONS = 10  # outside a tournament, Bradley–Terry needs this many pairwise results
BOOTSTRAP_ROUNDS = 200  # resamples for the intervals (a tournament report uses 1000)


@dataclass(frozen=True)
class BradleyTerryRating:
    """A Bradley–Terry rating on the Elo-like scale (1000 = the field's average) with its 95% interval."""

    rating: float
    low: float
    high: float


@dataclass(frozen=True)
class BoardEntry(ratings.Standing):
    """A leaderboard line with its Bradley–Terry rating, where one was fitted."""

    bt: BradleyTerryRating | None = None


def board(session: Session, env_id: str | None = None, tournament: str | None = None,
          rounds: int = BOOTSTRAP_ROUNDS) -> list[BoardEntry]:
    """Standings in one env (or overall), limited to a tournament's agents and games when one is named;
    UnknownTournament when it does not exist."""
    agent_ids = episode_ids = None
    if tournament is not None:
        agent_ids, episode_ids = _tournament_scope(session, tournament)
    standings = ratings.leaderboard(session, env_id, agent_ids, episode_ids)
    games = episodes.finished_games(session, env_id, episode_ids)
    names = sorted({name for game in games for name in game.seats})
    comparisons = pairwise(names, games)
    fitted: dict[str, BradleyTerryRating] = {}
    if comparisons and (tournament is not None or len(comparisons) >= MIN_BT_COMPARISONS):
        bt = bradley_terry(len(names), comparisons, rounds=rounds, seed=0)
        fitted = {name: BradleyTerryRating(rating=float(elo(bt.strengths[i])), low=float(elo(bt.low[i])),
                                           high=float(elo(bt.high[i]))) for i, name in enumerate(names)}
    return [BoardEntry(**asdict(s), bt=fitted.get(s.agent)) for s in standings]


def _tournament_scope(session: Session, name: str) -> tuple[list[int], list[int]]:
    """(agent ids, finished episode ids) of a tournament."""
    row = tournament_store.get_tournament(session, name)
    if row is None:
        raise UnknownTournament(f"no tournament named '{name}' in this database")
    names = TournamentConfig.model_validate(row.config).names
    agent_ids = list(session.scalars(select(AgentRow.id).where(AgentRow.name.in_(names))))
    played = tournament_store.played_games(session, row.id)
    return agent_ids, [g.episode_id for g in played if g.episode_id is not None]
