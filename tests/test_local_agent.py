"""`local`: Gemma 3 270M from PyPI, run by llama.cpp on CPU, plays a real game end to end."""

from __future__ import annotations

import subprocess

from server_helpers import ARENA, Client, ServerProcess
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from arena.server.settings import default_house
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


def test_local_is_the_default_house_llm_without_a_gpu_or_endpoint(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert default_house() == ["random", "local"]
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8001/v1")
    monkeypatch.setenv("ARENA_HOUSE_MODEL", "my-model")
    assert default_house() == ["random", "openai:my-model"]


async def test_a_guest_plays_the_default_house_llm_on_a_server_started_with_its_defaults(db_url: str) -> None:
    srv = ServerProcess(db_url, "--house-wait", "60", default_house=True).start()
    try:
        guest = await Client.open(srv.ws)
        await guest.send(type="hello", guest="ada")
        await guest.expect("welcome")
        await guest.send(type="queue", envs=["TicTacToe-v0"], opponent="local")
        assert set((await guest.expect("match", timeout=60))["players"]) == {"guest:ada", "local"}
        over = await guest.play_first_moves()
        assert over["status"] == "finished"
        await guest.close()
    finally:
        srv.stop()
    engine = create_engine(db_url)
    with Session(engine) as session:
        model_turns = [t for t in session.scalars(select(TurnRow)) if t.info.get("model")]
        assert model_turns and model_turns[0].info["model"].endswith(".gguf")
    engine.dispose()
