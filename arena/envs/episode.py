"""What RL environments hand to trainers: steps, per-seat trajectories with token masks, and episodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["win", "draw", "loss", "aborted", "truncated"]
TokenSource = Literal["engine", "tokenizer"]


@dataclass
class Step:
    """One move of one trajectory: what the policy saw, answered and played, and the reward it earned."""

    turn: int
    observation: str
    completion: str
    action: str
    invalid: bool = False
    error: str | None = None
    reward: float = 0.0


@dataclass
class Trajectory:
    """One seat's side of one episode, ready for a trainer.

    `token_ids` is the whole multi-turn sequence (prompt, then each completion and the environment's
    reply to it); `mask` is 1 on the tokens the model sampled and 0 on the environment's. They are None
    when neither the engine returned token ids nor a tokenizer was given."""

    env_id: str
    seed: int
    seat: int
    group: int
    agent: str
    messages: list[dict[str, str]]
    steps: list[Step] = field(default_factory=list)
    token_ids: list[int] | None = None
    mask: list[int] | None = None
    logprobs: list[float | None] | None = None
    token_source: TokenSource | None = None
    episode_id: int | None = None
    outcome: Outcome = "aborted"
    reason: str = ""
    raw_reward: float = 0.0  # the reward mode's value, before any baseline
    reward: float = 0.0  # what to train on: raw_reward minus the baseline (when one is used)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def turn_rewards(self) -> list[float]:
        """The per-step rewards (invalid-move penalties), in step order."""
        return [step.reward for step in self.steps]

    @property
    def completion_tokens(self) -> int:
        """How many tokens the model sampled (0 without token ids)."""
        return sum(self.mask or [])


@dataclass
class Episode:
    """One played game or task: its trajectories (one per seat the policy played) and how it ended."""

    index: int
    group: int
    env_id: str
    seed: int
    agents: list[str]
    status: str
    reason: str
    rewards: dict[int, float]
    trajectories: list[Trajectory]
    episode_id: int | None = None
