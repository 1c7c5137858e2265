"""Unmodified TextArena online clients (`textarena.make_online`) play on the arena.

The real client is imported from the installed `textarena` package; only its two URI constants are
changed (and, for KuhnPoker, its table of game numbers learns the arena's number for that game).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import pytest
import requests
import textarena as ta
import textarena.api as api
from server_helpers import InProcessServer, ServerUnderTest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from agents.baseline import FirstAgent, RandomAgent
from arena.store.models import AgentRow, EpisodeRow, RatingHistoryRow


@pytest.fixture
def arena_server(db_url: str, monkeypatch: pytest.MonkeyPatch):
    servers: list[ServerUnderTest] = []

    def start(*flags: str) -> ServerUnderTest:
        srv = InProcessServer(db_url, *flags).start()
        servers.append(srv)
        monkeypatch.setattr(api, "MATCHMAKING_WS_URI", f"ws://127.0.0.1:{srv.port}/textarena/ws")
        monkeypatch.setattr(api, "MATCHMAKING_HTTP_URI", f"http://127.0.0.1:{srv.port}/textarena")
        return srv

    yield start
    for srv in servers:
        srv.stop()


class Named(ta.Agent):
    """A textarena agent with its own name (the client derives the model token from it)."""

    def __init__(self, inner: ta.Agent, model_name: str) -> None:
        self.inner, self.model_name = inner, model_name

    def __call__(self, observation: str) -> str:
        return self.inner(observation)


def play_online(env_id: str, model_name: str, agent: ta.Agent, results: dict) -> None:
    """TextArena's documented client loop, unchanged (in a thread with its own event loop, as a script's
    main thread would have: the client reuses `asyncio.get_event_loop()` between calls)."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    env = ta.make_online(env_id=[env_id], model_name=model_name, model_description="test", email="t@example.org",
                         agent=agent)
    env.reset(num_players=1)
    done = False
    while not done:
        player_id, observation = env.get_observation()
        done, _ = env.step(action=agent(observation))
    results[model_name] = env.close()


def run_clients(*clients: tuple[str, str, ta.Agent], timeout: float = 120) -> dict:
    results: dict = {}
    threads = [threading.Thread(target=play_online, args=(*c, results), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results


def rating_changes(db_url: str, env_id: str) -> dict[str, float]:
    """Conservative rating change per agent name in `env_id`, from the stored history."""
    engine = create_engine(db_url)
    with Session(engine) as session:
        rows = session.execute(select(AgentRow.name, RatingHistoryRow).join(
            RatingHistoryRow, RatingHistoryRow.agent_id == AgentRow.id).where(RatingHistoryRow.env_id == env_id)).all()
        changes = {name: (h.mu_after - 3 * h.sigma_after) - (h.mu_before - 3 * h.sigma_before) for name, h in rows}
    engine.dispose()
    return changes


def stored_episodes(db_url: str) -> list[tuple[str, str, list[str]]]:
    engine = create_engine(db_url)
    with Session(engine) as session:
        rows = [(e.env_id, e.status, [s.agent.name for s in e.seats])
                for e in session.scalars(select(EpisodeRow).order_by(EpisodeRow.id))]
    engine.dispose()
    return rows


def test_two_textarena_clients_play_each_other(arena_server, db_url: str) -> None:
    arena_server("--house-wait", "60")
    results = run_clients(("TicTacToe-v0", "model-a", Named(FirstAgent(), "a")),
                          ("TicTacToe-v0", "model-b", Named(RandomAgent(seed=2), "b")))
    assert set(results) == {"model-a", "model-b"}
    changes = rating_changes(db_url, "TicTacToe-v0")
    for name, (rewards, _info) in results.items():
        [reward] = rewards.values()
        assert reward == pytest.approx(changes[name]) and reward != 0
    assert stored_episodes(db_url) == [("TicTacToe-v0", "finished", stored_episodes(db_url)[0][2])]
    assert set(stored_episodes(db_url)[0][2]) == {"model-a", "model-b"}


def test_a_textarena_client_plays_kuhn_poker_against_a_house_agent(arena_server, db_url, monkeypatch) -> None:
    srv = arena_server("--house-wait", "0.5")
    numbers = {e["env_id"]: e["id"] for e in srv.get("/textarena/environments", timeout=120)}
    assert numbers["TicTacToe-v0"] == 35 and numbers["Chess-v0"] == 0
    monkeypatch.setitem(api.NAME_TO_ID_DICT, "KuhnPoker-v0", numbers["KuhnPoker-v0"])
    results = run_clients(("KuhnPoker-v0", "poker-bot", Named(FirstAgent(), "p")))
    [reward] = results["poker-bot"][0].values()
    assert reward == pytest.approx(rating_changes(db_url, "KuhnPoker-v0")["poker-bot"])
    [(env_id, status, seats)] = stored_episodes(db_url)
    assert (env_id, status) == ("KuhnPoker-v0", "finished") and "random" in seats and "poker-bot" in seats


def test_registration_answers_as_the_client_expects(arena_server) -> None:
    srv = arena_server()
    agent = Named(FirstAgent(), "x")
    token = api.register_model("reg-bot", "d", "owner@example.org", agent)
    assert token == api.register_model("reg-bot", "d", "owner@example.org", agent)  # the same again: 200
    assert api.register_model("reg-bot", "d", "thief@example.org", agent) is None  # the name is taken
    assert api.register_model("reg-bot", "d", "owner@example.org", Named(RandomAgent(), "y")) is None
    url = srv.url + "/textarena/register_model"
    taken = requests.post(url, json={"model_name": "reg-bot", "email": "thief@example.org", "model_token": token})
    assert taken.status_code == 409 and "email (existing:" in taken.json()["detail"]
    changed = requests.post(url, json={"model_name": "reg-bot", "email": "owner@example.org",
                                       "model_token": "00000000-0000-0000-0000-000000000000"})
    assert changed.status_code == 409 and "different token" in changed.json()["detail"]
    missing = requests.post(url, json={"model_name": "reg-bot", "email": "owner@example.org"})
    assert missing.status_code == 400 and "Model token is required" in missing.json()["detail"]
    bad = requests.post(url, json={"model_name": "z", "email": "o@example.org", "model_token": "not-a-uuid"})
    assert bad.status_code == 400 and "Invalid token format" in bad.json()["detail"]


def test_bad_requests_get_clear_errors_and_closed_sockets(arena_server) -> None:
    from websockets.asyncio.client import connect

    srv = arena_server()
    token = api.register_model("err-bot", "d", "e@example.org", Named(FirstAgent(), "e"))

    async def exchange(url: str, send: str | None = None, ssl=None) -> list[dict]:
        async with connect(url, ssl=ssl) as ws:
            if send:
                await ws.send(send)
            return [json.loads(m) async for m in ws]  # ends when the server closes the socket

    import ssl as ssl_module
    insecure = ssl_module.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl_module.CERT_NONE
    mm = f"ws://127.0.0.1:{srv.port}/textarena/ws?model_name=err-bot&model_token={token}"
    game = f"wss://127.0.0.1:{srv.tls_port}/textarena/game/ws?token="
    cases = [
        (f"ws://127.0.0.1:{srv.port}/textarena/ws?model_name=err-bot&model_token=wrong", None, "unknown model"),
        (mm, json.dumps({"command": "queue", "environments": [99999]}), "unknown environment id"),
        (mm, "{broken", "malformed command"),
        (mm, json.dumps({"command": "dance"}), "malformed command"),
    ]
    for url, send, text in cases:
        messages = asyncio.run(asyncio.wait_for(exchange(url, send), 30))
        assert messages[-1]["command"] == "error" and text in messages[-1]["message"], messages
    for token_value, text in [("nope", "unknown token"), (token, "no game in progress")]:
        messages = asyncio.run(asyncio.wait_for(exchange(game + token_value, ssl=insecure), 30))
        assert messages == [{"command": "error", "message": messages[0]["message"]}]
        assert text in messages[0]["message"]


DISAPPEARING_CLIENT = textwrap.dedent("""
    import sys, textarena as ta, textarena.api as api
    from agents.baseline import FirstAgent
    api.MATCHMAKING_WS_URI, api.MATCHMAKING_HTTP_URI = sys.argv[1], sys.argv[2]
    class Vanishing(ta.Agent):
        model_name = "vanisher"
        def __call__(self, observation):
            print("GOT-OBSERVATION", flush=True)
            import time; time.sleep(3600)
    agent = Vanishing()
    env = ta.make_online(env_id=["TicTacToe-v0"], model_name="vanisher", model_description="d",
                         email="v@example.org", agent=agent)
    env.reset(num_players=1)
    while True:
        pid, obs = env.get_observation()
        env.step(action=agent(obs))
""")


def test_a_client_that_disappears_forfeits_and_its_opponent_wins(arena_server, db_url: str) -> None:
    arena_server("--house-wait", "60", "--resume-grace", "6")  # the client itself waits 2 s between sockets
    vanisher = subprocess.Popen([sys.executable, "-c", DISAPPEARING_CLIENT, api.MATCHMAKING_WS_URI,
                                 api.MATCHMAKING_HTTP_URI], stdout=subprocess.PIPE, text=True)
    results: dict = {}
    stayer = threading.Thread(target=play_online, args=("TicTacToe-v0", "stayer", Named(FirstAgent(), "s"),
                                                        results), daemon=True)
    stayer.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "GOT-OBSERVATION" not in (vanisher.stdout.readline() or ""):
        pass
    vanisher.kill()
    vanisher.wait()
    stayer.join(90)
    rewards, info = results["stayer"]
    [reward] = rewards.values()
    assert reward > 0 and reward == pytest.approx(rating_changes(db_url, "TicTacToe-v0")["stayer"])
    [game_info] = info.values()
    assert game_info["outcome"] == "win" and "disconnected" in game_info["reason"]
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(api.MATCHMAKING_HTTP_URI + "/nothing-here", timeout=5)


class Slow(ta.Agent):
    """Thinks longer than the server's move deadline."""

    model_name = "slowpoke"

    def __call__(self, observation: str) -> str:
        time.sleep(8)
        return "[4]"


def test_a_client_past_the_deadline_is_told_it_timed_out(arena_server, db_url: str) -> None:
    arena_server("--house-wait", "0.5", "--move-timeout", "5")  # the client's own 2 s pause counts too
    results = run_clients(("TicTacToe-v0", "slowpoke", Slow()))
    rewards, info = results["slowpoke"]
    [reward] = rewards.values()
    [game_info] = info.values()
    assert reward < 0 and reward == pytest.approx(rating_changes(db_url, "TicTacToe-v0")["slowpoke"])
    assert game_info["outcome"] == "loss" and "timeout" in game_info["reason"]
