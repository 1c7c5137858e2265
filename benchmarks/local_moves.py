"""Move time of the `local` agent (Gemma 3 270M on llama.cpp, CPU), in its model process and in this process.

Both sides complete the same TicTacToe-v0 prompts (the plain-text prompt of the agent's first move, 16 tokens,
temperature 0) with the llama.cpp build that is installed:
- model process: `LocalAgent.generate`, llama.cpp in the agent's child process, as the arena runs it;
- reference: llama.cpp called in this process, as the arena did before the model process existed.
It prints the instruction sets the build was compiled with, so runs of different builds can be compared. A
build with code this CPU cannot run kills the model process (reported) and then this process (the reference).
Target: the model process costs at most 10% over the reference.
Run: .venv/bin/python benchmarks/local_moves.py [--moves 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import textarena as ta

from agents import llama_model
from agents.base import AgentCrashed
from agents.llm_options import LLMOptions
from agents.local_agent import LocalAgent, default_model
from arena.prompting import Conversation, plain_prompt, system_prompt

TARGET_OVERHEAD = 0.10
SAMPLING = {"max_tokens": 16, "temperature": 0.0, "seed": 1, "stop": ["\n\n"]}


def prompts(count: int) -> list[str]:
    """The agent's plain-text prompts for the first move of `count` TicTacToe-v0 games (seeds 0..count-1)."""
    texts = []
    for seed in range(count):
        env = ta.make("TicTacToe-v0")
        env.reset(num_players=2, seed=seed)
        _, observation = env.get_observation()
        chat = Conversation(system_prompt("TicTacToe-v0", 0, None))
        texts.append(plain_prompt(chat.prompt(observation)))
    return texts


async def model_process_times(texts: list[str]) -> list[float]:
    """Seconds per move through the agent's model process (loaded before the clock starts)."""
    agent = LocalAgent("local", options=LLMOptions(sampling=dict(SAMPLING)))
    await agent.start()
    try:
        await agent.generate([{"role": "user", "content": texts[0]}])  # warm-up
        times = []
        for text in texts:
            started = time.perf_counter()
            await agent.generate([{"role": "system", "content": text}])
            times.append(time.perf_counter() - started)
        return times
    finally:
        await agent.close()


def in_process_times(texts: list[str]) -> list[float]:
    """Seconds per move with llama.cpp called in this process."""
    llm = llama_model.load(str(default_model()), 2048)
    llama_model.complete(llm, None, texts[0], SAMPLING, None)  # warm-up
    times = []
    for text in texts:
        started = time.perf_counter()
        llama_model.complete(llm, None, text, SAMPLING, None)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    """Time both sides and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=20)
    args = parser.parse_args()
    from llama_cpp import llama_print_system_info

    print(f"llama.cpp build: {llama_print_system_info().decode().strip()}", flush=True)
    texts = prompts(args.moves)
    try:
        process = statistics.median(asyncio.run(model_process_times(texts)))
        print(f"model process: {process * 1000:.0f} ms per move (median of {args.moves})", flush=True)
    except AgentCrashed as error:
        print(f"model process: {error}; the arena process lives on", flush=True)
        process = None
    print("reference (llama.cpp in this process): ...", flush=True)
    reference = statistics.median(in_process_times(texts))
    print(f"reference (llama.cpp in this process): {reference * 1000:.0f} ms per move (median of {args.moves})")
    if process is not None:
        overhead = process / reference - 1
        verdict = "met" if overhead <= TARGET_OVERHEAD else "NOT met"
        print(f"overhead of the model process: {overhead:+.1%} (target at most {TARGET_OVERHEAD:.0%}: {verdict})")


if __name__ == "__main__":
    main()
