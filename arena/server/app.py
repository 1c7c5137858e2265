"""The ASGI application and `serve`: FastAPI on uvicorn, with the `websockets` implementation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import make_url

from arena.play import Arena
from arena.server.auth import OriginCheck
from arena.server.connection import Connection
from arena.server.export_api import router as export_router
from arena.server.http_api import router
from arena.server.hub import Hub
from arena.server.limits import uvicorn_protocols
from arena.server.openenv import router as openenv_router
from arena.server.settings import ServerSettings
from arena.server.textarena_compat import router as textarena_router
from arena.server.tls import self_signed
from arena.store.database import database_url

GROUP_COMMIT_S = 0.002  # a live server's writes trickle in, one per move: let a few share a commit
WEB_DIR = Path(__file__).resolve().parents[2] / "web"
WS_MAX_BYTES = 1024 * 1024  # larger frames are cut by the library; 64 KiB..1 MiB get an `error`
log = logging.getLogger(__name__)


def create_app(settings: ServerSettings) -> FastAPI:
    """The application: websocket `/ws`, the JSON API, and the static `web/` folder."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # closed (every write committed) after the hub stops
        async with Arena(database_url(settings.db), group_commit_s=GROUP_COMMIT_S) as arena:
            hub = Hub(settings, arena)
            app.state.arena, app.state.hub = arena, hub
            try:
                await hub.start()
                yield
            finally:
                await hub.stop()

    app = FastAPI(title="Arena", version="0.1.0", lifespan=lifespan,
                  description="LLMs and people play TextArena games; episodes, turns and TrueSkill ratings.")
    app.add_middleware(OriginCheck, allowed=settings.allowed_origins)  # every websocket route, the TLS port's too
    app.include_router(router)
    app.include_router(export_router)
    app.include_router(textarena_router)
    app.include_router(openenv_router)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        """FastAPI's 422, written as ASCII JSON: a refused input may hold a lone surrogate UTF-8 cannot encode."""
        body = json.dumps({"detail": jsonable_encoder(error.errors())}, ensure_ascii=True)
        return Response(body, status_code=422, media_type="application/json")

    @app.websocket("/ws")
    async def play(websocket: WebSocket) -> None:
        await Connection(websocket, websocket.app.state.hub).run()

    if WEB_DIR.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app


class TlsServer(uvicorn.Server):
    """The TLS listener beside the main server, which handles signals and stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signals to the main server."""
        yield


class ArenaServer(uvicorn.Server):
    """uvicorn, but players hear about a shutdown (and games are stored aborted) before sockets close.

    It also runs the TLS listener for TextArena clients' game sockets, and stops it with itself."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, tls: uvicorn.Server | None = None) -> None:
        super().__init__(config)
        self.arena_app, self.tls = app, tls

    async def serve(self, sockets=None) -> None:
        """Serve plain HTTP/websockets and, beside it, the TLS port."""
        if self.tls is None:
            await super().serve(sockets)
            return
        tls_task = asyncio.create_task(self.tls.serve())
        try:
            await super().serve(sockets)
        finally:
            self.tls.should_exit = True
            await tls_task

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Handle SIGINT/SIGTERM as a clean stop (exit 0); uvicorn would re-raise the signal afterwards."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets=None) -> None:
        """Stop the hub first, then let uvicorn close connections and run the lifespan shutdown."""
        hub: Hub | None = getattr(self.arena_app.state, "hub", None)
        if self.tls is not None:
            self.tls.should_exit = True
        if hub is not None:
            await hub.stop()
            await asyncio.sleep(0.2)  # let the outboxes flush the shutdown notices
        await super().shutdown(sockets)


def serve(settings: ServerSettings) -> None:
    """Run the server until SIGINT/SIGTERM."""
    build_server(settings).run()


def build_server(settings: ServerSettings, log_level: str = "info") -> ArenaServer:
    """The server for `settings`, not started: the app on uvicorn (h11 and websockets-sansio, with the arena's
    limits), and beside it the TLS listener for TextArena clients' game sockets."""
    app = create_app(settings)
    common = {"host": settings.host, "ws_max_size": WS_MAX_BYTES, "ws_per_message_deflate": False,
              "log_level": log_level, **uvicorn_protocols(settings)}
    config = uvicorn.Config(app, port=settings.port, lifespan="on", **common)
    cert, key = tls_files(settings)
    tls = TlsServer(uvicorn.Config(app, port=settings.tls_port, lifespan="off", ssl_certfile=str(cert),
                                   ssl_keyfile=str(key), **common))
    return ArenaServer(config, app, tls)


def tls_files(settings: ServerSettings) -> tuple[Path, Path]:
    """The operator's certificate and key, or a self-signed pair kept next to the database."""
    if settings.tls_cert and settings.tls_key:
        return Path(settings.tls_cert), Path(settings.tls_key)
    url = make_url(database_url(settings.db))
    folder = Path(url.database).resolve().parent if url.get_backend_name() == "sqlite" and url.database else Path.cwd()
    return self_signed(folder, settings.host)
