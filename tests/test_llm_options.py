"""LLM agent options: sampling and prompting from the spec or a `config=` file (TOML or JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.specs import SpecError, build_agent, parse_spec


def test_a_toml_config_file_supplies_sampling_and_the_spec_overrides_it(tmp_path: Path) -> None:
    config = tmp_path / "play.toml"
    config.write_text('temperature = 0.9\ntop_p = 0.8\nmax_tokens = 64\nstop = ["</move>", "\\n\\n"]\n'
                      'extract = "xml"\nconversation = true\nconcurrency = 5\n')
    agent = build_agent(parse_spec(f"openai:m?config={config}&temperature=0.1&base_url=http://h/v1"))
    assert agent.sampling == {"temperature": 0.1, "top_p": 0.8, "max_tokens": 64, "stop": ["</move>", "\n\n"]}
    assert agent.options.extract == "xml" and agent.options.conversation and agent.concurrency == 5


def test_a_json_config_file_works_for_vllm_and_local_agents(tmp_path: Path) -> None:
    config = tmp_path / "sampling.json"
    config.write_text(json.dumps({"temperature": 0, "top_k": 20, "seed": 3}))
    vllm = build_agent(parse_spec(f"vllm?config={config}&max_model_len=2048"))
    assert vllm.sampling == {"max_tokens": 32, "temperature": 0.0, "top_k": 20, "seed": 3}
    assert vllm.engine_options == {"max_model_len": 2048}
    local = build_agent(parse_spec(f"local?config={config}"))
    assert local.sampling == {"max_tokens": 32, "temperature": 0.0, "top_k": 20, "seed": 3, "stop": ["\n\n"]}


@pytest.mark.parametrize(("content", "name", "message"), [
    ("temperature = [", "bad.toml", "is not valid TOML"),
    ("{", "bad.json", "is not valid JSON"),
    ("[1, 2]", "list.json", "must hold a table of options"),
    ("colour = 'red'", "unknown.toml", "unknown options \\['colour'\\]"),
    ("conversation = 'maybe'", "flag.toml", "'maybe' is not a boolean"),
    ("temperature = 'hot'", "type.toml", "could not convert string to float"),
])
def test_bad_config_files_are_refused_with_the_reason(tmp_path: Path, content: str, name: str, message: str) -> None:
    config = tmp_path / name
    config.write_text(content)
    with pytest.raises(SpecError, match=message):
        build_agent(parse_spec(f"openai:m?config={config}"))


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=f"cannot read config file {tmp_path / 'nope.toml'}"):
        build_agent(parse_spec(f"vllm?config={tmp_path / 'nope.toml'}"))


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("false", False), ("0", False)])
def test_every_llm_agent_takes_constrain_as_a_flag(value: str, expected: bool) -> None:
    for kind in ("openai:m", "vllm", "local"):
        assert build_agent(parse_spec(f"{kind}?constrain={value}")).options.constrain is expected


def test_constrain_is_unset_unless_said_may_come_from_a_file_and_junk_is_refused(tmp_path: Path) -> None:
    assert build_agent(parse_spec("local")).options.constrain is None
    config = tmp_path / "house.toml"
    config.write_text("constrain = true\n")
    assert build_agent(parse_spec(f"vllm?config={config}")).options.constrain is True
    with pytest.raises(SpecError, match="'maybe' is not a boolean"):
        build_agent(parse_spec("openai:m?constrain=maybe"))
