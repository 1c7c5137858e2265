"""Run any plain `textarena.Agent` (synchronous `__call__`) as an arena agent, off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import textarena as ta

from agents.base import Agent, Decision, TurnContext


class TextArenaAgent(Agent):
    """Adapter: one `textarena.Agent` per game (or one shared), called in a worker thread."""

    def __init__(self, factory: Callable[[], ta.Agent], name: str, shared: bool = False) -> None:
        self.name = name
        self._factory = factory
        self._shared = factory() if shared else None
        self._per_game: dict[str, ta.Agent] = {}

    async def start(self) -> None:
        """Build one instance now so a broken factory fails before the first move."""
        if self._shared is None:
            self._check(self._factory())

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """Call the wrapped agent in a thread and return its text as the action."""
        agent = self._shared or self._per_game.get(context.game_key)
        if agent is None:
            agent = self._per_game[context.game_key] = self._check(self._factory())
        action = await asyncio.to_thread(agent, observation)
        return Decision(str(action))

    def end_game(self, game_key: str) -> None:
        """Drop the instance that played `game_key`."""
        self._per_game.pop(game_key, None)

    def _check(self, agent: object) -> ta.Agent:
        if not callable(agent):
            raise TypeError(f"the factory for '{self.name}' returned {type(agent).__name__}, not an agent")
        return agent  # type: ignore[return-value]
