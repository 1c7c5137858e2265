"""What the `local` agent's model process runs: llama.cpp's model, completions and tokenizer.

These functions run in the child process of `agents.model_process` (they are sent there by reference), so a
crash inside llama.cpp ends that process and not the arena. This module imports llama.cpp; the arena's own
process never does.
"""

from __future__ import annotations

from typing import Any

from arena.prompting import keep_tail


def load(path: str, n_ctx: int) -> Any:
    """The model, loaded (seconds for a big one)."""
    from llama_cpp import Llama

    return Llama(model_path=path, n_ctx=n_ctx, verbose=False)


def complete(llm: Any, tokens: list[int] | None, prompt: str, sampling: dict[str, Any],
             grammar: str | None) -> dict[str, Any]:
    """Complete `tokens` as given, or `prompt` cut to leave room for the reply; under `grammar` (GBNF) if any."""
    from llama_cpp import LlamaGrammar

    if tokens is None:
        tokens = keep_tail(llm.tokenize(prompt.encode()), llm.n_ctx() - sampling["max_tokens"])
    constraint = {"grammar": LlamaGrammar.from_string(grammar, verbose=False)} if grammar else {}
    return llm.create_completion(tokens, **sampling, **constraint)


def tokenize(llm: Any, text: str, add_bos: bool) -> list[int]:
    """Token ids of `text` (special tokens parsed), with BOS when `add_bos`."""
    return llm.tokenize(text.encode(), add_bos=add_bos, special=True)


def detokenize(llm: Any, ids: list[int]) -> str:
    """Text of `ids`."""
    return llm.detokenize(ids).decode(errors="replace")
