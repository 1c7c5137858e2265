"""The agent interface every policy implements: async for the arena, callable for TextArena."""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

import textarena as ta


class AgentCrashed(Exception):
    """The agent's own machinery died (its model process crashed): the game is aborted, not forfeited."""


@dataclass(frozen=True, slots=True)
class TurnContext:
    """What an agent may know about the move it is asked for, besides the observation."""

    env_id: str
    game_key: str
    seed: int
    seat: int
    turn: int
    deadline: float | None = None  # wall-clock (Unix) time by which the move must arrive


@dataclass
class Decision:
    """An action plus what producing it cost (tokens, latency, prompt...), recorded on the turn."""

    action: str
    info: dict[str, Any] = field(default_factory=dict)


class Agent(ta.Agent):
    """An arena agent; `decide` is what the arena calls, `__call__` keeps it a `textarena.Agent`."""

    name: str = "agent"

    async def start(self) -> None:
        """Check the agent can run (endpoints, files); raise with a clear message if not."""

    async def close(self) -> None:
        """Release what `start` acquired."""

    @abstractmethod
    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """Choose an action for `observation`."""

    def end_game(self, game_key: str) -> None:
        """Forget any per-game state held for `game_key`."""

    def __call__(self, observation: str) -> str:
        """Play as a plain synchronous `textarena.Agent`."""
        context = TurnContext(env_id="", game_key="textarena", seed=0, seat=0, turn=0)
        return asyncio.run(self.decide(observation, context)).action
