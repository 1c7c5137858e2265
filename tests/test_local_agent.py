"""`local`: Gemma 3 270M from PyPI, run by llama.cpp on CPU, plays a real game end to end."""

from __future__ import annotations

import asyncio

from helpers import arena, play_games
from server_helpers import Client, InProcessServer
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from agents.llm_options import LLMOptions
from agents.local_agent import LocalAgent, choice_grammar
from agents.moves import valid_moves
from arena.play import schedule
from arena.server.settings import default_house
from arena.store.models import EpisodeRow, TurnRow


def test_a_real_small_model_plays_a_game_and_every_turn_is_recorded(db_url: str) -> None:
    result = arena("play", "TicTacToe-v0", "--agents", "local?max_tokens=16&seed=1,first", "--games", "1", "--seed",
                   "3", "--db", db_url)
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
        assert info["constrained"] is False and "choices" not in info
    engine.dispose()


def test_a_constrained_small_model_plays_whole_games_of_listed_moves_only(db_url: str, engine) -> None:
    games = schedule("TicTacToe-v0", ["local?constrain=1&seed=1", "first"], 4, seed=3)  # the model on both seats
    results = asyncio.run(play_games(db_url, games))
    assert [r.outcome.status for r in results] == ["finished"] * 4
    with Session(engine) as session:
        turns = session.scalars(select(TurnRow).order_by(TurnRow.episode_id, TurnRow.idx)).all()
    model_turns = [t for t in turns if t.info.get("model")]
    for result in results:  # no game ended on a first bad move: the model moved at least twice in each
        assert sum(t.episode_id == result.episode_id for t in model_turns) >= 2
    assert not any(t.invalid for t in turns)
    for turn in model_turns:
        moves = valid_moves(turn.observation)
        assert turn.info["constrained"] is True and turn.info["choices"] == moves
        assert turn.action == turn.info["completion"] and turn.action in moves


def test_choices_with_quotes_and_backslashes_are_escaped_in_the_grammar() -> None:
    choices = ['[say "hi"]', "[a\\b]", "[tab\tx]"]
    assert choice_grammar(choices) == 'root ::= "[say \\"hi\\"]" | "[a\\\\b]" | "[tab\\tx]"'

    async def replies() -> list:
        agent = LocalAgent("l", options=LLMOptions(sampling={"max_tokens": 1}))
        await agent.start()
        return [await agent.generate([{"role": "user", "content": f"Pick one ({i})."}], choices=choices)
                for i in range(3)]

    for reply in asyncio.run(replies()):  # llama.cpp read the grammar: each reply is exactly one choice
        assert reply.text in choices and reply.constrained


def test_a_missing_gguf_file_fails_at_start_up(db_url: str, tmp_path) -> None:
    missing = tmp_path / "nope.gguf"
    result = arena("play", "TicTacToe-v0", "--agents", f"local:{missing},first", "--db", db_url)
    assert result.returncode == 2 and f"GGUF file not found: {missing}" in result.stderr


def test_local_is_the_default_house_llm_without_a_gpu_or_endpoint(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert default_house() == ["random", "local"]
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8001/v1")
    monkeypatch.setenv("ARENA_HOUSE_MODEL", "my-model")
    assert default_house() == ["random", "openai:my-model"]


async def test_a_guest_plays_the_default_house_llm_on_a_server_started_with_its_defaults(db_url: str) -> None:
    srv = InProcessServer(db_url, "--house-wait", "60", default_house=True).start()
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
