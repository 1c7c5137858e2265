"""The Parquet schema of every export format, declared so that files are alike whatever their rows (empty too)."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from arena.export.formats import ExportFormat

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
WEIGHTED_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string()), ("weight", pa.int64())])
CHAT = pa.list_(MESSAGE)
SEAT_FIELDS = [("episode_id", pa.int64()), ("env_id", pa.string()), ("seed", pa.int64()), ("seat", pa.int64()),
               ("agent", pa.string()), ("outcome", pa.string()), ("reward", pa.float64())]
RATING = pa.struct([("mu_before", pa.float64()), ("sigma_before", pa.float64()), ("mu_after", pa.float64()),
                    ("sigma_after", pa.float64())])
SEAT = pa.struct([("seat", pa.int64()), ("agent", pa.string()), ("reward", pa.float64()),
                  ("game_reward", pa.float64()), ("result", pa.string()), ("invalid_moves", pa.int64()),
                  ("rating", pa.struct([("env", RATING), ("overall", RATING)]))])
TURN = pa.struct([("idx", pa.int64()), ("seat", pa.int64()), ("observation", pa.string()), ("action", pa.string()),
                  ("invalid", pa.bool_()), ("invalid_reason", pa.string()), ("elapsed", pa.float64()),
                  ("error", pa.string()), ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()),
                  ("info", pa.string())])  # the turn's info object as JSON text
TASK = pa.struct([("name", pa.string()), ("env_id", pa.string()), ("seed", pa.int64()), ("seat", pa.int64()),
                  ("index", pa.int64())])

SCHEMAS: dict[ExportFormat, pa.Schema] = {
    ExportFormat.MESSAGES: pa.schema([("messages", pa.list_(WEIGHTED_MESSAGE)), *SEAT_FIELDS]),
    ExportFormat.PROMPT_COMPLETION: pa.schema([("prompt", CHAT), ("completion", CHAT), *SEAT_FIELDS,
                                               ("turn", pa.int64()), ("invalid", pa.bool_())]),
    ExportFormat.PREFERENCE: pa.schema([
        ("prompt", CHAT), ("chosen", CHAT), ("rejected", CHAT), ("chosen_reward", pa.float64()),
        ("rejected_reward", pa.float64()), ("env_id", pa.string()), ("seed", pa.int64()), ("seat", pa.int64()),
        ("turn", pa.int64()), ("chosen_episode_id", pa.int64()), ("rejected_episode_id", pa.int64())]),
    ExportFormat.VERL: pa.schema([
        ("data_source", pa.string()), ("prompt", CHAT), ("ability", pa.string()), ("agent_name", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", pa.struct([("split", pa.string()), ("index", pa.int64()), ("episode_id", pa.int64()),
                                  ("agent", pa.string()), ("outcome", pa.string()), ("reward", pa.float64()),
                                  ("interaction_kwargs", TASK)]))]),
    ExportFormat.TOKENS: pa.schema([
        ("input_ids", pa.list_(pa.int64())), ("attention_mask", pa.list_(pa.int64())),
        ("assistant_masks", pa.list_(pa.int64())), ("logprobs", pa.list_(pa.float64())), *SEAT_FIELDS,
        ("token_source", pa.string()), ("complete", pa.bool_())]),
    ExportFormat.EPISODES: pa.schema([
        ("id", pa.int64()), ("env_id", pa.string()), ("seed", pa.int64()), ("num_players", pa.int64()),
        ("status", pa.string()), ("reason", pa.string()), ("invalid_policy", pa.string()),
        ("started_at", pa.string()), ("ended_at", pa.string()), ("tags", pa.list_(pa.string())),
        ("tournament", pa.string()), ("reward_mode", pa.string()), ("seats", pa.list_(SEAT)),
        ("turns", pa.list_(TURN))]),
}


def arrow_row(fmt: ExportFormat, row: dict[str, Any]) -> dict[str, Any]:
    """A row as its Parquet schema holds it: an episode's turn `info` objects become JSON text."""
    if fmt != ExportFormat.EPISODES:
        return row
    turns = [{**turn, "info": json.dumps(turn["info"], ensure_ascii=False)} for turn in row["turns"]]
    return {**row, "turns": turns}
