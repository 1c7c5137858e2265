"""`openai:MODEL`: any OpenAI-compatible chat-completions server (vllm serve, llama.cpp, hosted APIs).

Requests from every game run concurrently (bounded by `concurrency`), each with its own timeout,
retried with exponential backoff and jitter on 429, 5xx, timeouts and dropped connections.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

import httpx

from agents.base import Agent, Decision, TurnContext
from arena.prompting import EXTRACTORS, Conversation, extract_action, system_prompt, turn_info

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
CONNECTIONS_PER_CLIENT = 8  # httpx's pool scans every connection per request: keep each pool small
SAMPLING_KEYS = {"temperature": float, "top_p": float, "max_tokens": int, "seed": int, "presence_penalty": float,
                 "frequency_penalty": float, "stop": str}


class TransientError(Exception):
    """A failure worth retrying: rate limit, server error, timeout, dropped connection."""


class OpenAIAgent(Agent):
    """Chat-completions agent with concurrency, retries and full per-turn records."""

    def __init__(self, model: str, name: str, base_url: str, api_key: str | None = None,
                 sampling: dict[str, Any] | None = None, concurrency: int = 64, timeout: float = 60.0,
                 retries: int = 4, extract: str = "bracket", conversation: bool = False,
                 system: str | None = None, backoff: float = 0.5) -> None:
        if extract not in EXTRACTORS:
            raise ValueError(f"extract must be one of {', '.join(EXTRACTORS)}")
        self.model, self.name, self.base_url = model, name, base_url.rstrip("/")
        self.api_key, self.sampling = api_key, dict(sampling or {})
        self.concurrency, self.timeout, self.retries, self.backoff = concurrency, timeout, retries, backoff
        self.extract, self.conversation, self.system = extract, conversation, system
        self._slots = asyncio.Semaphore(concurrency)
        self._clients: list[httpx.AsyncClient] = []
        self._next = 0
        self._chats: dict[tuple[str, int], Conversation] = {}

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

    def end_game(self, game_key: str) -> None:
        """Forget the conversations of a finished game."""
        for key in [k for k in self._chats if k[0] == game_key]:
            del self._chats[key]

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """Prompt the model, extract the move, and record everything about the exchange."""
        chat = self._chats.setdefault((context.game_key, context.seat), Conversation(
            system_prompt(context.env_id, context.seat, self.system), growing=self.conversation))
        messages = chat.prompt(observation)
        async with self._slots:
            response, attempts, errors, latency = await self._complete(messages)
        completion = _content(response)
        chat.answered(completion)
        extraction = extract_action(completion, self.extract)
        info = turn_info(self.model, self.sampling, messages, completion, extraction, response.get("usage") or {},
                         latency, attempts, errors)
        return Decision(extraction.action or completion.strip()[:500], info)

    async def _complete(self, messages: list[dict[str, str]]) -> tuple[dict, int, list[str], float]:
        """POST with retries; returns (response JSON, attempts, errors met on the way, seconds)."""
        assert self._clients, "start() the agent first"
        body = {"model": self.model, "messages": messages, **self.sampling}
        errors: list[str] = []
        started = time.perf_counter()
        for attempt in range(1, self.retries + 2):
            try:
                return await self._post(body), attempt, errors, time.perf_counter() - started
            except TransientError as error:
                errors.append(str(error))
                if attempt > self.retries:
                    raise RuntimeError(f"gave up after {attempt} attempts: {'; '.join(errors)}") from error
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")

    async def _post(self, body: dict) -> dict:
        self._next = (self._next + 1) % len(self._clients)
        try:
            response = await self._clients[self._next].post("/chat/completions", json=body)
        except httpx.TimeoutException as error:
            raise TransientError(f"timeout after {self.timeout:g} s") from error
        except httpx.TransportError as error:
            raise TransientError(f"connection failed: {error}") from error
        if response.status_code in RETRY_STATUS:
            raise TransientError(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
        try:
            return response.json()
        except ValueError:
            return {}  # a malformed body: an empty completion, which the game judges invalid


def _content(response: dict) -> str:
    """The assistant's text, or '' when the response is malformed."""
    try:
        return str(response["choices"][0]["message"]["content"] or "")
    except (KeyError, IndexError, TypeError):
        return ""


def build(model: str, name: str, params: dict[str, str]) -> OpenAIAgent:
    """An agent from spec options: base_url, concurrency, timeout, retries, extract, conversation, system,
    and sampling parameters (temperature, top_p, max_tokens, seed, ...)."""
    if not model:
        raise ValueError("use openai:MODEL, e.g. openai:Qwen/Qwen2.5-0.5B-Instruct")
    options = dict(params)
    sampling = {k: SAMPLING_KEYS[k](options.pop(k)) for k in list(options) if k in SAMPLING_KEYS}
    base_url = options.pop("base_url", None) or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    known = {"concurrency", "timeout", "retries", "extract", "conversation", "system"}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; known: {sorted(known | set(SAMPLING_KEYS))}")
    return OpenAIAgent(
        model, name, base_url, api_key=os.environ.get("OPENAI_API_KEY"), sampling=sampling,
        concurrency=int(options.get("concurrency", 64)), timeout=float(options.get("timeout", 60)),
        retries=int(options.get("retries", 4)), extract=options.get("extract", "bracket"),
        conversation=options.get("conversation", "0") in ("1", "true", "yes"), system=options.get("system"))
