"""What one seat of a stored episode played: the chat it was shown, its replies, its tokens, and its reward.

Chats are rebuilt as the RL environments build them (`arena.prompting.Conversation`, growing: the system prompt,
each observation's new part as a user message, each reply as an assistant message); rewards come from the RL
bridge's reward modes (`arena.envs.rewards`), so an exported reward equals a rollout's for the same game.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Row

from arena.envs.rewards import (
    RewardMode,
    outcome_of,
    outcome_reward,
    ratings_before,
    surprise_reward,
    trueskill_reward,
)
from arena.prompting import Conversation, system_prompt
from arena.protocol import GameStatus
from arena.ratings import RatingChange
from arena.store.export import StoredEpisode, StoredSeat
from arena.store.models import OVERALL

Message = dict[str, Any]


@dataclass(slots=True)
class Exchange:
    """One move of a seat: its turn row, the chat shown before it, and the reply."""

    turn: Row
    chat: list[Message]
    reply: str


@dataclass(slots=True)
class TokenSequence:
    """A seat's recorded tokens joined in turn order: ids, 1 on the tokens the model sampled, their logprobs."""

    ids: list[int]
    mask: list[int]
    logprobs: list[float | None]
    source: str | None
    complete: bool  # the environment's tokens are there too (rollouts record them; `vllm:` agents do not)


def picked(episode: StoredEpisode) -> list[StoredSeat]:
    """The seats the seat filters picked."""
    return [seat for seat in episode.seats if seat.selected]


def seat_turns(episode: StoredEpisode, seat: int) -> list[Row]:
    """The turns one seat played, in order."""
    return [turn for turn in episode.turns if turn.seat == seat]


def reply(turn: Row) -> str:
    """What the seat answered: the model's whole completion for an LLM, else the action."""
    completion = (turn.info or {}).get("completion")
    return completion if isinstance(completion, str) else turn.action


def recorded_prompt(turn: Row) -> list[Message] | None:
    """The chat an LLM agent sent for this turn, as role/content messages (None for other agents)."""
    prompt = (turn.info or {}).get("prompt")
    if not isinstance(prompt, list) or not prompt:
        return None
    return [{"role": str(m.get("role", "")), "content": str(m.get("content") or "")} for m in prompt]


def _system(env_id: str, seat: int, turns: list[Row]) -> str:
    """The system prompt an LLM agent used (none when its chat had none), else the default one."""
    prompt = recorded_prompt(turns[0]) if turns else None
    if prompt is None:
        return system_prompt(env_id, seat)
    return prompt[0]["content"] if prompt[0]["role"] == "system" else ""


def dialogue(env_id: str, seat: int, turns: list[Row]) -> tuple[list[Exchange], list[Message]]:
    """Each move with the growing chat shown before it, and the whole chat with every reply."""
    conversation = Conversation(_system(env_id, seat, turns), growing=True)
    exchanges = []
    for turn in turns:
        chat = conversation.prompt(turn.observation)
        text = reply(turn)
        conversation.answered(text)
        exchanges.append(Exchange(turn, chat, text))
    return exchanges, conversation.messages


def rating_changes(episode: StoredEpisode) -> list[RatingChange]:
    """The episode's rating history as the ratings module reports changes."""
    return [RatingChange(h.agent_id, h.agent, h.env_id, h.mu_before, h.sigma_before, h.mu_after, h.sigma_after)
            for h in episode.history]


def seat_rewards(episode: StoredEpisode, mode: RewardMode) -> dict[int, float]:
    """Each seat's reward in `mode`, as the RL bridge computes it (0.0 when the game did not finish)."""
    finished = episode.status == GameStatus.FINISHED
    rewards = {s.seat: float(s.reward or 0.0) for s in episode.seats} if finished else {}
    agents = [s.agent for s in episode.seats]
    changes = rating_changes(episode) if mode != RewardMode.OUTCOME else []
    return {s.seat: _reward(mode, episode.env_id, s.seat, rewards, changes, agents, finished)
            for s in episode.seats}


def _reward(mode: RewardMode, env_id: str, seat: int, rewards: dict[int, float], changes: list[RatingChange],
            agents: list[str], finished: bool) -> float:
    outcome = outcome_of(rewards, seat, finished)
    if outcome not in ("win", "draw", "loss"):
        return 0.0
    if mode == RewardMode.TRUESKILL:
        return trueskill_reward(changes, agents[seat], env_id)
    if mode == RewardMode.SURPRISE:
        return surprise_reward(rewards, seat, ratings_before(changes, agents, env_id))
    return outcome_reward(outcome)


def ratings(episode: StoredEpisode, seat: StoredSeat) -> dict[str, dict[str, float] | None] | None:
    """The seat's agent's rating before and after the game, in the env and overall (None when not rated)."""
    scopes: dict[str, dict[str, float] | None] = {"env": None, "overall": None}
    for h in episode.history:
        if h.agent_id == seat.agent_id:
            scopes["overall" if h.env_id == OVERALL else "env"] = {
                "mu_before": h.mu_before, "sigma_before": h.sigma_before,
                "mu_after": h.mu_after, "sigma_after": h.sigma_after}
    return scopes if any(scopes.values()) else None


def token_sequence(turns: list[Row]) -> TokenSequence | None:
    """The seat's token sequence, when every one of its turns recorded the model's token ids."""
    if not turns or any("token_ids" not in (turn.info or {}) for turn in turns):
        return None
    sequence = TokenSequence([], [], [], turns[0].info.get("token_source"), True)
    for turn in turns:
        env_ids, sampled = turn.info.get("env_token_ids"), list(turn.info["token_ids"])
        sequence.complete = sequence.complete and env_ids is not None
        logprobs = turn.info.get("logprobs") or [None] * len(sampled)
        sequence.ids += [*(env_ids or []), *sampled]
        sequence.mask += [0] * len(env_ids or []) + [1] * len(sampled)
        sequence.logprobs += [None] * len(env_ids or []) + list(logprobs)
    return sequence
