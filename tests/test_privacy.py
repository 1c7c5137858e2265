"""No seat ever sees another seat's private information; spectators see only public messages."""

from __future__ import annotations

import random
import re

import pytest
import textarena as ta

from agents.baseline import candidate_moves
from arena.engine import Game

PRIVATE_GAMES = ["KuhnPoker-v0", "Battleship-v0", "LiarsDice-v0"]


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """Every (to_id, message) the games address, captured where TextArena routes them."""
    sent: list[tuple[int, str]] = []
    original = ta.State.add_observation

    def capture(self, message, observation_type, from_id=ta.GAME_ID, to_id=-1):
        sent.append((to_id, str(message)))
        return original(self, message, observation_type, from_id=from_id, to_id=to_id)

    monkeypatch.setattr(ta.State, "add_observation", capture)
    return sent


def play(env_id: str, seed: int, checks=None) -> Game:
    """A game of random moves; `checks(game, seat, observation)` runs before every move."""
    rng = random.Random(seed)
    game = Game(env_id, 2, seed)
    game.start()
    while not game.done and len(game.turns) < 400:
        seat, observation = game.pending.seat, game.pending.observation
        if checks:
            checks(game, seat, observation)
        game.act(seat, rng.choice(candidate_moves(observation)), 0.0)
    return game


@pytest.mark.parametrize("env_id", PRIVATE_GAMES)
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_private_messages_reach_only_their_seat(env_id: str, seed: int, routed) -> None:
    game = play(env_id, seed)
    to_seat = {s: {m for to, m in routed if to == s} for s in (0, 1)}
    for seat in (0, 1):
        other = 1 - seat
        secrets = {m for m in to_seat[seat] if len(m) > 20 and not any(m in o for o in to_seat[other])}
        assert secrets, "the game sent this seat nothing private; the test would prove nothing"
        shown_to_other = [t.observation for t in game.turns if t.seat == other]
        shown_to_other += [m.text for m in game.seat_logs[other]]
        public = [m.text for m in game.public_log]
        for secret in secrets:
            assert not any(secret in text for text in shown_to_other), f"seat {other} saw: {secret[:200]!r}"
            assert secret not in public, f"spectators saw: {secret[:80]}"


def test_liars_dice_opponent_dice_never_shown() -> None:
    def checks(game: Game, seat: int, observation: str) -> None:
        dice = game._env.state.game_state["dice_rolls"]
        mine = ", ".join(map(str, dice[seat]))
        theirs = ", ".join(map(str, dice[1 - seat]))
        latest = re.findall(r"Your current Dice are: ([\d, ]+)", observation)[-1].strip()
        assert latest == mine
        if theirs != mine:
            assert f"Your current Dice are: {theirs}\n" not in observation.split("New round")[-1]

    for seed in range(5):
        play("LiarsDice-v0", seed, checks)


def test_kuhn_poker_each_seat_sees_only_its_own_card() -> None:
    names = {0: "J", 1: "Q", 2: "K"}

    def checks(game: Game, seat: int, observation: str) -> None:
        cards = game._env.state.game_state["player_cards"]
        this_round = observation.split("### Starting round")[-1]
        shown = re.findall(r"Your card is: '(\w)'", this_round)
        assert shown == [names[cards[seat]]]
        assert f"card is: '{names[cards[1 - seat]]}'" not in this_round

    for seed in range(6):
        play("KuhnPoker-v0", seed, checks)


def test_battleship_opponent_ships_never_shown() -> None:
    def checks(game: Game, seat: int, observation: str) -> None:
        own_board = game._env.state.game_state["board"][seat]
        size = len(own_board)
        lines = [line.split() for line in observation.split("Your Ships")[-1].splitlines()]
        rows = [t for t in lines if len(t) == 2 * size + 2 and t[0] == t[size + 1] and t[0].isalpha()]
        assert [r[1:size + 1] for r in rows] == own_board
        for row in rows:
            assert set(row[size + 2:]) <= {"~", "X", "O"}, "the tracking grid shows an unhit ship"

    for seed in range(4):
        play("Battleship-v0", seed, checks)
