"""OpenEnv clients play on the arena: the real `openenv-core` client against a real `arena serve` process.

The client sits in one seat, house agents in the others; the games are stored and rated like any other.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import arena
from openenv.core import GenericEnvClient
from openenv.core.client_types import StepResult
from openenv.core.env_server.types import Action
from server_helpers import InProcessServer, ServerUnderTest
from websockets.asyncio.client import connect

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "openenv_client.py"


class TextArenaAction(Action):
    """The action of OpenEnv's own TextArena environment (envs/textarena_env/models.py), field for field."""

    message: str


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerUnderTest]:
    """One server for the module; each test plays under agent names of its own."""
    folder = tmp_path_factory.mktemp("openenv")
    server = InProcessServer(f"sqlite:///{folder / 'arena.db'}", cwd=folder).start()
    yield server
    server.stop()
    log = server.output()
    assert "Traceback" not in log, log  # every bad frame, drop and reset was handled, none crashed a handler


def client(srv: ServerUnderTest, env_id: str | None = "TicTacToe-v0") -> GenericEnvClient:
    """The generic OpenEnv client, its base URL naming the game (it opens {base_url}/ws)."""
    return GenericEnvClient(base_url=f"{srv.url}/openenv" + (f"/{env_id}" if env_id else ""))


def first_move(result: StepResult) -> str:
    """The first move the seat's observation lists."""
    listed = result.observation["prompt"].rsplit("Available Moves:", 1)[-1]
    return re.findall(r"\[\d\]", listed)[0]


def wait_for(check: Callable[[], bool], timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


def standing(srv: ServerUnderTest, agent: str) -> dict | None:
    return next((s for s in srv.get("/api/leaderboard?env=TicTacToe-v0") if s["agent"] == agent), None)


def test_a_full_game_is_played_stored_and_rated(srv: ServerUnderTest) -> None:
    assert standing(srv, "oe-full") is None
    with client(srv).sync() as env:
        result = env.reset(seed=11, seat=0, agent="oe-full")
        assert (result.done, result.reward) == (False, 0.0)
        assert "Available Moves:" in result.observation["prompt"]  # the text the arena's own agents act on
        assert result.observation["current_player_id"] == 0
        assert {m["category"] for m in result.observation["messages"]} >= {"PROMPT", "GAME_BOARD"}
        steps = 0
        while not result.done:
            result = env.step(TextArenaAction(message=first_move(result)))  # OpenEnv's TextArena action shape
            steps += 1
            assert result.reward == 0.0 or result.done
        state = env.state()
        with pytest.raises(RuntimeError, match="EPISODE_OVER"):
            env.step({"message": "[0]"})
    info = result.observation["info"]
    assert info["status"] == "finished" and info["reason"]
    assert result.reward == info["rewards"]["0"]
    assert info["rating_change"] is not None
    assert state["done"] and state["step_count"] == steps and state["seat"] == 0 and state["seed"] == 11
    assert state["players"] == ["oe-full", "random"] and state["agent"] == "oe-full"

    episode = srv.get(f"/api/episodes/{state['episode_id']}")
    assert (episode["status"], episode["seed"], episode["tags"]) == ("finished", 11, ["openenv"])
    assert [(s["seat"], s["agent"]) for s in episode["seats"]] == [(0, "oe-full"), (1, "random")]
    assert episode["seats"][0]["reward"] == result.reward
    assert len([t for t in episode["turns"] if t["seat"] == 0]) == steps
    row = standing(srv, "oe-full")
    assert row is not None and row["games"] == 1 and row["mu"] != 25.0  # rated


def test_an_invalid_move_follows_the_games_policy(srv: ServerUnderTest) -> None:
    with client(srv).sync() as env:
        result = env.reset(seed=3, seat=1, opponent="first", agent="oe-invalid")
        assert result.observation["info"]["turn"] == 1  # the opponent moved first
        result = env.step({"message": "not a move"})  # TextArena's policy: one more try...
        assert (result.done, result.reward) == (False, 0.0)
        assert any("attempted an invalid move" in m["content"] for m in result.observation["messages"])
        assert "Available Moves:" in result.observation["prompt"]
        result = env.step({"message": "still not a move"})  # ...then the game is lost
        assert (result.done, result.reward) == (True, -1.0)
        episode_id = env.state()["episode_id"]
    episode = srv.get(f"/api/episodes/{episode_id}")
    assert [s["agent"] for s in episode["seats"]] == ["first", "oe-invalid"]
    assert episode["seats"][1]["result"] == "loss" and episode["seats"][1]["invalid_moves"] == 2
    assert [t["invalid"] for t in episode["turns"] if t["seat"] == 1] == [True, True]


async def test_bad_frames_get_error_frames_and_the_session_goes_on(srv: ServerUnderTest) -> None:
    async with connect(f"ws://127.0.0.1:{srv.port}/openenv/ws") as ws:

        async def ask(frame: str | bytes) -> dict:
            await ws.send(frame)
            return json.loads(await ws.recv())

        async def code(frame: str | bytes | dict) -> str:
            reply = await ask(json.dumps(frame) if isinstance(frame, dict) else frame)
            assert reply["type"] == "error", reply
            return reply["data"]["code"]

        reset = {"type": "reset", "data": {"env_id": "TicTacToe-v0", "agent": "oe-errors"}}
        assert await code("{not json") == "INVALID_JSON"
        assert await code(b"\x00binary") == "INVALID_JSON"
        assert await code({"type": "mcp", "data": {}}) == "UNKNOWN_TYPE"
        assert await code({"data": {}}) == "UNKNOWN_TYPE"
        assert await code({"type": "step", "data": {"message": "[4]"}}) == "NO_EPISODE"
        assert await code({"type": "reset", "data": {}}) == "MISSING_ENV_ID"  # no game in the URL either
        assert await code({"type": "reset", "data": {"env_id": "NoSuchGame-v0"}}) == "UNKNOWN_ENV"
        assert await code(_with(reset, seat=2)) == "BAD_SEAT"
        assert await code(_with(reset, num_players=3)) == "BAD_NUM_PLAYERS"
        assert await code(_with(reset, opponent="not a spec!")) == "BAD_OPPONENT"
        assert await code(_with(reset, opponent="python:os:system")) == "OPPONENT_UNAVAILABLE"
        assert await code(_with(reset, agent="random")) == "NAME_TAKEN"  # the house agent's name
        assert await code(_with(reset, token="arena_no-such-token", agent=None)) == "BAD_TOKEN"
        assert await code(_with(reset, oponent="first")) == "VALIDATION_ERROR"  # a typo is not ignored
        assert await code({"type": "step", "data": {"action": "[4]"}}) == "VALIDATION_ERROR"
        assert await code({"type": "step", "data": {"message": "x" * 70_000}}) == "FRAME_TOO_LARGE"

        reply = await ask(json.dumps(reset))  # still serving, and nothing was started by the refusals
        assert reply["type"] == "observation" and reply["data"]["done"] is False
        episodes = srv.get("/api/episodes?agent=oe-errors")
        assert len(episodes) == 1 and episodes[0]["id"] == reply["data"]["observation"]["info"]["episode_id"]
        state = await ask(json.dumps({"type": "state"}))
        assert state["type"] == "state" and state["data"]["env_id"] == "TicTacToe-v0"
        assert await code({"type": "step", "data": {"message": "[4]\x00"}}) == "VALIDATION_ERROR"  # no NUL in a move
        assert (await ask(json.dumps({"type": "step", "data": {"message": "[4]"}})))["type"] == "observation"


def _with(frame: dict, **data: object) -> dict:
    merged = {**frame["data"], **data}
    return {**frame, "data": {k: v for k, v in merged.items() if v is not None}}


def test_the_openenv_client_raises_the_error_code(srv: ServerUnderTest) -> None:
    with client(srv, env_id=None).sync() as env:
        with pytest.raises(RuntimeError, match=r"code: NO_EPISODE"):
            env.step({"message": "[4]"})
        with pytest.raises(RuntimeError, match=r"code: UNKNOWN_ENV"):
            env.reset(env_id="TicTacToe-v9")
        result = env.reset(env_id="TicTacToe-v0", agent="oe-client-errors")  # the same session plays on
        assert not result.done


async def test_two_sessions_at_once_are_independent(srv: ServerUnderTest) -> None:
    async with client(srv) as a, client(srv) as b:
        ra, rb = await asyncio.gather(a.reset(seed=1, seat=0, agent="oe-left"),
                                      b.reset(seed=2, seat=1, agent="oe-right", opponent="first"))
        ids = {ra.observation["info"]["episode_id"], rb.observation["info"]["episode_id"]}
        assert len(ids) == 2
        while not (ra.done and rb.done):  # interleaved moves
            moves = [a.step({"message": first_move(ra)}) if not ra.done else _same(ra),
                     b.step({"message": first_move(rb)}) if not rb.done else _same(rb)]
            ra, rb = await asyncio.gather(*moves)
            assert {ra.observation["info"]["episode_id"], rb.observation["info"]["episode_id"]} == ids
        sa, sb = await a.state(), await b.state()
    assert (sa["seat"], sa["players"], sa["seed"]) == (0, ["oe-left", "random"], 1)
    assert (sb["seat"], sb["players"], sb["seed"]) == (1, ["first", "oe-right"], 2)
    for state, result in ((sa, ra), (sb, rb)):
        episode = srv.get(f"/api/episodes/{state['episode_id']}")
        assert episode["status"] == "finished"
        assert episode["seats"][state["seat"]]["reward"] == result.reward


async def _same(result: StepResult) -> StepResult:
    return result


def test_a_reset_mid_game_forfeits_the_game(srv: ServerUnderTest) -> None:
    with client(srv).sync() as env:
        first = env.reset(seed=5, seat=0, agent="oe-reset")
        env.step({"message": first_move(first)})
        old_id = env.state()["episode_id"]
        second = env.reset(seed=6, seat=0, agent="oe-reset")
        assert not second.done and env.state()["episode_id"] != old_id and env.state()["step_count"] == 0
    wait_for(lambda: srv.get(f"/api/episodes/{old_id}")["status"] == "finished")
    old = srv.get(f"/api/episodes/{old_id}")
    assert old["seats"][0]["reward"] == -1.0 and "reset" in old["reason"]


async def test_a_disconnect_mid_game_forfeits_the_seat(srv: ServerUnderTest) -> None:
    ws = await connect(f"ws://127.0.0.1:{srv.port}/openenv/TicTacToe-v0/ws")
    await ws.send(json.dumps({"type": "reset", "data": {"seat": 0, "agent": "oe-gone"}}))
    episode_id = json.loads(await ws.recv())["data"]["observation"]["info"]["episode_id"]
    ws.transport.abort()  # the network drops: no close frame
    await asyncio.to_thread(wait_for, lambda: srv.get(f"/api/episodes/{episode_id}")["status"] == "finished")
    episode = srv.get(f"/api/episodes/{episode_id}")
    assert episode["seats"][0]["reward"] == -1.0 and "disconnected" in episode["reason"]
    assert standing(srv, "oe-gone")["losses"] == 1  # rated like any forfeit


def test_the_same_seed_gives_the_same_game(srv: ServerUnderTest) -> None:
    """What GRPO needs: every rollout of a group starts from the same opening."""
    openings, seats = [], []
    for _ in range(2):
        with client(srv).sync() as env:
            openings.append(env.reset(seed=77, seat=1, agent="oe-seed").observation["prompt"])
            seats.append(env.reset(seed=78, agent="oe-seed").observation["info"]["seat"])  # drawn from the seed
    assert openings[0] == openings[1] and "Player 0 placed" in openings[0]  # the opponent's first move too
    assert seats[0] == seats[1]


def test_a_registered_agent_plays_with_its_token(srv: ServerUnderTest) -> None:
    created = arena("agents", "create", "oe-token", "--db", srv.db_url)
    assert created.returncode == 0, created.stderr
    token = created.stdout.split()[-1]
    with client(srv).sync() as env:
        result = env.reset(token=token, seat=0)
        while not result.done:
            result = env.step({"message": first_move(result)})
        assert env.state()["agent"] == "oe-token"
        with pytest.raises(RuntimeError, match="NAME_TAKEN"):  # its name without its token
            env.reset(agent="oe-token")
    assert standing(srv, "oe-token")["games"] == 1


def test_the_example_script_plays_a_game(srv: ServerUnderTest) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE), srv.url, "--agent", "oe-example", "--seed", "9"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    episode_id = int(re.search(r"episode (\d+)", done.stdout).group(1))
    episode = srv.get(f"/api/episodes/{episode_id}")
    assert episode["status"] == "finished" and "oe-example" in [s["agent"] for s in episode["seats"]]
    assert "reward" in done.stdout


def test_sessions_beyond_the_limit_are_refused(tmp_path: Path) -> None:
    server = InProcessServer(f"sqlite:///{tmp_path / 'arena.db'}", cwd=tmp_path,
                           env={"ARENA_OPENENV_MAX_SESSIONS": "1"}).start()
    try:
        with client(server).sync() as first:
            assert not first.reset(agent="oe-cap").done
            with client(server).sync() as second, pytest.raises(RuntimeError, match="CAPACITY_REACHED"):
                second.reset(agent="oe-cap")

        def admitted() -> bool:  # the first session's place is given back once its socket is closed
            with client(server).sync() as third:
                try:
                    return not third.reset(agent="oe-cap").done
                except RuntimeError:
                    return False

        wait_for(admitted)
    finally:
        server.stop()
