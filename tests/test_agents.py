"""Agent specs, move reading, and the baseline agents."""

from __future__ import annotations

import asyncio

import pytest

from agents.base import TurnContext
from agents.baseline import FirstAgent, RandomAgent, candidate_moves
from agents.moves import bracketed_tokens, valid_moves
from agents.specs import SpecError, build_agent, parse_spec, parse_specs
from agents.textarena_adapter import TextArenaAgent
from arena.engine import Game

CHESS = "[GAME] Current board ...\nValid moves: [g1h3], [g1f3], [b1c3]"
TICTACTOE = "Available Moves: '[0]', '[1]', '[8]'"
KUHN = "[GAME] Your available actions are: '[check]', '[bet]'"


def context(turn: int = 0, seed: int = 1) -> TurnContext:
    return TurnContext("TicTacToe-v0", "g1", seed, 0, turn)


def test_valid_moves_are_read_from_the_listing() -> None:
    assert valid_moves(CHESS) == ["[g1h3]", "[g1f3]", "[b1c3]"]
    assert valid_moves(TICTACTOE) == ["[0]", "[1]", "[8]"]
    assert valid_moves(KUHN) == ["[check]", "[bet]"]
    assert valid_moves("Remove with '[pile quantity]', e.g. '[0 3]'.") == []


def test_bracketed_fallback_skips_speaker_tags() -> None:
    text = "[GAME] Make a bid like '[Bid: 3, 4]' or '[Call]'.\n[Player 1] [Bid: 1, 2]"
    assert bracketed_tokens(text) == ["[Bid: 3, 4]", "[Call]", "[Bid: 1, 2]"]
    assert candidate_moves("no moves here at all") == ["[0]"]


def test_random_is_reproducible_from_seed_and_varies() -> None:
    agent = RandomAgent(seed=3)
    picks = [asyncio.run(agent.decide(CHESS, context(turn))).action for turn in range(30)]
    again = [asyncio.run(RandomAgent(seed=3).decide(CHESS, context(turn))).action for turn in range(30)]
    assert picks == again
    assert set(picks) == {"[g1h3]", "[g1f3]", "[b1c3]"}
    other = [asyncio.run(RandomAgent(seed=4).decide(CHESS, context(turn))).action for turn in range(30)]
    assert other != picks


def test_baselines_are_plain_textarena_agents() -> None:
    assert FirstAgent()(TICTACTOE) == "[0]"
    one, two = RandomAgent(seed=1), RandomAgent(seed=1)
    picks = [one(TICTACTOE) for _ in range(20)]
    assert picks == [two(TICTACTOE) for _ in range(20)]
    assert set(picks) == {"[0]", "[1]", "[8]"}


def test_first_plays_only_valid_moves_in_a_real_game() -> None:
    game = Game("TicTacToe-v0", 2, seed=1)
    game.start()
    agent = FirstAgent()
    while not game.done:
        game.act(game.pending.seat, asyncio.run(agent.decide(game.pending.observation, context())).action, 0.0)
    assert not any(t.invalid for t in game.turns)
    assert game.outcome.rewards == {0: 1.0, 1: -1.0}  # first takes 0,1,2 across the top row


@pytest.mark.parametrize("text, name, kind, target, params", [
    ("random", "random", "random", "", {}),
    ("random?seed=7", "random?seed=7", "random", "", {"seed": "7"}),
    ("alice=first", "alice", "first", "", {}),
    ("bob=python:fixtures.ta_agents:make_center?prefer=2", "bob", "python", "fixtures.ta_agents:make_center",
     {"prefer": "2"}),
])
def test_spec_parsing(text: str, name: str, kind: str, target: str, params: dict) -> None:
    spec = parse_spec(text)
    assert (spec.name, spec.kind, spec.target, spec.params) == (name, kind, target, params)


@pytest.mark.parametrize("text, message", [
    ("gpt4", "unknown kind 'gpt4'"),
    ("Random", "not an agent kind"),
    ("random:x", "takes no ':' target"),
    ("random?seed=abc", "seed must be an integer"),
    ("random?colour=red", "takes only 'seed'"),
    ("python:nosuchmodule_xyz:Agent", "cannot import 'nosuchmodule_xyz'"),
    ("python:fixtures.ta_agents:Missing", "has no 'Missing'"),
    ("python:fixtures.ta_agents", "use python:MODULE:ATTRIBUTE"),
    ("python:fixtures.ta_agents:NOT_AN_AGENT", "not a textarena.Agent or a factory"),
])
def test_bad_specs_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        build_agent(parse_spec(text))


def test_empty_agent_list_is_an_error() -> None:
    with pytest.raises(SpecError, match="no agents given"):
        parse_specs(" , ")


def test_python_spec_factory_gives_each_game_its_own_agent() -> None:
    agent = build_agent(parse_spec("python:fixtures.ta_agents:CenterFirst?prefer=4"))
    assert isinstance(agent, TextArenaAgent)
    for game in ("g1", "g2"):
        ctx = TurnContext("TicTacToe-v0", game, 1, 0, 0)
        assert asyncio.run(agent.decide(TICTACTOE + ", '[4]'", ctx)).action == "[4]"
    assert {a.calls for a in agent._per_game.values()} == {1}
    agent.end_game("g1")
    assert list(agent._per_game) == ["g2"]


def test_python_spec_instance_is_shared() -> None:
    agent = build_agent(parse_spec("python:fixtures.ta_agents:SHARED"))
    ctx = TurnContext("TicTacToe-v0", "g", 1, 0, 0)
    assert asyncio.run(agent.decide("'[8]'", ctx)).action == "[8]"
