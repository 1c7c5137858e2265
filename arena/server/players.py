"""Who sits in a seat on the server: players, the outboxes the hub reaches them through, and the agent
that waits on a connected player's moves."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from agents.base import Agent, Decision, TurnContext
from agents.moves import valid_moves
from arena import protocol
from arena.engine import Message
from arena.runner import Abandoned

Sent = Callable[[], None]  # called once a frame has been written to the socket


class Outbox(Protocol):
    """Where the hub's messages to one client go: a native `/ws` connection, a TextArena connection (which
    translates them to its own frames), or a house agent (which reads none)."""

    def send(self, message: protocol.Message, text: str | None = None, on_sent: Sent | None = None) -> None:
        """Queue `message` (`text`: its JSON, when one text goes to many clients); never blocks."""
        ...

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close once everything queued before has been sent."""
        ...


class HouseOutbox:
    """The outbox of a house agent: it plays through `decide` and is told nothing else."""

    def send(self, message: protocol.Message, text: str | None = None, on_sent: Sent | None = None) -> None:
        """Drop the message."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Nothing to close."""


@dataclass(eq=False)
class Player:
    """An identity on the server (an agent row), with the outbox of its live connection if any."""

    agent_id: int
    name: str
    kind: str
    outbox: Outbox | None = None
    seats: dict[int, RemoteSeat] = field(default_factory=dict)  # game id -> seat held

    def send(self, message: protocol.Message, text: str | None = None, on_sent: Sent | None = None) -> None:
        """Send if connected. Messages to a dropped player are not queued: `resume` replays the state."""
        if self.outbox is not None:
            self.outbox.send(message, text, on_sent)


class RemoteSeat(Agent):
    """The agent for a seat held by a connected player: `decide` sends `turn` and waits for `action`.

    The live game's listener keeps the seat up to date from the engine's committed events: the messages
    delivered to this seat (`delivered`, with the indices of those only this seat got in `private`; `told` of
    them were shown in a `turn`) and whether the latest turn is this seat's (`moved_last`)."""

    def __init__(self, player: Player, game_id: int, seat: int, grace: float,
                 abandon: asyncio.Future[tuple[int, str]], turn_sent: Callable[[int], None]) -> None:
        self.player, self.game_id, self.seat, self.grace = player, game_id, seat, grace
        self.abandon, self.turn_sent = abandon, turn_sent
        self.name = player.name
        self.turn: protocol.Turn | None = None
        self.answered: int | None = None  # the turn whose action the player sent last
        self.delivered: list[Message] = []
        self.private: set[int] = set()
        self.told = 0
        self.moved_last = False
        self._answer: asyncio.Future[str] | None = None
        self._gone: asyncio.TimerHandle | None = None
        abandon.add_done_callback(self._abandoned)

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """Send `turn` and wait for the player's action (the runner enforces the deadline); Abandoned when a
        player of this game stayed away past the grace period."""
        if self.abandon.done():
            raise Abandoned(*self.abandon.result())
        self.turn = protocol.Turn.model_construct(game_id=self.game_id, seat=self.seat, turn=context.turn,
                                                  observation=observation, deadline=context.deadline or 0.0,
                                                  moves=valid_moves(observation, context.env_id),
                                                  messages=self.shown())
        self.told = len(self.delivered)
        self._answer = asyncio.get_running_loop().create_future()
        self.player.send(self.turn, on_sent=lambda: self.turn_sent(self.game_id))
        try:
            return Decision(await self._answer)
        finally:
            self.turn, self._answer = None, None

    def receive(self, messages: list[Message], public: Counter[Message]) -> None:
        """Keep messages delivered to this seat; those not among the batch's `public` ones are private."""
        left = Counter(public)
        for message in messages:
            if left[message] > 0:
                left[message] -= 1
            else:
                self.private.add(len(self.delivered))
            self.delivered.append(message)

    def shown(self) -> list[protocol.GameMessage]:
        """Everything this seat has been shown, as protocol messages."""
        return [protocol.GameMessage.model_construct(sender=m.sender, text=m.text, kind=m.kind,
                                                     private=index in self.private)
                for index, m in enumerate(self.delivered)]

    def game_over(self) -> None:
        """Send, as an `event`, what only this seat received since its last `turn` (its public messages went out
        as `event`s already): the game's closing messages, which no `turn` will show now."""
        closing = [protocol.GameMessage.model_construct(sender=m.sender, text=m.text, kind=m.kind, private=True)
                   for index, m in enumerate(self.delivered[self.told:], self.told) if index in self.private]
        if closing:
            self.player.send(protocol.Event.model_construct(game_id=self.game_id, messages=closing))

    def answer(self, turn: int, action: str) -> protocol.ErrorCode | None:
        """Deliver an action; returns an error code when it is not the move expected now."""
        if self.turn is None or self._answer is None or self._answer.done():
            return protocol.ErrorCode.NOT_YOUR_TURN
        if turn != self.turn.turn:
            return protocol.ErrorCode.STALE_TURN
        self.answered = turn
        self._answer.set_result(action)
        return None

    def dropped(self) -> None:
        """The connection went away: forfeit unless it comes back within the grace period."""
        loop = asyncio.get_running_loop()
        self._gone = loop.call_later(self.grace, self._give_up)

    def resumed(self) -> None:
        """The player is back: cancel the forfeit and repeat the pending turn."""
        if self._gone is not None:
            self._gone.cancel()
            self._gone = None
        if self.turn is not None:
            self.player.send(self.turn)

    def _abandoned(self, abandon: asyncio.Future[tuple[int, str]]) -> None:
        """A player of this game stayed away too long: the move this seat waits for will not come."""
        if self._answer is not None and not self._answer.done() and not abandon.cancelled():
            self._answer.set_exception(Abandoned(*abandon.result()))

    def _give_up(self) -> None:
        self._gone = None
        if not self.abandon.done():
            self.abandon.set_result((self.seat, f"disconnected for more than {self.grace:g} s"))
