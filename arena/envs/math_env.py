"""`MathEnv`: math word problems over several tries; after a wrong answer the model gets a hint and tries again.

Tasks come from GSM8K on the Hugging Face hub, or from a local JSONL or Parquet file (or a list of dicts) with
the columns `question` and `answer` (`final_answer` is read when there is no `answer`). An answer is a worked
solution ending in `#### N`, as in GSM8K, or the final answer alone; hints reveal a solution's steps one by one.
An LLM agent should read its move with `extract=boxed` (`openai:MODEL?extract=boxed`): the default, the last
[bracketed] text, would take a citation such as [1] for the answer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from arena.envs.base import EpisodeState, MultistepEnv, RewardFunction
from arena.envs.policy import TokenizerLike
from arena.envs.rewards import completion_text
from arena.envs.single_step import DatasetLike, load_rows, verify_math
from arena.prompting import Conversation

GSM8K = ("openai/gsm8k", "main")
COLUMNS = {"question": ("question",), "answer": ("answer", "final_answer")}
ANSWER_FORMAT = "Think step by step, then put your final answer, a number, in \\boxed{}."
SYSTEM_PROMPT = "You solve math word problems. " + ANSWER_FORMAT
_CALCULATION = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator notes, such as <<48/2=24>>


class MathEnv(MultistepEnv):
    """Math problems with up to `max_steps_per_episode` tries each.

    A right answer on try t ends the episode as a win with reward 1/t (so 1.0 first time, 0.5 on the second try);
    running out of tries is a loss with reward 0. After a wrong try the observation is a hint (with `hints`) that
    shows one more step of the reference solution each time, never its last step, which states the answer."""

    def __init__(self, dataset_name: DatasetLike = "gsm8k", max_steps_per_episode: int = 3, hints: bool = True,
                 split: str = "train", system_prompt: str | None = None, tokenizer: TokenizerLike = None,
                 seed: int = 0) -> None:
        super().__init__(max_steps_per_episode, system_prompt, tokenizer, seed)
        self.hints = hints
        gsm8k = isinstance(dataset_name, str) and dataset_name.lower() == "gsm8k"
        self.name = "gsm8k" if gsm8k else source_name(dataset_name)
        self._rows = load_gsm8k(split) if gsm8k else load_rows(dataset_name, COLUMNS)

    def _create_task_dataset(self) -> list[dict[str, Any]]:
        """One task per row: {task_id, question, answer (the reference solution)}."""
        return [{"task_id": str(row.get("task_id") or f"{self.name}-{number}"), "question": str(row["question"]),
                 "answer": str(row["answer"])} for number, row in enumerate(self._rows)]

    def _system_prompt(self, task_info: dict[str, Any]) -> str:
        """The system prompt given, or a short instruction on the answer's format."""
        return self.system_prompt or SYSTEM_PROMPT

    async def _initialize_episode(self, session_id: str, task_info: dict[str, Any]) -> EpisodeState:
        """The question with the answer format."""
        return EpisodeState(session_id, task_info, observation=first_prompt(task_info))

    async def _step_episode(self, session_id: str, state: EpisodeState, llm_action: str) -> EpisodeState:
        """A right answer wins; a wrong one earns a hint, or a loss once the tries are spent."""
        tries = state.steps
        if verify_math(llm_action, state.task["answer"]):
            state.step_rewards.append(1.0 / tries)
            state.done, state.outcome, state.info["reason"] = True, "win", f"right answer on try {tries}"
            return state
        state.step_rewards.append(0.0)
        if tries >= self.max_steps_per_episode:
            state.done, state.outcome, state.info["reason"] = True, "loss", f"no right answer in {tries} tries"
        else:
            state.observation = self.feedback(state.task["answer"], tries)
        return state

    def _calculate_reward(self, state: EpisodeState, llm_actions: list[str], final_action: str) -> float:
        """1/tries for a right answer, 0.0 for none."""
        return 1.0 / len(llm_actions) if state.outcome == "win" else 0.0

    def feedback(self, answer: str, tries: int) -> str:
        """What the policy sees after `tries` wrong tries: with hints, the reference's first `tries` steps."""
        steps = solution_steps(answer)[:-1][:tries]
        if not self.hints or not steps:
            return f"That is not right. Try again. {ANSWER_FORMAT}"
        return "That is not right. Hint:\n" + "\n".join(steps) + f"\nTry again. {ANSWER_FORMAT}"

    def prompt_row(self, task_info: dict[str, Any]) -> dict[str, Any]:
        """A dataset row: the first prompt's messages, the task id, the question and the reference solution."""
        messages = Conversation(self._system_prompt(task_info)).prompt(first_prompt(task_info))
        return {"prompt": messages, "task_id": task_info["task_id"], "question": task_info["question"],
                "answer": task_info["answer"]}

    def get_rubric(self) -> list[RewardFunction]:
        """The correctness reward, for TRL's `reward_funcs`."""
        return [math_correctness]


def load_gsm8k(split: str = "train") -> list[dict[str, Any]]:
    """GSM8K's `split` from the Hugging Face hub (or its cache); RuntimeError suggesting a local file if it fails."""
    try:
        from datasets import load_dataset

        dataset = load_dataset(*GSM8K, split=split)
    except Exception as error:  # no `datasets`, no network, no cache: the same advice for each
        raise RuntimeError(f"cannot load GSM8K ({GSM8K[0]}, split '{split}') from the Hugging Face hub: {error}. "
                           "Without the hub, pass a local JSONL or Parquet file with 'question' and 'answer' "
                           "columns instead, e.g. MathEnv('math.jsonl')") from error
    return load_rows(dataset, COLUMNS)


def source_name(dataset: DatasetLike) -> str:
    """What task ids start with: a file's name without its suffix, else "math"."""
    return Path(dataset).stem if isinstance(dataset, str | Path) else "math"


def first_prompt(task_info: dict[str, Any]) -> str:
    """The first observation of a task: the question and the answer format."""
    return f"{task_info['question']}\n\n{ANSWER_FORMAT}"


def solution_steps(answer: str) -> list[str]:
    """The step lines of a reference solution (before `####`), without GSM8K's calculator notes."""
    lines = (_CALCULATION.sub("", line).strip() for line in answer.split("####")[0].splitlines())
    return [line for line in lines if line]


def math_correctness(prompts: list[Any], completions: list[Any], answer: list[str], **kwargs: Any) -> list[float]:
    """1.0 for each completion whose final answer is its reference's, else 0.0 (TRL's reward signature)."""
    return [float(verify_math(completion_text(completion), reference))
            for completion, reference in zip(completions, answer, strict=True)]
