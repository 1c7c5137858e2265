"""`openai:MODEL`: any OpenAI-compatible chat-completions server (vllm serve, llama.cpp, hosted APIs).

Requests from every game run concurrently (bounded by `concurrency`), each with its own timeout,
retried with exponential backoff and jitter on 429, 5xx, timeouts and dropped connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from functools import partial

import httpx

from agents.llm_agent import Completion, LLMAgent
from agents.llm_options import LLMOptions, parse_llm_options

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
CONNECTIONS_PER_CLIENT = 8  # httpx's pool scans every connection per request: keep each pool small
SAMPLING = ("temperature", "top_p", "max_tokens", "seed", "presence_penalty", "frequency_penalty", "stop")
OWN_OPTIONS = {"base_url": str, "concurrency": int, "timeout": float, "retries": int}
log = logging.getLogger(__name__)


class TransientError(Exception):
    """A failure worth retrying: rate limit, server error, timeout, dropped connection."""


class RejectedRequest(RuntimeError):
    """The server refused the request (an HTTP 4xx that retrying cannot fix)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status


class OpenAIAgent(LLMAgent):
    """Chat-completions agent with concurrency, retries and full per-turn records."""

    def __init__(self, model: str, name: str, base_url: str, options: LLMOptions | None = None,
                 api_key: str | None = None, concurrency: int = 64, timeout: float = 60.0, retries: int = 4,
                 backoff: float = 0.5) -> None:
        super().__init__(name, options or LLMOptions())
        self.model = self.model_name = model
        self.base_url, self.api_key = base_url.rstrip("/"), api_key
        self.concurrency, self.timeout, self.retries, self.backoff = concurrency, timeout, retries, backoff
        self.structured_outputs = True  # send vLLM's choice constraint, until a server refuses it
        self._slots = asyncio.Semaphore(concurrency)
        self._clients: list[httpx.AsyncClient] = []
        self._next = 0

    async def start(self) -> None:
        """Fail now, clearly, if the endpoint is unreachable or does not serve the model."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=CONNECTIONS_PER_CLIENT, max_keepalive_connections=CONNECTIONS_PER_CLIENT)
        self._clients = [httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=self.timeout,
                                           limits=limits)
                         for _ in range(max(1, -(-self.concurrency // CONNECTIONS_PER_CLIENT)))]
        try:
            listing = await self._clients[0].get("/models")
            listing.raise_for_status()
            served = [m.get("id") for m in listing.json().get("data", [])]
        except (httpx.HTTPError, ValueError, AttributeError) as error:
            await self.close()
            raise RuntimeError(f"cannot reach an OpenAI-compatible server at {self.base_url}: {error}") from error
        if self.model not in served:
            await self.close()
            raise RuntimeError(f"{self.base_url} does not serve model '{self.model}'; it serves: {served}")

    async def close(self) -> None:
        """Close the HTTP connections."""
        for client in self._clients:
            await client.aclose()
        self._clients = []

    async def complete(self, messages: list[dict[str, str]]) -> Completion:
        """One chat completion, at most `concurrency` at once, retried on transient failures."""
        return await self.generate(messages)

    async def generate(self, messages: list[dict[str, str]], prompt_ids: list[int] | None = None,
                       choices: list[str] | None = None) -> Completion:
        """A chat completion; or, given token ids, a completion of exactly those tokens (`/completions`, which
        vLLM's server takes as ids), asking for the sampled token ids (vLLM's `return_token_ids`) and logprobs.
        With `choices`, vLLM's `structured_outputs` choice constraint goes with the request."""
        body = {"model": self.model, **self.sampling_for(choices)}
        send = partial(self._chat, messages) if prompt_ids is None else partial(self._tokens, prompt_ids)
        if choices and self.structured_outputs:
            try:
                reply = await send({**body, "structured_outputs": {"choice": choices}})
            except RejectedRequest as error:
                if error.status != 400:
                    raise
                self.structured_outputs = False  # not vLLM's server: ask without the constraint from now on
                log.warning("%s refused structured_outputs (%s); %s plays unconstrained", self.base_url, error,
                            self.name)
                reply = await send(body)
        else:
            reply = await send(body)
        reply.constrained = bool(choices) and reply.text.strip() in choices  # a server that ignored it did not
        return reply

    async def _chat(self, messages: list[dict[str, str]], body: dict) -> Completion:
        """POST `/chat/completions`."""
        async with self._slots:
            response, attempts, errors = await self._request("/chat/completions", {**body, "messages": messages})
        usage = response.get("usage") or {}
        return Completion(_content(response), usage.get("prompt_tokens"), usage.get("completion_tokens"),
                          attempts, errors)

    async def _tokens(self, prompt_ids: list[int], body: dict) -> Completion:
        """POST `/completions` with a prompt of token ids, asking for the sampled ids and their logprobs."""
        body = {**body, "prompt": prompt_ids, "logprobs": 0, "return_token_ids": True}
        async with self._slots:
            response, attempts, errors = await self._request("/completions", body)
        usage, choice = response.get("usage") or {}, _choice(response)
        ids = choice.get("token_ids")
        logprobs = (choice.get("logprobs") or {}).get("token_logprobs")
        return Completion(str(choice.get("text") or ""), usage.get("prompt_tokens", len(prompt_ids)),
                          usage.get("completion_tokens"), attempts, errors,
                          token_ids=list(ids) if ids is not None else None,
                          logprobs=list(logprobs) if ids is not None and logprobs else None)

    async def _request(self, path: str, body: dict) -> tuple[dict, int, list[str]]:
        """POST with retries; returns (response JSON, attempts, errors met on the way)."""
        assert self._clients, "start() the agent first"
        errors: list[str] = []
        for attempt in range(1, self.retries + 2):
            try:
                return await self._post(path, body), attempt, errors
            except TransientError as error:
                errors.append(str(error))
                if attempt > self.retries:
                    raise RuntimeError(f"gave up after {attempt} attempts: {'; '.join(errors)}") from error
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")

    async def _post(self, path: str, body: dict) -> dict:
        self._next = (self._next + 1) % len(self._clients)
        try:
            response = await self._clients[self._next].post(path, json=body)
        except httpx.TimeoutException as error:
            raise TransientError(f"timeout after {self.timeout:g} s") from error
        except httpx.TransportError as error:
            raise TransientError(f"connection failed: {error}") from error
        if response.status_code in RETRY_STATUS:
            raise TransientError(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise RejectedRequest(response.status_code, response.text[:300])
        try:
            return response.json()
        except ValueError:
            return {}  # a malformed body: an empty completion, which the game judges invalid


def _choice(response: dict) -> dict:
    """The first choice of a completion, or {} when the response is malformed."""
    try:
        choice = response["choices"][0]
    except (KeyError, IndexError, TypeError):
        return {}
    return choice if isinstance(choice, dict) else {}


def _content(response: dict) -> str:
    """The assistant's text, or '' when the response is malformed."""
    try:
        return str(response["choices"][0]["message"]["content"] or "")
    except (KeyError, IndexError, TypeError):
        return ""


def build(model: str, name: str, params: dict[str, str]) -> OpenAIAgent:
    """An agent from spec options: base_url, concurrency, timeout, retries, prompting and sampling options."""
    if not model:
        raise ValueError("use openai:MODEL, e.g. openai:Qwen/Qwen2.5-0.5B-Instruct")
    options = parse_llm_options(params, SAMPLING, OWN_OPTIONS)
    base_url = options.own.get("base_url") or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    return OpenAIAgent(model, name, base_url, options, api_key=os.environ.get("OPENAI_API_KEY"),
                       concurrency=options.own.get("concurrency", 64), timeout=options.own.get("timeout", 60.0),
                       retries=options.own.get("retries", 4))
