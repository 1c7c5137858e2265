"""`GET /api/export`: the same JSONL bytes `arena export` writes, streamed from the server's database.

An admin operation: a server bound beyond loopback asks for `Authorization: Bearer ADMIN_TOKEN`
(arena/server/auth.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from arena.envs.rewards import RewardMode
from arena.export import ExportError, ExportFormat, rows
from arena.export.writers import json_line
from arena.protocol import Text
from arena.server.auth import ADMIN_RESPONSES, require_admin

router = APIRouter()


@router.get("/api/export", response_class=StreamingResponse, dependencies=[Depends(require_admin)], responses={
    400: {"description": "A filter names an unknown agent or env, or a bad date"}, **ADMIN_RESPONSES})
def export(request: Request, format: ExportFormat, env: list[Text] = Query(default=[]),  # noqa: A002, B008
           agent: list[Text] = Query(default=[]), since: Text | None = None, until: Text | None = None,  # noqa: B008
           min_rating: float | None = None, outcome: Text | None = None, reward: RewardMode = RewardMode.OUTCOME,
           tournament: Text | None = None, only_winners: bool = False) -> StreamingResponse:
    """Training data as JSON Lines, streamed: the bytes `arena export --format FORMAT -o FILE.jsonl` writes."""
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
