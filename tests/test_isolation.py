"""Isolation, as properties over many seeds: in every offline multi-player game of the catalog a seat receives only
what was addressed to it or to everyone, and never reads another seat's private messages; over the server, spectators
and the replay API of a running game see only public messages. (tests/test_privacy.py checks three games' secrets by
name; this file checks every game, and the server's views of a live game.)"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
import textarena as ta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import Client, ServerUnderTest
from websockets.asyncio.client import connect

from agents.baseline import candidate_moves
from arena.engine import Game, Message
from arena.watchdog import time_limit
from games import catalog

MAX_TURNS = 150
MAX_SEATS = 6
JUNK_MOVE = "(not a move)"  # an invalid move: the game's private 'attempted an invalid move' note to the mover
GAME_CALL_LIMIT_S = 5.0
SECRET_LENGTH = 20  # shorter private texts ("[0]") may be in another seat's view by coincidence


def multi_player_families() -> dict[str, list[str]]:
    """Every playable game that seats 2 or more, by family (a game and its -raw/-train variants)."""
    families: dict[str, list[str]] = {}
    for entry in catalog.load().values():
        if entry.playable and seat_counts(entry):
            families.setdefault(entry.family, []).append(entry.env_id)
    return families


def seat_counts(entry: catalog.GameInfo) -> list[int]:
    """The multi-player seat counts a game takes, up to MAX_SEATS."""
    return [n for n in entry.players if 2 <= n <= MAX_SEATS]


FAMILIES = multi_player_families()


@dataclass(frozen=True)
class Routed:
    """One TextArena `add_observation` call: its `to_id` (-1: everyone) and what it appended to each seat."""

    to_id: int
    appended: dict[int, list[Message]]


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[Routed]:
    """Every message the games address, captured where TextArena routes them, with its addressee."""
    calls: list[Routed] = []
    original = ta.State.add_observation

    def capture(self, message, observation_type, from_id=ta.GAME_ID, to_id=-1):
        before = {seat: len(queued) for seat, queued in self.observations.items()}
        result = original(self, message, observation_type, from_id=from_id, to_id=to_id)
        calls.append(Routed(to_id, {seat: [Message(sender, str(text), getattr(kind, "name", str(kind)))
                                           for sender, text, kind in queued[before[seat]:]]
                                    for seat, queued in self.observations.items() if len(queued) > before[seat]}))
        return result

    monkeypatch.setattr(ta.State, "add_observation", capture)
    return calls


def play(env_id: str, seats: int, seed: int, rng: random.Random) -> Game:
    """A game of random listed moves, with now and then an invalid one, under the arena's guard against games
    that loop forever (PublicGoodsGame once every seat is eliminated)."""
    game = Game(env_id, seats, seed, max_turns=MAX_TURNS, guard=lambda: time_limit(GAME_CALL_LIMIT_S))
    game.start()
    while not game.done:
        moves = candidate_moves(game.pending.observation)
        game.act(game.pending.seat, JUNK_MOVE if rng.random() < 0.1 else rng.choice(moves), 0.0)
    return game


def addressed(calls: list[Routed], seat: int) -> list[Message]:
    """What the game addressed to `seat` or to everyone, in order."""
    return [m for call in calls if call.to_id in (seat, -1) for m in call.appended.get(seat, [])]


def secrets(calls: list[Routed], owner: int, reader: int) -> set[str]:
    """Texts addressed to `owner` alone that are in nothing addressed to `reader` (so `reader` has no business
    seeing them), long enough not to turn up by coincidence."""
    readable = [m.text for m in addressed(calls, reader)]
    return {m.text for call in calls if call.to_id == owner for m in call.appended.get(owner, [])
            if len(m.text) >= SECRET_LENGTH and not any(m.text in text for text in readable)}


def check_isolation(game: Game, calls: list[Routed]) -> int:
    """Assert that each seat got exactly what was addressed to it or to everyone, saw no other seat's secrets,
    and that the public view holds only what every seat got; returns how many secrets were checked."""
    seats = range(game.num_players)
    for call in calls:
        assert set(call.appended) == ({call.to_id} if call.to_id != -1 else set(seats)), call
    checked = 0
    for reader in seats:
        log = game.seat_logs[reader]
        assert log == addressed(calls, reader)[:len(log)], f"seat {reader} got a message not addressed to it"
        assert not Counter(game.public_log) - Counter(log), f"the public view holds what seat {reader} never got"
        shown = [turn.observation for turn in game.turns if turn.seat == reader]
        for owner in seats:
            hidden = secrets(calls, owner, reader) if owner != reader else set()
            checked += len(hidden)
            for secret in hidden:
                assert not any(secret in text for text in shown), f"seat {reader} was shown seat {owner}'s {secret!r}"
                assert not any(secret in m.text for m in game.public_log), f"spectators saw {secret!r}"
    return checked


@pytest.mark.parametrize("family", sorted(FAMILIES))
@settings(max_examples=4, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), seed=st.integers(0, 2**32 - 1), rng=st.randoms(use_true_random=False))
def test_a_seat_receives_only_what_was_addressed_to_it(family: str, routed: list[Routed], data: st.DataObject,
                                                       seed: int, rng: random.Random) -> None:
    env_id = data.draw(st.sampled_from(FAMILIES[family]), label="env_id")
    seats = data.draw(st.sampled_from(seat_counts(catalog.lookup(env_id))), label="seats")
    routed.clear()
    game = play(env_id, seats, seed, rng)
    assert check_isolation(game, routed), "every seat has a prompt of its own: no secret means no routing was seen"


def test_the_isolation_check_catches_a_leak(routed: list[Routed]) -> None:
    game = play("KuhnPoker-v0", 2, 1, random.Random(1))
    card = next(m for m in game.seat_logs[0] if "Your card" in m.text)
    game.seat_logs[1].append(card)
    with pytest.raises(AssertionError, match="seat 1 got a message not addressed to it"):
        check_isolation(game, routed)
    game.seat_logs[1].pop()
    next(turn for turn in game.turns if turn.seat == 1).observation += card.text
    with pytest.raises(AssertionError, match="was shown seat"):
        check_isolation(game, routed)


def test_every_multi_player_game_is_checked() -> None:
    ids = [env_id for env_ids in FAMILIES.values() for env_id in env_ids]
    assert len(FAMILIES) > 60 and len(ids) > 200, (len(FAMILIES), len(ids))
    assert {"KuhnPoker-v0", "LiarsDice-v0", "Poker-v0", "Taboo-v0-tv", "ThreePlayerGOPS-v0"} <= set(ids)
    assert not [i for i in ids if catalog.lookup(i).players == (1,)], "single-player games are left out"


# --- the server's views of a live game ----------------------------------------------------------------------

SERVER_GAMES = {"KuhnPoker-v0": [2], "IndianPoker-v0": [2], "LiarsDice-v0": [2, 3], "Poker-v0": [2, 3],
                "ThreePlayerGOPS-v0": [3], "IteratedPrisonersDilemma-v0": [2]}


@dataclass
class Views:
    """What one server game showed: each seat's messages and observations, the spectator's messages, and the
    replay API's answers while the game ran."""

    seats: list[Client]
    spectator: Client
    replays: list[dict]

    def received(self, client: Client) -> list[dict]:
        """Every game message `client` was shown, in `turn`s and `event`s."""
        return [m for msg in client.seen if msg["type"] in ("turn", "event") for m in msg["messages"]]


async def play_on_server(srv: ServerUnderTest, env_id: str, seats: int, seed: int, rng: random.Random) -> Views:
    """A challenge game of `env_id` with this seed between fresh guests playing random moves, watched by a spectator
    from its start, while a poller reads the episode from the replay API."""
    tag = uuid.uuid4().hex[:8]
    players = [await Client.open(srv.ws, guest=f"p{i}-{tag}") for i in range(seats)]
    host = await Client.open(srv.ws, guest=f"host-{tag}")
    names = [f"guest:p{i}-{tag}" for i in range(seats)]
    await host.send(type="challenge", ref=1, env_id=env_id, seed=seed, seats=names)
    for player in players:
        await player.send(type="queue", envs=[env_id])
    started = await host.expect("challenge_started", "error")
    assert started["type"] == "challenge_started", started
    spectator = Client(await connect(srv.ws))
    await spectator.send(type="spectate", game_id=started["game_id"])
    replays: list[dict] = []
    poller = asyncio.create_task(poll_replay(srv, started["game_id"], replays))
    moves = [random.Random(rng.random()) for _ in players]
    await asyncio.gather(*(play_random(player, moves[i]) for i, player in enumerate(players)))
    await spectator.expect("game_over")
    poller.cancel()
    for client in (*players, host, spectator):
        await client.close()
    return Views(players, spectator, replays)


async def play_random(client: Client, rng: random.Random) -> None:
    """Answer every turn with a random listed move (now and then an invalid one) until game_over."""
    while (message := await client.expect("turn", "game_over", timeout=60))["type"] == "turn":
        moves = message["moves"] or candidate_moves(message["observation"])
        move = JUNK_MOVE if rng.random() < 0.1 else rng.choice(moves)
        await client.send(type="action", game_id=message["game_id"], action=move)


async def poll_replay(srv: ServerUnderTest, game_id: int, replays: list[dict]) -> None:
    """Keep the replay API's answers for the episode while it runs."""
    while True:
        episode = await asyncio.to_thread(srv.get, f"/api/episodes/{game_id}")
        if episode["status"] == "running":
            replays.append(episode)
        await asyncio.sleep(0.02)


def public(message: dict) -> str:
    """A game message as comparable text, whatever its `private` flag."""
    return json.dumps(message | {"private": False}, sort_keys=True)


def check_server_views(views: Views) -> int:
    """Assert that the spectator saw only messages every seat got, and that no seat's private message reached another
    seat, the spectator or the replay of the running game; returns how many secrets were checked."""
    received = [views.received(seat) for seat in views.seats]
    watched = views.received(views.spectator)
    assert watched, "the spectator saw nothing"
    assert not any(m.get("private") for m in watched)
    for messages in received:
        assert {public(m) for m in watched} <= {public(m) for m in messages}, "the spectator saw what a seat did not"
    replayed = json.dumps(views.replays)
    assert all(t["observation"] == t["action"] == "" for r in views.replays for t in r["turns"])
    checked = 0
    for owner, messages in enumerate(received):
        for reader, client in enumerate(views.seats):
            readable = [m["text"] for m in received[reader]]
            hidden = {m["text"] for m in messages if m["private"] and len(m["text"]) >= SECRET_LENGTH
                      and not any(m["text"] in text for text in readable)} if reader != owner else set()
            checked += len(hidden)
            shown = [msg["observation"] for msg in client.seen if msg["type"] == "turn"]
            for secret in hidden:
                assert not any(secret in text for text in shown), f"seat {reader} was shown seat {owner}'s {secret!r}"
                assert not any(secret in m["text"] for m in watched), f"the spectator saw {secret!r}"
                assert json.dumps(secret)[1:-1] not in replayed, f"the replay of the running game showed {secret!r}"
    return checked


@pytest.fixture
def arena_server(server) -> ServerUnderTest:
    """A server whose house agents never fill a seat here: every game is a challenge between guests."""
    return server("--house-wait", "600", "--move-timeout", "60")


@settings(max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), seed=st.integers(0, 2**63 - 1), rng=st.randoms(use_true_random=False))
def test_spectators_and_the_replay_of_a_running_game_see_only_public_messages(
        arena_server: ServerUnderTest, data: st.DataObject, seed: int, rng: random.Random) -> None:
    env_id = data.draw(st.sampled_from(sorted(SERVER_GAMES)), label="env_id")
    seats = data.draw(st.sampled_from(SERVER_GAMES[env_id]), label="seats")
    views = asyncio.run(play_on_server(arena_server, env_id, seats, seed, rng))
    assert views.replays, "the replay API was never read while the game ran"
    assert check_server_views(views), "the seats got no private message: the check would prove nothing"
