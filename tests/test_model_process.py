"""Native model code runs in a child process: a crash there (a real SIGSEGV) aborts only the games waiting
on it, the next move starts a fresh process, and the process running the games (a server too) lives on."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from fixtures import model_calls
from server_helpers import Client, InProcessServer, ServerProcess
from sqlalchemy import select

from agents.base import AgentCrashed
from agents.model_process import ModelError, ModelProcess
from arena.play import Arena, schedule
from arena.store.models import EpisodeRow

TESTS = Path(__file__).parent
CRASHING = "crashy=python:fixtures.crashing_model:CrashingLocal?countdown={}"


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


async def test_calls_run_in_the_child_and_their_errors_are_raised_to_the_caller() -> None:
    process = ModelProcess(model_calls.load, "toy")
    await process.start()
    try:
        assert process.pid != os.getpid()
        assert await process.run(model_calls.describe, "!") == f"toy!@{process.pid}"
        assert await asyncio.to_thread(process.call, model_calls.describe) == f"toy@{process.pid}"
        with pytest.raises(KeyError, match="no such thing"):
            await process.run(model_calls.fail)
        with pytest.raises(ModelError, match="cannot be sent back"):
            await process.run(model_calls.unpicklable)
        with pytest.raises(TypeError, match="module-level function"):
            await process.run(lambda model: model)
        assert await asyncio.gather(*[process.run(model_calls.sleep, 0.01 * i) for i in range(8)]) == \
            [0.01 * i for i in range(8)]
        assert process.starts == 1
    finally:
        await process.close()


async def test_a_segfault_fails_every_call_in_flight_and_the_next_call_starts_a_new_process(tmp_path: Path) -> None:
    process = ModelProcess(model_calls.load, "toy")
    await process.start()
    first = process.pid
    marker = str(tmp_path / "in-flight")
    crash = asyncio.ensure_future(process.run(model_calls.segfault_once, marker))
    waiting = asyncio.ensure_future(process.run(model_calls.mark_then_sleep, marker, 30))
    for call in (crash, waiting):
        with pytest.raises(AgentCrashed, match=r"the model process died \(killed by SIGSEGV\)"):
            await asyncio.wait_for(call, 60)
    assert not alive(first)
    assert await process.run(model_calls.describe) == f"toy@{process.pid}" and process.pid != first
    assert process.starts == 2
    await process.close()


async def test_a_killed_process_fails_its_call_and_is_restarted_for_the_next() -> None:
    process = ModelProcess(model_calls.load, "toy")
    await process.start()
    call = asyncio.ensure_future(process.run(model_calls.sleep, 30))
    await asyncio.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)  # what the kernel's out-of-memory killer does
    with pytest.raises(AgentCrashed, match="killed by SIGKILL"):
        await asyncio.wait_for(call, 60)
    assert await process.run(model_calls.sleep, 0) == 0 and process.starts == 2
    pid = process.pid
    await process.close()
    assert not alive(pid)
    with pytest.raises(AgentCrashed, match="closed"):
        await process.run(model_calls.describe)


async def test_a_model_that_cannot_load_fails_at_start_with_the_reason() -> None:
    with pytest.raises(RuntimeError, match="ValueError: this model cannot load"):
        await ModelProcess(model_calls.load, "unloadable").start()
    with pytest.raises(AgentCrashed, match=r"died while loading \(killed by SIGSEGV\)"):
        await ModelProcess(model_calls.load, "segfault").start()


# --- the `local` agent (real Gemma on llama.cpp) --------------------------------------------------------------


async def test_a_segfault_in_the_local_models_process_aborts_its_game_and_the_next_game_plays(
        db_url: str, tmp_path: Path) -> None:
    countdown = tmp_path / "countdown"
    countdown.write_text("2")  # the model's second completion crashes: mid-game
    crashy = CRASHING.format(countdown)
    async with Arena(db_url) as arena:
        results = await arena.play_all(schedule("TicTacToe-v0", [crashy, "first"], 2, seed=1), concurrency=1)
        agent = (await arena.seat(crashy)).agent
        episodes = arena.read(lambda s: s.scalars(select(EpisodeRow).order_by(EpisodeRow.id)).all())
    crashed, next_game = results
    assert crashed.outcome.status == "aborted", crashed.outcome
    assert crashed.outcome.reason == "agent crashed: crashy: the model process died (killed by SIGSEGV)"
    assert crashed.turns >= 2  # the model had moved once, and the other seat, before its process died
    assert next_game.outcome.status == "finished", next_game.outcome
    assert agent.process.starts == 2 and not countdown.exists()
    assert [(e.status, e.reason) for e in episodes] == [("aborted", crashed.outcome.reason),
                                                         ("finished", next_game.outcome.reason)]


async def test_a_server_whose_house_model_segfaults_aborts_that_game_and_serves_on(
        db_url: str, tmp_path: Path, checked_catalog: None) -> None:
    countdown = tmp_path / "countdown"
    countdown.write_text("2")
    srv = ServerProcess(db_url, "--house", "random," + CRASHING.format(countdown), "--house-wait", "60",
                        cwd=tmp_path, env={"PYTHONPATH": str(TESTS)})
    try:
        srv.start()
        guest = await Client.open(srv.ws, guest="ada")
        outcomes = []
        for _ in range(2):
            await guest.send(type="queue", envs=["TicTacToe-v0"], opponent="crashy")
            outcomes.append(await guest.play_first_moves())
            assert srv.get("/health") and srv.process.poll() is None
        await guest.close()
    finally:
        srv.stop()
    assert outcomes[0]["status"] == "aborted" and "killed by SIGSEGV" in outcomes[0]["reason"], outcomes[0]
    assert outcomes[1]["status"] == "finished", outcomes[1]


async def test_a_house_agent_whose_model_cannot_load_is_left_out_and_the_server_serves(
        db_url: str, tmp_path: Path, checked_catalog: None) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + os.urandom(4096))  # a file llama.cpp cannot load
    srv = InProcessServer(db_url, "--house", f"random,broken=local:{broken}", "--house-wait", "60", cwd=tmp_path)
    try:
        srv.start()
        assert srv.get("/api/house") == [{"name": "random"}]
        guest = await Client.open(srv.ws, guest="ada")
        await guest.send(type="queue", envs=["TicTacToe-v0"], opponent="random")
        assert (await guest.play_first_moves())["status"] == "finished"
        await guest.close()
    finally:
        srv.stop()
    log = srv.output()
    [line] = [line for line in log.splitlines() if "is not seated" in line]
    assert line == (f"ERROR:arena.server.hub:house agent 'broken=local:{broken}' is not seated: agent 'broken' "
                    f"cannot start: ValueError: Failed to load model from file: {broken}"), log

