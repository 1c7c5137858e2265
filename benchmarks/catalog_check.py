"""Time the first full catalog check (all registered env ids, empty cache) against a naive check.

The naive reference starts one fresh subprocess per id and probes it alone, as a simple script
would; it is timed on a sample and extrapolated to every id. Target: the full check under 120 s.
Run: .venv/bin/python benchmarks/catalog_check.py [--sample 24]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

TARGET_S = 120.0


def full_check() -> tuple[float, int, int]:
    """Seconds for a cold `catalog.load()` of every id, and the counts it found."""
    from games import catalog

    start = time.perf_counter()
    entries = catalog.load()
    elapsed = time.perf_counter() - start
    return elapsed, len(entries), sum(e.playable for e in entries.values())


def naive_seconds_per_id(sample: int) -> float:
    """Mean seconds to probe one id in its own fresh interpreter."""
    from games import catalog

    ids = random.Random(0).sample(catalog.registered_ids(), sample)
    start = time.perf_counter()
    for env_id in ids:
        code = f"from games.probe import probe; probe({env_id!r})"
        subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    return (time.perf_counter() - start) / sample


def main() -> None:
    """Print the full-check time, the naive estimate and the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=24, help="ids timed for the naive reference")
    args = parser.parse_args()
    os.environ["ARENA_CACHE_DIR"] = tempfile.mkdtemp(prefix="arena-bench-catalog-")
    elapsed, total, playable = full_check()
    per_id = naive_seconds_per_id(args.sample)
    print(f"full catalog check, cold cache: {elapsed:.1f} s for {total} ids ({playable} playable)")
    print(f"naive reference (fresh process per id, {args.sample} sampled): {per_id:.2f} s/id "
          f"-> about {per_id * total:.0f} s for {total} ids")
    print(f"speed-up over naive: {per_id * total / elapsed:.1f}x; target: under {TARGET_S:.0f} s -> "
          f"{'met' if elapsed < TARGET_S else 'MISSED'}")


if __name__ == "__main__":
    main()
