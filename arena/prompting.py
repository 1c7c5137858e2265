"""Prompting for LLM agents: observations into chat messages, and completions back into actions.

Every LLM agent (and, later, the RL bridge) uses this one module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_SYSTEM_PROMPT = (
    "You are playing {env_id}, a text game, as player {seat}. Read the game's messages and reply with "
    "your next move in the exact format the game asks for, usually in square brackets such as [4]. "
    "Think briefly if you need to, then end your reply with the move."
)
EXTRACTORS = ("bracket", "boxed", "xml", "last_line")

_THINK = re.compile(r"<think>(.*?)(</think>|$)", re.DOTALL | re.IGNORECASE)
_BRACKET = re.compile(r"\[[^\[\]\n]{1,200}\]")
_SPEAKER = re.compile(r"\[(GAME|Player \d+)\]")  # transcript tags a model echoes, never moves
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


@dataclass(frozen=True)
class Extraction:
    """What was read out of a completion: the action (empty when none), and any reasoning removed."""

    action: str
    reasoning: str = ""


def split_reasoning(completion: str) -> tuple[str, str]:
    """(completion without <think>...</think> blocks, the reasoning they held)."""
    reasoning = "\n".join(m.group(1).strip() for m in _THINK.finditer(completion))
    return _THINK.sub("", completion).strip(), reasoning


def extract_action(completion: str, strategy: str = "bracket", tag: str = "action") -> Extraction:
    """The move in a completion, by `strategy`: the last [bracketed] move (never a [GAME] or [Player N] tag),
    \\boxed{}, <tag>, or the last line."""
    text, reasoning = split_reasoning(completion)
    if strategy == "bracket":
        found = [token for token in _BRACKET.findall(text) if not _SPEAKER.fullmatch(token)]
        action = found[-1] if found else ""
    elif strategy == "boxed":
        found = _BOXED.findall(text)
        action = found[-1].strip() if found else ""
    elif strategy == "xml":
        found = re.findall(rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", text, re.DOTALL)
        action = found[-1].strip() if found else ""
    elif strategy == "last_line":
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        action = lines[-1] if lines else ""
    else:
        raise ValueError(f"unknown extraction strategy '{strategy}'; use one of {', '.join(EXTRACTORS)}")
    return Extraction(action, reasoning)


@dataclass
class Conversation:
    """The chat for one seat of one game: one growing conversation, or a fresh prompt each turn."""

    system_prompt: str
    growing: bool = False
    messages: list[dict[str, str]] = field(default_factory=list)
    _seen: str = ""

    def prompt(self, observation: str) -> list[dict[str, str]]:
        """The messages to send for this observation (the new part only, in a growing conversation)."""
        if not self.growing or not self.messages:
            self.messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
            self._seen = ""
        new = observation[len(self._seen):] if observation.startswith(self._seen) else observation
        self._seen = observation
        self.messages.append({"role": "user", "content": new.strip() or observation})
        return list(self.messages)

    def answered(self, completion: str) -> None:
        """Keep the model's reply in a growing conversation."""
        if self.growing and self.messages:
            self.messages.append({"role": "assistant", "content": completion})


def system_prompt(env_id: str, seat: int, template: str | None = None) -> str:
    """The system prompt for a game and seat (a template may use {env_id} and {seat})."""
    return (template or DEFAULT_SYSTEM_PROMPT).format(env_id=env_id, seat=seat)


PLAIN_CUE = "\n\nYour move:"  # ends every user turn of a plain-text prompt


def plain_prompt(messages: list[dict[str, str]]) -> str:
    """Chat messages as one plain-text prompt, for base models that have no chat template: each message on
    its own paragraph, each user turn ending with the cue, each reply right after its cue."""
    text = ""
    for message in messages:
        if message["role"] == "assistant":
            text += message["content"]
        else:
            text += ("\n\n" if text else "") + message["content"] + (PLAIN_CUE if message["role"] == "user" else "")
    return text


def keep_tail(tokens: list[int], budget: int) -> list[int]:
    """A prompt's token ids cut to `budget`: the first (BOS) and the latest ones, where the game state is."""
    return tokens if len(tokens) <= budget else tokens[:1] + tokens[len(tokens) - budget + 1:]


def turn_info(model: str, sampling: dict, prompt: list[dict[str, str]], completion: str, extraction: Extraction,
              usage: dict, latency: float, attempts: int = 1, errors: list[str] | None = None) -> dict:
    """What every LLM agent stores on a turn (`turns.info`)."""
    return {"model": model, "sampling": sampling, "prompt": prompt, "completion": completion,
            "reasoning": extraction.reasoning, "action": extraction.action,
            "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
            "latency": latency, "attempts": attempts, "errors": errors or []}
