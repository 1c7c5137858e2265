"""`local`: Gemma 3 270M from PyPI, run by llama.cpp on CPU, plays a real game end to end."""

from __future__ import annotations

import subprocess

from server_helpers import ARENA
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from arena.store.models import EpisodeRow, TurnRow


def test_a_real_small_model_plays_a_game_and_every_turn_is_recorded(db_url: str) -> None:
    result = subprocess.run([ARENA, "play", "TicTacToe-v0", "--agents", "local?max_tokens=16&seed=1,first",
                             "--games", "1", "--seed", "3", "--db", db_url],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    engine = create_engine(db_url)
    with Session(engine) as session:
        episode = session.scalars(select(EpisodeRow)).one()
        turns = session.scalars(select(TurnRow).where(TurnRow.seat == 0)).all()
        assert episode.status == "finished" and episode.reason
        assert turns, "the model never moved"
        info = turns[0].info
        assert info["model"].endswith(".gguf") and info["completion_tokens"] > 0 and info["prompt_tokens"] > 0
        assert info["sampling"]["max_tokens"] == 16 and turns[0].action
        assert "Available Moves" in info["prompt"][-1]["content"]
    engine.dispose()


def test_a_missing_gguf_file_fails_at_start_up(db_url: str, tmp_path) -> None:
    missing = tmp_path / "nope.gguf"
    result = subprocess.run([ARENA, "play", "TicTacToe-v0", "--agents", f"local:{missing},first", "--db", db_url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and f"GGUF file not found: {missing}" in result.stderr
