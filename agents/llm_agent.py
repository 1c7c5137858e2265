"""What every LLM agent shares: a conversation per game seat, action extraction, and the per-turn record."""

from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

from agents.base import Agent, Decision, TurnContext
from agents.llm_options import LLMOptions
from agents.moves import valid_moves
from arena.prompting import Conversation, Extraction, extract_action, system_prompt, turn_info


@dataclass
class Completion:
    """A model's reply and what it cost."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    attempts: int = 1
    errors: list[str] = field(default_factory=list)
    token_ids: list[int] | None = None  # the sampled tokens, when the engine returns them
    logprobs: list[float] | None = None  # their log-probabilities, when the engine returns them
    constrained: bool = False  # the engine decoded under the choice constraint it was given


class LLMAgent(Agent):
    """An agent that prompts a model; subclasses only say how to `complete` chat messages."""

    model_name: str = "?"
    tokenizer: Any = None  # the engine's own tokenizer, when the model runs in this process

    def __init__(self, name: str, options: LLMOptions, defaults: dict | None = None) -> None:
        self.name, self.options = name, options
        self.sampling = {**(defaults or {}), **options.sampling}
        self._chats: dict[tuple[str, int], Conversation] = {}

    @abstractmethod
    async def complete(self, messages: list[dict[str, str]]) -> Completion:
        """The model's reply to the chat `messages`."""

    async def generate(self, messages: list[dict[str, str]], prompt_ids: list[int] | None = None,
                       choices: list[str] | None = None) -> Completion:
        """The reply to `messages`, or to exactly the tokens `prompt_ids` where the engine takes token ids, decoded
        as one of `choices` where the engine can constrain it (this default cannot: it says so in the reply)."""
        return await self.complete(messages)

    def sampling_for(self, choices: list[str] | None) -> dict[str, Any]:
        """This call's sampling: under a choice constraint, no stop strings and room for the longest choice."""
        if not choices:
            return self.sampling
        room = max(len(choice.encode()) for choice in choices) + 1  # one token per byte at worst, then the end
        sampling = {k: v for k, v in self.sampling.items() if k != "stop"}
        if "max_tokens" in sampling:
            sampling["max_tokens"] = max(sampling["max_tokens"], room)
        return sampling

    async def respond(self, messages: list[dict[str, str]], prompt_ids: list[int] | None = None,
                      choices: list[str] | None = None) -> tuple[Completion, Decision]:
        """Generate (as one of `choices`, when given), extract the move, and build the turn record."""
        started = time.perf_counter()
        reply = await self.generate(messages, prompt_ids, choices)
        latency = time.perf_counter() - started
        extraction = self._extraction(reply, choices)
        usage = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}
        info = turn_info(self.model_name, self.sampling, messages, reply.text, extraction, usage, latency,
                         reply.attempts, reply.errors)
        info["constrained"] = reply.constrained
        if reply.constrained:
            info["choices"] = choices
        if reply.token_ids is not None:  # the engine's own ids: what a trainer needs, kept with the turn
            info.update(token_ids=reply.token_ids, logprobs=reply.logprobs, token_source="engine")
        return reply, Decision(extraction.action or reply.text.strip()[:500], info)

    def _extraction(self, reply: Completion, choices: list[str] | None) -> Extraction:
        """The move: the reply itself when it was constrained to `choices` and is one; else as `extract` says."""
        if reply.constrained and reply.text.strip() in (choices or []):
            return Extraction(reply.text.strip())
        return extract_action(reply.text, self.options.extract)

    def end_game(self, game_key: str) -> None:
        """Forget the conversations of a finished game."""
        for key in [k for k in self._chats if k[0] == game_key]:
            del self._chats[key]

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """Prompt the model, extract the move, and record everything about the exchange."""
        chat = self._chats.setdefault((context.game_key, context.seat), Conversation(
            system_prompt(context.env_id, context.seat, self.options.system), growing=self.options.conversation))
        choices = valid_moves(observation, context.env_id) if self.options.constrain else []
        reply, decision = await self.respond(chat.prompt(observation), choices=choices or None)
        chat.answered(reply.text)
        return decision
