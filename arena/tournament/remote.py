"""Playing a tournament on a running arena server: every game is a direct `challenge` to agents connected there.

The server plays and stores the games (each episode linked to its scheduled game); this process stores the
schedule, in the same database: the tournament's `--db` must be the server's.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import httpx
import websockets
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect

from agents.remote import ws_url
from arena import protocol
from arena.play import Arena, GameSpec
from arena.tournament import run
from arena.tournament.config import TournamentConfig

Advance = Callable[[int], None]


class TournamentServerError(Exception):
    """The server cannot play the tournament: unreachable, an agent not connected, a refused token or challenge,
    or a lost connection."""


def http_url(url: str) -> str:
    """The server's HTTP address for its websocket URL: `ws://HOST:PORT[/ws]` -> `http://HOST:PORT`."""
    parts = urlsplit(url)
    return urlunsplit(({"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme), parts.netloc, "", "", ""))


async def check_online(url: str, names: list[str]) -> None:
    """TournamentServerError naming the agents that are neither connected to the server nor its house agents."""
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(http_url(url) + "/api/online")
    except httpx.HTTPError as error:
        raise TournamentServerError(f"cannot reach {url}: {error}") from error
    try:
        online = protocol.OnlineAgents.model_validate_json(response.raise_for_status().content)
    except (httpx.HTTPStatusError, ValidationError) as error:
        raise TournamentServerError(f"{url} does not list its connected agents (GET /api/online answered "
                                    f"{response.status_code}): is it an arena server?") from error
    missing = [name for name in names if name not in {*online.connected, *online.house}]
    if missing:
        raise TournamentServerError(f"not connected to {url}: {', '.join(missing)} "
                                    "(connect each agent with `arena connect` first)")


async def play_on_server(url: str, token: str, name: str, config: TournamentConfig, db_url: str, concurrency: int,
                         progress: AbstractContextManager[Advance], new: bool, admin_token: str | None) -> None:
    """Check that every agent is connected and the token signs in, store the tournament (when `new`), then play
    its missing games as challenges, at most `concurrency` at once; `progress` gives `advance(n)`. `admin_token`
    goes with the connection: a server bound beyond loopback plays a tournament's games only with it."""
    await check_online(url, config.names)
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else None
    try:
        async with connect(ws_url(url), max_size=2**22, additional_headers=headers) as ws:
            await _sign_in(ws, token, config.names)
            async with Arena(db_url) as arena:
                if new:
                    await run.create(arena, name, config)
                row, _ = await asyncio.to_thread(run.load, arena, name)
                with progress as advance:
                    await run.play(arena, row, config, concurrency, advance, partial(_challenge_all, ws, concurrency))
    except (OSError, websockets.WebSocketException) as error:
        raise TournamentServerError(f"lost the connection to {url}: {error}") from error


async def _sign_in(ws: ClientConnection, token: str, names: list[str]) -> None:
    await ws.send(protocol.Hello(token=token).model_dump_json())
    reply = await _receive(ws)
    if not isinstance(reply, protocol.Welcome):
        raise TournamentServerError(f"the server refused the token: {getattr(reply, 'message', reply)}")
    if reply.name in names:
        raise TournamentServerError(f"the token is {reply.name}'s, an agent of the tournament: organize it with "
                                    "another agent's token (`arena agents create NAME`)")


async def _challenge_all(ws: ClientConnection, concurrency: int, todo: list[GameSpec], advance: Advance) -> None:
    """Challenge every game of `todo`, at most `concurrency` waiting or playing at once; `advance(1)` for each
    that finished. An aborted game is left for `resume`; a refused one fails the run."""
    games = iter(enumerate(todo))
    in_flight: set[int] = set()

    async def top_up() -> None:
        for ref, spec in itertools.islice(games, concurrency - len(in_flight)):
            in_flight.add(ref)
            await ws.send(protocol.Challenge(ref=ref, env_id=spec.env_id, seed=spec.seed,
                                             seats=[seat.name for seat in spec.seats], tags=list(spec.tags),
                                             tournament_game_id=spec.tournament_game_id).model_dump_json())

    await top_up()
    while in_flight:
        message = await _receive(ws)
        if isinstance(message, protocol.ChallengeOver):
            in_flight.discard(message.ref)
            if message.status == protocol.GameStatus.FINISHED:
                advance(1)
            await top_up()
        elif isinstance(message, protocol.Error):
            raise TournamentServerError(_refused(message, todo))
        elif isinstance(message, protocol.Shutdown):
            raise TournamentServerError(f"the server stopped: {message.message}")


def _refused(error: protocol.Error, todo: list[GameSpec]) -> str:
    """One line for a refused challenge, naming its game."""
    if error.ref is None or not 0 <= error.ref < len(todo):
        return f"the server refused a challenge: {error.code}: {error.message}"
    spec = todo[error.ref]
    return (f"the server refused {spec.env_id} seed {spec.seed} ({', '.join(s.name for s in spec.seats)}): "
            f"{error.code}: {error.message}")


async def _receive(ws: ClientConnection) -> protocol.Message:
    return protocol.SERVER_MESSAGE.validate_json(await ws.recv())
