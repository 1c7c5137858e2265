"""The server's state: who is connected, who waits, which games are live. Games run on the arena's runner."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

from agents.llm_agent import LLMAgent
from arena import protocol
from arena.engine import Event, Game, GameOver, Message, MessagesDelivered, Outcome, PublicMessages, TurnRecorded
from arena.play import AgentStartError, Arena
from arena.ratings import RatingChange
from arena.runner import Match, MatchListener, MatchResult, Seat
from arena.server.auth import admin_refusal
from arena.server.matchmaking import Pairing, Ticket, WaitingChallenge, find_matches, start_challenges
from arena.server.metrics import ServerMetrics
from arena.server.players import HouseOutbox, Outbox, Player, RemoteSeat
from arena.server.settings import ServerSettings
from arena.store import agents as agent_store
from arena.store import episodes
from arena.store import ratings as rating_rows
from arena.store.database import StoreError
from arena.store.models import OVERALL, TournamentGameRow
from games import catalog

log = logging.getLogger(__name__)
QUEUED_EVERY_S = 2.0  # how often a waiting player hears its position and wait
ErrorCode = protocol.ErrorCode


class HubError(Exception):
    """A request the hub refuses; `code` goes into the `error` message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)


@dataclass(eq=False)
class LiveGame:
    """A game in progress, as transports see it: kept up to date from the engine's committed events."""

    env_id: str
    abandon: asyncio.Future[tuple[int, str]]  # (seat, reason) once a player stayed away past the grace period
    names: list[str] = field(default_factory=list)
    remote: dict[int, RemoteSeat] = field(default_factory=dict)  # seats held by players over a connection
    house: dict[int, Player] = field(default_factory=dict)  # seats of house agents
    game_id: int = 0
    turns: int = 0  # turns stored so far
    public: list[Message] = field(default_factory=list)  # every public message so far (resume, spectate)
    over: bool = False
    game: Game | None = None  # read only for how a game that failed to be stored ended
    spectators: set[Outbox] = field(default_factory=set)
    task: asyncio.Task | None = None
    challenge: WaitingChallenge | None = None  # the challenge this game plays, if any

    def seated(self) -> dict[int, Player]:
        """Who sits in each seat now (a resumed seat's new connection)."""
        return {**self.house, **{index: remote.player for index, remote in self.remote.items()}}

    def broadcast(self, message: protocol.Message) -> None:
        """Send to every seat and every spectator (serialised once)."""
        text = message.model_dump_json()
        for player in self.seated().values():
            player.send(message, text)
        for spectator in list(self.spectators):
            spectator.send(message, text)


class Hub:
    """Identity, queues, live games and their lifecycle; transports call in, the arena plays."""

    def __init__(self, settings: ServerSettings, arena: Arena) -> None:
        self.settings, self.arena = settings, arena
        self.house: list[Seat] = []
        self._house_players: dict[str, Player] = {}  # house agent name -> its player (a HouseOutbox)
        self.tickets: dict[Player, Ticket] = {}  # waiting players, in the order they queued
        self.challenges: list[WaitingChallenge] = []  # in the order received
        self._online: set[Player] = set()  # identified players with a connection
        self._waiting: Counter[str] = Counter()  # env id -> tickets waiting for it
        self.live: dict[int, LiveGame] = {}
        self.accepting = True
        self._pending: dict[int, LiveGame] = {}
        self._matcher: asyncio.Task | None = None
        self._warmup: asyncio.Task | None = None
        self._rng = random.Random()
        self._finished: set[int] = set()
        self._wake_pending = False
        self._known_ratings: dict[int, dict[str, tuple[float, float]]] = {}  # agent id -> env -> (mu, sigma)
        self._games_held: dict[int, int] = {}  # agent id -> games it sits in or challenged, running or being stored
        self.metrics = ServerMetrics()
        self.metrics.live_games.set_function(lambda: len(self.live))

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Abort games a previous process left running, seat house agents, start matchmaking."""
        aborted = await self.arena.writer.run(episodes.mark_running_aborted,
                                              "aborted: the server stopped before the game ended")
        if aborted:
            log.warning("marked %d episodes left running by a previous process as aborted", aborted)
        for text in self.settings.house:
            try:
                seat = await self.arena.seat(text)
            except (agent_store.AgentConflict, AgentStartError) as error:  # serve without it, never stop for it
                log.error("house agent '%s' is not seated: %s", text, error)
                continue
            if isinstance(seat.agent, LLMAgent) and seat.agent.options.constrain is None:
                seat.agent.options.constrain = True  # a house model answers with a listed move (spec can opt out)
            if seat.agent.name not in self._house_players:
                self.house.append(seat)
                self._house_players[seat.agent.name] = Player(seat.agent_id, seat.agent.name, "house", HouseOutbox())
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
        for challenger in {c.challenger for c in self.challenges}:
            challenger.send(notice)
        self.tickets.clear()
        self.challenges.clear()
        self._waiting.clear()
        games = list(self.live.values()) + list(self._pending.values())
        for live in games:
            live.broadcast(notice)
        tasks = [live.task for live in games if live.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- requests from connections ---------------------------------------------------------

    async def identify(self, hello: protocol.Hello) -> tuple[Player, str | None]:
        """The player a token or guest name stands for; a new guest also gets its token."""
        if hello.token:
            row = await asyncio.to_thread(self.arena.read, partial(agent_store.by_token, token=hello.token))
            if row is None:
                raise HubError(ErrorCode.BAD_TOKEN, "unknown token: create one with `arena agents create NAME`")
            return self._connected(Player(row.id, row.name, row.kind)), None
        if hello.guest:
            name = f"guest:{hello.guest}"
            try:
                token = await self.arena.writer.run(agent_store.create_with_token, name, "guest")
            except agent_store.AgentConflict as error:
                raise HubError(ErrorCode.NAME_TAKEN, f"the guest name '{hello.guest}' is taken; pick another, "
                                                     "or sign in with its token") from error
            row = await asyncio.to_thread(self.arena.read, partial(agent_store.by_token, token=token))
            self._known_ratings[row.id] = {}  # a new agent has no ratings yet
            return self._connected(Player(row.id, row.name, row.kind)), token
        raise HubError(ErrorCode.MISSING_TOKEN, "hello needs a token (agents) or a guest name (people)")

    async def enqueue(self, player: Player, request: protocol.Queue) -> protocol.Queued:
        """Validate the envs and put the player in their queues."""
        if not self.accepting:
            raise HubError(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
        envs = list(dict.fromkeys(request.envs))
        infos = [await self.game_info(env_id) for env_id in envs]
        known = await self._ratings(player.agent_id)
        ratings = {env_id: known[env_id] for env_id in [*envs, OVERALL] if env_id in known}
        self._check_game_limit(player)
        self.leave(player)
        self._connected(player)
        ticket = Ticket(player, envs, {i.env_id: _seats_needed(i) for i in infos},
                        request.opponent, request.self_play, time.monotonic(), ratings, time.monotonic())
        self.tickets[player] = ticket
        self._waiting.update(envs)
        self.wake()
        return protocol.Queued(envs=envs, position=min(self._waiting[e] for e in envs), waited=0.0)

    async def challenge(self, player: Player, request: protocol.Challenge, authorization: str | None) -> None:
        """Check a challenge and keep it until its agents are free; `challenge_started` follows. `authorization`:
        the connection's Authorization header, which a tournament's game needs off loopback."""
        if not self.accepting:
            raise HubError(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
        seats = request.seats
        if player.name in seats:
            raise HubError(ErrorCode.CHALLENGER_SEATED, f"you ({player.name}) cannot take a seat in your own "
                                                        "challenge: challenge from another agent's connection")
        if len(set(seats)) < len(seats):
            raise HubError(ErrorCode.INVALID_MESSAGE, "seats: each agent can hold one seat")
        info = await self.game_info(request.env_id)
        if len(seats) not in info.players:
            raise HubError(ErrorCode.WRONG_SEAT_COUNT, f"{request.env_id} takes {info.players_text()} players, "
                                                       f"not {len(seats)}")
        house = {seat.agent.name for seat in self.house}
        online = self.online()
        missing = [name for name in seats if name not in house and name not in online]
        if missing:
            raise HubError(ErrorCode.AGENT_NOT_CONNECTED, f"not connected to this server: {', '.join(missing)}")
        if request.tournament_game_id is not None:
            await self._check_scheduled(request, authorization)
        else:  # a scheduled tournament game is the operator's: it does not count against the organizer
            self._check_game_limit(player)
        self.challenges.append(WaitingChallenge(player, request, [name for name in seats if name not in house]))
        self.wake()

    def online(self) -> set[str]:
        """The names of the agents connected now."""
        return {player.name for player in self._online}

    def leave(self, player: Player) -> None:
        """Take the player out of every queue."""
        ticket = self.tickets.pop(player, None)
        if ticket is not None:
            self._waiting.subtract(ticket.envs)

    def act(self, player: Player, action: protocol.Action, arrived: float) -> None:
        """Deliver an action (arrived at perf_counter() time `arrived`) to the player's seat in that game.

        The `ack` follows once the turn is stored (see `_LiveListener`)."""
        live = self.live.get(action.game_id)
        if action.game_id in self._finished or live is not None and live.over:
            raise HubError(ErrorCode.GAME_OVER, f"game {action.game_id} is over")
        if live is None:
            raise HubError(ErrorCode.UNKNOWN_GAME, f"game {action.game_id} is not in progress")
        seat = player.seats.get(action.game_id)
        if seat is None:
            raise HubError(ErrorCode.NOT_YOUR_GAME, f"you hold no seat in game {action.game_id}")
        if seat.turn is None:
            raise HubError(ErrorCode.NOT_YOUR_TURN, f"it is not seat {seat.seat}'s turn in game {action.game_id}")
        problem = seat.answer(seat.turn.turn, action.action)
        if problem:
            raise HubError(problem, f"no move is expected from you in game {action.game_id} now")
        self.metrics.action_arrived(action.game_id, arrived)

    def resume(self, player: Player, game_id: int) -> None:
        """Give a returning player back its seat and what it missed."""
        live = self.live.get(game_id)
        if live is None:
            raise HubError(ErrorCode.UNKNOWN_GAME, f"game {game_id} is not in progress")
        seats = [s for s in live.remote.values() if s.player.agent_id == player.agent_id and s.player.outbox is None]
        if not seats:
            raise HubError(ErrorCode.NOT_YOUR_GAME, f"you hold no dropped seat in game {game_id}")
        seat = seats[0]
        seat.player = player
        player.seats[game_id] = seat
        player.send(protocol.MatchFound(game_id=game_id, env_id=live.env_id, seat=seat.seat, players=live.names,
                                        resumed=True))
        player.send(_event(game_id, live.public))
        seat.resumed()

    def dropped_game_of(self, agent_id: int) -> int | None:
        """A live game in which this agent holds a seat whose connection is gone."""
        for game_id, live in self.live.items():
            if any(s.player.agent_id == agent_id and s.player.outbox is None for s in live.remote.values()):
                return game_id
        return None

    def spectate(self, outbox: Outbox, game_id: int) -> None:
        """Start sending a game's public view to `outbox`."""
        live = self.live.get(game_id)
        if live is None:
            raise HubError(ErrorCode.UNKNOWN_GAME, f"game {game_id} is not in progress")
        live.spectators.add(outbox)
        outbox.send(protocol.MatchFound(game_id=game_id, env_id=live.env_id, seat=-1, players=live.names))
        outbox.send(_event(game_id, live.public))

    def disconnected(self, player: Player | None, outbox: Outbox) -> None:
        """A connection closed: leave queues, stop spectating, start the grace period on held seats."""
        for live in self.live.values():
            live.spectators.discard(outbox)
        if player is None:
            return
        self.leave(player)
        self._online.discard(player)
        self.challenges = [c for c in self.challenges if c.challenger is not player]
        player.outbox = None
        for live in self._pending.values():  # every game the player sits in, started or still being stored
            for seat in live.remote.values():
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
        self._drop_abandoned_challenges(now)
        for pairing in start_challenges(self.challenges, list(self.tickets.values())):
            self.challenges.remove(pairing.challenge)
            self._take(pairing)
        reserved = {name for challenge in self.challenges for name in challenge.remote}
        free = [t for t in self.tickets.values() if t.player.name not in reserved]  # kept for their challenges
        for pairing in find_matches(free, now, self.settings.house_wait, house, self._rng):
            self._take(pairing)
        due = [t for t in self.tickets.values() if now - t.told >= QUEUED_EVERY_S]
        if due:
            positions = self._positions()
            for ticket in due:
                ticket.told = now
                ticket.player.send(protocol.Queued(envs=ticket.envs, position=positions[id(ticket)],
                                                   waited=round(now - ticket.since, 1)))

    def _take(self, pairing: Pairing) -> None:
        """Take the pairing's players out of the queues and start its game."""
        for ticket in pairing.tickets:
            self.leave(ticket.player)
        self._launch(pairing)

    def _drop_abandoned_challenges(self, now: float) -> None:
        """Drop the challenges an agent of which has been disconnected for longer than the resume grace."""
        if not self.challenges:
            return
        online = self.online()
        for challenge in list(self.challenges):
            gone = [name for name in challenge.remote if name not in online]
            if not gone:
                challenge.absent_since = None
            elif challenge.absent_since is None:
                challenge.absent_since = now
            elif now - challenge.absent_since >= self.settings.resume_grace:
                self.challenges.remove(challenge)
                challenge.challenger.send(protocol.Error(
                    code=ErrorCode.AGENT_NOT_CONNECTED, ref=challenge.request.ref,
                    message=f"dropped: disconnected for more than {self.settings.resume_grace:g} s: {', '.join(gone)}"))

    def _launch(self, pairing: Pairing) -> asyncio.Task:
        """Seat the players and house agents (a challenge's in its order, others shuffled) and start the game."""
        live = LiveGame(pairing.env_id, asyncio.get_running_loop().create_future(), challenge=pairing.challenge)
        entries: list[tuple[Seat, Player, RemoteSeat | None]] = []
        for ticket in pairing.tickets:
            remote = RemoteSeat(ticket.player, 0, 0, self.settings.resume_grace, live.abandon, self.metrics.turn_sent)
            entries.append((Seat(remote, ticket.player.agent_id), ticket.player, remote))
        by_name = {seat.agent.name: seat for seat in self.house}
        entries += [(by_name[name], self._house_players[name], None) for name in pairing.house]
        request = pairing.challenge.request if pairing.challenge else None
        if request is None:
            self._rng.shuffle(entries)
        else:
            entries.sort(key=lambda entry: request.seats.index(entry[0].agent.name))
        for index, (_, player, remote) in enumerate(entries):
            if remote is None:
                live.house[index] = player
            else:
                remote.seat = index
                live.remote[index] = remote
        live.names = [seat.agent.name for seat, _, _ in entries]
        seed = request.seed if request else self._rng.randrange(2**31)
        tags = ["challenge", *request.tags] if request else ["server"]
        match = Match(pairing.env_id, seed, [seat for seat, _, _ in entries], move_timeout=self.settings.move_timeout,
                      tags=tags, tournament_game_id=request.tournament_game_id if request else None)
        task = self.run_game(live, match)
        self._hold(live, task)
        return task

    def run_game(self, live: LiveGame, match: Match) -> asyncio.Task:
        """Play `match` as the server game `live`: stored, announced, rated, and aborted by a shutdown."""
        key = id(live)
        self._pending[key] = live
        live.task = asyncio.create_task(self._play(match, live, key))
        return live.task

    async def _play(self, match: Match, live: LiveGame, key: int) -> None:
        """Run one game; announce the result once it is committed, then forget the game. Every seat and
        spectator hears a `game_over`, whatever happens to the game."""
        status = "failed"
        try:
            result = await self.arena.play_match(match, _LiveListener(self, live))
        except asyncio.CancelledError:
            status = "aborted"
            self._announce(live, _ended(live, "cancelled: the server stopped before the game ended"))
            raise
        except Exception as error:  # noqa: BLE001 - a failed game must not take the server down
            log.exception("game %s failed", live.game_id)
            kind = "store error" if isinstance(error, StoreError) else f"arena error: {type(error).__name__}"
            self._announce(live, _ended(live, f"{kind}: {error}"))
        else:
            status = result.outcome.status
            self._finished.add(live.game_id)
            self._remember_ratings(result)
            self._announce(live, result.outcome, result)
        finally:
            self.metrics.game_ended(live.game_id, status)
            self._pending.pop(key, None)
            self.live.pop(live.game_id, None)
            for remote in live.remote.values():
                remote.player.seats.pop(live.game_id, None)

    def _announce(self, live: LiveGame, outcome: Outcome, result: MatchResult | None = None) -> None:
        """game_over to each seat (with its rating change) and to spectators."""
        base = protocol.GameOver(game_id=live.game_id, status=outcome.status, reason=outcome.reason,
                                 rewards=outcome.rewards)
        text = base.model_dump_json()
        for spectator in list(live.spectators):
            spectator.send(base, text)
        changes = result.rating_changes if result else []
        scoped = {c.agent_id: c for c in changes if c.env_id == live.env_id}
        for seat_index, player in live.seated().items():
            change = scoped.get(player.agent_id)
            player.send(base.model_copy(update={
                "seat": seat_index, "reward": outcome.rewards.get(seat_index),
                "result": episodes.result_of(outcome.rewards, seat_index) if outcome.rewards else None,
                **(_rating_fields(change) if change else {})}))
        if live.challenge is not None:
            live.challenge.challenger.send(protocol.ChallengeOver(
                ref=live.challenge.request.ref, game_id=live.game_id, status=outcome.status, rewards=outcome.rewards,
                reason=outcome.reason))

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

    def _check_game_limit(self, player: Player) -> None:
        """HubError when the player's agent has `max_games_per_player` games: those it sits in or challenged,
        running or being stored, its challenges still waiting, and its other connections' queue tickets."""
        agent_id, limit = player.agent_id, self.settings.max_games_per_player
        waiting = sum(1 for c in self.challenges if c.challenger.agent_id == agent_id and _charged(c))
        queued = sum(1 for other in self.tickets if other.agent_id == agent_id and other is not player)
        if self._games_held.get(agent_id, 0) + waiting + queued >= limit:
            raise HubError(ErrorCode.TOO_MANY_GAMES, f"{player.name} is at the limit of games at once ({limit}: "
                                                     "playing, waiting to start or challenged): wait until one ends")

    def _hold(self, live: LiveGame, task: asyncio.Task) -> None:
        """Count a game against the agents of its connected seats and its challenger until its task ends."""
        agents = {remote.player.agent_id for remote in live.remote.values()}
        if live.challenge is not None and _charged(live.challenge):
            agents.add(live.challenge.challenger.agent_id)
        for agent_id in agents:
            self._games_held[agent_id] = self._games_held.get(agent_id, 0) + 1
        task.add_done_callback(lambda _: self._release(agents))

    def _release(self, agents: set[int]) -> None:
        for agent_id in agents:
            self._games_held[agent_id] -= 1
            if not self._games_held[agent_id]:
                del self._games_held[agent_id]

    def _connected(self, player: Player) -> Player:
        """Count the player as connected (challenges may seat it) until it disconnects."""
        self._online.add(player)
        return player

    async def game_info(self, env_id: str) -> catalog.GameInfo:
        """A playable game's catalog entry (in memory once the catalog is loaded); HubError otherwise."""
        warm = self._warmup is not None and self._warmup.done() and not self._warmup.exception()
        return self._playable(env_id) if warm else await asyncio.to_thread(self._playable, env_id)

    async def _check_scheduled(self, request: protocol.Challenge, authorization: str | None) -> None:
        """HubError unless the challenge plays its scheduled tournament game (the same env, seed and seats) and
        the connection may: a tournament's game is an admin operation."""
        operation = "a tournament game (`arena tournament` sends $ARENA_ADMIN_TOKEN)"
        if (refusal := admin_refusal(self.settings, authorization, operation)) is not None:
            raise HubError(ErrorCode.ADMIN_REQUIRED, refusal.message)
        row = await asyncio.to_thread(self.arena.read, lambda session: session.get(TournamentGameRow,
                                                                                   request.tournament_game_id))
        if row is None or (row.env_id, row.seed, list(row.seats)) != (request.env_id, request.seed, request.seats):
            raise HubError(ErrorCode.BAD_TOURNAMENT_GAME, f"tournament game {request.tournament_game_id} is not "
                           f"{request.env_id} with seed {request.seed} and seats {', '.join(request.seats)}")

    def _playable(self, env_id: str) -> catalog.GameInfo:
        try:
            return catalog.require_playable(env_id)
        except catalog.GameError as error:
            code = ErrorCode.UNKNOWN_ENV if "unknown env id" in str(error) else ErrorCode.UNPLAYABLE_ENV
            raise HubError(code, str(error)) from error

    async def _ratings(self, agent_id: int) -> dict[str, tuple[float, float]]:
        """An agent's ratings (mu, sigma) by env, read from the database once, then kept up to date here."""
        if agent_id not in self._known_ratings:
            known = await asyncio.to_thread(self.arena.read, partial(rating_rows.ratings_of, agent_id=agent_id))
            self._known_ratings.setdefault(agent_id, known)
        return self._known_ratings[agent_id]

    def _remember_ratings(self, result: MatchResult) -> None:
        """Keep the ratings matchmaking uses in step with a finished game's (committed) changes."""
        for change in result.rating_changes:
            if change.agent_id in self._known_ratings:
                self._known_ratings[change.agent_id][change.env_id] = (change.mu_after, change.sigma_after)


class _LiveListener(MatchListener):
    """Turns the runner's callbacks into protocol messages for one live game. The runner calls `events`
    only once the turns among them are committed, so an `ack` always stands for a stored turn."""

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
        if live.challenge is not None:
            live.challenge.challenger.send(protocol.ChallengeStarted(ref=live.challenge.request.ref,
                                                                     game_id=episode_id))

    def events(self, episode_id: int, events: list[Event]) -> None:
        live = self.live
        public = Counter(m for event in events if isinstance(event, PublicMessages) for m in event.messages)
        for event in events:
            match event:
                case TurnRecorded(turn=turn):
                    live.turns += 1
                    for remote in live.remote.values():
                        remote.moved_last = remote.seat == turn.seat
                    mover = live.remote.get(turn.seat)
                    if mover is not None and mover.answered == turn.index and turn.error is None:
                        mover.player.send(protocol.Ack.model_construct(
                            game_id=episode_id, turn=turn.index, invalid=turn.invalid, reason=turn.invalid_reason))
                case MessagesDelivered(seat=seat, messages=messages) if seat in live.remote:
                    live.remote[seat].receive(messages, public)
                case PublicMessages(messages=messages):
                    live.public.extend(messages)
                    live.broadcast(_event(episode_id, messages))
                case GameOver():
                    live.over = True
                    for remote in live.remote.values():
                        remote.game_over()


def _ended(live: LiveGame, reason: str) -> Outcome:
    """How a game that failed or was cancelled ended: aborted, with the reason the runner stored if it did.

    Never finished: a result that was not committed is not told."""
    outcome = live.game.outcome if live.game is not None else None
    if outcome is not None and outcome.status == protocol.GameStatus.ABORTED:
        return outcome
    return Outcome(status=protocol.GameStatus.ABORTED, rewards={}, reason=reason)


def _charged(challenge: WaitingChallenge) -> bool:
    """Whether a challenge counts against its challenger's games (a scheduled tournament game does not)."""
    return challenge.request.tournament_game_id is None


def _rating_fields(change: RatingChange) -> dict[str, float]:
    """A seat's rating change in the game's env, as `game_over` fields."""
    return {"rating_before": change.before, "rating_after": change.after, "rating_change": change.change,
            "mu_before": change.mu_before, "sigma_before": change.sigma_before, "mu_after": change.mu_after,
            "sigma_after": change.sigma_after}


def _event(game_id: int, messages: list[Message]) -> protocol.Event:
    """Public messages as an `event` (built from the engine's own values: no validation needed)."""
    return protocol.Event.model_construct(game_id=game_id, messages=[
        protocol.GameMessage.model_construct(sender=m.sender, text=m.text, kind=m.kind) for m in messages])


def _seats_needed(info: catalog.GameInfo) -> int:
    """Two for games that allow it, else the fewest players the game takes."""
    return 2 if 2 in info.players else min(info.players)
