"""`arena export` speed and memory: a database of 200,000 turns exported to `messages` and `prompt-completion`.

Builds two SQLite databases with the library API (`random` vs `first` TicTacToe-v0 games until the turn
count is reached): the full one and one with a tenth of the turns. Each export runs in a fresh process
(`arena.export.export` to a JSONL file) that reports its wall time and its peak RSS.
Targets: at least 50,000 turns/s on the full database; peak RSS of the full export at most 1.5 times the
peak of exporting the tenth (the reference, measured in the same run). Exit status 0 either way.

Run: .venv/bin/python benchmarks/export.py [--turns 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlalchemy import func, select

from arena.play import Arena, schedule
from arena.store.models import TurnRow

ENV_ID = "TicTacToe-v0"
FORMATS = ("messages", "prompt-completion")
TURNS_TARGET, RSS_TARGET = 50_000, 1.5
CHILD = """
import json, resource, sys, time
from arena.export import export
started = time.perf_counter()
summary = export(sys.argv[3], sys.argv[2], sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - started, "rows": summary.rows,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


async def build(url: str, turns: int) -> int:
    """Play games into `url` until it holds at least `turns` turns; the turns stored."""
    stored, seed = 0, 1
    async with Arena(url) as arena:
        while stored < turns:
            games = max(100, (turns - stored) // 7)
            await arena.play_all(schedule(ENV_ID, ["random", "first"], games, seed), concurrency=256)
            seed += games
            stored = arena.read(lambda s: s.scalar(select(func.count()).select_from(TurnRow)))
    return stored


def measure(url: str, fmt: str, target: Path) -> dict:
    """One export in a fresh process: seconds, rows written, peak RSS (MiB)."""
    done = subprocess.run([sys.executable, "-c", CHILD, url, fmt, str(target)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Build both databases, export each to each format, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        full, tenth = f"sqlite:///{Path(tmp) / 'full.db'}", f"sqlite:///{Path(tmp) / 'tenth.db'}"
        turns = {full: asyncio.run(build(full, args.turns)), tenth: asyncio.run(build(tenth, args.turns // 10))}
        print(f"databases: {turns[full]:,} turns, and {turns[tenth]:,} (a tenth), {ENV_ID}, random vs first")
        for fmt in FORMATS:
            big = measure(full, fmt, Path(tmp) / f"{fmt}.jsonl")
            small = measure(tenth, fmt, Path(tmp) / f"{fmt}-tenth.jsonl")
            rate, ratio = turns[full] / big["seconds"], big["peak_mib"] / small["peak_mib"]
            print(f"{fmt:>17}: {rate:,.0f} turns/s ({big['rows']:,} rows in {big['seconds']:.2f} s; target >= "
                  f"{TURNS_TARGET:,}: {'met' if rate >= TURNS_TARGET else 'NOT met'}); peak RSS {big['peak_mib']:.0f} "
                  f"MiB against {small['peak_mib']:.0f} MiB for the tenth: ratio {ratio:.2f} (target <= {RSS_TARGET}: "
                  f"{'met' if ratio <= RSS_TARGET else 'NOT met'})")


if __name__ == "__main__":
    main()
