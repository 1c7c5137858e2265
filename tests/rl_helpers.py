"""What the RL adapter tests share: a character tokenizer, a scripted policy, and a two-question math file."""

from __future__ import annotations

import json
from pathlib import Path

from agents.base import Agent, Decision, TurnContext

WRONG, RIGHT = "\\boxed{41}", "\\boxed{42}"
QUESTIONS = ["Tom has 40 apples and buys 2 more. How many apples does he have?",
             "A box holds 6 rows of 7 eggs. How many eggs are in the box?"]
SOLUTIONS = ["Tom starts with 40 apples.\nHe buys 2, so 40 + 2 = <<40+2=42>>42.\n#### 42",
             "Each row holds 7 eggs.\nSo 6 rows hold 6 * 7 = <<6*7=42>>42.\n#### 42"]


class CharTokenizer:
    """One token per character (id = code point + 2), BOS = 1, no chat template: tokens without a model."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return ([1] if add_special_tokens else []) + [ord(c) + 2 for c in text]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return "".join(chr(i - 2) for i in ids if i >= 2)


class WrongThenRight(Agent):
    """Answers 41 on an episode's first turn and 42 after (every test question's answer is 42)."""

    name = "wrong-then-right"

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        return Decision(WRONG if context.turn == 0 else RIGHT)


def write_math_file(folder: Path) -> Path:
    """A JSONL file of the two questions, GSM8K style (`question`, `answer` ending in `#### 42`)."""
    path = folder / "math.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in zip(QUESTIONS, SOLUTIONS,
                                                                                             strict=True)))
    return path
