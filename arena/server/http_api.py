"""The HTTP API: health, catalog, leaderboard, episodes, tournaments and live games (JSON, typed for OpenAPI),
metrics."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from arena.leaderboard import BoardEntry, board
from arena.play import Arena
from arena.protocol import MAX_ROW_ID, GameResult, GameStatus, OnlineAgents, Text
from arena.server.auth import ADMIN_RESPONSES, require_admin
from arena.store import episodes
from arena.store import ratings as rating_rows
from arena.store import tournaments as tournament_store
from arena.store.models import OVERALL, AgentRow, EpisodeRow
from arena.tournament.html import render_html
from arena.tournament.report import TournamentReport, build_report, build_summary
from arena.tournament.run import UnknownTournament
from games import catalog

router = APIRouter()
MAX_OFFSET = 2**63 - 1  # the largest OFFSET a database takes
NOT_FOUND = {404: {"description": "No such episode, agent or tournament"}}


class GameEntry(BaseModel):
    """A playable game: its id, player counts, the game it is a variant of ('' for the main one), and a line
    describing that game."""

    env_id: str
    players: list[int]
    family: str
    variant: str
    description: str
    single_player: bool


class HouseAgent(BaseModel):
    """An agent the server runs itself: challenge it by name in `queue`, or wait for it to fill a seat."""

    name: str


class SeatInfo(BaseModel):
    """A seat in an episode."""

    seat: int
    agent: str
    reward: float | None
    result: GameResult | None
    invalid_moves: int


class EpisodeSummary(BaseModel):
    """One episode without its turns."""

    id: int
    env_id: str
    seed: int
    status: GameStatus
    reason: str | None
    started_at: datetime
    ended_at: datetime | None
    tags: list[str]
    seats: list[SeatInfo]


class TurnInfo(BaseModel):
    """One turn of the log."""

    index: int
    seat: int
    observation: str
    action: str
    invalid: bool
    invalid_reason: str | None
    elapsed: float
    error: str | None
    info: dict[str, Any]


class EpisodeDetail(EpisodeSummary):
    """One episode with its whole turn log."""

    turns: list[TurnInfo]


class LiveEntry(BaseModel):
    """A game in progress."""

    game_id: int
    env_id: str
    players: list[str]
    turns: int
    spectators: int


def _arena(request: Request) -> Arena:
    return request.app.state.arena


def _summary(row: EpisodeRow) -> EpisodeSummary:
    return EpisodeSummary(
        id=row.id, env_id=row.env_id, seed=row.seed, status=row.status, reason=row.reason,
        started_at=row.started_at, ended_at=row.ended_at, tags=list(row.tags or []),
        seats=[SeatInfo(seat=s.seat, agent=s.agent.name, reward=s.reward, result=s.result,
                        invalid_moves=s.invalid_moves) for s in row.seats])


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    """Liveness: the server answers and how busy it is."""
    hub = request.app.state.hub
    return {"status": "ok", "live_games": len(hub.live), "waiting": len(hub.tickets)}


@router.get("/api/games")
def games() -> list[GameEntry]:
    """The playable catalog."""
    lines = catalog.descriptions()
    return [GameEntry(env_id=e.env_id, players=list(e.players), family=family, variant=variant,
                      description=lines.get(family, ""), single_player=list(e.players) == [1])
            for e in catalog.load().values() if e.playable
            for family, variant in [catalog.game_and_variant(e.env_id)]]


@router.get("/api/house")
def house(request: Request) -> list[HouseAgent]:
    """The house agents of this server."""
    return [HouseAgent(name=seat.agent.name) for seat in request.app.state.hub.house]


@router.get("/api/online")
def online(request: Request) -> OnlineAgents:
    """The agents connected now and the house agents, by name: those a `challenge` may seat."""
    hub = request.app.state.hub
    return OnlineAgents(connected=sorted(hub.online()), house=[seat.agent.name for seat in hub.house])


@router.get("/api/leaderboard", responses=NOT_FOUND)
def leaderboard(request: Request, env: Text | None = None, tournament: Text | None = None) -> list[BoardEntry]:
    """Ratings in one env, or overall, best first; within one tournament's agents and games if named.
    Bradley–Terry ratings with 95% intervals come with a tournament or enough games."""
    try:
        return _arena(request).read(partial(board, env_id=env, tournament=tournament))
    except UnknownTournament as error:
        raise HTTPException(404, str(error)) from error


class RatingPoint(BaseModel):
    """An agent's rating after one episode (`rating` is mu - 3 sigma), and before it."""

    episode_id: int
    env_id: str
    at: datetime | None
    mu_before: float
    sigma_before: float
    mu: float
    sigma: float
    rating: float


@router.get("/api/agents/{name}/history", responses=NOT_FOUND)
def rating_history(request: Request, name: Text, env: Text | None = None) -> list[RatingPoint]:
    """An agent's rating after each of its rated games in one env (or overall), oldest first."""
    points = _arena(request).read(partial(_history, name=name, scope=env or OVERALL))
    if points is None:
        raise HTTPException(404, f"no agent named '{name}'")
    return points


def _history(session: Session, name: str, scope: str) -> list[RatingPoint] | None:
    agent_id = session.scalar(select(AgentRow.id).where(AgentRow.name == name))
    if agent_id is None:
        return None
    return [RatingPoint(**asdict(p), rating=p.mu - 3 * p.sigma)
            for p in rating_rows.rating_history(session, agent_id, scope)]


@router.get("/api/episodes")
def list_episodes(request: Request, env: Text | None = None, agent: Text | None = None,
                  status: GameStatus | None = None, limit: int = Query(50, ge=1, le=500),
                  offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> list[EpisodeSummary]:
    """Episodes, newest first."""
    rows = partial(episodes.list_episodes, env_id=env, agent=agent, status=status, limit=limit, offset=offset)
    return _arena(request).read(lambda session: [_summary(row) for row in rows(session)])


@router.get("/api/episodes/{episode_id}", responses=NOT_FOUND)
def episode(request: Request, episode_id: int = Path(ge=1, le=MAX_ROW_ID)) -> EpisodeDetail:
    """One episode with its whole turn log; while it runs, what each seat saw and did (observations, prompts,
    actions) is withheld: it may hold a seat's private information (spectate for the public view)."""
    detail = _arena(request).read(partial(_detail, episode_id=episode_id))
    if detail is None:
        raise HTTPException(404, f"no episode {episode_id}")
    return detail


def _detail(session: Session, episode_id: int) -> EpisodeDetail | None:
    row = episodes.get_episode(session, episode_id)
    if row is None:
        return None
    shown = row.status != GameStatus.RUNNING
    turns = [TurnInfo(index=t.idx, seat=t.seat, observation=t.observation if shown else "",
                      action=t.action if shown else "",
                      invalid=t.invalid, invalid_reason=t.invalid_reason, elapsed=t.elapsed, error=t.error,
                      info=(t.info or {}) if shown else {}) for t in episodes.episode_turns(session, episode_id)]
    return EpisodeDetail(**_summary(row).model_dump(), turns=turns)


class TournamentEntry(BaseModel):
    """A stored tournament and how far it got."""

    name: str
    format: str
    status: str
    games_played: int
    games_scheduled: int
    envs: list[str]
    agents: list[str]


@router.get("/api/tournaments")
def tournaments(request: Request) -> list[TournamentEntry]:
    """Every stored tournament, oldest first."""
    return _arena(request).read(lambda session: [
        TournamentEntry(name=name, format=fmt, status=status, games_played=played, games_scheduled=total,
                        envs=envs, agents=agents)
        for name in tournament_store.tournament_names(session)
        for fmt, status, played, total, envs, agents in [build_summary(session, name)]])


@router.get("/api/tournaments/{name}", responses=NOT_FOUND)
def tournament(request: Request, name: Text) -> TournamentReport:
    """A tournament's report: the same numbers as `arena tournament report NAME --json`."""
    try:
        return _arena(request).read(partial(build_report, name=name))
    except UnknownTournament as error:
        raise HTTPException(404, str(error)) from error


@router.get("/tournaments/{name}", response_class=HTMLResponse, responses=NOT_FOUND)
def tournament_page(request: Request, name: Text) -> HTMLResponse:
    """A tournament's report as the self-contained HTML page `--html` writes."""
    return HTMLResponse(render_html(tournament(request, name)))


@router.get("/api/live")
def live(request: Request) -> list[LiveEntry]:
    """Games in progress."""
    hub = request.app.state.hub
    return [LiveEntry(game_id=g.game_id, env_id=g.env_id, players=g.names,
                      turns=g.turns, spectators=len(g.spectators))
            for g in hub.live.values()]


@router.get("/metrics", response_class=Response, dependencies=[Depends(require_admin)], responses=ADMIN_RESPONSES)
def metrics(request: Request) -> Response:
    """Prometheus metrics: games, moves, connections, and the action -> next turn latency histogram (admin)."""
    return Response(request.app.state.hub.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
