"""TRL's `GRPOTrainer` on arena environments: an `environment_factory`, a `rollout_func`, and reward functions.

Both follow TRL 1.16 (`trl/trainer/grpo_trainer.py`); TRL itself is never imported here.

- `environment_factory(env)`: TRL builds one `ArenaToolEnv` per rollout and calls `reset(**row)` with the dataset
  row (its return value is appended to the prompt); the model plays by calling the `act` tool; TRL calls
  `get_reward()` once the rollout ends. Needs a model whose chat template supports tool calls, and
  transformers >= 5.2. The environments run on one background event loop (`arena.envs.bridge.run_sync`).
- `rollout_func(env, policy)`: TRL calls `f(prompts, trainer)` with one prompt per completion it wants (each
  prompt repeated `num_generations` times); it plays those episodes with `policy` and returns, per prompt, the
  first prompt's token ids, the rest of the multi-turn sequence, its logprobs, and `env_mask` (1 = a token the
  model sampled, 0 = the environment's), with `env_reward` and `outcome` forwarded to the reward functions.
"""

from __future__ import annotations

import functools
import itertools
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from arena.envs.base import EpisodeState, MultistepEnv, RewardFunction
from arena.envs.bridge import run_sync, unseen_part
from arena.envs.episode import Episode, Trajectory
from arena.envs.policy import PolicyLike

RolloutFunc = Callable[[list[Any], Any], dict[str, list[Any]]]


# --- environment_factory ------------------------------------------------------------------


class ArenaToolEnv:
    """One episode at a time of a `MultistepEnv`, shaped as TRL wants an `environment_factory` environment.

    TRL exposes every public method but `reset` and `get_reward` as a tool, so the only tool is `act`."""

    def __init__(self, env: MultistepEnv) -> None:
        self._env, self._session = env, uuid.uuid4().hex
        self._state: EpisodeState | None = None
        self._seen = ""  # the last observation, to send only what each new one adds

    def reset(self, prompt: list[dict[str, str]] | None = None, **task: Any) -> str | None:
        """Start an episode of the row's task (the env's next task without one). Returns what TRL must append to
        the prompt: the first observation, less what the row's prompt shows (None when it shows it all)."""
        self._state = run_sync(self._env.reset(task or None, self._session))
        self._seen = self._state.observation
        shown = str(prompt[-1].get("content") or "") if prompt else ""
        if shown:
            missed = unseen_part(self._state.observation, shown)
            return f"\n\n{missed}" if missed else None
        has_system = any(message.get("role") == "system" for message in prompt or [])
        system = "" if has_system else self._env._system_prompt(self._state.task)
        return f"{system}\n\n{self._state.observation}" if system else self._state.observation

    def act(self, move: str) -> str:
        """Play your move (or give your answer) in the current episode.

        Args:
            move: Your move or answer, written the way the instructions ask for it.

        Returns:
            What you see next: the environment's reply, or how the episode ended.
        """
        if self._state is None or self._state.done:
            raise ValueError("no episode is running: it is over, do not call act again")
        self._state = run_sync(self._env.step(self._session, move))
        if self._state.done:
            return f"The episode is over: {self._state.outcome}. Reward: {self._state.reward:g}."
        new = unseen_part(self._state.observation, self._seen) or self._state.observation.strip()
        self._seen = self._state.observation
        return new

    def get_reward(self) -> float:
        """The episode's reward, 0.0 when the model stopped before it ended; the episode is released here."""
        state = self._state
        if state is None:
            return 0.0
        run_sync(self._env.finalize(self._session))
        return float(state.reward or 0.0) if state.done else 0.0


def environment_factory(env: MultistepEnv) -> Callable[[], ArenaToolEnv]:
    """TRL's `environment_factory` for `env`: every environment it builds plays episodes of this one env."""
    return functools.partial(ArenaToolEnv, env)


# --- rollout_func -------------------------------------------------------------------------


def prompt_key(prompt: Any) -> str:
    """A hashable key of a prompt (chat messages or text), by role and content only."""
    if isinstance(prompt, str):
        return prompt
    return json.dumps([[m.get("role"), m.get("content")] for m in prompt])


def task_lookup(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The tasks (a row's fields but `prompt`) of each prompt, in dataset order: several tasks may share a prompt
    (a game's seat opens the same way whatever the seed)."""
    lookup: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        lookup[prompt_key(row["prompt"])].append({k: v for k, v in row.items() if k != "prompt"})
    return dict(lookup)


def trainer_policy(trainer: Any) -> Any:
    """The trainer's colocated `vllm.LLM`, the default policy of `rollout_func`."""
    llm = getattr(getattr(trainer, "vllm_generation", None), "llm", None)
    if llm is None:
        raise ValueError("the trainer has no colocated vLLM engine: pass rollout_func(env, policy=...) or use "
                         "GRPOConfig(use_vllm=True, vllm_mode='colocate')")
    return llm


def _trainer_rows(trainer: Any) -> list[dict[str, Any]]:
    """The rows of the trainer's map-style train and eval datasets."""
    datasets = [getattr(trainer, "train_dataset", None), getattr(trainer, "eval_dataset", None)]
    rows = [row for dataset in datasets if hasattr(dataset, "__len__") and hasattr(dataset, "column_names")
            for row in dataset]
    if not rows:
        raise ValueError("rollout_func finds tasks by prompt in a dataset: give the trainer "
                         "train_dataset=env.get_dataset(...), or pass rollout_func(env, dataset=...)")
    return rows


def _group_size(keys: list[str]) -> int:
    """The length of the runs of equal prompts (TRL's groups), or 1 when the runs differ in length."""
    runs = {len(list(run)) for _, run in itertools.groupby(keys)}
    return runs.pop() if len(runs) == 1 else 1


def _seat_trajectory(episode: Episode, task: dict[str, Any]) -> Trajectory:
    """The episode's trajectory of the task's seat (the only one unless the policy played every seat)."""
    if not episode.trajectories:
        raise ValueError(f"episode {episode.index} has no trajectory of the policy ({episode.reason})")
    seat = task.get("seat")
    return next((t for t in episode.trajectories if t.seat == seat), episode.trajectories[0])


def rollout_output(trajectories: list[Trajectory]) -> dict[str, list[Any]]:
    """TRL's `rollout_func` result, one entry per trajectory: the first prompt's ids, the rest as the completion
    (every later turn, the environment's tokens masked 0 in `env_mask`), its logprobs, the reward and outcome."""
    output: dict[str, list[Any]] = {key: [] for key in
                                    ("prompt_ids", "completion_ids", "logprobs", "env_mask", "env_reward", "outcome")}
    for trajectory in trajectories:
        ids, mask = trajectory.token_ids, trajectory.mask
        if ids is None or mask is None:
            raise ValueError("trajectories have no token ids: give the env a tokenizer, or a policy that returns them")
        start = mask.index(1) if 1 in mask else len(mask) - 1  # a completion is never empty: TRL reads its last id
        logprobs = trajectory.logprobs or [None] * len(ids)
        output["prompt_ids"].append(list(ids[:start]))
        output["completion_ids"].append(list(ids[start:]))
        output["logprobs"].append(list(logprobs[start:]))
        output["env_mask"].append(list(mask[start:]))
        output["env_reward"].append(trajectory.reward)
        output["outcome"].append(trajectory.outcome)
    return output


def rollout_func(env: MultistepEnv, policy: PolicyLike = None, dataset: Iterable[dict[str, Any]] | None = None,
                 concurrency: int = 64) -> RolloutFunc:
    """TRL's `rollout_func`: play each prompt's task with `policy` (default: the trainer's colocated vLLM engine).

    Tasks are found by prompt in `dataset` (default: the trainer's datasets, best made by `env.get_dataset`); the
    tasks sharing a prompt are played in turn, one per group. Sampled tokens are the engine's when it returns
    them; the rest are tokenized with the env's tokenizer, else the trainer's `processing_class`."""
    tasks_of: dict[str, Iterator[dict[str, Any]]] = {}

    def rollout(prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        if not tasks_of:
            rows = dataset if dataset is not None else _trainer_rows(trainer)
            tasks_of.update({key: itertools.cycle(tasks) for key, tasks in task_lookup(rows).items()})
        keys = [prompt_key(prompt) for prompt in prompts]
        unknown = [key for key in keys if key not in tasks_of]
        if unknown:
            raise KeyError(f"rollout_func has no task for the prompt {unknown[0][:200]}: pass dataset=... with it")
        size = _group_size(keys)
        tasks = [next(tasks_of[key]) for key in keys[::size]]
        if env.tokenizer is None:
            env.tokenizer = getattr(trainer, "processing_class", None)
        played = policy if policy is not None else trainer_policy(trainer)
        episodes = run_sync(env.rollout(played, len(prompts), concurrency, size, tasks=tasks))
        return rollout_output([_seat_trajectory(e, tasks[i // size]) for i, e in enumerate(episodes)])

    return rollout


# --- rewards ------------------------------------------------------------------------------


def env_reward(prompts: list[Any], completions: list[Any], env_reward: list[float] | None = None,
               **kwargs: Any) -> list[float | None]:
    """The episode rewards `rollout_func` forwarded (TRL's reward signature); None, so ignored, without them."""
    if env_reward is None:
        return [None] * len(completions)
    return [float(reward) for reward in env_reward]


def reward_funcs(env: MultistepEnv, rubric: bool = False) -> list[RewardFunction]:
    """TRL's `reward_funcs` for `rollout_func`: the episode reward, plus the env's rubric (which scores the
    completion's text) when `rubric`."""
    return [env_reward, *(env.get_rubric() if rubric else [])]
