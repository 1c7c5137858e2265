"""The export formats: each turns a stream of stored episodes into rows (plain dicts, a fixed key order).

docs/export.md describes every row schema; `arena.export.schemas` declares them for Parquet.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.engine import Row

from arena.envs.rewards import RewardMode
from arena.export.seats import (
    Message,
    dialogue,
    picked,
    ratings,
    recorded_prompt,
    seat_rewards,
    seat_turns,
    token_sequence,
)
from arena.prompting import Conversation, system_prompt
from arena.protocol import GameResult, GameStatus
from arena.store.export import StoredEpisode, StoredSeat

ExportRow = dict[str, Any]
VERL_AGENT = "tool_agent"  # verl's agent loop that runs interactions


class ExportFormat(StrEnum):
    """What an export writes."""

    MESSAGES = "messages"  # one chat per (episode, seat), for SFT
    PROMPT_COMPLETION = "prompt-completion"  # one row per move, with the seat's reward
    PREFERENCE = "preference"  # chosen/rejected moves from one game position
    VERL = "verl"  # verl multi-turn rows that replay the game through the bridge's interaction
    TOKENS = "tokens"  # recorded token ids, mask and logprobs per (episode, seat)
    EPISODES = "episodes"  # the raw log, one object per episode


def seat_fields(episode: StoredEpisode, seat: StoredSeat, rewards: dict[int, float]) -> ExportRow:
    """What every per-seat row carries about its game and seat."""
    return {"episode_id": episode.id, "env_id": episode.env_id, "seed": episode.seed, "seat": seat.seat,
            "agent": seat.agent, "outcome": seat.result, "reward": rewards[seat.seat]}


def assistant(text: str) -> list[Message]:
    """A conversational completion: one assistant message."""
    return [{"role": "assistant", "content": text}]


def seats_played(episodes: Iterable[StoredEpisode], mode: RewardMode
                 ) -> Iterator[tuple[StoredEpisode, StoredSeat, list[Row], ExportRow]]:
    """(episode, seat, its turns, its row fields) for every picked seat that moved, in order."""
    for episode in episodes:
        rewards = seat_rewards(episode, mode)
        for seat in picked(episode):
            turns = seat_turns(episode, seat.seat)
            if turns:
                yield episode, seat, turns, seat_fields(episode, seat, rewards)


def messages_rows(episodes: Iterable[StoredEpisode], mode: RewardMode) -> Iterator[ExportRow]:
    """One chat per picked seat that moved; each assistant message weighs 1 when it is a valid move of a winner."""
    for episode, seat, turns, fields in seats_played(episodes, mode):
        exchanges, chat = dialogue(episode.env_id, seat.seat, turns)
        weights = iter([int(seat.result == GameResult.WIN and not e.turn.invalid) for e in exchanges])
        messages = [{**m, "weight": next(weights)} if m["role"] == "assistant" else m for m in chat]
        yield {"messages": messages, **fields}


def prompt_completion_rows(episodes: Iterable[StoredEpisode], mode: RewardMode) -> Iterator[ExportRow]:
    """One row per move of a picked seat: the chat the agent was sent (or the rebuilt one) and its reply."""
    for episode, seat, turns, fields in seats_played(episodes, mode):
        exchanges, _ = dialogue(episode.env_id, seat.seat, turns)
        for e in exchanges:
            yield {"prompt": recorded_prompt(e.turn) or e.chat, "completion": assistant(e.reply), **fields,
                   "turn": e.turn.idx, "invalid": bool(e.turn.invalid)}


def verl_rows(episodes: Iterable[StoredEpisode], mode: RewardMode) -> Iterator[ExportRow]:
    """One verl row per picked seat: its first prompt, and the task (env, seed, seat) the interaction replays."""
    for i, (episode, seat, turns, fields) in enumerate(seats_played(episodes, mode)):
        prompt = Conversation(system_prompt(episode.env_id, seat.seat), growing=True).prompt(turns[0].observation)
        task = {"name": episode.env_id, "env_id": episode.env_id, "seed": episode.seed, "seat": seat.seat, "index": i}
        yield {"data_source": episode.env_id, "prompt": prompt, "ability": "game", "agent_name": VERL_AGENT,
               "reward_model": {"style": "interaction", "ground_truth": ""},
               "extra_info": {"split": "train", "index": i, "episode_id": episode.id, "agent": seat.agent,
                              "outcome": fields["outcome"], "reward": fields["reward"], "interaction_kwargs": task}}


def tokens_rows(episodes: Iterable[StoredEpisode], mode: RewardMode) -> Iterator[ExportRow]:
    """One row per picked seat whose every turn recorded token ids: the joined sequence, masks and logprobs."""
    for _, _, turns, fields in seats_played(episodes, mode):
        sequence = token_sequence(turns)
        if sequence is not None:
            yield {"input_ids": sequence.ids, "attention_mask": [1] * len(sequence.ids),
                   "assistant_masks": sequence.mask, "logprobs": sequence.logprobs, **fields,
                   "token_source": sequence.source, "complete": sequence.complete}


def iso(moment: datetime | None) -> str | None:
    """A stored time (always UTC) in ISO 8601."""
    return None if moment is None else moment.isoformat()


def episode_rows(episodes: Iterable[StoredEpisode], mode: RewardMode) -> Iterator[ExportRow]:
    """The raw log: one object per episode with its seats (rewards, ratings before and after) and every turn."""
    for episode in episodes:
        rewards = seat_rewards(episode, mode)
        yield {"id": episode.id, "env_id": episode.env_id, "seed": episode.seed, "num_players": episode.num_players,
               "status": episode.status, "reason": episode.reason, "invalid_policy": episode.invalid_policy,
               "started_at": iso(episode.started_at), "ended_at": iso(episode.ended_at),
               "tags": list(episode.tags or []), "tournament": episode.tournament, "reward_mode": mode.value,
               "seats": [{"seat": s.seat, "agent": s.agent, "reward": rewards[s.seat], "game_reward": s.reward,
                          "result": s.result, "invalid_moves": s.invalid_moves, "rating": ratings(episode, s)}
                         for s in episode.seats],
               "turns": [_turn(turn) for turn in episode.turns]}


def _turn(turn: Row) -> ExportRow:
    info = turn.info or {}
    return {"idx": turn.idx, "seat": turn.seat, "observation": turn.observation, "action": turn.action,
            "invalid": bool(turn.invalid), "invalid_reason": turn.invalid_reason, "elapsed": turn.elapsed,
            "error": turn.error, "prompt_tokens": info.get("prompt_tokens"),
            "completion_tokens": info.get("completion_tokens"), "info": info}


@dataclass
class _Move:
    """A move played from one position: the rewards of the games that played it, and the first such game."""

    rewards: list[float]
    episode: StoredEpisode
    turn: int

    @property
    def value(self) -> float:
        """The mean reward of the games that played the move."""
        return sum(self.rewards) / len(self.rewards)


def preference_rows(episodes: Iterable[StoredEpisode], mode: RewardMode) -> Iterator[ExportRow]:
    """Pairs of moves from one position (same env, seed and moves so far) whose mean rewards differ; the episodes
    come ordered by (env, seed), so one seed's games are held together and no more."""
    for _, group in itertools.groupby(episodes, key=lambda e: (e.env_id, e.seed)):
        positions = _positions(group, mode)
        for (_, seat), moves in positions.items():
            yield from _pairs(seat, moves)


def _positions(group: Iterable[StoredEpisode], mode: RewardMode) -> dict[tuple[int, int], dict[str, _Move]]:
    """Every (position, seat to move) a picked seat moved from, with the moves played there."""
    nodes: dict[tuple[Any, ...], int] = {}  # (parent position, action) -> position
    positions: dict[tuple[int, int], dict[str, _Move]] = {}
    for episode in group:
        rewards, chosen = seat_rewards(episode, mode), {s.seat for s in picked(episode)}
        node = nodes.setdefault(("start", episode.num_players, episode.invalid_policy), len(nodes))
        for turn in episode.turns:
            if turn.seat in chosen:
                moves = positions.setdefault((node, turn.seat), {})
                if turn.action in moves:
                    moves[turn.action].rewards.append(rewards[turn.seat])
                else:
                    moves[turn.action] = _Move([rewards[turn.seat]], episode, turn.idx)
            node = nodes.setdefault((node, turn.action), len(nodes))
    return positions


def _pairs(seat: int, moves: dict[str, _Move]) -> Iterator[ExportRow]:
    """Each pair of moves of one position with different mean rewards, the better one chosen."""
    ranked = sorted(moves.values(), key=lambda m: (-m.value, m.episode.id))
    if len({move.value for move in ranked}) < 2:
        return
    shown = [(move, *_exchange(move, seat)) for move in ranked]  # (move, chat before it, reply)
    for (better, prompt, chosen), (worse, _, rejected) in itertools.combinations(shown, 2):
        if better.value > worse.value:
            yield {"prompt": prompt, "chosen": assistant(chosen), "rejected": assistant(rejected),
                   "chosen_reward": better.value, "rejected_reward": worse.value,
                   "env_id": better.episode.env_id, "seed": better.episode.seed, "seat": seat, "turn": better.turn,
                   "chosen_episode_id": better.episode.id, "rejected_episode_id": worse.episode.id}


def _exchange(move: _Move, seat: int) -> tuple[list[Message], str]:
    """The chat before a move (as the agent was sent it, else rebuilt) and the reply, in its first game."""
    exchanges, _ = dialogue(move.episode.env_id, seat, seat_turns(move.episode, seat))
    found = next(e for e in exchanges if e.turn.idx == move.turn)
    return recorded_prompt(found.turn) or found.chat, found.reply


@dataclass(frozen=True)
class FormatSpec:
    """How a format reads the store: its row builder, the episode statuses it reads, and its episode order."""

    rows: Callable[[Iterable[StoredEpisode], RewardMode], Iterator[ExportRow]]
    statuses: tuple[str, ...] = (GameStatus.FINISHED,)
    by_position: bool = False


FORMATS: dict[ExportFormat, FormatSpec] = {
    ExportFormat.MESSAGES: FormatSpec(messages_rows),
    ExportFormat.PROMPT_COMPLETION: FormatSpec(prompt_completion_rows),
    ExportFormat.PREFERENCE: FormatSpec(preference_rows, by_position=True),
    ExportFormat.VERL: FormatSpec(verl_rows),
    ExportFormat.TOKENS: FormatSpec(tokens_rows),
    ExportFormat.EPISODES: FormatSpec(episode_rows, statuses=(GameStatus.FINISHED, GameStatus.ABORTED)),
}
