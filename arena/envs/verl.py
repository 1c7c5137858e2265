"""verl's multi-turn interactions on arena environments: `ArenaInteraction`, `InteractionSpec`, `GenericEnvironment`.

The contract is verl 0.7's (`verl/interactions/base.py`, `verl/experimental/agent_loop/tool_agent_loop.py`), the
last release with interactions: 0.8 and 0.9 removed them. For each dataset row with `agent_name: tool_agent`,
verl's `ToolAgentLoop` calls `start_interaction(request_id, **extra_info["interaction_kwargs"])` on the interaction
the kwargs' `name` picks (from the YAML at `actor_rollout_ref.rollout.multi_turn.interaction_config_path`), then
after each model turn `generate_response(request_id, messages, **interaction_kwargs)`: its text is the next user
message (response_mask 0) and its score is appended to `turn_scores`, which reach the reward function in
`extra_info`. verl never calls `finalize_interaction`, so an episode is released here when it ends. One row is one
trajectory: every seat of a game is a row of its own. Without verl 0.7, `ArenaInteraction` subclasses
`StandInInteraction`, which has the same methods, so rows and interactions work (and are tested) without verl.
"""

from __future__ import annotations

import importlib
import importlib.util
import random
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from arena.envs.base import EpisodeState, MultistepEnv
from arena.envs.bridge import unseen_part


class StandInInteraction:
    """verl 0.7's `BaseInteraction`, for when verl is not installed: the same constructor and methods."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.name: str = config.get("name", "interaction_agent")

    async def start_interaction(self, instance_id: str | None = None, **kwargs: Any) -> str:
        """Start an interaction; returns its id."""
        return instance_id or uuid.uuid4().hex

    async def generate_response(self, instance_id: str, messages: list[dict[str, Any]],
                                **kwargs: Any) -> tuple[bool, str, float, dict[str, Any]]:
        """(should terminate, the next user message, this turn's score, metadata)."""
        raise NotImplementedError

    async def calculate_score(self) -> float:
        """A score for the interaction."""
        return 0.0

    async def finalize_interaction(self) -> None:
        """Release what the interaction holds."""


def _interaction_base() -> type:
    """verl's `BaseInteraction` when verl 0.7 is installed, else `StandInInteraction`."""
    if importlib.util.find_spec("verl") is None:
        return StandInInteraction
    try:
        from verl.interactions.base import BaseInteraction
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("verl.interactions"):
            raise
        warnings.warn("this verl has no `verl.interactions` (removed in 0.8): ArenaInteraction needs verl 0.7",
                      stacklevel=2)
        return StandInInteraction
    return BaseInteraction


def import_object(path: str) -> Any:
    """The object at `package.module.Name` or `package.module:Name`."""
    module, _, name = path.rpartition(":") if ":" in path else path.rpartition(".")
    if not module:
        raise ValueError(f"'{path}' is not an import path such as 'arena.envs.math_env.MathEnv'")
    return getattr(importlib.import_module(module), name)


def build_env(config: Mapping[str, Any]) -> MultistepEnv:
    """The env an interaction config names: `env` (an import path, or an env object) and `env_kwargs`."""
    env = config.get("env")
    if isinstance(env, MultistepEnv):
        return env
    if not isinstance(env, str):
        raise ValueError("an ArenaInteraction config needs 'env', e.g. {'env': 'arena.envs.math_env.MathEnv', "
                         "'env_kwargs': {'dataset_name': 'math.jsonl'}}")
    return import_object(env)(**dict(config.get("env_kwargs") or {}))


def last_message(messages: Sequence[Mapping[str, Any]], role: str) -> str:
    """The content of the last message of `role`, or ''."""
    return next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == role), "")


@dataclass
class _Running:
    """An interaction's episode: its state, the observation the model last saw (to send only what is new in the
    next one), and whether the first turn checked that the row's prompt showed the whole first observation."""

    state: EpisodeState
    seen: str
    checked: bool = False


class ArenaInteraction(_interaction_base()):  # type: ignore[misc]
    """verl's interaction for a `MultistepEnv`: each verl request plays one episode through `reset` and `step`.

    `config` is the YAML entry's: `env` (import path) and `env_kwargs`; in process, `env` may be the env itself.
    Each turn's score is its step reward; the last turn's is the episode's reward."""

    def __init__(self, config: dict[str, Any], env: MultistepEnv | None = None) -> None:
        super().__init__(config)
        self.env = env if env is not None else build_env(config)
        self._running: dict[str, _Running] = {}

    async def start_interaction(self, instance_id: str | None = None, **kwargs: Any) -> str:
        """Start an episode of the task in `kwargs` (the row's `interaction_kwargs`, less `name`)."""
        instance_id = instance_id or uuid.uuid4().hex
        task = {k: v for k, v in kwargs.items() if k != "name" and v is not None}  # parquet pads other envs' keys
        state = await self.env.reset(task or None, instance_id)
        self._running[instance_id] = _Running(state, state.observation)
        return instance_id

    async def generate_response(self, instance_id: str, messages: list[dict[str, Any]],
                                **kwargs: Any) -> tuple[bool, str, float, dict[str, Any]]:
        """Play the last assistant message; (episode over, what the model sees next, turn score, metadata).

        A first reply to a prompt that did not show the whole first observation (a later seat's row, which
        lacks the earlier seats' first moves) is not played: the model is shown what it missed instead."""
        running = self._running[instance_id]
        missed = "" if running.checked else unseen_part(running.seen, last_message(messages[:-1], "user"))
        running.checked = True
        if missed:
            return False, missed, 0.0, {"steps": 0, "outcome": None, "reason": "the prompt missed the opening"}
        state = running.state = await self.env.step(instance_id, last_message(messages, "assistant"))
        metadata = {"steps": state.steps, "outcome": state.outcome, "reason": state.info.get("reason", "")}
        if state.done:
            await self.finalize_interaction(instance_id)
            return True, f"The episode is over: {state.outcome}.", float(state.reward or 0.0), metadata
        reward = state.step_rewards[-1] if len(state.step_rewards) == state.steps else 0.0
        text = unseen_part(state.observation, running.seen) or state.observation.strip()
        running.seen = state.observation
        return False, text, reward, metadata

    async def calculate_score(self, instance_id: str, **kwargs: Any) -> float:
        """The step rewards so far of a running episode (0.0 for one that ended: its score was its last turn's)."""
        running = self._running.get(instance_id)
        return sum(running.state.step_rewards) if running else 0.0

    async def finalize_interaction(self, instance_id: str, **kwargs: Any) -> None:
        """Forget the episode, ending it first if it still runs."""
        if self._running.pop(instance_id, None) is not None:
            await self.env.finalize(instance_id)


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None,
                  **kwargs: Any) -> float:
    """verl's `custom_reward_function`: the score of the interaction's last turn, the episode's reward."""
    scores = (extra_info or {}).get("turn_scores")
    return float(scores[-1]) if scores is not None and len(scores) else 0.0


@dataclass(frozen=True)
class InteractionSpec:
    """One entry of verl's interaction YAML: a name, the interaction class's import path, and its config."""

    name: str
    class_path: str = "arena.envs.verl.ArenaInteraction"
    config: dict[str, Any] = field(default_factory=dict)

    def load(self) -> type:
        """The interaction class."""
        return import_object(self.class_path)

    def build(self) -> Any:
        """An interaction, built as verl builds it: `cls(config={**config, "name": name})`."""
        return self.load()(config={**self.config, "name": self.name})

    def entry(self) -> dict[str, Any]:
        """The YAML entry: `name`, `class_name`, `config`."""
        return {"name": self.name, "class_name": self.class_path, "config": dict(self.config)}


@dataclass(frozen=True)
class DataConfig:
    """What `GenericEnvironment` makes rows of, and how its dataloader batches them."""

    num_episodes: int | None = None  # rows per interaction; None: one per task of its env
    data_source: str | None = None  # default: the interaction's name
    split: str = "train"
    agent_name: str = "tool_agent"  # verl's agent loop that runs interactions
    batch_size: int = 1
    shuffle: bool = False
    seed: int = 0


class GenericEnvironment:
    """verl rows for one or more interactions: each row is one episode's first prompt and the task to replay."""

    def __init__(self, config: DataConfig | Mapping[str, Any] | None, interaction_specs: Sequence[InteractionSpec]):
        self.config = config if isinstance(config, DataConfig) else DataConfig(**dict(config or {}))
        names = [spec.name for spec in interaction_specs]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"give interactions with distinct names, not {names}")
        self.specs = list(interaction_specs)

    @cached_property
    def interactions(self) -> dict[str, Any]:
        """The interactions, built once, by name."""
        return {spec.name: spec.build() for spec in self.specs}

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        """Every row, interaction by interaction (shuffled with the config's seed when it says so)."""
        rows = [row for spec in self.specs for row in self._rows(spec.name, self.interactions[spec.name].env)]
        if self.config.shuffle:
            random.Random(self.config.seed).shuffle(rows)
        for index, row in enumerate(rows):
            row["extra_info"]["index"] = index
        return rows

    def _rows(self, name: str, env: MultistepEnv) -> Iterator[dict[str, Any]]:
        """One interaction's rows: `prompt`, `data_source`, `agent_name`, `reward_model`, `extra_info`."""
        for row in env.get_dataset(self.config.num_episodes or len(env.tasks)).to_list():
            task = {k: v for k, v in row.items() if k != "prompt"}
            yield {"data_source": self.config.data_source or name, "prompt": row["prompt"],
                   "agent_name": self.config.agent_name, "reward_model": {"style": "interaction", "ground_truth": ""},
                   "extra_info": {"split": self.config.split, "index": 0,
                                  "interaction_kwargs": {"name": name, **task}}}

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def dataloader(self) -> Iterator[list[dict[str, Any]]]:
        """The rows in batches of the config's `batch_size`."""
        size = max(1, self.config.batch_size)
        for start in range(0, len(self.rows), size):
            yield self.rows[start:start + size]

    def interaction_config(self) -> dict[str, Any]:
        """verl's interaction YAML, as a dict."""
        return {"interaction": [spec.entry() for spec in self.specs]}

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        """Write `<split>.parquet` (for `data.train_files`) and `interaction_config.yaml`; returns both paths."""
        import yaml
        from datasets import Dataset

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        data, config = folder / f"{self.config.split}.parquet", folder / "interaction_config.yaml"
        Dataset.from_list(self.rows).to_parquet(str(data))
        config.write_text(yaml.safe_dump(self.interaction_config(), sort_keys=False))
        return data, config
