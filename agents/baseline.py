"""Baseline agents: `random` plays a uniformly random listed move, `first` the first one."""

from __future__ import annotations

import random

from agents.base import Agent, Decision, TurnContext
from agents.moves import bracketed_tokens, valid_moves

FALLBACK_MOVE = "[0]"


def candidate_moves(observation: str) -> list[str]:
    """The listed valid moves, else any bracketed token in the text, else a guess."""
    return valid_moves(observation) or bracketed_tokens(observation) or [FALLBACK_MOVE]


class RandomAgent(Agent):
    """Picks uniformly among the moves it can read; reproducible from `seed`."""

    def __init__(self, seed: int = 0, name: str = "random") -> None:
        self.seed = seed
        self.name = name
        self._rng = random.Random(seed)

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """Draw from a generator seeded by (agent seed, game seed, seat, turn): order-independent."""
        rng = random.Random(hash((self.seed, context.seed, context.seat, context.turn)))  # int hashes are stable
        return Decision(rng.choice(candidate_moves(observation)))

    def __call__(self, observation: str) -> str:
        """Plain `textarena.Agent` use: one generator seeded once."""
        return self._rng.choice(candidate_moves(observation))


class FirstAgent(Agent):
    """Plays the first move it can read."""

    def __init__(self, name: str = "first") -> None:
        self.name = name

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """The first listed move."""
        return Decision(candidate_moves(observation)[0])

    def __call__(self, observation: str) -> str:
        """Plain `textarena.Agent` use."""
        return candidate_moves(observation)[0]
