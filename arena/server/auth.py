"""Who may do what on the server: the admin token for admin operations, and the Origin check for websockets.

One rule for admin operations (`GET /api/export`, `GET /metrics`, a tournament's scheduled games): a server
bound to a loopback address (the default, 127.0.0.1) can be reached from this machine only, and they need no
token. A server bound to any other address (0.0.0.0, a LAN or public address, a host name) asks every client for
`Authorization: Bearer ADMIN_TOKEN` (`ARENA_ADMIN_TOKEN`), loopback clients included: behind a reverse proxy on
the same machine every request comes from loopback, so the peer's address proves nothing.

Browsers send `Origin` with every websocket they open; programs (the SDK, TextArena's client, `websockets`)
send none. A handshake whose Origin is neither the server's own (the scheme and Host it was reached on) nor in
`ARENA_ALLOWED_ORIGINS` is refused with HTTP 403 before any route runs, so another site's page cannot play,
or spectate, as its visitor.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from pydantic import AfterValidator
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

if TYPE_CHECKING:
    from arena.server.settings import ServerSettings

log = logging.getLogger(__name__)
DEFAULT_PORTS = {"http": 80, "https": 443}
WS_TO_HTTP = {"ws": "http", "wss": "https"}
ADMIN_RESPONSES = {401: {"description": "The server listens beyond loopback: send Authorization: Bearer ADMIN_TOKEN"},
                   403: {"description": "The server listens beyond loopback and has no ARENA_ADMIN_TOKEN"}}


def is_loopback(host: str) -> bool:
    """True when a server bound to `host` can be reached from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Refusal:
    """Why an admin operation is refused, and the HTTP status that says so."""

    status: int
    message: str


def admin_refusal(settings: ServerSettings, authorization: str | None, operation: str) -> Refusal | None:
    """None when `operation` may go ahead: the server is bound to loopback, or `authorization` holds its token."""
    if is_loopback(settings.host):
        return None
    where = f"{operation} is an admin operation, and this server listens on {settings.host}, beyond loopback"
    if not settings.admin_token:
        return Refusal(403, f"{where}: it has no admin token; restart it with ARENA_ADMIN_TOKEN set to allow it")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return Refusal(401, f"{where}: send the header Authorization: Bearer ADMIN_TOKEN (its ARENA_ADMIN_TOKEN)")
    if not secrets.compare_digest(given.strip().encode(), settings.admin_token.encode()):
        return Refusal(401, f"{where}: the admin token sent is not its ARENA_ADMIN_TOKEN")
    return None


def require_admin(request: Request) -> None:
    """FastAPI dependency of admin routes: HTTP 401 or 403, with the reason, unless `admin_refusal` passes."""
    refusal = admin_refusal(request.app.state.hub.settings, request.headers.get("authorization"),
                            f"{request.method} {request.url.path}")
    if refusal is not None:
        headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
        raise HTTPException(refusal.status, refusal.message, headers=headers)


def bind_warning(settings: ServerSettings) -> str | None:
    """What `arena serve` warns about: listening beyond loopback with no admin token."""
    if is_loopback(settings.host) or settings.admin_token:
        return None
    return (f"listening on {settings.host}, beyond loopback, with no ARENA_ADMIN_TOKEN: admin operations (export, "
            "metrics, tournament games) are refused; set ARENA_ADMIN_TOKEN to allow them with that token")


def normal_origin(origin: str) -> str:
    """`scheme://host[:port]`, lower case, without the scheme's default port; ValueError if `origin` is not one."""
    parts = urlsplit(origin.strip())
    if (parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.query
            or parts.fragment or parts.username is not None):
        raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port  # ValueError for a port out of range
    return f"{parts.scheme}://{host}" + ("" if port in (None, DEFAULT_PORTS[parts.scheme]) else f":{port}")


Origin = Annotated[str, AfterValidator(normal_origin)]  # a configured origin, in the form browsers send


def own_origin(connection: HTTPConnection) -> str | None:
    """The origin this request reached the server on: its scheme (ws -> http) and Host header."""
    host, scheme = connection.headers.get("host"), connection.url.scheme
    try:
        return normal_origin(f"{WS_TO_HTTP.get(scheme, scheme)}://{host}") if host else None
    except ValueError:
        return None


def origin_refusal(connection: HTTPConnection, allowed: Collection[str]) -> str | None:
    """Why a websocket handshake is refused: an Origin neither the server's own nor `allowed`; None passes it."""
    origin = connection.headers.get("origin")
    if origin is None:
        return None
    own = own_origin(connection)
    try:
        if normal_origin(origin) in {own, *allowed}:
            return None
    except ValueError:
        pass
    return (f"cross-site websocket refused: Origin {origin} is not this server's ({own}) and not in "
            "ARENA_ALLOWED_ORIGINS")


class OriginCheck:
    """ASGI middleware: every websocket handshake passes `origin_refusal` before any route sees it."""

    def __init__(self, app: ASGIApp, allowed: Collection[str]) -> None:
        self.app, self.allowed = app, frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a cross-site websocket handshake with HTTP 403 and the reason; pass everything else on."""
        if scope["type"] == "websocket":
            websocket = WebSocket(scope, receive, send)
            refusal = origin_refusal(websocket, self.allowed)
            if refusal is not None:
                log.warning("%s (%s)", refusal, websocket.url.path)
                await websocket.send_denial_response(JSONResponse({"detail": refusal}, status_code=403))
                return
        await self.app(scope, receive, send)
