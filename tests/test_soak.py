"""The soak benchmark's short run: 100 clients in back-to-back games for a minute lose nothing and see no error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"


@pytest.mark.slow
def test_a_minute_of_continuous_games_loses_nothing_and_stores_every_game(db_url: str, tmp_path: Path) -> None:
    figures = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(SOAK), "--clients", "100", "--minutes", "1", "--db", db_url,
                          "--json", str(figures)], capture_output=True, text=True, timeout=900)
    assert figures.exists(), run.stdout + run.stderr
    result = json.loads(figures.read_text())
    assert result["errors"] == 0 and result["games_lost"] == 0, run.stdout
    assert result["games_finished"] > 100, run.stdout
    assert result["stored"].get("finished") == result["games_finished"], result["stored"]
    assert "running" not in result["stored"], result["stored"]
