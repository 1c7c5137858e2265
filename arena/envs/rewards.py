"""Rewards for game trajectories: the outcome, the TrueSkill change, or the surprise; and per-role baselines.

Each mode is a pure function of what an episode produced, so it can be checked on hand-made outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import trueskill

from arena.envs.episode import Outcome
from arena.prompting import extract_action
from arena.ratings import RatingChange, win_probability
from arena.store.episodes import result_of


class RewardMode(StrEnum):
    """How a trajectory's final reward is computed."""

    OUTCOME = "outcome"  # +1 win, 0 draw, -1 loss (0 when the game was aborted or cut short)
    TRUESKILL = "trueskill"  # the change of the seat's conservative rating (mu - 3 sigma) in the env
    SURPRISE = "surprise"  # the score (1, 0.5, 0) minus the win probability the ratings gave before the game


NEEDS_RATINGS = {RewardMode.TRUESKILL, RewardMode.SURPRISE}
OUTCOME_VALUE = {"win": 1.0, "draw": 0.0, "loss": -1.0}
SCORE = {"win": 1.0, "draw": 0.5, "loss": 0.0}


def parse_reward_mode(value: str) -> RewardMode:
    """Parse a reward mode; ValueError listing the modes."""
    try:
        return RewardMode(value)
    except ValueError:
        raise ValueError(f"reward_mode must be one of {', '.join(RewardMode)}, not '{value}'") from None


def outcome_of(rewards: Mapping[int, float], seat: int, finished: bool = True) -> Outcome:
    """Win, draw or loss for `seat`, as stored (`arena.store.episodes.result_of`); aborted when unfinished."""
    if not finished or seat not in rewards:
        return "aborted"
    return result_of(rewards, seat).value


def outcome_reward(outcome: Outcome, invalid_moves: int = 0, invalid_move_penalty: float = 0.0) -> float:
    """+1, 0 or -1 for win, draw or loss (0 when not finished), less the penalty for each invalid move."""
    return OUTCOME_VALUE.get(outcome, 0.0) - invalid_move_penalty * invalid_moves


def trueskill_reward(changes: Sequence[RatingChange], agent: str, env_id: str) -> float:
    """How much `agent`'s conservative rating in `env_id` moved in this episode (0 if it was not rated)."""
    return sum(c.change for c in changes if c.agent == agent and c.env_id == env_id)


def surprise_reward(rewards: Mapping[int, float], seat: int, before: Mapping[int, trueskill.Rating]) -> float:
    """Score against each other seat (1 beat, 0.5 level, 0 lost) minus TrueSkill's win probability before the
    game, averaged over the other seats."""
    others = [s for s in rewards if s != seat]
    if not others:
        return 0.0
    total = 0.0
    for other in others:
        score = 1.0 if rewards[seat] > rewards[other] else 0.5 if rewards[seat] == rewards[other] else 0.0
        total += score - win_probability(before[seat], before[other])
    return total / len(others)


def ratings_before(changes: Sequence[RatingChange], agents: Sequence[str], env_id: str) -> dict[int, trueskill.Rating]:
    """Each seat's rating in `env_id` before the episode, from its rating changes."""
    by_agent = {c.agent: trueskill.Rating(c.mu_before, c.sigma_before) for c in changes
                if c.env_id == env_id}
    return {seat: by_agent.get(agent, trueskill.Rating()) for seat, agent in enumerate(agents)}


@dataclass
class RoleBaseline:
    """A per-role baseline: an exponential moving average of each seat's returns (SPIRAL's role-conditioned
    advantage estimation), because the first player of a game often has an edge."""

    decay: float = 0.95
    values: dict[tuple[str, int], float] = field(default_factory=dict)

    def advantage(self, env_id: str, seat: int, reward: float) -> float:
        """`reward` less the role's baseline so far; then the baseline moves toward `reward`."""
        key = (env_id, seat)
        baseline = self.values.get(key, 0.0)
        self.values[key] = self.decay * baseline + (1 - self.decay) * reward
        return reward - baseline


def completion_text(completion: str | list[dict[str, str]]) -> str:
    """A completion's text: the string itself, or the last message's content in a conversational completion."""
    if isinstance(completion, str):
        return completion
    return str(completion[-1].get("content", "")) if completion else ""


def move_format(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
    """1.0 for each completion that names a move the way the arena reads it (a [bracketed] move), else 0.0
    (TRL's reward signature)."""
    return [1.0 if extract_action(completion_text(c)).action else 0.0 for c in completions]
