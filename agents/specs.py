"""Agent spec strings: `[NAME=]KIND[:TARGET][?key=value&...]`, one parser for every command."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import textarena as ta

from agents.base import Agent
from agents.baseline import FirstAgent, RandomAgent
from agents.textarena_adapter import TextArenaAgent

_NAMED = re.compile(r"^([A-Za-z0-9_.@-]+)=(.+)$")
_KIND = re.compile(r"^[a-z][a-z0-9_-]*$")


class SpecError(ValueError):
    """An agent spec that cannot be parsed or built."""


@dataclass(frozen=True)
class AgentSpec:
    """A parsed agent spec."""

    name: str
    kind: str
    target: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The spec without its name, as stored in the database."""
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return self.kind + (f":{self.target}" if self.target else "") + (f"?{query}" if query else "")


def parse_spec(text: str) -> AgentSpec:
    """Parse one spec string; SpecError names what is wrong."""
    raw = text.strip()
    name = None
    named = _NAMED.match(raw)
    if named and not re.search(r"[:?]", named.group(1)):
        name, raw = named.group(1), named.group(2)
    body, _, query = raw.partition("?")
    kind, _, target = body.partition(":")
    if not _KIND.match(kind):
        raise SpecError(f"bad agent spec '{text}': '{kind}' is not an agent kind ({', '.join(BUILDERS)})")
    if kind not in BUILDERS:
        raise SpecError(f"bad agent spec '{text}': unknown kind '{kind}'; known kinds: {', '.join(BUILDERS)}")
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError as error:
        raise SpecError(f"bad agent spec '{text}': malformed options '{query}'") from error
    spec = AgentSpec(name="", kind=kind, target=target, params=params)
    return AgentSpec(name=name or spec.text, kind=kind, target=target, params=params)


def parse_specs(text: str) -> list[AgentSpec]:
    """Parse a comma-separated list of specs."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    if not parts:
        raise SpecError("no agents given: pass specs such as --agents random,first")
    return [parse_spec(p) for p in parts]


def build_agent(spec: AgentSpec) -> Agent:
    """Construct the agent a spec names; SpecError when it cannot be built."""
    try:
        return BUILDERS[spec.kind](spec)
    except SpecError:
        raise
    except (TypeError, ValueError) as error:
        raise SpecError(f"bad agent spec '{spec.text}': {error}") from error


def _no_target(spec: AgentSpec) -> None:
    if spec.target:
        raise SpecError(f"bad agent spec '{spec.text}': '{spec.kind}' takes no ':' target")


def _build_random(spec: AgentSpec) -> Agent:
    _no_target(spec)
    unknown = set(spec.params) - {"seed"}
    if unknown:
        raise SpecError(f"bad agent spec '{spec.text}': random takes only 'seed', not {sorted(unknown)}")
    try:
        seed = int(spec.params.get("seed", "0"))
    except ValueError as error:
        raise SpecError(f"bad agent spec '{spec.text}': seed must be an integer") from error
    return RandomAgent(seed=seed, name=spec.name)


def _build_first(spec: AgentSpec) -> Agent:
    _no_target(spec)
    if spec.params:
        raise SpecError(f"bad agent spec '{spec.text}': first takes no options")
    return FirstAgent(name=spec.name)


def _build_python(spec: AgentSpec) -> Agent:
    module_name, _, attr = spec.target.partition(":")
    if not module_name or not attr:
        raise SpecError(f"bad agent spec '{spec.text}': use python:MODULE:ATTRIBUTE")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SpecError(f"bad agent spec '{spec.text}': cannot import '{module_name}': {error}") from error
    target = getattr(module, attr, None)
    if target is None:
        raise SpecError(f"bad agent spec '{spec.text}': module '{module_name}' has no '{attr}'")
    if isinstance(target, ta.Agent) and not isinstance(target, Agent):
        return TextArenaAgent(lambda: target, name=spec.name, shared=True)
    if isinstance(target, Agent) or inspect.isclass(target) and issubclass(target, Agent):
        agent = target if isinstance(target, Agent) else target(**spec.params)
        agent.name = spec.name
        return agent
    if callable(target):
        return TextArenaAgent(lambda: target(**spec.params), name=spec.name)
    raise SpecError(f"bad agent spec '{spec.text}': '{attr}' is not a textarena.Agent or a factory")


# LLM agents are imported on first use: each pulls in its own heavy dependencies.
_LLM_MODULES = {"openai": "agents.openai_agent", "local": "agents.local_agent", "vllm": "agents.vllm_agent"}


def _build_llm(spec: AgentSpec) -> Agent:
    return importlib.import_module(_LLM_MODULES[spec.kind]).build(spec.target, spec.name, spec.params)


BUILDERS: dict[str, Callable[[AgentSpec], Agent]] = {
    "random": _build_random,
    "first": _build_first,
    "python": _build_python,
    **dict.fromkeys(_LLM_MODULES, _build_llm),
}
