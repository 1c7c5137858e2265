"""`MultistepEnv`: the base of every RL environment; a task dataset, episodes driven step by step, rewards.

A subclass fills four hooks. Trainers that generate themselves (verl, TRL's environment factory) drive
episodes with `reset` and `step`; `rollout` and `evaluate_llm` drive them with a policy, many at once.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.base import TurnContext
from arena.envs.episode import Episode, Outcome, Step, Trajectory
from arena.envs.policy import PolicyLike, TokenizerLike, as_policy, run_policy
from arena.envs.tokens import TokenChat


@dataclass
class EpisodeState:
    """A running episode: the task, the latest observation, the actions so far, and how it ended."""

    session_id: str
    task: dict[str, Any]
    observation: str = ""
    done: bool = False
    actions: list[str] = field(default_factory=list)
    outcome: Outcome | None = None
    reward: float | None = None
    step_rewards: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """How many actions the policy has taken."""
        return len(self.actions)


RewardFunction = Callable[..., list[float]]


class MultistepEnv(ABC):
    """An environment of multi-step episodes for one LLM policy."""

    def __init__(self, max_steps_per_episode: int = 10, system_prompt: str | None = None,
                 tokenizer: TokenizerLike = None, seed: int = 0) -> None:
        if not isinstance(max_steps_per_episode, int) or max_steps_per_episode < 1:
            raise ValueError(f"max_steps_per_episode must be an integer >= 1, not {max_steps_per_episode!r}")
        self.max_steps_per_episode, self.system_prompt = max_steps_per_episode, system_prompt
        self.tokenizer, self.seed = tokenizer, seed
        self._tasks: list[dict[str, Any]] | None = None
        self._sessions: dict[str, EpisodeState] = {}

    # --- the hooks a subclass fills -------------------------------------------------------

    @abstractmethod
    def _create_task_dataset(self) -> list[dict[str, Any]]:
        """The tasks episodes are drawn from, each a dict of plain values (it becomes a dataset row)."""

    @abstractmethod
    async def _initialize_episode(self, session_id: str, task_info: dict[str, Any]) -> EpisodeState:
        """Start an episode of `task_info`; the state's observation is what the policy sees first."""

    @abstractmethod
    async def _step_episode(self, session_id: str, state: EpisodeState, llm_action: str) -> EpisodeState:
        """Apply the policy's action; return the state with the next observation, or done."""

    @abstractmethod
    def _calculate_reward(self, state: EpisodeState, llm_actions: list[str], final_action: str) -> float:
        """The episode's reward once it is done."""

    def _system_prompt(self, task_info: dict[str, Any]) -> str:
        """The system prompt of an episode."""
        return self.system_prompt or ""

    async def _close_episode(self, session_id: str, state: EpisodeState) -> None:  # noqa: B027 - optional hook
        """Release what an episode holds (a running game, say) when it ends or is dropped."""

    # --- tasks ----------------------------------------------------------------------------

    @property
    def tasks(self) -> list[dict[str, Any]]:
        """The task dataset, made once."""
        if self._tasks is None:
            self._tasks = list(self._create_task_dataset())
        return self._tasks

    def task(self, index: int) -> dict[str, Any]:
        """Task `index`, cycling over the dataset."""
        if not self.tasks:
            raise ValueError(f"{type(self).__name__} has no tasks")
        return self.tasks[index % len(self.tasks)]

    def get_dataset(self, num_episodes: int | None = None) -> Any:
        """A `datasets.Dataset` of episode prompts (chat messages) with each task's fields as metadata."""
        from datasets import Dataset

        rows = [self.prompt_row(self.task(i)) for i in range(num_episodes or len(self.tasks))]
        return Dataset.from_list(rows)

    def prompt_row(self, task_info: dict[str, Any]) -> dict[str, Any]:
        """One dataset row: the first prompt's messages and the task's fields."""
        raise NotImplementedError(f"{type(self).__name__} has no static first prompt")

    def get_rubric(self) -> list[RewardFunction]:
        """Reward functions with TRL's signature `f(prompts, completions, **columns) -> list[float]`."""
        return []

    # --- trainer-driven episodes ----------------------------------------------------------

    async def reset(self, task_info: dict[str, Any] | None = None, session_id: str | None = None) -> EpisodeState:
        """Start an episode (of `task_info`, or the next task) and return its first state."""
        session_id = session_id or uuid.uuid4().hex
        if session_id in self._sessions:
            await self.finalize(session_id)
        info = task_info if task_info is not None else self.task(len(self._sessions))
        state = await self._initialize_episode(session_id, info)
        self._sessions[session_id] = state
        return state

    async def step(self, session_id: str, llm_action: str) -> EpisodeState:
        """Apply an action to a running episode; at the end, the state carries its reward."""
        state = self._sessions.get(session_id)
        if state is None:
            raise KeyError(f"no running episode '{session_id}': call reset() first")
        if state.done:
            raise ValueError(f"episode '{session_id}' is over; call reset() for a new one")
        state.actions.append(llm_action)
        state = await self._step_episode(session_id, state, llm_action)
        if not state.done and state.steps >= self.max_steps_per_episode:
            state.done, state.outcome = True, "truncated"
        if state.done:
            state.reward = self._calculate_reward(state, state.actions, llm_action)
            await self._close_episode(session_id, state)
        self._sessions[session_id] = state
        return state

    async def finalize(self, session_id: str) -> None:
        """Forget an episode, ending it first if it is still running."""
        state = self._sessions.pop(session_id, None)
        if state is not None and not state.done:
            await self._close_episode(session_id, state)

    # --- policy-driven episodes -----------------------------------------------------------

    async def rollout(self, policy: PolicyLike, n: int, concurrency: int = 64, group_size: int = 1,
                      record: str | None = None, tasks: Sequence[dict[str, Any]] | None = None) -> list[Episode]:
        """Play `n` episodes (in groups of `group_size` on the same task) with `policy`, `concurrency` at once;
        group g plays `tasks[g]` when given, else task g."""
        if record is not None:
            raise ValueError(f"{type(self).__name__} episodes are not games: record needs TextArenaMultistepEnv")
        agent = await as_policy(policy)
        try:
            slots = asyncio.Semaphore(max(1, concurrency))

            async def one(index: int) -> Episode:
                async with slots:
                    group = index // max(1, group_size)
                    task = tasks[group] if tasks else self.task(group)
                    return await self._rollout_one(agent.agent, index, group, task)

            return list(await asyncio.gather(*[one(i) for i in range(n)]))
        finally:
            await agent.close()

    async def _rollout_one(self, agent: Any, index: int, group: int, task: dict[str, Any]) -> Episode:
        """One episode of `task` driven by the policy through `reset` and `step`."""
        state = await self.reset(task)
        chat = TokenChat(self._system_prompt(task), self.tokenizer or getattr(agent, "tokenizer", None))
        trajectory = Trajectory(type(self).__name__, self.seed, 0, group, agent.name, chat.messages)
        try:
            while not state.done:
                observation = state.observation
                context = TurnContext(trajectory.env_id, state.session_id, self.seed, 0, state.steps)
                generation = await run_policy(agent, chat, observation, context)
                trajectory.info["completion_tokens"] = (trajectory.info.get("completion_tokens", 0)
                                                        + generation.completion_tokens)
                state = await self.step(state.session_id, generation.action)
                reward = state.step_rewards[-1] if len(state.step_rewards) == state.steps else 0.0
                trajectory.steps.append(Step(state.steps - 1, observation, generation.text, generation.action,
                                             reward=reward))
        finally:
            await self.finalize(state.session_id)
        chat.fill(trajectory)
        trajectory.outcome, trajectory.reason = state.outcome or "aborted", str(state.info.get("reason", ""))
        trajectory.raw_reward = trajectory.reward = float(state.reward or 0.0)
        trajectory.info.update(task=task)
        return Episode(index, group, trajectory.env_id, self.seed, [agent.name], "finished", trajectory.reason,
                       {0: trajectory.reward}, [trajectory])

    def evaluate_llm(self, llm_model: PolicyLike, num_episodes: int, verbose: bool = False,
                     concurrency: int = 64) -> dict[str, float]:
        """Play `num_episodes` with `llm_model` (a `vllm.LLM`, an agent spec or an agent) and return metrics."""
        episodes = asyncio.run(self.rollout(llm_model, num_episodes, concurrency))
        metrics = summarize(episodes)
        if verbose:
            for name, value in metrics.items():
                print(f"{name:>18}: {value:.4g}")
        return metrics


def summarize(episodes: Sequence[Episode]) -> dict[str, float]:
    """Mean reward, win/draw/loss rates, invalid-move rate, mean turns and tokens over the policy's trajectories."""
    trajectories = [t for e in episodes for t in e.trajectories]
    count = max(1, len(trajectories))
    steps = [s for t in trajectories for s in t.steps]
    outcomes = [t.outcome for t in trajectories]
    return {
        "episodes": float(len(episodes)),
        "mean_reward": sum(t.reward for t in trajectories) / count,
        "wins": outcomes.count("win") / count,
        "draws": outcomes.count("draw") / count,
        "losses": outcomes.count("loss") / count,
        "aborted": (outcomes.count("aborted") + outcomes.count("truncated")) / count,
        "invalid_move_rate": sum(s.invalid for s in steps) / max(1, len(steps)),
        "mean_turns": len(steps) / count,
        "mean_completion_tokens": sum(t.info.get("completion_tokens", 0) for t in trajectories) / count,
    }
