"""The timing summary `make test` ends with: each phase's wall time, and the test files that took longest.

Run: python tests/timings.py PHASES.tsv [JUNIT.xml ...]   (standard library only: it runs before any venv works)
PHASES.tsv has one "phase<TAB>seconds" line per phase; the JUnit files are pytest's `--junitxml` reports.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

SLOWEST_FILES = 15


def phases(path: Path) -> list[tuple[str, float]]:
    """(phase, seconds) in the order they ran."""
    rows = [line.split("\t") for line in path.read_text().splitlines() if "\t" in line]
    return [(name, float(seconds)) for name, seconds in rows]


def file_times(reports: list[Path]) -> tuple[Counter, Counter]:
    """Seconds and test counts per test file, over every report (setup, call and teardown included)."""
    seconds, tests = Counter(), Counter()
    for report in reports:
        try:
            cases = ET.parse(report).iter("testcase")
        except (OSError, ET.ParseError):
            continue
        for case in cases:
            name = case.get("classname", "?").split(".")[-1] + ".py"
            seconds[name] += float(case.get("time") or 0)
            tests[name] += 1
    return seconds, tests


def main(argv: list[str]) -> int:
    """Print the summary."""
    timed = phases(Path(argv[0]))
    width = max([len(name) for name, _ in timed] + [5])
    print("\nTiming summary (wall time)")
    for name, seconds in timed:
        print(f"  {name:<{width}}  {seconds / 60:5.1f} min  ({seconds:.0f} s)")
    print(f"  {'total':<{width}}  {sum(s for _, s in timed) / 60:5.1f} min")
    seconds, tests = file_times([Path(arg) for arg in argv[1:]])
    if seconds:
        print(f"The {min(SLOWEST_FILES, len(seconds))} slowest test files (test time summed over the workers):")
        for name, total in seconds.most_common(SLOWEST_FILES):
            print(f"  {total:7.1f} s  {tests[name]:4d} tests  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
