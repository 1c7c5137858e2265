"""Prompting: extraction strategies, reasoning, conversations."""

from __future__ import annotations

import pytest

from arena.prompting import Conversation, extract_action, split_reasoning, system_prompt


@pytest.mark.parametrize("strategy, completion, action", [
    ("bracket", "I think [3] then [4]", "[4]"),
    ("bracket", "no move at all", ""),
    ("bracket", " '[1]\n[GAME] Player 1 moved their mark in cell 1.\n[Player 0] [", "[1]"),  # echoed transcript
    ("bracket", "\n[GAME] Player 2 placed their symbol.\n[GAME] Current Board:", ""),
    ("boxed", "so the answer is \\boxed{[e2e4]}", "[e2e4]"),
    ("xml", "<action>[call]</action>", "[call]"),
    ("last_line", "thinking...\n[bet]\n", "[bet]"),
])
def test_extraction_strategies(strategy: str, completion: str, action: str) -> None:
    assert extract_action(completion, strategy).action == action


def test_reasoning_is_removed_before_extraction_and_returned() -> None:
    text, reasoning = split_reasoning("<think>maybe [1]?</think>I play [2]")
    assert text == "I play [2]" and reasoning == "maybe [1]?"
    assert extract_action("<think>[1]</think>[2]").action == "[2]"
    assert extract_action("<think>unfinished [1]").action == ""


def test_unknown_strategy_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown extraction strategy"):
        extract_action("x", "psychic")


def test_fresh_prompt_mode_resends_the_whole_observation() -> None:
    chat = Conversation(system_prompt("TicTacToe-v0", 1))
    assert "player 1" in chat.prompt("board A")[0]["content"]
    assert chat.prompt("board A then B") == [chat.messages[0], {"role": "user", "content": "board A then B"}]


def test_growing_conversation_adds_only_new_messages() -> None:
    chat = Conversation("sys", growing=True)
    chat.prompt("hello")
    chat.answered("[1]")
    messages = chat.prompt("hello\nnext")
    assert [m["content"] for m in messages] == ["sys", "hello", "[1]", "next"]
