"""A tournament against the move pipeline it runs on: a 6-agent round robin on TicTacToe-v0 and ConnectFour-v0.

Tournament: `arena tournament run`'s code path (store the tournament and its schedule, claim it, play
every game through the library API with ratings in schedule order, link each episode to its scheduled
game, mark it finished), 20 games per pair and env (10 shared seeds in both seatings): 600 games
between `random`, `first` and four more seeded `random`s.

Reference, in the same run: `benchmarks/engine.py`'s arena pipeline (`Arena.play_all`, every turn,
outcome and rating committed) on exactly the same 600 games as a plain schedule. Each side runs
--repeat times, alternating, each into a new SQLite file; the medians are compared.
Target: (tournament games/s) / (engine games/s) >= 0.8. Exit status 0 whether or not it is met.

Run: .venv/bin/python benchmarks/tournament.py [--games-per-pair 20] [--repeat 5] [--concurrency 256]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import arena_run  # noqa: E402 - benchmarks/ is not a package

from arena.play import Arena, GameSpec  # noqa: E402
from arena.tournament import run as tournament_run  # noqa: E402
from arena.tournament.config import TournamentConfig, make_config  # noqa: E402
from arena.tournament.formats import Format  # noqa: E402

ENVS = ["TicTacToe-v0", "ConnectFour-v0"]
AGENTS = ["random", "first", *[f"r{i}=random?seed={i}" for i in range(1, 5)]]
TARGET = 0.8


async def tournament_rate(url: str, config: TournamentConfig, concurrency: int) -> tuple[float, int]:
    """Store and play the tournament as the CLI does; (games/s, games played)."""
    async with Arena(url, policy=config.policy, move_timeout=config.move_timeout) as arena:
        started = time.perf_counter()
        await tournament_run.create(arena, "bench", config)
        row, _ = await asyncio.to_thread(tournament_run.load, arena, "bench")
        played = 0

        def advance(n: int) -> None:
            nonlocal played
            played += n

        await tournament_run.play(arena, row, config, concurrency, advance)
        return played / (time.perf_counter() - started), played


def main() -> None:
    """Alternate the two measurements and print the medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games-per-pair", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    seeds = list(range(args.seed, args.seed + args.games_per_pair // 2))
    config = make_config(Format.ROUND_ROBIN, ENVS, AGENTS, seeds=seeds)
    specs = {spec.name: spec for spec in config.specs}
    plain = [GameSpec(g.env_id, g.seed, [specs[n] for n in g.seats]) for g in config.first_games()]
    tournament, engine = [], []
    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        for i in range(args.repeat):
            rate, played = asyncio.run(tournament_rate(f"sqlite:///{Path(tmp) / f't{i}.db'}", config,
                                                       args.concurrency))
            assert played == len(plain), (played, len(plain))
            tournament.append(rate)
            engine.append(asyncio.run(arena_run(f"sqlite:///{Path(tmp) / f'e{i}.db'}", plain, args.concurrency))[0])
    t, e = statistics.median(tournament), statistics.median(engine)
    print(f"round robin of {len(AGENTS)} agents on {', '.join(ENVS)}: {len(plain)} games "
          f"({args.games_per_pair} per pair and env), concurrency {args.concurrency}, SQLite, {args.repeat} runs each")
    print(f"tournament:           {', '.join(f'{r:,.0f}' for r in tournament)} games/s (median {t:,.0f})")
    print(f"engine.py's pipeline: {', '.join(f'{r:,.0f}' for r in engine)} games/s (median {e:,.0f})")
    verdict = "met" if t / e >= TARGET else "NOT met"
    print(f"ratio tournament/engine: {t / e:.2f} (target >= {TARGET}: {verdict})")


if __name__ == "__main__":
    main()
