"""Who sits in a seat on the server: connected players and the agent that waits on their moves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agents.base import Agent, Decision, TurnContext
from arena import protocol

if TYPE_CHECKING:
    from arena.server.connection import Connection


@dataclass(eq=False)
class Player:
    """An identity on the server (an agent row), with its live connection if any."""

    agent_id: int
    name: str
    kind: str
    connection: Connection | None = None
    seats: dict[int, RemoteSeat] = field(default_factory=dict)  # game id -> seat held

    def send(self, message: protocol.Message, text: str | None = None,
             on_sent: Callable[[], None] | None = None) -> None:
        """Send if connected (`text`: the message's JSON, when one text goes to many players).

        Messages to a dropped player are not queued: `resume` replays the state."""
        if self.connection is not None:
            self.connection.send(text or message, on_sent)


class RemoteSeat(Agent):
    """The agent for a seat held by a connected player: `decide` sends `turn` and waits for `action`."""

    def __init__(self, player: Player, game_id: int, seat: int, grace: float,
                 abandon: asyncio.Future[tuple[int, str]], turn_sent: Callable[[int], None]) -> None:
        self.player, self.game_id, self.seat, self.grace = player, game_id, seat, grace
        self.abandon, self.turn_sent = abandon, turn_sent
        self.name = player.name
        self.turn: protocol.Turn | None = None
        self._answer: asyncio.Future[str] | None = None
        self._gone: asyncio.TimerHandle | None = None

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """Send `turn` and wait for the player's action (the runner enforces the deadline)."""
        self.turn = protocol.Turn(game_id=self.game_id, seat=self.seat, turn=context.turn,
                                  observation=observation, deadline=context.deadline or 0.0)
        self._answer = asyncio.get_running_loop().create_future()
        self.player.send(self.turn, on_sent=lambda: self.turn_sent(self.game_id))
        try:
            return Decision(await self._answer)
        finally:
            self.turn, self._answer = None, None

    def answer(self, turn: int, action: str) -> str | None:
        """Deliver an action; returns an error code when it is not the move expected now."""
        if self.turn is None or self._answer is None or self._answer.done():
            return "not_your_turn"
        if turn != self.turn.turn:
            return "stale_turn"
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

    def _give_up(self) -> None:
        self._gone = None
        if not self.abandon.done():
            self.abandon.set_result((self.seat, f"disconnected for more than {self.grace:g} s"))
