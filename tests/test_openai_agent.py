"""`openai:` agents against an OpenAI-compatible server on localhost: concurrency, retries, timeouts, records."""

from __future__ import annotations

import asyncio

import pytest
from helpers import arena, play_games
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.base import TurnContext
from agents.moves import valid_moves
from agents.openai_agent import OpenAIAgent
from agents.specs import SpecError, build_agent, parse_spec
from arena.play import GameSpec
from arena.store.models import TurnRow
from arena.testing.fake_openai import FakeLLM
from arena.testing.ports import free_port

BOARD = "[GAME] Current Board ...\nAvailable Moves: '[0]', '[4]', '[8]'"


def agent_for(llm: FakeLLM, **options) -> OpenAIAgent:
    spec = "openai:test-model?" + "&".join([f"base_url={llm.base_url}", *(f"{k}={v}" for k, v in options.items())])
    return build_agent(parse_spec(spec))


def ctx(turn: int = 0) -> TurnContext:
    return TurnContext("TicTacToe-v0", "g1", 1, 0, turn)


async def decide_once(agent: OpenAIAgent, observation: str = BOARD):
    await agent.start()
    try:
        return await agent.decide(observation, ctx())
    finally:
        await agent.close()


def test_every_game_has_its_request_in_flight_at_once_and_turns_record_everything(db_url, engine) -> None:
    async def run() -> list:
        agent = agent_for(llm, temperature="0.5", max_tokens="32")
        other = agent_for(llm)
        other.name = "llm2"
        await agent.start()
        await other.start()
        results = await play_games(db_url, [GameSpec("TicTacToe-v0", i, [agent, other]) for i in range(32)], 32)
        await agent.close()
        await other.close()
        return results

    with FakeLLM(latency=0.2, gather=32) as llm:  # the first answers wait until all 32 games asked
        results = asyncio.run(run())
    assert all(r.outcome.status == "finished" for r in results)
    assert llm.peak == 32, f"only {llm.peak} requests were in flight at once"
    with Session(engine) as session:
        turn = session.scalars(select(TurnRow).order_by(TurnRow.id)).first()
    info = turn.info
    assert info["model"] == "test-model" and info["sampling"] == {"temperature": 0.5, "max_tokens": 32}
    assert info["prompt"][0]["role"] == "system" and "Available Moves" in info["prompt"][-1]["content"]
    assert info["completion"].startswith("I will play [") and info["action"] == turn.action
    assert info["prompt_tokens"] > 0 and info["completion_tokens"] > 0 and info["latency"] >= 0.2
    assert info["attempts"] == 1 and info["errors"] == []
    assert info["constrained"] is False and "choices" not in info
    assert llm.bodies[0]["temperature"] == 0.5 and llm.bodies[0]["max_tokens"] == 32
    assert "structured_outputs" not in llm.bodies[0], "an agent not told to constrain asked for a constraint"


def test_a_constrained_agent_asks_for_a_choice_of_the_listed_moves_and_its_turns_say_so(db_url, engine) -> None:
    async def run():
        agent = agent_for(llm, constrain="1", extract="xml")
        await agent.start()
        [result] = await play_games(db_url, [GameSpec("TicTacToe-v0", 1, [agent, "first"])])
        await agent.close()
        return result

    with FakeLLM() as llm:
        llm.reply = lambda messages: "I will take the centre"  # no move in it: only the constraint makes it one
        result = asyncio.run(run())
    assert result.outcome.status == "finished" and result.outcome.rewards == {0: 1.0, 1: -1.0}
    with Session(engine) as session:
        turns = session.scalars(select(TurnRow).where(TurnRow.seat == 0).order_by(TurnRow.idx)).all()
    assert len(turns) == len(llm.bodies) == 4
    for turn, body in zip(turns, llm.bodies, strict=True):
        moves = valid_moves(turn.observation)
        assert body["structured_outputs"] == {"choice": moves} and "stop" not in body
        assert turn.info["constrained"] is True and turn.info["choices"] == moves
        assert turn.action == turn.info["action"] == turn.info["completion"] == moves[0] and not turn.invalid


def test_a_server_that_ignores_the_constraint_is_not_recorded_as_constraining() -> None:
    with FakeLLM() as llm:
        llm.constrains = "ignore"  # as a server other than vLLM's may: the field is sent, the answer is free
        decision = asyncio.run(decide_once(agent_for(llm, constrain="1")))
    assert llm.bodies[0]["structured_outputs"] == {"choice": ["[0]", "[4]", "[8]"]}
    assert decision.info["completion"] == "I will play [0]" and decision.action == "[0]"
    assert decision.info["constrained"] is False and "choices" not in decision.info


def test_a_server_that_refuses_the_constraint_gets_requests_without_it_from_then_on() -> None:
    async def run() -> list:
        agent = agent_for(llm, constrain="1")
        await agent.start()
        context = TurnContext(env_id="TicTacToe-v0", game_key="g", seed=0, seat=0, turn=0)
        decisions = [await agent.decide(BOARD, context) for _ in range(2)]
        await agent.close()
        return decisions

    with FakeLLM() as llm:
        llm.constrains = "refuse"  # as OpenAI's own API does: HTTP 400 for an argument it does not know
        decisions = asyncio.run(run())
    assert ["structured_outputs" in body for body in llm.bodies] == [True, False, False]
    assert [d.action for d in decisions] == ["[0]", "[0]"], "the game goes on, unconstrained"
    assert all(d.info["constrained"] is False for d in decisions)


def test_rate_limits_and_server_errors_are_retried_with_backoff() -> None:
    with FakeLLM() as llm:
        llm.fail = [429, 503]
        decision = asyncio.run(decide_once(agent_for(llm, retries="3")))
    assert decision.action == "[0]"
    assert decision.info["attempts"] == 3 and decision.info["errors"] == ["HTTP 429", "HTTP 503"]


def test_retries_give_up_with_the_errors_named() -> None:
    with FakeLLM() as llm:
        llm.fail = [500] * 10
        with pytest.raises(RuntimeError, match="gave up after 3 attempts: HTTP 500; HTTP 500; HTTP 500"):
            asyncio.run(decide_once(agent_for(llm, retries="2")))


def test_each_request_has_its_own_timeout() -> None:
    with FakeLLM(latency=3.0) as llm, pytest.raises(RuntimeError, match="timeout after 0.3 s"):
        asyncio.run(decide_once(agent_for(llm, timeout="0.3", retries="1")))


def test_a_malformed_completion_is_an_invalid_move_not_a_crash(db_url, engine) -> None:
    async def run():
        agent = agent_for(llm)
        await agent.start()
        [result] = await play_games(db_url, [GameSpec("TicTacToe-v0", 1, [agent, "first"])])
        await agent.close()
        return result

    with FakeLLM() as llm:
        llm.malformed = True
        result = asyncio.run(run())
    assert result.outcome.status == "finished" and result.outcome.rewards == {0: -1.0, 1: 1.0}
    with Session(engine) as session:
        turns = session.scalars(select(TurnRow).order_by(TurnRow.idx)).all()
    assert [t.invalid for t in turns] == [True, True] and turns[0].info["completion"] == ""


def test_reasoning_is_stripped_before_extraction_and_kept() -> None:
    with FakeLLM() as llm:
        llm.think = True
        decision = asyncio.run(decide_once(agent_for(llm)))
    assert decision.action == "[0]" and "centre" in decision.info["reasoning"]


def test_conversation_mode_grows_one_chat_per_seat() -> None:
    async def two_turns(agent: OpenAIAgent) -> None:
        await agent.start()
        await agent.decide(BOARD, ctx(0))
        await agent.decide(BOARD + "\n[GAME] Player 1 placed X.\nAvailable Moves: '[8]'", ctx(2))
        await agent.close()

    with FakeLLM() as llm:
        asyncio.run(two_turns(agent_for(llm, conversation="1")))
    roles = [m["role"] for m in llm.bodies[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert llm.bodies[-1]["messages"][-1]["content"].startswith("[GAME] Player 1 placed X.")


def test_start_fails_clearly_on_unreachable_endpoints_and_unknown_models() -> None:
    dead = OpenAIAgent("m", "m", f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(RuntimeError, match="cannot reach an OpenAI-compatible server"):
        asyncio.run(dead.start())
    with FakeLLM() as llm, pytest.raises(RuntimeError, match="does not serve model 'gpt-9'"):
        asyncio.run(OpenAIAgent("gpt-9", "x", llm.base_url).start())


def test_bad_openai_specs_are_refused() -> None:
    with pytest.raises(SpecError, match="use openai:MODEL"):
        build_agent(parse_spec("openai"))
    with pytest.raises(SpecError, match="unknown options"):
        build_agent(parse_spec("openai:m?colour=red"))
    with pytest.raises(SpecError, match="extract must be one of"):
        build_agent(parse_spec("openai:m?extract=telepathy"))


def test_arena_play_with_an_openai_agent_end_to_end(db_url: str) -> None:
    with FakeLLM() as llm:
        spec = f"openai:test-model?base_url={llm.base_url},random"
        ok = arena("play", "TicTacToe-v0", "--agents", spec, "--games", "2", "--db", db_url)
        assert ok.returncode == 0, ok.stderr
        missing = arena("play", "TicTacToe-v0", "--agents", f"openai:nope?base_url={llm.base_url},random", "--db",
                        db_url)
    assert missing.returncode == 2 and "does not serve model 'nope'" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
