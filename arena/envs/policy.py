"""The policy a rollout asks for moves: a `vllm.LLM`, an agent spec, or an agent object, behind one call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.base import Agent, TurnContext
from agents.llm_agent import LLMAgent
from agents.specs import AgentSpec, build_agent, parse_spec
from arena.envs.tokens import TokenChat

PolicyLike = Any  # a vllm.LLM, an agent spec string or AgentSpec, or an Agent
TokenizerLike = Any  # None, a tokenizer object, or a model folder / tokenizer.json path


@dataclass
class Generation:
    """The policy's reply to one observation: its text, the move read from it, and the turn record."""

    text: str
    action: str
    completion_tokens: int = 0
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class PolicyHandle:
    """An agent ready to play, and whether this module started it (and so must close it)."""

    agent: Agent
    owned: bool = False

    async def close(self) -> None:
        """Close the agent if it was built here."""
        if self.owned:
            await self.agent.close()


def policy_agent(policy: PolicyLike) -> tuple[Agent, bool]:
    """(agent, built here) for a policy given as a `vllm.LLM`, an agent spec, or an agent."""
    if isinstance(policy, Agent):
        return policy, False
    if isinstance(policy, str | AgentSpec):
        return build_agent(policy if isinstance(policy, AgentSpec) else parse_spec(policy)), True
    if type(policy).__module__.startswith("vllm") and hasattr(policy, "generate"):
        from agents.vllm_agent import OfflineVLLMAgent

        return OfflineVLLMAgent(policy), True
    raise TypeError(f"a policy is a vllm.LLM, an agent spec string or an Agent, not {type(policy).__name__}")


async def as_policy(policy: PolicyLike) -> PolicyHandle:
    """The policy as a started agent."""
    agent, owned = policy_agent(policy)
    if owned:
        await agent.start()
    return PolicyHandle(agent, owned)


async def run_policy(agent: Agent, chat: TokenChat, observation: str, context: TurnContext) -> Generation:
    """Show `observation` to the policy through `chat`, and record its reply (and its tokens) there."""
    messages = chat.observe(observation)
    if not isinstance(agent, LLMAgent):  # a scripted policy: its action is its whole reply
        decision = await agent.decide(observation, context)
        chat.answer(decision.action)
        return Generation(decision.action, decision.action, 0, {**decision.info, **chat.turn_tokens()})
    reply, decision = await agent.respond(messages, chat.prompt_ids)
    chat.answer(reply.text, reply.token_ids, reply.logprobs)
    return Generation(reply.text, decision.action, reply.completion_tokens or 0,
                      {**decision.info, **chat.turn_tokens()})
