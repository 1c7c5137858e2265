"""The server's state: who is connected, who waits, which games are live. Games run on the runner."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.base import Agent
from agents.specs import build_agent, parse_spec
from arena import protocol
from arena.engine import Event, Game, PublicMessages
from arena.recorder import Recorder
from arena.runner import Match, MatchListener, MatchResult, Seat, play_match
from arena.server.matchmaking import Pairing, Ticket, find_matches
from arena.server.metrics import ServerMetrics
from arena.server.players import Player, RemoteSeat
from arena.server.settings import ServerSettings
from arena.store import agents as agent_store
from arena.store import episodes
from arena.store.models import OVERALL, RatingRow
from arena.store.writer import Writer
from games import catalog

if TYPE_CHECKING:
    from arena.server.connection import Connection

log = logging.getLogger(__name__)
QUEUED_EVERY_S = 2.0  # how often a waiting player hears its position and wait


class HubError(Exception):
    """A request the hub refuses; `code` goes into the `error` message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(eq=False)
class LiveGame:
    """A game in progress, as transports see it."""

    env_id: str
    names: list[str]
    remote: dict[int, RemoteSeat]
    abandon: asyncio.Future[tuple[int, str]]
    game_id: int = 0
    game: Game | None = None
    spectators: set[Connection] = field(default_factory=set)
    task: asyncio.Task | None = None

    def broadcast(self, message: protocol.Message) -> None:
        """Send to every seated player and every spectator (serialised once)."""
        text = message.model_dump_json()
        for seat in self.remote.values():
            seat.player.send(message, text)
        for spectator in list(self.spectators):
            spectator.send(text)


class Hub:
    """Identity, queues, live games and their lifecycle; transports call in, the runner plays."""

    def __init__(self, settings: ServerSettings, engine, writer: Writer) -> None:
        self.settings, self.engine = settings, engine
        self.recorder = Recorder(writer)
        self.house: list[Seat] = []
        self.tickets: dict[Player, Ticket] = {}  # waiting players, in the order they queued
        self._waiting: Counter[str] = Counter()  # env id -> tickets waiting for it
        self.live: dict[int, LiveGame] = {}
        self.accepting = True
        self._pending: dict[int, LiveGame] = {}
        self._matcher: asyncio.Task | None = None
        self._rng = random.Random()
        self._finished: set[int] = set()
        self._wake_pending = False
        self._known_ratings: dict[int, dict[str, tuple[float, float]]] = {}  # agent id -> env -> (mu, sigma)
        self.metrics = ServerMetrics()
        self.metrics.live_games.set_function(lambda: len(self.live))

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Abort games a previous process left running, register house agents, start matchmaking."""
        aborted = await self.recorder.writer.run(
            lambda s: episodes.mark_running_aborted(s, "aborted: the server stopped before the game ended"))
        if aborted:
            log.warning("marked %d episodes left running by a previous process as aborted", aborted)
        specs = [parse_spec(text) for text in self.settings.house]
        house_agents: list[Agent] = [build_agent(spec) for spec in specs]
        for agent in house_agents:
            await agent.start()
        ids = await self.recorder.register([(s.name, s.kind, s.text) for s in specs])
        self.house = [Seat(agent, agent_id) for agent, agent_id in zip(house_agents, ids, strict=True)]
        self._matcher = asyncio.create_task(self._match_forever())
        self._warmup = asyncio.create_task(asyncio.to_thread(catalog.load))  # checks the catalog once, cached

    async def stop(self) -> None:
        """Stop matchmaking, tell everyone, abort live games (stored, unrated). Safe to call twice."""
        if not self.accepting:
            return
        self.accepting = False
        if self._matcher:
            self._matcher.cancel()
        notice = protocol.Shutdown(message="the server is shutting down; games in progress are aborted")
        for ticket in self.tickets.values():
            ticket.player.send(notice)
        self.tickets.clear()
        self._waiting.clear()
        games = list(self.live.values()) + list(self._pending.values())
        for live in games:
            live.broadcast(notice)
        tasks = [live.task for live in games if live.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for seat in self.house:
            await seat.agent.close()

    # --- requests from connections ---------------------------------------------------------

    async def identify(self, hello: protocol.Hello) -> tuple[Player, str | None]:
        """The player a token or guest name stands for; a new guest also gets its token."""
        if hello.token:
            row = await asyncio.to_thread(self.read, lambda s: agent_store.by_token(s, hello.token))
            if row is None:
                raise HubError("bad_token", "unknown token: create one with `arena agents create NAME`")
            return Player(row.id, row.name, row.kind), None
        if hello.guest:
            name = f"guest:{hello.guest}"
            try:
                token = await self.recorder.writer.run(lambda s: agent_store.create_with_token(s, name, "guest"))
            except agent_store.AgentConflict as error:
                raise HubError("name_taken", f"the guest name '{hello.guest}' is taken; pick another, "
                                             "or sign in with its token") from error
            row = await asyncio.to_thread(self.read, lambda s: agent_store.by_token(s, token))
            self._known_ratings[row.id] = {}  # a new agent has no ratings yet
            return Player(row.id, row.name, row.kind), token
        raise HubError("missing_token", "hello needs a token (agents) or a guest name (people)")

    async def enqueue(self, player: Player, request: protocol.Queue) -> protocol.Queued:
        """Validate the envs and put the player in their queues."""
        if not self.accepting:
            raise HubError("shutting_down", "the server is shutting down")
        envs = list(dict.fromkeys(request.envs))
        loaded = self._warmup.done() and not self._warmup.exception()  # then lookups are in memory
        infos = [self._playable(env_id) if loaded else await asyncio.to_thread(self._playable, env_id)
                 for env_id in envs]
        known = await self._ratings(player.agent_id)
        ratings = {env_id: known[env_id] for env_id in [*envs, OVERALL] if env_id in known}
        self.leave(player)
        ticket = Ticket(player, envs, {i.env_id: _seats_needed(i) for i in infos},
                        request.opponent, request.self_play, time.monotonic(), ratings, time.monotonic())
        self.tickets[player] = ticket
        self._waiting.update(envs)
        self.wake()
        return protocol.Queued(envs=envs, position=min(self._waiting[e] for e in envs), waited=0.0)

    def leave(self, player: Player) -> None:
        """Take the player out of every queue."""
        ticket = self.tickets.pop(player, None)
        if ticket is not None:
            self._waiting.subtract(ticket.envs)

    def act(self, player: Player, action: protocol.Action, arrived: float) -> protocol.Ack:
        """Deliver an action (arrived at perf_counter() time `arrived`) to the player's seat in that game."""
        live = self.live.get(action.game_id)
        if action.game_id in self._finished or live is not None and live.game is not None and live.game.done:
            raise HubError("game_over", f"game {action.game_id} is over")
        if live is None or live.game is None:
            raise HubError("unknown_game", f"game {action.game_id} is not in progress")
        seat = player.seats.get(action.game_id)
        if seat is None:
            raise HubError("not_your_game", f"you hold no seat in game {action.game_id}")
        turn = live.game.pending.seat if live.game.pending else None
        if turn != seat.seat or seat.turn is None:
            raise HubError("not_your_turn", f"it is not seat {seat.seat}'s turn in game {action.game_id}")
        problem = seat.answer(seat.turn.turn, action.action)
        if problem:
            raise HubError(problem, f"no move is expected from you in game {action.game_id} now")
        self.metrics.action_arrived(action.game_id, arrived)
        return protocol.Ack(game_id=action.game_id, turn=len(live.game.turns))

    def resume(self, player: Player, game_id: int) -> None:
        """Give a returning player back its seat and what it missed."""
        live = self.live.get(game_id)
        if live is None or live.game is None:
            raise HubError("unknown_game", f"game {game_id} is not in progress")
        seats = [s for s in live.remote.values() if s.player.agent_id == player.agent_id
                 and s.player.connection is None]
        if not seats:
            raise HubError("not_your_game", f"you hold no dropped seat in game {game_id}")
        seat = seats[0]
        seat.player = player
        player.seats[game_id] = seat
        player.send(protocol.MatchFound(game_id=game_id, env_id=live.env_id, seat=seat.seat, players=live.names,
                                        resumed=True))
        player.send(_event(game_id, live.game.public_log))
        seat.resumed()

    def dropped_game_of(self, agent_id: int) -> int | None:
        """A live game in which this agent holds a seat whose connection is gone."""
        for game_id, live in self.live.items():
            if any(s.player.agent_id == agent_id and s.player.connection is None for s in live.remote.values()):
                return game_id
        return None

    def spectate(self, connection: Connection, game_id: int) -> None:
        """Start sending a game's public view to `connection`."""
        live = self.live.get(game_id)
        if live is None or live.game is None:
            raise HubError("unknown_game", f"game {game_id} is not in progress")
        live.spectators.add(connection)
        connection.send(protocol.MatchFound(game_id=game_id, env_id=live.env_id, seat=-1, players=live.names))
        connection.send(_event(game_id, live.game.public_log))

    def disconnected(self, player: Player | None, connection: Connection) -> None:
        """A connection closed: leave queues, stop spectating, start the grace period on held seats."""
        for live in self.live.values():
            live.spectators.discard(connection)
        if player is None:
            return
        self.leave(player)
        player.connection = None
        for seat in player.seats.values():
            if seat.player is player:
                seat.dropped()

    # --- matchmaking -----------------------------------------------------------------------

    def wake(self) -> None:
        """Run a matchmaking pass soon (one pass serves every enqueue that came before it)."""
        if not self._wake_pending:
            self._wake_pending = True
            asyncio.get_running_loop().call_soon(self._match_once)

    async def _match_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.match_interval)
            self._match_once()

    def _match_once(self) -> None:
        self._wake_pending = False
        if not self.accepting:
            return
        now = time.monotonic()
        house = [seat.agent.name for seat in self.house]
        for pairing in find_matches(list(self.tickets.values()), now, self.settings.house_wait, house, self._rng):
            for ticket in pairing.tickets:
                self.leave(ticket.player)
            self._launch(pairing)
        due = [t for t in self.tickets.values() if now - t.told >= QUEUED_EVERY_S]
        if due:
            positions = self._positions()
            for ticket in due:
                ticket.told = now
                ticket.player.send(protocol.Queued(envs=ticket.envs, position=positions[id(ticket)],
                                                   waited=round(now - ticket.since, 1)))

    def _launch(self, pairing: Pairing) -> None:
        """Seat the players and house agents in a random order and start the game."""
        abandon: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        live = LiveGame(pairing.env_id, [], {}, abandon)
        seats: list[Seat] = []
        for ticket in pairing.tickets:
            remote = RemoteSeat(ticket.player, 0, len(seats), self.settings.resume_grace, abandon,
                                self.metrics.turn_sent)
            live.remote[len(seats)] = remote
            seats.append(Seat(remote, ticket.player.agent_id))
        by_name = {seat.agent.name: seat for seat in self.house}
        seats += [by_name[name] for name in pairing.house]
        order = list(range(len(seats)))
        self._rng.shuffle(order)
        seats = [seats[i] for i in order]
        live.remote = {order.index(old): remote for old, remote in live.remote.items()}
        for seat_index, remote in live.remote.items():
            remote.seat = seat_index
        live.names = [s.agent.name for s in seats]
        match = Match(pairing.env_id, self._rng.randrange(2**31), seats, move_timeout=self.settings.move_timeout,
                      abandon=abandon, tags=["server"])
        key = id(live)
        self._pending[key] = live
        live.task = asyncio.create_task(self._play(match, live, key))

    async def _play(self, match: Match, live: LiveGame, key: int) -> None:
        """Run one game on the runner; announce the result (after its commit), then forget the game."""
        status = "aborted"
        try:
            result = await play_match(match, self.recorder, _LiveListener(self, live))
            self._finished.add(live.game_id)
            self._remember_ratings(result)
            self._announce(live, result)
            status = result.outcome.status
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - a failed game must not take the server down
            log.exception("game %s failed", live.game_id)
            status = "failed"
        finally:
            self.metrics.game_ended(live.game_id, status)
            self._pending.pop(key, None)
            self.live.pop(live.game_id, None)
            for remote in live.remote.values():
                remote.player.seats.pop(live.game_id, None)

    def _announce(self, live: LiveGame, result: MatchResult) -> None:
        """game_over to each player (with its rating change) and to spectators; sent after the commit."""
        outcome = result.outcome
        base = protocol.GameOver(game_id=live.game_id, status=outcome.status, reason=outcome.reason,
                                 rewards=outcome.rewards)
        for spectator in live.spectators:
            spectator.send(base)
        scoped = {c.agent_id: c for c in result.rating_changes if c.env_id == live.env_id}
        for seat_index, remote in live.remote.items():
            change = scoped.get(remote.player.agent_id)
            remote.player.send(base.model_copy(update={
                "seat": seat_index, "reward": outcome.rewards.get(seat_index),
                "rating_before": change.before if change else None,
                "rating_after": change.after if change else None,
                "rating_change": change.change if change else None,
            }))

    # --- helpers ---------------------------------------------------------------------------

    def _positions(self) -> dict[int, int]:
        """Each ticket's place (1 = next) in the shortest of its env queues."""
        counts: dict[str, int] = {}
        positions: dict[int, int] = {}
        for ticket in self.tickets.values():
            places = []
            for env_id in ticket.envs:
                counts[env_id] = counts.get(env_id, 0) + 1
                places.append(counts[env_id])
            positions[id(ticket)] = min(places)
        return positions

    def read(self, query):
        """Run a read-only `query(session)` (call it in a worker thread)."""
        with Session(self.engine) as session:
            return query(session)

    def _playable(self, env_id: str) -> catalog.GameInfo:
        try:
            return catalog.require_playable(env_id)
        except catalog.GameError as error:
            code = "unknown_env" if "unknown env id" in str(error) else "unplayable_env"
            raise HubError(code, str(error)) from error

    async def _ratings(self, agent_id: int) -> dict[str, tuple[float, float]]:
        """An agent's ratings (mu, sigma) by env, read from the database once, then kept up to date here."""
        if agent_id not in self._known_ratings:
            query = select(RatingRow.env_id, RatingRow.mu, RatingRow.sigma).where(RatingRow.agent_id == agent_id)
            rows = await asyncio.to_thread(self.read, lambda s: s.execute(query).all())
            self._known_ratings.setdefault(agent_id, {env_id: (mu, sigma) for env_id, mu, sigma in rows})
        return self._known_ratings[agent_id]

    def _remember_ratings(self, result: MatchResult) -> None:
        """Keep the ratings matchmaking uses in step with a finished game's (committed) changes."""
        for change in result.rating_changes:
            if change.agent_id in self._known_ratings:
                self._known_ratings[change.agent_id][change.env_id] = (change.mu_after, change.sigma_after)


class _LiveListener(MatchListener):
    """Turns runner callbacks into protocol messages for one live game."""

    def __init__(self, hub: Hub, live: LiveGame) -> None:
        self.hub, self.live = hub, live

    def started(self, episode_id: int, game: Game) -> None:
        live = self.live
        live.game_id, live.game = episode_id, game
        self.hub.live[episode_id] = live
        for seat_index, remote in live.remote.items():
            remote.game_id = episode_id
            remote.player.seats[episode_id] = remote
            remote.player.send(protocol.MatchFound(game_id=episode_id, env_id=live.env_id, seat=seat_index,
                                                   players=live.names))

    def events(self, episode_id: int, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, PublicMessages):
                self.live.broadcast(_event(episode_id, event.messages))


def _event(game_id: int, messages) -> protocol.Event:
    return protocol.Event(game_id=game_id, messages=[
        protocol.GameMessage(sender=m.sender, text=m.text, kind=m.kind) for m in messages])


def _seats_needed(info: catalog.GameInfo) -> int:
    """Two for games that allow it, else the fewest players the game takes."""
    return 2 if 2 in info.players else min(info.players)
