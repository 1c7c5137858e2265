"""What every LLM agent shares: a conversation per game seat, action extraction, and the per-turn record."""

from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass, field

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


class LLMAgent(Agent):
    """An agent that prompts a model; subclasses only say how to `complete` chat messages."""

    model_name: str = "?"

    def __init__(self, name: str, options: LLMOptions, defaults: dict | None = None) -> None:
        self.name, self.options = name, options
        self.sampling = {**(defaults or {}), **options.sampling}
        self._chats: dict[tuple[str, int], Conversation] = {}

    @abstractmethod
    async def complete(self, messages: list[dict[str, str]]) -> Completion:
        """The model's reply to the chat `messages`."""

    def end_game(self, game_key: str) -> None:
        """Forget the conversations of a finished game."""
        for key in [k for k in self._chats if k[0] == game_key]:
            del self._chats[key]

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """Prompt the model, extract the move, and record everything about the exchange."""
        chat = self._chats.setdefault((context.game_key, context.seat), Conversation(
            system_prompt(context.env_id, context.seat, self.options.system), growing=self.options.conversation))
        messages = chat.prompt(observation)
        started = time.perf_counter()
        reply = await self.complete(messages)
        latency = time.perf_counter() - started
        chat.answered(reply.text)
        extraction = extract_action(reply.text, self.options.extract)
        usage = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}
        info = turn_info(self.model_name, self.sampling, messages, reply.text, extraction, usage, latency,
                         reply.attempts, reply.errors)
        return Decision(extraction.action or reply.text.strip()[:500], info)
