"""Games/s with `openai:` agents (all requests in flight together) against TextArena's own loop.

Both sides play the same TicTacToe-v0 seeds against the same OpenAI-compatible server on localhost
(`arena.testing.fake_openai` in its own process, answering after --latency seconds, 0.2 by default):
- arena: every game at once through the runner, `openai:` agents on both seats, stored in SQLite;
- reference: TextArena's `ta.agents.OpenAIAgent` in its documented loop, one request at a time,
  game after game.
Target: the arena at least 40x the reference's games/s.
Run: .venv/bin/python benchmarks/llm_concurrency.py [--games 64] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request

import textarena as ta

from arena.play import Arena, GameSpec
from arena.testing.ports import free_port

TARGET_RATIO = 40.0


async def arena_games(base_url: str, seeds: list[int]) -> tuple[float, int]:
    """(seconds, moves) to play every seed at once with `openai:` agents, recorded in SQLite."""
    agents = [f"{n}=openai:test-model?base_url={base_url}" for n in ("a", "b")]
    async with Arena(f"sqlite:///{tempfile.mkdtemp(prefix='arena-bench-llm-')}/bench.db") as arena:
        for agent in agents:
            await arena.seat(agent)  # started before the clock starts
        started = time.perf_counter()
        results = await arena.play_all([GameSpec("TicTacToe-v0", s, agents) for s in seeds], concurrency=len(seeds))
        elapsed = time.perf_counter() - started
    return elapsed, sum(r.turns for r in results)


def reference_games(base_url: str, seeds: list[int]) -> tuple[float, int]:
    """(seconds, moves) for TextArena's own agents and loop: one request at a time, game after game."""
    agent = ta.agents.OpenAIAgent(model_name="test-model", api_key="unused", base_url=base_url)
    moves = 0
    started = time.perf_counter()
    for seed in seeds:
        env = ta.make("TicTacToe-v0")
        env.reset(num_players=2, seed=seed)
        done = False
        while not done:
            _, observation = env.get_observation()
            done, _ = env.step(agent(observation))
            moves += 1
        env.close()
    return time.perf_counter() - started, moves


def wait_until_up(base_url: str) -> None:
    """Wait for the fake server to answer /models."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base_url + "/models", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the fake OpenAI server did not start")


def main() -> None:
    """Run both and print games/s, moves and the ratio against the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per request")
    args = parser.parse_args()
    seeds = list(range(args.games))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    server = subprocess.Popen([sys.executable, "-m", "arena.testing.fake_openai", str(port), str(args.latency)])
    try:
        wait_until_up(base_url)
        arena_s, arena_moves = asyncio.run(arena_games(base_url, seeds))
        peak = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats").read())["peak"]
        reference_s, reference_moves = reference_games(base_url, seeds)
    finally:
        server.terminate()
        server.wait()
    arena_rate, reference_rate = args.games / arena_s, args.games / reference_s
    print(f"server latency {args.latency * 1000:.0f} ms per request, {args.games} TicTacToe-v0 games each way")
    print(f"arena (openai: agents, all games at once): {arena_s:.2f} s, {arena_moves} moves, "
          f"{arena_rate:.2f} games/s, peak {peak} requests in flight")
    print(f"reference (ta.agents.OpenAIAgent, one request at a time): {reference_s:.2f} s, {reference_moves} moves, "
          f"{reference_rate:.3f} games/s")
    ratio = arena_rate / reference_rate
    print(f"ratio: {ratio:.1f}x; target >= {TARGET_RATIO:.0f}x -> {'met' if ratio >= TARGET_RATIO else 'MISSED'}")


if __name__ == "__main__":
    main()
