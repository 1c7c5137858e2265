"""An OpenAI-compatible chat-completions server for tests and benchmarks, on localhost in a thread.

It answers with the first move the game lists (or with `reply(messages)` when set), after `latency`
seconds (and, with `gather=N`, not before N requests were in flight at once: a test of concurrency then
needs no timing luck); `fail` is a list of HTTP statuses to answer first (one per request), `malformed` makes every
answer an unusable body, and it counts requests in flight. `/v1/completions` takes a prompt of token
ids, as vLLM's server does, reads it with `decode` (set it to the tokenizer the client uses), and answers
with token ids and logprobs of its own (one id per character: `ord`), as vLLM's `return_token_ids` does.
A request carrying vLLM's choice constraint (`structured_outputs: {"choice": [...]}`) is answered with one
of its choices, the answer it would give when that is one, else the first (unless `constrains` says not).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Callable
from typing import Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from arena.testing.ports import free_port


class FakeLLM:
    """Configurable behaviour plus what it saw."""

    def __init__(self, model: str = "test-model", latency: float = 0.0, gather: int = 0) -> None:
        self.model, self.latency, self.gather = model, latency, gather
        self.fail: list[int] = []
        self.malformed = False
        self.think = False
        # vLLM's `structured_outputs` choice constraint: honoured, ignored, or refused with HTTP 400 (OpenAI's API)
        self.constrains: Literal["honour", "ignore", "refuse"] = "honour"
        self.reply: Callable[[list[dict]], str] | None = None  # the answer to a request's messages, if set
        self.decode: Callable[[list[int]], str] | None = None  # reads a token-id prompt (`/v1/completions`)
        self.in_flight = self.peak = self.requests = 0
        self.bodies: list[dict] = []
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._server: uvicorn.Server | None = None
        self._gathered: asyncio.Event | None = None  # set once `gather` requests were in flight (server's loop)

    def app(self) -> Starlette:
        """The Starlette application: /v1/models, /v1/chat/completions, and /stats for counts."""
        return Starlette(routes=[Route("/v1/models", self.models),
                                 Route("/v1/chat/completions", self.chat, methods=["POST"]),
                                 Route("/v1/completions", self.chat, methods=["POST"]), Route("/stats", self.stats)])

    async def stats(self, request: Request) -> JSONResponse:
        """Requests served and the most in flight at once."""
        return JSONResponse({"requests": self.requests, "peak": self.peak})

    async def models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def chat(self, request: Request):
        body = await request.json()
        self.requests += 1
        self.bodies.append(body)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self._wait_for_company()
            await asyncio.sleep(self.latency)
            if self.fail:
                return PlainTextResponse("try again", status_code=self.fail.pop(0))
            if self.malformed:
                return PlainTextResponse("{not json")
            if self.constrains == "refuse" and "structured_outputs" in body:
                return JSONResponse({"error": {"message": "Unrecognized request argument supplied: "
                                                          "structured_outputs"}}, status_code=400)
            return JSONResponse(self._completion(body))
        finally:
            self.in_flight -= 1

    async def _wait_for_company(self) -> None:
        """With `gather`, hold the request until that many are in flight (for 60 s at most); once they were, no
        request waits again."""
        if not self.gather:
            return
        self._gathered = self._gathered or asyncio.Event()
        if self.in_flight >= self.gather:
            self._gathered.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._gathered.wait(), 60)

    def _completion(self, body: dict) -> dict:
        if "prompt" in body:
            return self._token_completion(body)
        prompt = body["messages"][-1]["content"]
        listed = re.findall(r"\[[^\[\]\n]+\]", re.split(r"Available Moves:|available actions are:", prompt)[-1])
        text = self.reply(body["messages"]) if self.reply else f"I will play {listed[0] if listed else '[4]'}"
        if self.think:
            text = "<think>The centre looks strong [9].</think>" + text
        text = self._constrained(text, body)
        return {"id": "x", "object": "chat.completion", "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}}

    def _token_completion(self, body: dict) -> dict:
        """A `/v1/completions` answer to a prompt of token ids: the first listed move, as ids and logprobs."""
        prompt = self.decode(body["prompt"]) if self.decode else ""
        listed = re.findall(r"\[[^\[\]\n]+\]", prompt.rsplit("Available Moves:", 1)[-1])
        text = self._constrained(f" I play {listed[0] if listed else '[4]'}", body)
        ids = [ord(c) for c in text]
        return {"id": "x", "object": "text_completion", "model": self.model,
                "choices": [{"index": 0, "text": text, "token_ids": ids, "finish_reason": "stop",
                             "logprobs": {"tokens": list(text), "token_logprobs": [-0.25] * len(ids)}}],
                "usage": {"prompt_tokens": len(body["prompt"]), "completion_tokens": len(ids)}}

    def _constrained(self, text: str, body: dict) -> str:
        """`text`, or the first choice when the request constrains the answer to choices and `text` is none."""
        choices = (body.get("structured_outputs") or {}).get("choice") if self.constrains == "honour" else None
        return text if not choices or text in choices else choices[0]

    def __enter__(self) -> FakeLLM:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        threading.Thread(target=self._server.run, daemon=True).start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True


if __name__ == "__main__":  # run alone: python -m arena.testing.fake_openai PORT LATENCY
    import sys

    fake = FakeLLM(latency=float(sys.argv[2]))
    uvicorn.run(fake.app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
