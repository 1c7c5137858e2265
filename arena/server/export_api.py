"""`GET /api/export`: the same JSONL bytes `arena export` writes, streamed from the server's database.

From loopback anyone may export; from elsewhere the request needs `Authorization: Bearer ADMIN_TOKEN`,
the server's `ARENA_ADMIN_TOKEN` (with none set, only loopback may export).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from arena.envs.rewards import RewardMode
from arena.export import ExportError, ExportFormat, rows
from arena.export.writers import json_line

router = APIRouter()


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _authorize(request: Request) -> None:
    """Loopback, or the admin token; HTTP 403 otherwise."""
    if _is_loopback(request.client.host if request.client else None):
        return
    token = request.app.state.hub.settings.admin_token
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not token:
        raise HTTPException(403, "export is open to loopback only: set ARENA_ADMIN_TOKEN on the server to allow it")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(403, "export needs the admin token: Authorization: Bearer ADMIN_TOKEN")


@router.get("/api/export", response_class=StreamingResponse, responses={
    400: {"description": "A filter names an unknown agent or env, or a bad date"},
    403: {"description": "Off loopback without the admin token"}})
def export(request: Request, format: ExportFormat, env: list[str] = Query(default=[]),  # noqa: A002, B008
           agent: list[str] = Query(default=[]), since: str | None = None, until: str | None = None,  # noqa: B008
           min_rating: float | None = None, outcome: str | None = None, reward: RewardMode = RewardMode.OUTCOME,
           tournament: str | None = None, only_winners: bool = False) -> StreamingResponse:
    """Training data as JSON Lines, streamed: the bytes `arena export --format FORMAT -o FILE.jsonl` writes."""
    _authorize(request)
    filters = {"envs": env, "agents": agent, "since": since, "until": until, "min_rating": min_rating,
               "outcome": outcome, "tournament": tournament, "only_winners": only_winners}
    try:
        selected = rows(format, request.app.state.arena.engine, reward=reward, **filters)
    except ExportError as error:
        raise HTTPException(400, error.message) from error
    return StreamingResponse(_lines(selected), media_type="application/x-ndjson")


def _lines(selected: Iterator[dict]) -> Iterator[bytes]:
    """Each row as one JSON line (iterated in a worker thread by the response)."""
    for row in selected:
        yield json_line(row)
