"""`MathEnv`: hints after wrong answers, discounted rewards, datasets from files, trainer rows and rollouts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.base import Agent, Decision, TurnContext
from arena.envs.math_env import MathEnv, math_correctness
from arena.envs.single_step import extract_answer
from arena.testing.fake_openai import FakeLLM

FIXTURE = Path(__file__).parent / "fixtures" / "math_small.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
ANSWERS = {row["question"]: extract_answer(row["answer"]) for row in ROWS}
MARBLES = ROWS[1]  # three solution steps: hints may show the first two


def right_answer(text: str) -> str:
    """The right final answer to the fixture question that `text` contains."""
    return next(answer for question, answer in ANSWERS.items() if question in text)


async def test_each_wrong_answer_earns_a_hint_that_shows_one_more_step() -> None:
    env = MathEnv(FIXTURE, max_steps_per_episode=4)
    state = await env.reset(env.tasks[1])
    assert state.observation.startswith(MARBLES["question"]) and "\\boxed{}" in state.observation
    hints = []
    for _ in range(3):
        state = await env.step(state.session_id, "\\boxed{50}")
        assert not state.done
        hints.append(state.observation)
    assert hints[0].startswith("That is not right. Hint:\nAfter giving some away he has 45 - 9 = 36 marbles.\n")
    assert "The bags hold 3 * 6 = 18 marbles." in hints[1] and "The bags hold" not in hints[0]
    assert hints[2] == hints[1], "the last step states the answer: hints never show it"
    assert all("<<" not in hint and "54" not in hint for hint in hints)


async def test_a_right_answer_wins_with_a_reward_discounted_by_the_tries() -> None:
    env = MathEnv(FIXTURE, max_steps_per_episode=3)
    state = await env.step((await env.reset(env.tasks[0])).session_id, "Twice 12 is 24, so \\boxed{36}.")
    assert (state.done, state.outcome, state.reward, state.step_rewards) == (True, "win", 1.0, [1.0])
    state = await env.reset(env.tasks[0])
    await env.step(state.session_id, "\\boxed{24}")
    state = await env.step(state.session_id, "#### 36")
    assert (state.done, state.outcome, state.reward, state.step_rewards) == (True, "win", 0.5, [0.0, 0.5])
    assert state.info["reason"] == "right answer on try 2"


async def test_running_out_of_tries_is_a_loss() -> None:
    env = MathEnv(FIXTURE, max_steps_per_episode=2)
    state = await env.reset(env.tasks[0])
    await env.step(state.session_id, "\\boxed{1}")
    state = await env.step(state.session_id, "\\boxed{2}")
    assert (state.done, state.outcome, state.reward, state.step_rewards) == (True, "loss", 0.0, [0.0, 0.0])
    assert state.info["reason"] == "no right answer in 2 tries"
    with pytest.raises(ValueError, match=r"is over"):
        await env.step(state.session_id, "\\boxed{36}")


async def test_without_hints_a_wrong_answer_only_asks_for_another_try() -> None:
    env = MathEnv(FIXTURE, hints=False)
    state = await env.step((await env.reset(env.tasks[1])).session_id, "\\boxed{50}")
    assert not state.done
    assert state.observation.startswith("That is not right. Try again.") and "45 - 9" not in state.observation


def test_tries_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match=r"max_steps_per_episode must be an integer >= 1"):
        MathEnv(FIXTURE, max_steps_per_episode=0)


def test_a_file_without_the_columns_names_them_and_the_file(tmp_path) -> None:
    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps({"question": "1 + 1?", "solution": "#### 2"}) + "\n")
    with pytest.raises(ValueError, match=rf"dataset file {tmp_path}/problems\.jsonl is missing column 'answer' or "
                                         r"'final_answer' \(row 1 has columns: 'question', 'solution'\)"):
        MathEnv(path)


def test_a_parquet_file_and_a_final_answer_column_work_too(tmp_path) -> None:
    import pyarrow
    import pyarrow.parquet

    path = tmp_path / "math_small.parquet"
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(ROWS), path)
    assert MathEnv(path).tasks == MathEnv(FIXTURE).tasks
    renamed = [{"question": row["question"], "final_answer": row["answer"]} for row in ROWS]
    assert MathEnv(renamed).tasks[2]["answer"] == ROWS[2]["answer"]


def test_gsm8k_without_the_hub_suggests_a_local_file(tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}  # offline, with an empty cache
    code = "from arena.envs.math_env import MathEnv\nMathEnv('gsm8k')"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "RuntimeError: cannot load GSM8K (openai/gsm8k, split 'train') from the Hugging Face hub" in run.stderr
    assert "pass a local JSONL or Parquet file with 'question' and 'answer' columns" in run.stderr


def test_the_dataset_holds_first_prompts_and_the_rubric_scores_completions() -> None:
    env = MathEnv(FIXTURE)
    dataset = env.get_dataset()
    assert len(dataset) == len(ROWS)
    row = dataset[3]
    assert (row["task_id"], row["answer"]) == ("math_small-3", ROWS[3]["answer"])
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert "\\boxed{}" in row["prompt"][0]["content"] and row["prompt"][1]["content"].startswith(ROWS[3]["question"])
    [reward] = env.get_rubric()
    answers = [ROWS[0]["answer"], ROWS[1]["answer"], ROWS[2]["answer"]]
    prompts = [dataset[i]["prompt"] for i in range(3)]
    assert reward(prompts, ["So \\boxed{36}.", "\\boxed{53}", "I do not know"], answer=answers) == [1.0, 0.0, 0.0]
    chats = [[{"role": "assistant", "content": text}] for text in ("\\boxed{35}", "#### 54", "\\boxed{22}")]
    assert math_correctness(prompts, chats, answer=answers, task_id=["a", "b", "c"]) == [0.0, 1.0, 1.0]


class SecondTryAgent(Agent):
    """Answers 0 first, then the right answer, in every episode (episodes told apart by their game key)."""

    name = "second-try"

    def __init__(self) -> None:
        self.questions: dict[str, str] = {}

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        question = self.questions.setdefault(context.game_key, observation)
        return Decision("\\boxed{0}" if question == observation else f"\\boxed{{{right_answer(question)}}}")


def test_rollout_records_the_hints_and_evaluate_llm_the_metrics() -> None:
    env = MathEnv(FIXTURE, max_steps_per_episode=3)
    episodes = asyncio.run(env.rollout(SecondTryAgent(), 6))
    for episode in episodes:
        [trajectory] = episode.trajectories
        assert (trajectory.outcome, trajectory.reward, trajectory.turn_rewards) == ("win", 0.5, [0.0, 0.5])
        assert trajectory.steps[1].observation.startswith("That is not right. Hint:\n")
        assert trajectory.info["task"]["question"] in trajectory.steps[0].observation
    assert {e.trajectories[0].info["task"]["task_id"] for e in episodes} == {f"math_small-{i}" for i in range(6)}
    metrics = env.evaluate_llm(SecondTryAgent(), num_episodes=6)
    assert (metrics["episodes"], metrics["mean_reward"], metrics["mean_turns"], metrics["wins"]) == (6, 0.5, 2, 1)


def tutored_reply(messages: list[dict]) -> str:
    """A model that gets it wrong until it is given a hint."""
    question = next(m["content"] for m in messages if m["role"] == "user")
    hinted = "Hint:" in messages[-1]["content"]
    return f"Let me think. \\boxed{{{right_answer(question) if hinted else 0}}}"


def test_an_openai_model_learns_from_the_hint() -> None:
    env = MathEnv(FIXTURE, max_steps_per_episode=3)
    with FakeLLM() as llm:
        llm.reply = tutored_reply
        spec = f"openai:test-model?base_url={llm.base_url}&extract=boxed"
        metrics = env.evaluate_llm(spec, num_episodes=6)
        [episode] = asyncio.run(env.rollout(spec, 1))
    assert (metrics["mean_reward"], metrics["mean_turns"], metrics["wins"]) == (0.5, 2, 1)
    steps = episode.trajectories[0].steps
    assert [s.action for s in steps] == ["0", "36"] and steps[1].completion == "Let me think. \\boxed{36}"
    assert steps[1].observation.startswith("That is not right. Hint:\nIn the afternoon she makes 12 * 2 = 24")
    second = llm.bodies[-1]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[-1]["content"] == steps[1].observation


def test_a_model_that_never_gets_it_right_loses_every_episode() -> None:
    with FakeLLM() as llm:  # it answers "I will play [4]" to everything
        metrics = MathEnv(FIXTURE, max_steps_per_episode=2).evaluate_llm(
            f"openai:test-model?base_url={llm.base_url}", num_episodes=3)
    assert (metrics["mean_reward"], metrics["losses"], metrics["mean_turns"]) == (0.0, 1.0, 2.0)
