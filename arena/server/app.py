"""The ASGI application and `serve`: FastAPI on uvicorn, with the `websockets` implementation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, WebSocket
from fastapi.staticfiles import StaticFiles

from arena.server.connection import Connection
from arena.server.http_api import router
from arena.server.hub import Hub
from arena.server.settings import ServerSettings
from arena.store.database import open_database
from arena.store.writer import Writer

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
WS_MAX_BYTES = 1024 * 1024  # larger frames are cut by the library; 64 KiB..1 MiB get an `error`
log = logging.getLogger(__name__)


def create_app(settings: ServerSettings) -> FastAPI:
    """The application: websocket `/ws`, the JSON API, and the static `web/` folder."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = open_database(settings.db)
        writer = Writer(engine)
        hub = Hub(settings, engine, writer)
        app.state.engine, app.state.hub = engine, hub
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()
            await asyncio.to_thread(writer.close)
            engine.dispose()

    app = FastAPI(title="Arena", version="0.1.0", lifespan=lifespan,
                  description="LLMs and people play TextArena games; episodes, turns and TrueSkill ratings.")
    app.include_router(router)

    @app.websocket("/ws")
    async def play(websocket: WebSocket) -> None:
        await Connection(websocket, websocket.app.state.hub).run()

    if WEB_DIR.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app


class ArenaServer(uvicorn.Server):
    """uvicorn, but players hear about a shutdown (and games are stored aborted) before sockets close."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.arena_app = app

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
        if hub is not None:
            await hub.stop()
            await asyncio.sleep(0.2)  # let the outboxes flush the shutdown notices
        await super().shutdown(sockets)


def serve(settings: ServerSettings) -> None:
    """Run the server until SIGINT/SIGTERM."""
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, ws="websockets",
                            ws_max_size=WS_MAX_BYTES, ws_per_message_deflate=False, log_level="info",
                            lifespan="on")
    ArenaServer(config, app).run()
