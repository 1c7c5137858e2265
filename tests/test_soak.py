"""The soak benchmark's short run: 100 clients in back-to-back games for 15 seconds lose nothing and see no error.

Fifteen seconds is over a thousand games with every client matched, playing and draining many times over: what
a lost game or an error needs to show. Memory growth needs minutes, and the full soak (benchmarks/soak.py at
its defaults, docs/reliability.md) measures it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"


@pytest.mark.slow
def test_continuous_games_lose_nothing_and_store_every_game(db_url: str, tmp_path: Path) -> None:
    figures = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(SOAK), "--clients", "100", "--minutes", "0.25", "--db", db_url,
                          "--json", str(figures)], capture_output=True, text=True, timeout=900)
    assert figures.exists(), run.stdout + run.stderr
    result = json.loads(figures.read_text())
    assert result["errors"] == 0 and result["games_lost"] == 0, run.stdout
    assert result["games_finished"] > 100, run.stdout
    assert result["stored"].get("finished") == result["games_finished"], result["stored"]
    assert "running" not in result["stored"], result["stored"]
