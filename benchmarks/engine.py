"""The move pipeline against a bare TextArena loop: N TicTacToe games, every turn persisted, same seeds.

Arena: `arena.play.Arena` (the library API every door uses) plays `random` vs `first` on seeds
seed..seed+N-1 (seats rotating), with every turn, outcome and rating change committed to the
database (a new SQLite file by default, or --db URL naming an empty database). Timed from the first
game to the last result, which the API yields only once its ratings are committed.

Reference, in the same run: a bare loop over the same seeds, as a TextArena user would write it:
a fresh `ta.make` per game, a random legal move each turn (read with the same move parser the
`random` agent uses), nothing stored. It runs before and after the arena; the mean is the reference.
Target: (arena games/s) / (bare games/s) >= 0.5. Exit status 0 whether or not the target is met.

Run: .venv/bin/python benchmarks/engine.py [--games 20000] [--concurrency 256] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

import textarena as ta
from sqlalchemy import func, select

from agents.baseline import candidate_moves
from arena.play import Arena, GameSpec, schedule
from arena.store.models import EpisodeRow, TurnRow

ENV_ID = "TicTacToe-v0"
TARGET = 0.5


def bare_loop(seeds: range) -> float:
    """Play every seed with random legal moves and nothing stored; games per second."""
    started = time.perf_counter()
    for seed in seeds:
        env = ta.make(ENV_ID)
        env.reset(num_players=2, seed=seed)
        rng = random.Random(seed)
        done = False
        while not done:
            _, observation = env.get_observation()
            done, _ = env.step(rng.choice(candidate_moves(observation)))
        env.close()
    return len(seeds) / (time.perf_counter() - started)


async def arena_run(url: str, games: list[GameSpec], concurrency: int) -> tuple[float, int, int, int]:
    """Play a schedule through the library API into `url`; (games/s, turns played, turns stored, episodes)."""
    async with Arena(url) as arena:
        started = time.perf_counter()
        results = await arena.play_all(games, concurrency)
        rate = len(games) / (time.perf_counter() - started)
        stored, episodes = arena.read(lambda s: (s.scalar(select(func.count()).select_from(TurnRow)),
                                                 s.scalar(select(func.count()).select_from(EpisodeRow))))
    return rate, sum(r.turns for r in results), stored, episodes


def main() -> None:
    """Run both loops and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--db", default=None, help="SQLAlchemy URL of an empty database (default: a new SQLite file)")
    args = parser.parse_args()
    seeds = range(args.seed, args.seed + args.games)
    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'arena.db'}"
        bare_before = bare_loop(seeds)
        games = schedule(ENV_ID, ["random", "first"], len(seeds), seeds.start)
        arena, played, stored, episodes = asyncio.run(arena_run(url, games, args.concurrency))
        bare_after = bare_loop(seeds)
    bare = (bare_before + bare_after) / 2
    backend = url.split(":", 1)[0]
    print(f"{args.games} {ENV_ID} games, random vs first, seeds {seeds.start}..{seeds.stop - 1}")
    print(f"bare TextArena loop:  {bare_before:,.0f} and {bare_after:,.0f} games/s (mean {bare:,.0f})")
    print(f"arena ({backend}, concurrency {args.concurrency}): {arena:,.0f} games/s; "
          f"{episodes} episodes, {stored} of {played} turns stored")
    verdict = "met" if arena / bare >= TARGET else "NOT met"
    print(f"ratio arena/bare: {arena / bare:.2f} (target >= {TARGET}: {verdict})")


if __name__ == "__main__":
    main()
