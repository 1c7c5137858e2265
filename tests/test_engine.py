"""The sans-I/O engine: determinism, invalid-move policies, forfeits and the public view."""

from __future__ import annotations

import random

import pytest
from helpers import play_out

from agents.baseline import candidate_moves
from arena.engine import (
    ActionRequired,
    EngineError,
    Game,
    GameOver,
    InvalidMovePolicy,
    PublicMessages,
    TurnRecorded,
)

CROWD = 100  # games interleaved with the target: one would disturb it without isolation; 100 keep it short


def random_policy(seed: int):
    """A seeded random mover, private to one game."""
    rng = random.Random(seed)
    return lambda seat, observation: rng.choice(candidate_moves(observation))


def transcript(game: Game) -> list[tuple[int, str, str]]:
    """Everything each seat was shown and did."""
    return [(t.seat, t.observation, t.action) for t in game.turns]


@pytest.mark.parametrize("env_id", ["PigDice-v0", "LiarsDice-v0", "Battleship-v0"])
def test_same_seed_same_game_alone_and_interleaved_with_100(env_id: str) -> None:
    alone = play_out(Game(env_id, 2, seed=7), random_policy(1))

    crowd = [Game(env_id, 2, seed=1000 + i) for i in range(CROWD)]  # each draws between two of the target's moves
    target = Game(env_id, 2, seed=7)
    policies = [random_policy(i) for i in range(CROWD)]
    target_policy = random_policy(1)
    for game in [target, *crowd]:
        game.start()
    live = [target, *crowd]
    while not target.done:
        for i, game in enumerate(live):
            if game.done:
                continue
            pending = game.pending
            choose = target_policy if game is target else policies[i - 1]
            game.act(pending.seat, choose(pending.seat, pending.observation), 0.0)
        random.random()  # the process's own randomness moves on between games too
    assert transcript(target) == transcript(alone)
    assert target.outcome == alone.outcome


def test_global_random_state_is_untouched_by_games() -> None:
    random.seed(123)
    expected = random.Random(123).random()
    play_out(Game("LiarsDice-v0", 2, seed=5), random_policy(2))
    assert random.random() == expected


def test_numpy_randomness_is_per_game_and_leaves_the_process_alone() -> None:
    numpy = pytest.importorskip("numpy")
    numpy.random.seed(1)
    outside = numpy.random.RandomState(1).randint(0, 10**6, 6)
    draws = []
    for seed in (5, 5, 6):
        with Game("TicTacToe-v0", 2, seed=seed)._own_randomness():  # what every call into game code runs in
            draws.append(list(numpy.random.randint(0, 10**6, 3)))
    assert draws[0] == draws[1] == list(numpy.random.RandomState(5).randint(0, 10**6, 3)) != draws[2]
    with Game("TicTacToe-v0", 2, seed=7)._own_randomness():
        numpy.random.seed(99)  # a game may reseed; that must stay inside the game
    assert list(numpy.random.randint(0, 10**6, 6)) == list(outside)


def test_turn_log_records_seat_observation_action_validity_and_elapsed() -> None:
    game = Game("TicTacToe-v0", 2, seed=1)
    events = game.start()
    assert isinstance(events[-1], ActionRequired) and events[-1].seat == 0
    assert "Available Moves" in events[-1].observation
    events = game.act(0, "[4]", elapsed=1.25, info={"tokens": 3})
    turn = events[0].turn
    assert isinstance(events[0], TurnRecorded)
    assert (turn.index, turn.seat, turn.action, turn.invalid, turn.elapsed, turn.info) == (
        0, 0, "[4]", False, 1.25, {"tokens": 3})
    assert "Available Moves" in turn.observation
    assert game.pending.seat == 1


def test_engine_refuses_out_of_turn_and_finished_games() -> None:
    game = Game("TicTacToe-v0", 2, seed=1)
    game.start()
    with pytest.raises(EngineError, match="seat 0's turn"):
        game.act(1, "[4]", 0.0)
    game.forfeit(0, "resigned")
    with pytest.raises(EngineError, match="already over"):
        game.act(0, "[4]", 0.0)


def test_textarena_policy_allows_one_resubmit_then_loses() -> None:
    game = Game("TicTacToe-v0", 2, seed=1)
    game.start()
    game.act(0, "[banana]", 0.0)
    assert game.turns[-1].invalid and game.pending.seat == 0 and not game.done
    assert "resubmit" in game.pending.observation
    game.act(0, "[banana]", 0.0)
    assert game.done and game.outcome.rewards == {0: -1.0, 1: 1.0}
    assert [t.invalid for t in game.turns] == [True, True]


def test_forfeit_policy_loses_on_the_first_invalid_move() -> None:
    game = Game("TicTacToe-v0", 2, seed=1, policy=InvalidMovePolicy.parse("forfeit"))
    game.start()
    events = game.act(0, "[banana]", 0.0)
    assert isinstance(events[-1], GameOver)
    assert game.outcome.rewards == {0: -1.0, 1: 1.0} and len(game.turns) == 1


def test_retry_policy_resubmits_up_to_n_times_with_feedback() -> None:
    game = Game("TicTacToe-v0", 2, seed=1, policy=InvalidMovePolicy.parse("retry:3"))
    game.start()
    for _ in range(3):
        game.act(0, "[banana]", 0.0)
        assert not game.done and game.pending.seat == 0
        assert "attempted an invalid move" in game.pending.observation
    game.act(0, "[4]", 0.0)
    assert game.pending.seat == 1 and not game.done
    for _ in range(4):
        game.act(1, "[4]", 0.0)  # occupied square: invalid
    assert game.outcome.rewards == {0: 1.0, 1: -1.0}
    assert sum(t.invalid for t in game.turns) == 7


def test_policy_parse_rejects_unknown_text() -> None:
    assert str(InvalidMovePolicy.parse("retry:2")) == "retry:2"
    with pytest.raises(ValueError, match="textarena, forfeit or retry:N"):
        InvalidMovePolicy.parse("retry")


def test_slow_move_forfeits_with_the_reason_recorded() -> None:
    game = Game("TicTacToe-v0", 2, seed=1, move_timeout=5.0)
    game.start()
    game.act(0, "[4]", elapsed=1.0)
    game.act(1, "[0]", elapsed=6.5)
    assert game.outcome.rewards == {0: 1.0, 1: -1.0}
    assert game.outcome.forfeit_seat == 1 and "timeout" in game.outcome.reason
    assert game.turns[-1].error.startswith("timeout") and game.turns[-1].elapsed == 6.5


def test_agent_error_forfeits_and_is_recorded() -> None:
    game = Game("TicTacToe-v0", 2, seed=1)
    game.start()
    game.fail(0, "RuntimeError: model crashed", elapsed=0.5)
    assert game.outcome.rewards == {0: -1.0, 1: 1.0}
    assert game.turns[-1].error == "RuntimeError: model crashed"
    assert "agent error" in game.outcome.reason


def test_abort_is_unrated_and_has_no_rewards() -> None:
    game = Game("TicTacToe-v0", 2, seed=1)
    game.start()
    events = game.abort("server shutting down")
    assert events[0].outcome.status == "aborted" and game.outcome.rewards == {}


def test_spectators_see_moves_but_not_private_prompts() -> None:
    game = Game("KuhnPoker-v0", 2, seed=3)
    events = game.start()
    public = [m for e in events if isinstance(e, PublicMessages) for m in e.messages]
    assert not any("Your card" in m.text for m in public)
    game.act(game.pending.seat, "[check]", 0.0)
    assert any("[check]" in m.text for m in game.public_log)
    assert all("Your card" not in m.text for m in game.public_log)


def test_a_fresh_env_per_game_keeps_prompts_from_doubling() -> None:
    first = Game("TicTacToe-v0", 2, seed=1)
    second = Game("TicTacToe-v0", 2, seed=1)
    first.start()
    second.start()
    assert first.pending.observation == second.pending.observation
    assert first.pending.observation.count("You are Player 0") == 1


def test_a_game_without_an_end_is_aborted_at_the_turn_limit() -> None:
    game = Game("TicTacToe-v0", 2, seed=1, max_turns=3)
    game.start()
    for seat, move in [(0, "[0]"), (1, "[1]"), (0, "[2]")]:
        game.act(seat, move, 0.0)
    assert game.outcome.status == "aborted" and "turn limit" in game.outcome.reason


def test_a_game_stuck_in_a_loop_is_aborted_by_the_guard() -> None:
    from arena.watchdog import time_limit

    moves = ["[X]", "[X]", "[15]", "[X]", "[remained silent]", "[X]", "[15]", "[remained silent]", "[X]",
             "[X]", "[X]", "[15]", "[15]", "[15]", "[remained silent]", "[X]", "[X]", "[X]"]
    game = Game("PublicGoodsGame-v0", 2, seed=1, guard=lambda: time_limit(0.5))
    game.start()
    for move in moves:  # ends with both players eliminated: TextArena 0.7.4 then loops forever
        game.act(game.pending.seat, move, 0.0)
    assert game.outcome.status == "aborted"
    assert "GameStalled" in game.outcome.reason and "0.5 s" in game.outcome.reason
