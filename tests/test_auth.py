"""Who may do what: admin operations (export, a tournament's games) need the admin token once the server is bound
beyond loopback, from every client; websockets opened by another site's page are refused (the Origin check)."""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import Ran, arena, play_games
from server_helpers import Client, InProcessServer, ServerProcess, ServerUnderTest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from arena.play import schedule
from arena.server.auth import admin_refusal, origin_refusal
from arena.store import agents as agent_store
from arena.store.database import open_database
from arena.store.models import EpisodeRow, TournamentGameRow

TOKEN = "s3cret-admin-token"
EVIL = "https://evil.example"
ENV = "TicTacToe-v0"
TOURNAMENT_CHALLENGE = {"type": "challenge", "ref": 0, "env_id": ENV, "seed": 1, "seats": ["random", "first"],
                        "tournament_game_id": 1}


@pytest.fixture
def serve(db_url: str, tmp_path: Path) -> Iterator[Callable[..., ServerUnderTest]]:
    """Start the server with flags, an ARENA_ADMIN_TOKEN ('' for none) and more variables (`process=True`: as
    `arena serve` in a subprocess); stopped afterwards."""
    servers: list[ServerUnderTest] = []

    def start(*flags: str, admin_token: str = "", process: bool = False, **env: str) -> ServerUnderTest:
        env |= {"ARENA_ADMIN_TOKEN": admin_token, "COLUMNS": "500"}
        kind = ServerProcess if process else InProcessServer
        servers.append(kind(db_url, *flags, cwd=tmp_path, env=env).start())
        return servers[-1]

    yield start
    for srv in servers:
        srv.stop()


def fetch(url: str, authorization: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a GET, with an Authorization header if given."""
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def arena_with(*args: str, admin_token: str | None = None, **env_vars: str) -> Ran:
    """Run the `arena` command, with ARENA_ADMIN_TOKEN in its environment only when given, plus `env_vars`."""
    return arena(*args, env={"ARENA_ADMIN_TOKEN": admin_token, **env_vars})


def server_output(srv: ServerProcess) -> str:
    """What `arena serve` printed, once stopped, with its line wrapping undone."""
    srv.stop()
    return " ".join(srv.output().split())


@pytest.mark.parametrize(("host", "configured", "header", "status"), [
    ("127.0.0.1", None, None, None), ("::1", None, None, None), ("localhost", "", None, None),
    ("127.0.0.1", TOKEN, "Bearer wrong", None),
    ("0.0.0.0", None, None, 403), ("0.0.0.0", None, f"Bearer {TOKEN}", 403), ("0.0.0.0", TOKEN, None, 401),
    ("0.0.0.0", TOKEN, "Bearer wrong", 401), ("0.0.0.0", TOKEN, f"Basic {TOKEN}", 401),
    ("0.0.0.0", TOKEN, f"Bearer {TOKEN}", None), ("0.0.0.0", TOKEN, f"bearer  {TOKEN} ", None),
    ("10.0.0.7", TOKEN, f"Bearer {TOKEN}x", 401), ("arena.example.org", TOKEN, None, 401),
    ("::", TOKEN, f"Bearer {TOKEN}", None)])
def test_the_bound_host_decides_whether_admin_operations_need_the_token(host, configured, header, status) -> None:
    refusal = admin_refusal(SimpleNamespace(host=host, admin_token=configured), header, "export")
    assert (refusal.status if refusal else None) == status, refusal
    if refusal is not None:
        assert "ARENA_ADMIN_TOKEN" in refusal.message and host in refusal.message, refusal.message


def handshake(origin: str | None, host: str = "arena.example.org", scheme: str = "wss") -> HTTPConnection:
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin is not None else [])
    return HTTPConnection({"type": "websocket", "scheme": scheme, "path": "/ws", "headers": headers})


@pytest.mark.parametrize(("origin", "host", "scheme", "passes"), [
    (None, "arena.example.org", "wss", True), ("https://arena.example.org", "arena.example.org", "wss", True),
    ("https://ARENA.example.org:443", "arena.example.org", "wss", True),
    ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws", True), ("http://[::1]:8000", "[::1]:8000", "ws", True),
    ("https://partner.example.com", "arena.example.org", "wss", True),
    ("http://arena.example.org", "arena.example.org", "wss", False),
    ("https://arena.example.org:8443", "arena.example.org", "wss", False),
    ("http://localhost:8000", "127.0.0.1:8000", "ws", False), (EVIL, "arena.example.org", "wss", False),
    ("null", "arena.example.org", "wss", False), ("https://arena.example.org.evil.example", "arena.example.org",
                                                  "wss", False)])
def test_the_origin_check_passes_the_servers_own_pages_and_the_allowed_list(origin, host, scheme, passes) -> None:
    refusal = origin_refusal(handshake(origin, host, scheme), {"https://partner.example.com"})
    assert (refusal is None) == passes, refusal
    if not passes:
        assert origin in refusal and "ARENA_ALLOWED_ORIGINS" in refusal


def test_a_server_bound_beyond_loopback_exports_and_shows_metrics_only_with_the_admin_token(serve, db_url: str) -> None:
    asyncio.run(play_games(db_url, schedule(ENV, ["random", "first"], 3, 1)))
    srv = serve("--host", "0.0.0.0", admin_token=TOKEN)
    export = f"{srv.url}/api/export?format=messages"  # 127.0.0.1: the peer is loopback, the bound host is not
    status, headers, body = fetch(export)
    assert status == 401, body
    assert "Authorization: Bearer" in json.loads(body)["detail"] and headers["www-authenticate"] == "Bearer"
    assert fetch(export, "Bearer wrong")[0] == 401
    assert fetch(export + "&format=sft")[0] == 401, "refused before the query is even read"
    status, _, exported = fetch(export, f"Bearer {TOKEN}")
    assert status == 200 and exported.count(b"\n") >= 3
    assert fetch(f"{srv.url}/metrics")[0] == 401, "the server's metrics are not for everyone either"
    status, _, metrics = fetch(f"{srv.url}/metrics", f"Bearer {TOKEN}")
    assert status == 200 and b"arena_games_total" in metrics
    srv.stop()

    local = serve()  # bound to 127.0.0.1, as by default: no token needed, as before
    status, _, body = fetch(f"{local.url}/api/export?format=messages")
    assert status == 200 and body == exported


def test_beyond_loopback_without_an_admin_token_admin_operations_are_refused_and_serve_warns(serve) -> None:
    srv = serve("--host", "0.0.0.0", "--house", "random,first", process=True)  # what `arena serve` prints
    admin_paths = ("/api/export?format=messages", "/metrics")
    for path, authorization in itertools.product(admin_paths, (None, f"Bearer {TOKEN}")):
        status, _, body = fetch(srv.url + path, authorization)
        assert status == 403 and "ARENA_ADMIN_TOKEN" in json.loads(body)["detail"], body

    async def challenge() -> dict:
        client = await Client.open(srv.ws, guest="ada")
        await client.send(**TOURNAMENT_CHALLENGE)
        return await client.expect("error", timeout=120)  # the server checks the catalog first

    refused = asyncio.run(challenge())
    assert refused["code"] == "admin_required" and "ARENA_ADMIN_TOKEN" in refused["message"], refused
    printed = server_output(srv)
    assert "warning: listening on 0.0.0.0, beyond loopback, with no ARENA_ADMIN_TOKEN" in printed, printed


def test_a_tournament_on_a_server_bound_beyond_loopback_plays_only_with_the_admin_token(serve, db_url: str) -> None:
    srv = serve("--host", "0.0.0.0", "--house", "random,first", admin_token=TOKEN)
    engine = open_database(db_url)
    with Session(engine) as session, session.begin():
        organizer = agent_store.create_with_token(session, "organizer")
    run = arena_with("tournament", "run", "--name", "cup", "--envs", ENV, "--agents", "random,first",
                     "--games-per-pair", "2", "--server", srv.ws, "--token", organizer, "--db", db_url)
    assert run.returncode == 2 and "admin_required" in run.stderr and "ARENA_ADMIN_TOKEN" in run.stderr, run.stderr
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(EpisodeRow)) == 0, "no game was played"

    resumed = arena_with("tournament", "resume", "cup", "--token", organizer, "--db", db_url, admin_token=TOKEN)
    assert resumed.returncode == 0, resumed.stderr
    with Session(engine) as session:
        scheduled = session.scalar(select(func.count()).select_from(TournamentGameRow))
        played = session.scalars(select(EpisodeRow).where(EpisodeRow.tournament_game_id.is_not(None))).all()
        assert scheduled == 2 and sorted(e.status for e in played) == ["finished", "finished"]
    engine.dispose()


async def handshake_status(url: str, origin: str | None, **options) -> int | dict:
    """403 (with the reason checked) when the server refuses the handshake, else the reply to a `ping`."""
    try:
        async with connect(url, origin=origin, **options) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            return json.loads(await asyncio.wait_for(ws.recv(), 20))
    except InvalidStatus as error:
        reason = json.loads(error.response.body)["detail"]
        assert f"Origin {origin} is not this server's" in reason, reason
        return error.response.status_code


def test_a_websocket_from_another_sites_page_is_refused(serve) -> None:
    srv = serve(ARENA_ALLOWED_ORIGINS="https://other.example, https://arena.example.org")  # as the flag takes it
    base = f"ws://127.0.0.1:{srv.port}"
    no_verify = ssl.create_default_context()
    no_verify.check_hostname, no_verify.verify_mode = False, ssl.CERT_NONE

    async def attempts() -> None:
        for path in ("/ws", "/textarena/ws", "/openenv/ws", f"/openenv/{ENV}/ws"):
            assert await handshake_status(base + path, EVIL) == 403, path
        game_socket = f"wss://127.0.0.1:{srv.tls_port}/textarena/game/ws"
        assert await handshake_status(game_socket, EVIL, ssl=no_verify) == 403
        for origin in (None, f"http://127.0.0.1:{srv.port}", "https://arena.example.org"):
            assert (await handshake_status(srv.ws, origin))["type"] == "pong", origin
        reply = await handshake_status(f"wss://127.0.0.1:{srv.tls_port}/ws", f"https://127.0.0.1:{srv.tls_port}",
                                       ssl=no_verify)
        assert reply["type"] == "pong", "a page served on the TLS port opens its own sockets"

    asyncio.run(attempts())
    assert srv.get("/health")["status"] == "ok"


def test_serve_refuses_a_malformed_allowed_origin(tmp_path: Path) -> None:
    done = arena_with("serve", "--allowed-origins", "arena.example.org", "--db", f"sqlite:///{tmp_path / 'a.db'}")
    assert done.returncode == 2 and "not an origin (scheme://host[:port]): 'arena.example.org'" in done.stderr, \
        done.stderr


@pytest.mark.parametrize(("name", "value", "error"), [
    ("ARENA_ALLOWED_ORIGINS", '["https://arena.example.org"', "allowed_origins: Value error, not a JSON list"),
    ("ARENA_ALLOWED_ORIGINS", "https://arena.example.org,arena.example.org", "not an origin"),
    ("ARENA_HOUSE", '["random", first]', "house: Value error, not a JSON list"),
])
def test_serve_refuses_a_malformed_list_in_the_environment(tmp_path: Path, name: str, value: str, error: str) -> None:
    done = arena_with("serve", "--db", f"sqlite:///{tmp_path / 'a.db'}", **{name: value})
    assert done.returncode == 2 and error in done.stderr and "Traceback" not in done.stderr, done.stderr
