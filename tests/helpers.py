"""Small helpers shared by tests: scripted agents and a synchronous game driver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agents.base import Agent, Decision, TurnContext
from arena.engine import Game


class ScriptedAgent(Agent):
    """Plays a fixed list of actions (then repeats the last); can sleep or raise instead."""

    def __init__(self, actions: list[str], delay: float = 0.0, error: Exception | None = None,
                 name: str = "scripted") -> None:
        self.actions, self.delay, self.error, self.name = actions, delay, error, name
        self.seen: list[str] = []

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """The next scripted action."""
        self.seen.append(observation)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error:
            raise self.error
        action = self.actions[min(len(self.seen) - 1, len(self.actions) - 1)]
        return Decision(action, {"scripted": True})


def play_out(game: Game, choose: Callable[[int, str], str], max_turns: int = 5000) -> Game:
    """Drive a game to the end with a synchronous policy `choose(seat, observation)`."""
    game.start()
    while not game.done and len(game.turns) < max_turns:
        pending = game.pending
        game.act(pending.seat, choose(pending.seat, pending.observation), 0.0)
    return game
