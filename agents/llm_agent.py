"""What every LLM agent shares: a conversation per game seat, action extraction, and the per-turn record."""

from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

from agents.base import Agent, Decision, TurnContext
from agents.llm_options import LLMOptions
from arena.prompting import Conversation, extract_action, system_prompt, turn_info


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

    async def generate(self, messages: list[dict[str, str]], prompt_ids: list[int] | None = None) -> Completion:
        """The reply to `messages`, or to exactly the tokens `prompt_ids` where the engine takes token ids."""
        return await self.complete(messages)

    async def respond(self, messages: list[dict[str, str]], prompt_ids: list[int] | None = None
                      ) -> tuple[Completion, Decision]:
        """Generate, extract the move, and build the turn record."""
        started = time.perf_counter()
        reply = await self.generate(messages, prompt_ids)
        latency = time.perf_counter() - started
        extraction = extract_action(reply.text, self.options.extract)
        usage = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}
        info = turn_info(self.model_name, self.sampling, messages, reply.text, extraction, usage, latency,
                         reply.attempts, reply.errors)
        if reply.token_ids is not None:  # the engine's own ids: what a trainer needs, kept with the turn
            info.update(token_ids=reply.token_ids, logprobs=reply.logprobs, token_source="engine")
        return reply, Decision(extraction.action or reply.text.strip()[:500], info)

    def end_game(self, game_key: str) -> None:
        """Forget the conversations of a finished game."""
        for key in [k for k in self._chats if k[0] == game_key]:
            del self._chats[key]

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """Prompt the model, extract the move, and record everything about the exchange."""
        chat = self._chats.setdefault((context.game_key, context.seat), Conversation(
            system_prompt(context.env_id, context.seat, self.options.system), growing=self.options.conversation))
        reply, decision = await self.respond(chat.prompt(observation))
        chat.answered(reply.text)
        return decision
