"""The trainer adapters' contracts, without TRL or verl: TRL's rollout_func output and environment_factory
environment, verl's interaction lifecycle and dataset rows, all on a real `MathEnv` episode."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from datasets import Dataset
from rl_helpers import QUESTIONS, RIGHT, WRONG, CharTokenizer, WrongThenRight, write_math_file

from arena.envs.bridge import run_sync, unseen_part
from arena.envs.math_env import MathEnv
from arena.envs.textarena_env import TextArenaMultistepEnv
from arena.envs.trl import ArenaToolEnv, env_reward, environment_factory, reward_funcs, rollout_func, rollout_output
from arena.envs.verl import (
    ArenaInteraction,
    DataConfig,
    GenericEnvironment,
    InteractionSpec,
    StandInInteraction,
    compute_score,
)

TOKENS = CharTokenizer()


@pytest.fixture
def math_path(tmp_path: Path) -> Path:
    return write_math_file(tmp_path)


@pytest.fixture
def env(math_path: Path) -> MathEnv:
    return MathEnv(dataset_name=math_path, max_steps_per_episode=3, hints=True, tokenizer=TOKENS)


# --- TRL: rollout_func ---------------------------------------------------------------------------


def test_rollout_func_returns_one_aligned_sequence_per_prompt_with_the_env_tokens_masked(env: MathEnv) -> None:
    dataset = env.get_dataset()
    prompts = [row["prompt"] for row in dataset for _ in range(2)]  # TRL repeats each prompt num_generations times
    output = rollout_func(env, WrongThenRight(), dataset)(prompts, SimpleNamespace(processing_class=None))

    assert {"prompt_ids", "completion_ids", "logprobs", "env_mask"} <= output.keys()
    assert all(len(output[key]) == len(prompts) for key in output)
    for i, (prompt, completion) in enumerate(zip(output["prompt_ids"], output["completion_ids"], strict=True)):
        mask = output["env_mask"][i]
        assert len(mask) == len(completion) == len(output["logprobs"][i])
        assert QUESTIONS[i // 2] in TOKENS.decode(prompt)  # each prompt played its own task
        assert TOKENS.decode([t for t, m in zip(completion, mask, strict=True) if m]) == WRONG + RIGHT
        environment = TOKENS.decode([t for t, m in zip(completion, mask, strict=True) if not m])
        assert "Hint" in environment and mask[0] == mask[-1] == 1  # the completion starts and ends with the model
    assert output["env_reward"] == [0.5] * 4  # right on the second try
    assert output["outcome"] == ["win"] * 4


def test_rollout_func_finds_tasks_in_the_trainers_dataset_and_takes_its_tokenizer(math_path: Path) -> None:
    env = MathEnv(dataset_name=math_path, max_steps_per_episode=3)  # no tokenizer of its own
    trainer = SimpleNamespace(train_dataset=env.get_dataset(), eval_dataset=None, processing_class=TOKENS)
    prompts = [trainer.train_dataset[i]["prompt"] for i in (1, 0, 0)]
    output = rollout_func(env, WrongThenRight())(prompts, trainer)  # runs of unequal length: groups of one

    assert [QUESTIONS[1] in TOKENS.decode(ids) for ids in output["prompt_ids"]] == [True, False, False]
    assert env.tokenizer is TOKENS  # the env keeps the trainer's tokenizer from then on


def test_rollout_func_plays_the_tasks_sharing_a_prompt_in_turn_one_per_group() -> None:
    rows = [{"question": "What is the number?", "answer": answer} for answer in ("#### 41", "#### 42")]
    env = MathEnv(dataset_name=rows, max_steps_per_episode=3, tokenizer=TOKENS)
    prompt = env.get_dataset()[0]["prompt"]  # both tasks open with this prompt
    func = rollout_func(env, WrongThenRight(), env.get_dataset())
    trainer = SimpleNamespace(processing_class=None)

    first, second = (func([prompt, prompt], trainer)["env_reward"] for _ in range(2))
    assert first == [1.0, 1.0] and second == [0.5, 0.5]  # 41 right at once, then 42 on the second try


def test_rollout_func_plays_each_rows_seat_of_a_textarena_game() -> None:
    env = TextArenaMultistepEnv("TicTacToe-v0", max_steps_per_episode=9, num_tasks=4, tokenizer=TOKENS)
    dataset = env.get_dataset()
    prompts = [dataset[i]["prompt"] for i in (0, 0, 1, 1)]  # seat 0, then seat 1
    output = rollout_func(env, "policy=random", dataset)(prompts, SimpleNamespace(processing_class=None))

    for completion, mask, logprobs in zip(output["completion_ids"], output["env_mask"], output["logprobs"],
                                          strict=True):
        assert len(completion) == len(mask) == len(logprobs) and mask[0] == 1 and 0 in mask
    assert ["You are Player 1" in TOKENS.decode(ids) for ids in output["prompt_ids"]] == [False, False, True, True]
    assert output["env_reward"][0] == output["env_reward"][1]  # a group replays one game: same seed and opponent
    assert set(output["outcome"]) <= {"win", "draw", "loss"}


def test_rollout_func_refuses_prompts_it_has_no_task_for(env: MathEnv) -> None:
    func = rollout_func(env, WrongThenRight(), env.get_dataset())
    with pytest.raises(KeyError, match="no task for the prompt"):
        func([[{"role": "user", "content": "What is 2 + 2?"}]], SimpleNamespace(processing_class=None))


def test_rollout_func_without_a_policy_needs_the_trainers_vllm_engine(env: MathEnv) -> None:
    func = rollout_func(env, dataset=env.get_dataset())
    with pytest.raises(ValueError, match="colocated vLLM"):
        func([env.get_dataset()[0]["prompt"]], SimpleNamespace(processing_class=None))


def test_rollout_output_needs_token_ids(env: MathEnv) -> None:
    [episode] = asyncio.run(MathEnv(dataset_name=env._rows, max_steps_per_episode=1).rollout(WrongThenRight(), 1))
    with pytest.raises(ValueError, match="no token ids"):
        rollout_output(episode.trajectories)


def test_env_reward_reads_the_forwarded_column_and_abstains_without_it(env: MathEnv) -> None:
    assert env_reward(["p", "p"], ["c", "c"], env_reward=[0.5, -1]) == [0.5, -1.0]
    assert env_reward(["p"], ["c"]) == [None]  # TRL ignores a None reward
    assert reward_funcs(env) == [env_reward]
    assert reward_funcs(env, rubric=True)[1:] == env.get_rubric()


# --- TRL: environment_factory --------------------------------------------------------------------


def test_environment_factory_exposes_one_tool_and_plays_an_episode_to_its_reward(env: MathEnv) -> None:
    tool_env = environment_factory(env)()
    members = [name for name, _ in inspect.getmembers(type(tool_env), predicate=inspect.isfunction)]
    assert [n for n in members if not n.startswith("_")] == ["act", "get_reward", "reset"]  # TRL: tools = the rest

    row = env.get_dataset()[0]
    assert tool_env.reset(**row) is None  # the row's prompt already shows the question
    assert "Hint" in tool_env.act(WRONG)
    assert "over: win" in tool_env.act(RIGHT)
    with pytest.raises(ValueError, match="over"):
        tool_env.act(RIGHT)
    assert tool_env.get_reward() == 0.5
    assert env._sessions == {}  # released


def test_environment_factory_without_a_dataset_prompt_returns_the_system_prompt_and_question(env: MathEnv) -> None:
    tool_env = ArenaToolEnv(env)
    first = tool_env.reset(prompt=[{"role": "user", "content": ""}])  # TRL's placeholder when no dataset is given
    assert first is not None and first.startswith(env._system_prompt({})) and QUESTIONS[0] in first
    tool_env.reset(prompt=[{"role": "user", "content": ""}])  # instances are pooled: reset ends the last episode
    assert len(env._sessions) == 1
    assert tool_env.get_reward() == 0.0  # stopped before the end


def test_environment_factory_shows_a_later_seat_the_first_moves_its_row_missed() -> None:
    env = TextArenaMultistepEnv("TicTacToe-v0", max_steps_per_episode=9, num_tasks=2)
    first, second, third = (environment_factory(env)() for _ in range(3))
    rows = env.get_dataset()
    try:
        assert first.reset(**rows[0]) is None  # seat 0 moves first: its row shows everything
        assert second.reset(**rows[1]) is None, "a later seat's row holds its opponents' opening moves"
        stale = {**rows[1], "prompt": [rows[1]["prompt"][0], {"role": "user", "content": _before_moves(rows[1])}]}
        missed = third.reset(**stale)
        assert missed is not None and missed.startswith("\n\n[Player 0]")  # TRL appends it to the row's prompt
        reply = third.act("[4]" if "cell 4" not in missed else "[0]")
        assert "Available Moves" in reply and "You are Player" not in reply  # what is new, not the whole game
    finally:
        first.get_reward(), second.get_reward(), third.get_reward()
        run_sync(env.aclose())


def _before_moves(row: dict) -> str:
    """A later seat's opening prompt without the moves played before its first turn (an older, stale row)."""
    return row["prompt"][1]["content"].split("\n[Player 0]")[0]


def test_unseen_part_is_what_an_observation_adds_to_the_prompt() -> None:
    assert unseen_part("\nopening\n[Player 0] [4]", "opening") == "[Player 0] [4]"
    assert unseen_part("question", " question ") == ""
    assert unseen_part("something else", "question") == "something else"


def test_sync_calls_share_one_background_loop_thread() -> None:
    async def where() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
        return asyncio.get_running_loop(), threading.current_thread()

    first, second = run_sync(where()), run_sync(where())
    assert first == second and first[1] is not threading.current_thread()


# --- verl -------------------------------------------------------------------------------------------


def test_arena_interaction_subclasses_verls_base_or_the_stand_in() -> None:
    if importlib.util.find_spec("verl") is None:
        assert issubclass(ArenaInteraction, StandInInteraction)
    else:
        from verl.interactions.base import BaseInteraction

        assert issubclass(ArenaInteraction, BaseInteraction)


async def test_interaction_plays_a_wrong_then_right_answer_like_verls_tool_agent_loop(env: MathEnv) -> None:
    [row] = GenericEnvironment({"num_episodes": 1}, [InteractionSpec("math", config={"env": env})]).rows
    interaction = ArenaInteraction({"name": "math", "env": env})
    kwargs = row["extra_info"]["interaction_kwargs"]
    request = await interaction.start_interaction("request-1", **kwargs)
    messages = [*row["prompt"], {"role": "assistant", "content": WRONG}]

    done, text, score, metadata = await interaction.generate_response(request, messages, **kwargs)
    assert (done, score, metadata["outcome"]) == (False, 0.0, None)
    assert text.startswith("That is not right. Hint:") and await interaction.calculate_score(request) == 0.0

    messages += [{"role": "user", "content": text}, {"role": "assistant", "content": RIGHT}]
    done, text, score, metadata = await interaction.generate_response(request, messages, **kwargs)
    assert (done, score, metadata["outcome"], metadata["steps"]) == (True, 0.5, "win", 2)
    assert env._sessions == {}  # released at the end: verl never calls finalize_interaction
    await interaction.finalize_interaction(request)
    assert compute_score("math", "", "", {"turn_scores": [0.0, score]}) == 0.5


async def test_interaction_shows_a_later_seat_the_opening_its_row_missed_before_playing() -> None:
    env = TextArenaMultistepEnv("TicTacToe-v0", max_steps_per_episode=9, num_tasks=2)
    [_, row] = GenericEnvironment(None, [InteractionSpec("ttt", config={"env": env})]).rows  # seat 1
    interaction, kwargs = ArenaInteraction({"name": "ttt"}, env=env), row["extra_info"]["interaction_kwargs"]
    try:
        request = await interaction.start_interaction("r", **kwargs)
        move = "[4]" if "cell 4" not in row["prompt"][1]["content"] else "[0]"
        messages = [*row["prompt"], {"role": "assistant", "content": move}]
        _, text, _, metadata = await interaction.generate_response(request, messages, **kwargs)
        assert metadata["steps"] == 1, "the row held the opening: the model's first reply is played"

        stale = await interaction.start_interaction("s", **kwargs)
        messages = [row["prompt"][0], {"role": "user", "content": _before_moves(row)},
                    {"role": "assistant", "content": "[4]"}]
        done, text, score, metadata = await interaction.generate_response(stale, messages, **kwargs)
        assert (done, score, metadata["steps"]) == (False, 0.0, 0) and text.startswith("[Player 0]")
        move = "[4]" if "cell 4" not in text else "[0]"
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": move}]
        _, text, _, metadata = await interaction.generate_response(stale, messages, **kwargs)
        assert metadata["steps"] == 1  # now the model's replies are played
        assert "Available Moves" in text and "You are Player" not in text  # what is new, not the whole game
    finally:
        await interaction.finalize_interaction("r")
        await interaction.finalize_interaction("s")
        await env.aclose()


async def test_finalize_interaction_ends_a_running_episode(env: MathEnv) -> None:
    interaction = ArenaInteraction({"name": "math"}, env=env)
    request = await interaction.start_interaction(**env.get_dataset()[0])
    await interaction.finalize_interaction(request)
    assert env._sessions == {}


def test_compute_score_without_turn_scores_is_zero() -> None:
    assert compute_score("math", "text", "", None) == 0.0
    assert compute_score("math", "text", "", {"turn_scores": []}) == 0.0


def test_interaction_spec_loads_its_class_and_builds_it_as_verl_does(math_path: Path) -> None:
    spec = InteractionSpec("math", "arena.envs.verl:ArenaInteraction",
                           {"env": "arena.envs.math_env.MathEnv", "env_kwargs": {"dataset_name": str(math_path)}})
    assert spec.load() is ArenaInteraction
    interaction = spec.build()
    assert interaction.name == "math" and isinstance(interaction.env, MathEnv)
    assert spec.entry() == {"name": "math", "class_name": spec.class_path, "config": spec.config}
    with pytest.raises(ValueError, match="needs 'env'"):
        InteractionSpec("bad").build()


def test_generic_environment_rows_carry_the_prompt_and_the_interaction_kwargs(math_path: Path, tmp_path: Path) -> None:
    math = {"env": "arena.envs.math_env.MathEnv", "env_kwargs": {"dataset_name": str(math_path)}}
    game = {"env": "arena.envs.textarena_env.TextArenaMultistepEnv",
            "env_kwargs": {"env_id": "TicTacToe-v0", "num_tasks": 2}}
    environment = GenericEnvironment(DataConfig(batch_size=3), [InteractionSpec("math", config=math),
                                                                InteractionSpec("tictactoe", config=game)])
    rows = list(environment)

    assert len(rows) == len(environment) == 4
    assert all(row.keys() == {"data_source", "prompt", "agent_name", "reward_model", "extra_info"} for row in rows)
    assert {row["agent_name"] for row in rows} == {"tool_agent"}
    assert [row["extra_info"]["index"] for row in rows] == [0, 1, 2, 3]
    kwargs = [row["extra_info"]["interaction_kwargs"] for row in rows]
    assert [k["name"] for k in kwargs] == ["math", "math", "tictactoe", "tictactoe"]
    assert [k["seat"] for k in kwargs[2:]] == [0, 1]  # one row per seat: verl plays one trajectory per row
    assert rows[0]["prompt"][-1]["content"].startswith(QUESTIONS[0])
    assert [len(batch) for batch in environment.dataloader()] == [3, 1]

    data, config = environment.write(tmp_path / "verl")
    stored = Dataset.from_parquet(str(data))
    assert stored[3]["extra_info"]["interaction_kwargs"]["seat"] == 1
    assert yaml.safe_load(config.read_text()) == environment.interaction_config()
    assert [entry["name"] for entry in environment.interaction_config()["interaction"]] == ["math", "tictactoe"]


async def test_rows_read_back_from_parquet_start_their_interaction(math_path: Path, tmp_path: Path) -> None:
    math = {"env": "arena.envs.math_env.MathEnv", "env_kwargs": {"dataset_name": str(math_path)}}
    other = {**math, "env_kwargs": {"dataset_name": str(math_path), "hints": False}}
    environment = GenericEnvironment({"num_episodes": 1, "data_source": "arena"},
                                     [InteractionSpec("math", config=math), InteractionSpec("plain", config=other)])
    data, _ = environment.write(tmp_path)
    row = Dataset.from_parquet(str(data))[1]
    interaction = environment.interactions[row["extra_info"]["interaction_kwargs"]["name"]]
    request = await interaction.start_interaction("r", **row["extra_info"]["interaction_kwargs"])
    done, text, _, _ = await interaction.generate_response(request, [{"role": "assistant", "content": WRONG}])
    assert row["data_source"] == "arena" and not done and "Hint" not in text


def test_generic_environment_refuses_duplicate_names() -> None:
    with pytest.raises(ValueError, match="distinct names"):
        GenericEnvironment(None, [InteractionSpec("a"), InteractionSpec("a")])
