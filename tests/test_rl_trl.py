"""The TRL adapters against TRL itself: its call sites, its tool schema, and one real GRPO step on our rollouts."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from helpers import needed
from rl_helpers import WrongThenRight, write_math_file

from arena.envs.math_env import MathEnv
from arena.envs.trl import ArenaToolEnv, environment_factory, reward_funcs, rollout_func

trl = needed("trl", reason="TRL is not installed here; it installs beside vLLM in .venv-vllm "
                                        "(pip install trl==1.16.0), where these tests run")


@pytest.fixture
def env(tmp_path: Path) -> MathEnv:
    return MathEnv(dataset_name=write_math_file(tmp_path), max_steps_per_episode=3, hints=True)


def char_tokenizer() -> object:
    """A Hugging Face tokenizer of one token per printable character, built here (no download)."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    tokens = ["<pad>", "<bos>", "<eos>", "<unk>", "\n", *map(chr, range(32, 127))]
    raw = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[], unk_token="<unk>"))
    raw.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>", padding_side="left")


def test_grpo_trainer_takes_both_adapters_where_it_calls_them(env: MathEnv) -> None:
    parameters = inspect.signature(trl.GRPOTrainer.__init__).parameters
    assert {"rollout_func", "environment_factory", "reward_funcs"} <= parameters.keys()
    inspect.signature(rollout_func(env)).bind([], object())  # TRL: self.rollout_func(prompts, self)
    inspect.signature(environment_factory(env)).bind()  # TRL: factory()


def test_environment_factory_tool_gets_a_schema_from_transformers(env: MathEnv) -> None:
    from transformers.utils import get_json_schema

    instance = environment_factory(env)()
    tools = [getattr(instance, name) for name, _ in inspect.getmembers(type(instance), predicate=inspect.isfunction)
             if name not in ("reset", "get_reward") and not name.startswith("_")]  # as GRPOTrainer picks them
    [schema] = [get_json_schema(tool) for tool in tools]
    assert schema["function"]["name"] == "act"
    assert schema["function"]["parameters"]["required"] == ["move"]


@pytest.mark.filterwarnings("ignore:You are using 'rollout_func'")
def test_grpo_trainer_trains_one_step_on_rollout_func_output(env: MathEnv, tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = char_tokenizer()
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         pad_token_id=0, bos_token_id=1, eos_token_id=2))
    args = trl.GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, num_generations=2,
                          max_steps=1, use_cpu=True, bf16=False, report_to="none", save_strategy="no",
                          logging_steps=1)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=reward_funcs(env), args=args, train_dataset=env.get_dataset(),
                              processing_class=tokenizer, rollout_func=rollout_func(env, WrongThenRight()))
    trainer.train()

    [logged, *_] = trainer.state.log_history
    assert logged["reward"] == logged["rewards/env_reward/mean"] == 0.5  # the env's reward reached the trainer
    assert logged["completions/mean_length"] == len("\\boxed{41}\\boxed{42}")  # env_mask: model tokens only


@pytest.mark.filterwarnings("ignore:You are using 'environment_factory'")
def test_grpo_trainer_runs_a_step_with_environment_factory(env: MathEnv, tmp_path: Path) -> None:
    from importlib.resources import files

    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = char_tokenizer()
    tokenizer.chat_template = (files("trl") / "chat_templates" / "qwen2_5.jinja").read_text()  # one with tools
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         pad_token_id=0, bos_token_id=1, eos_token_id=2))
    args = trl.GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, num_generations=2,
                          max_steps=1, max_completion_length=8, use_cpu=True, bf16=False, report_to="none",
                          save_strategy="no", logging_steps=1)
    made: list[ArenaToolEnv] = []

    def factory() -> ArenaToolEnv:
        made.append(environment_factory(env)())
        return made[-1]

    trainer = trl.GRPOTrainer(model=model, args=args, train_dataset=env.get_dataset(), processing_class=tokenizer,
                              environment_factory=factory)
    trainer.train()

    [logged, *_] = trainer.state.log_history
    assert logged["rewards/ArenaToolEnv/mean"] == 0.0  # get_reward: an untrained model never answers
    assert len(made) == 2 and all(e._state is not None for e in made)  # TRL reset one per rollout, with a task
    assert env._sessions == {}  # and get_reward released each episode


def test_sft_trainer_trains_on_the_messages_export(tmp_path: Path) -> None:
    import asyncio
    from importlib.resources import files

    from datasets import load_dataset
    from helpers import play_games
    from transformers import LlamaConfig, LlamaForCausalLM

    from arena.export import export
    from arena.play import schedule

    url = f"sqlite:///{tmp_path / 'arena.db'}"
    asyncio.run(play_games(url, schedule("TicTacToe-v0", ["random", "first"], 4, 1)))
    summary = export(tmp_path / "messages.jsonl", "messages", url)
    dataset = load_dataset("json", data_files=str(tmp_path / "messages.jsonl"), split="train")
    assert len(dataset) == summary.rows == 8 and dataset[0]["messages"][0]["role"] == "system"

    tokenizer = char_tokenizer()
    tokenizer.chat_template = (files("trl") / "chat_templates" / "qwen2_5.jinja").read_text()
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         pad_token_id=0, bos_token_id=1, eos_token_id=2))
    args = trl.SFTConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, max_steps=1, max_length=512,
                         use_cpu=True, bf16=False, report_to="none", save_strategy="no", logging_steps=1)
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    first = trainer.train_dataset[0]
    assert "input_ids" in first and "Tic Tac Toe" in tokenizer.decode(first["input_ids"])  # TRL read the chat
    trainer.train()
    assert trainer.state.log_history[0]["loss"] > 0
