"""RL rollouts on a real vLLM engine (vLLM's CPU build, Gemma 3 270M): token ids from the engine (the suite's
shared one), masks that line up with Gemma's own tokenizer, and `evaluate_llm` with a `vllm.LLM`.

These need vLLM, so they run in `.venv-vllm`, which `make test` builds (see tests/test_vllm_agent.py).
"""

from __future__ import annotations

import pytest
from helpers import VLLM_SPEC, installed

from arena.envs.textarena_env import TextArenaMultistepEnv
from arena.envs.tokens import TokenChat, load_tokenizer
from arena.prompting import PLAIN_CUE

HAS_VLLM = installed("vllm")
pytestmark = [pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed here: `make test` runs this in "
                                                      ".venv-vllm"), pytest.mark.slow]
ENV = "TicTacToe-v0"


@pytest.fixture(scope="module")
def model_folder() -> str:
    """The converted Gemma 3 270M folder vLLM loads (its tokenizer.json is the one vLLM uses)."""
    from agents.vllm_agent import resolve_model

    return resolve_model(None)


def test_masks_line_up_with_gemmas_own_tokenizer(model_folder: str) -> None:
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(model_folder)
    chat = TokenChat("You are playing a game.", raw)
    replies = ["I play [4]", " [0]<eos>", "[8]"]
    observations = ["Board one. Available Moves: '[4]'", "Board one. Available Moves: '[4]'\nBoard two: '[0]'",
                    "Board one. Available Moves: '[4]'\nBoard two: '[0]'\nBoard three: '[8]'"]
    prompts = []
    for observation, reply in zip(observations, replies, strict=True):
        chat.observe(observation)
        prompts.append(chat.prompt_ids)
        chat.answer(reply)
    ids, mask = chat.ids, chat.mask
    assert ids[0] == raw.bos_token_id and len(ids) == len(mask) == len(chat.logprobs)
    for earlier, later in zip(prompts, prompts[1:], strict=False):
        assert later[:len(earlier)] == earlier, "each turn's prompt extends the last: nothing re-tokenized"
    sampled = [raw.decode([i for i, m in zip(ids[a:b], mask[a:b], strict=True) if m]) for a, b in _runs(mask, 1)]
    assert sampled == replies
    environment = [raw.decode(ids[a:b]) for a, b in _runs(mask, 0)]
    assert environment[0] == raw.bos_token + "You are playing a game.\n\n" + observations[0] + PLAIN_CUE
    assert environment[1:] == ["\n\nBoard two: '[0]'" + PLAIN_CUE, "\n\nBoard three: '[8]'" + PLAIN_CUE]
    assert load_tokenizer(model_folder).encode("\n\nBoard two: '[0]'" + PLAIN_CUE) == ids[slice(*_runs(mask, 0)[1])]


@pytest.mark.asyncio(loop_scope="session")
async def test_rollout_token_ids_and_logprobs_come_from_the_engine(vllm_agent) -> None:
    from agents.specs import build_agent, parse_spec

    agent = build_agent(parse_spec(VLLM_SPEC.replace("max_tokens=8", "max_tokens=6")))  # the suite's engine
    await agent.start()
    assert agent._engine is vllm_agent._engine
    sampled: list[list[int]] = []
    generate = agent.generate

    async def spy(messages, prompt_ids=None, choices=None):
        reply = await generate(messages, prompt_ids, choices)
        sampled.append(reply.token_ids)
        return reply

    agent.generate = spy
    try:
        env = TextArenaMultistepEnv(ENV, opponent="first", max_steps_per_episode=4)
        episodes = await env.rollout(agent, 3, concurrency=3)
    finally:
        await agent.close()
    trajectories = [t for e in episodes for t in e.trajectories]
    assert all(t.token_source == "engine" for t in trajectories)
    ours = sorted(tuple(t.token_ids[a:b]) for t in trajectories for a, b in _runs(t.mask, 1))
    assert ours == sorted(tuple(ids) for ids in sampled if ids), "the sampled spans are vLLM's own ids"
    for t in trajectories:
        model_logprobs = [p for p, m in zip(t.logprobs, t.mask, strict=True) if m]
        assert model_logprobs and all(isinstance(p, float) and p <= 0 for p in model_logprobs)


def test_evaluate_llm_with_a_vllm_llm(model_folder: str) -> None:
    # A user's own `vllm.LLM` is an engine of its own (vLLM's synchronous one): the suite starts it here, once.
    from vllm import LLM

    llm = LLM(model=model_folder, max_model_len=2048, enforce_eager=True, gpu_memory_utilization=0.3, seed=1)
    env = TextArenaMultistepEnv(ENV, opponent="random", max_steps_per_episode=4)
    metrics = env.evaluate_llm(llm, 4, concurrency=4)
    assert metrics["episodes"] == 4 and metrics["mean_turns"] >= 1 and metrics["mean_completion_tokens"] > 0
    assert metrics["wins"] + metrics["draws"] + metrics["losses"] + metrics["aborted"] == pytest.approx(1.0)


def _runs(mask: list[int], value: int) -> list[tuple[int, int]]:
    """(start, end) of each run of `value` in `mask`."""
    runs, start = [], None
    for i, m in enumerate([*mask, None]):
        if m == value and start is None:
            start = i
        elif m != value and start is not None:
            runs.append((start, i))
            start = None
    return runs
