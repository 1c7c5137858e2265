"""`TextArenaMultistepEnv`: prompts as the server sends them, per-seat self-play, GRPO groups, rewards,
token-faithful sequences, trainer-driven episodes, and clear errors."""

from __future__ import annotations

import asyncio
import re

import pytest
import trueskill
from rl_helpers import CharTokenizer
from server_helpers import Client
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_tournament_server import create_agents

from agents.base import Agent, Decision, TurnContext
from agents.specs import SpecError, parse_spec
from arena.envs.rewards import (
    RoleBaseline,
    outcome_of,
    outcome_reward,
    parse_reward_mode,
    surprise_reward,
    trueskill_reward,
)
from arena.envs.textarena_env import TextArenaMultistepEnv
from arena.prompting import PLAIN_CUE, Conversation
from arena.ratings import RatingChange, win_probability
from arena.store.database import open_database
from arena.store.models import EpisodeRow, RatingHistoryRow, TurnRow
from arena.testing.fake_openai import FakeLLM
from games.catalog import GameError

ENV = "TicTacToe-v0"


class Scripted(Agent):
    """Plays the moves it is given in order, then the first listed move."""

    def __init__(self, moves: list[str], name: str = "scripted") -> None:
        self.moves, self.name = list(moves), name

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        if self.moves:
            return Decision(self.moves.pop(0))
        return Decision(re.findall(r"\[\d\]", observation.rsplit("Available Moves:", 1)[-1])[0])


def rollout(env: TextArenaMultistepEnv, policy, n: int, **options) -> list:
    return asyncio.run(env.rollout(policy, n, **options))


async def test_an_episodes_prompts_are_what_the_server_sends_for_the_same_game_and_seed(server, db_url) -> None:
    srv = server()
    tokens = create_agents(db_url, "a", "organizer")
    organizer, player = await Client.open(srv.ws, token=tokens["organizer"]), await Client.open(srv.ws,
                                                                                                token=tokens["a"])
    await organizer.send(type="challenge", ref=1, env_id=ENV, seed=123, seats=["a", "random"])
    await player.send(type="queue", envs=[ENV])
    await player.play_first_moves()
    sent = [m["observation"] for m in player.seen if m["type"] == "turn"]

    env = TextArenaMultistepEnv(ENV, seed=123, opponent="random")
    [episode] = await env.rollout("first", 1)
    [trajectory] = episode.trajectories
    assert trajectory.seat == 0 and len(sent) >= 3
    assert [step.observation for step in trajectory.steps] == sent
    conversation = Conversation(trajectory.messages[0]["content"], growing=True)
    for observation, step in zip(sent, trajectory.steps, strict=True):
        conversation.prompt(observation)
        conversation.answered(step.completion)
    assert trajectory.messages == conversation.messages
    assert trajectory.messages[0]["content"].startswith(f"You are playing {ENV}, a text game, as player 0")


def test_self_play_gives_every_seat_its_own_trajectory() -> None:
    env = TextArenaMultistepEnv(ENV, opponent="self")
    episodes = rollout(env, "random", 6)
    for episode in episodes:
        assert episode.agents == ["policy", "policy"] and episode.status == "finished"
        first, second = episode.trajectories
        assert (first.seat, second.seat) == (0, 1)
        assert [s.turn for s in first.steps] == list(range(0, 2 * len(first.steps), 2))
        assert [s.turn for s in second.steps] == list(range(1, 2 * len(second.steps), 2))
        assert "as player 1" in second.messages[0]["content"] and "Player 1" in second.steps[0].observation
        outcomes = {first.outcome, second.outcome}
        assert outcomes in ({"win", "loss"}, {"draw"})
        assert first.reward == -second.reward and first.reward == episode.rewards[0]


def test_grpo_groups_share_seed_seat_and_opening() -> None:
    env = TextArenaMultistepEnv(ENV, opponent="random", seed=40)
    episodes = rollout(env, "random?seed=3", 8, group_size=4)
    assert [e.group for e in episodes] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [e.seed for e in episodes] == [40] * 4 + [41] * 4
    for group in (0, 1):
        members = [e.trajectories[0] for e in episodes if e.group == group]
        assert {t.seat for t in members} == {group}
        assert len({t.steps[0].observation for t in members}) == 1, "every rollout of a group starts the same"
    assert episodes[0].trajectories[0].steps[0].observation != episodes[4].trajectories[0].steps[0].observation


def test_reward_modes_on_hand_made_outcomes() -> None:
    assert parse_reward_mode("surprise") == "surprise"
    with pytest.raises(ValueError, match="reward_mode must be one of outcome, trueskill, surprise"):
        parse_reward_mode("elo")
    assert [outcome_of({0: 1, 1: -1}, s) for s in (0, 1)] == ["win", "loss"]
    assert outcome_of({0: 0, 1: 0}, 1) == "draw" and outcome_of({0: 1, 1: 1, 2: -1}, 0) == "win", "a team win"
    assert outcome_reward("win") == 1.0 and outcome_reward("draw") == 0.0 and outcome_reward("loss") == -1.0
    assert outcome_reward("win", invalid_moves=2, invalid_move_penalty=0.25) == 0.5
    assert outcome_reward("aborted") == 0.0
    changes = [RatingChange(1, "me", ENV, 25.0, 8.0, 27.0, 7.0), RatingChange(1, "me", "overall", 25.0, 8.0, 26.0, 7.5),
               RatingChange(2, "you", ENV, 25.0, 8.0, 23.0, 7.0)]
    assert trueskill_reward(changes, "me", ENV) == pytest.approx((27 - 21) - (25 - 24))
    assert trueskill_reward(changes, "nobody", ENV) == 0.0
    strong, weak = trueskill.Rating(30, 2), trueskill.Rating(20, 2)
    expected = win_probability(strong, weak)
    assert surprise_reward({0: 1, 1: -1}, 0, {0: strong, 1: weak}) == pytest.approx(1 - expected)
    assert surprise_reward({0: -1, 1: 1}, 1, {0: strong, 1: weak}) == pytest.approx(1 - (1 - expected))
    assert surprise_reward({0: 0, 1: 0}, 0, {0: strong, 1: weak}) == pytest.approx(0.5 - expected)
    baseline = RoleBaseline(decay=0.5)
    assert [baseline.advantage(ENV, 0, r) for r in (1.0, 1.0, -1.0)] == [1.0, 0.5, -1.75]
    assert baseline.advantage(ENV, 1, 1.0) == 1.0, "each seat has its own baseline"


def test_invalid_moves_are_marked_and_penalised() -> None:
    env = TextArenaMultistepEnv(ENV, opponent="first", invalid_move_penalty=0.25)
    [episode] = rollout(env, Scripted(["[99]", "[99]"]), 1)
    [trajectory] = episode.trajectories
    assert [s.invalid for s in trajectory.steps[:2]] == [True, True]
    assert trajectory.turn_rewards[:2] == [-0.25, -0.25] and not any(s.invalid for s in trajectory.steps[2:])
    assert trajectory.raw_reward == outcome_reward(trajectory.outcome) - 0.5


def test_a_game_past_the_step_limit_is_truncated() -> None:
    env = TextArenaMultistepEnv(ENV, max_steps_per_episode=2, opponent="self")
    [episode] = rollout(env, "first", 1)
    assert episode.status == "aborted" and "turn limit" in episode.reason
    assert all(t.outcome == "truncated" and t.reward == 0.0 for t in episode.trajectories)


def test_trueskill_and_surprise_rewards_come_from_the_recorded_ratings(db_url, engine) -> None:
    env = TextArenaMultistepEnv(ENV, opponent="random", reward_mode="trueskill", record=db_url, name="learner")
    episodes = rollout(env, "first", 4)
    with Session(engine) as session:
        for episode in episodes:
            [trajectory] = episode.trajectories
            stored = session.get(EpisodeRow, episode.episode_id)
            assert stored.status == "finished" and "rl:rollout" in stored.tags
            [history] = session.scalars(select(RatingHistoryRow).where(
                RatingHistoryRow.episode_id == episode.episode_id, RatingHistoryRow.env_id == ENV,
                RatingHistoryRow.agent_id == stored.seats[trajectory.seat].agent_id)).all()
            change = (history.mu_after - 3 * history.sigma_after) - (history.mu_before - 3 * history.sigma_before)
            assert trajectory.raw_reward == pytest.approx(change)
    surprise = TextArenaMultistepEnv(ENV, opponent="random", reward_mode="surprise", record=db_url)
    for episode in rollout(surprise, "first", 2):
        [trajectory] = episode.trajectories
        assert -1.0 < trajectory.raw_reward < 1.0 and trajectory.raw_reward not in (0.5, -0.5, 0.0)


def test_pool_opponents_are_drawn_from_the_rated_agents(db_url) -> None:
    with pytest.raises(ValueError, match="no rated agents for TicTacToe-v0"):
        rollout(TextArenaMultistepEnv(ENV, opponent="pool", record=db_url), "first", 1)
    seeding = TextArenaMultistepEnv(ENV, opponent=["random", "cautious=random?seed=9"], record=db_url)
    rollout(seeding, "first", 4)
    pool = TextArenaMultistepEnv(ENV, opponent="pool", record=db_url, name="learner")
    episodes = rollout(pool, "first", 12)
    opponents = {name for e in episodes for name in e.agents} - {"learner"}
    assert opponents <= {"random", "cautious"} and opponents, opponents
    stored = _episodes(db_url)
    rows = pool.get_dataset(4).to_list()  # the openings are played against the pool too, and not recorded
    assert [r["seat"] for r in rows] == [0, 1, 0, 1] and "[Player 0] [" in rows[1]["prompt"][1]["content"]
    assert _episodes(db_url) == stored


def _episodes(url: str) -> int:
    engine = open_database(url)
    with Session(engine) as session:
        count = session.scalar(select(func.count()).select_from(EpisodeRow))
    engine.dispose()
    return count


def test_pool_draws_follow_match_quality_and_repeat_per_group() -> None:
    env = TextArenaMultistepEnv(ENV, seed=3)
    close, far = parse_spec("close=random"), parse_spec("far=first")
    draws = [env._draw([(close, 0.45), (far, 0.05)], group, 1)[0].name for group in range(2000)]
    assert 0.87 < draws.count("close") / len(draws) < 0.93
    assert draws[:50] == [env._draw([(close, 0.45), (far, 0.05)], g, 1)[0].name for g in range(50)]


def test_bad_input_names_what_is_wrong(db_url) -> None:
    with pytest.raises(GameError, match="unknown env id 'TicTacToe-v9'"):
        TextArenaMultistepEnv("TicTacToe-v9")
    with pytest.raises(ValueError, match="max_steps_per_episode must be an integer >= 1"):
        TextArenaMultistepEnv(ENV, max_steps_per_episode=0)
    with pytest.raises(ValueError, match="reward_mode='trueskill' need the arena database's ratings"):
        TextArenaMultistepEnv(ENV, reward_mode="trueskill")
    with pytest.raises(ValueError, match="opponent='pool' need the arena database's ratings"):
        TextArenaMultistepEnv(ENV, opponent="pool")
    with pytest.raises(ValueError, match="self-play is not rated"):
        TextArenaMultistepEnv(ENV, opponent="self", reward_mode="surprise", record=db_url)
    with pytest.raises(SpecError, match="unknown kind 'gpt'"):
        TextArenaMultistepEnv(ENV, opponent="gpt")
    with pytest.raises(GameError, match="takes 2 players"):
        TextArenaMultistepEnv(ENV, num_players=3)


def test_token_sequences_line_up_with_their_mask() -> None:
    tokenizer = CharTokenizer()
    env = TextArenaMultistepEnv(ENV, opponent="first", tokenizer=tokenizer)
    [episode] = rollout(env, "random", 1)
    [trajectory] = episode.trajectories
    ids, mask = trajectory.token_ids, trajectory.mask
    assert len(ids) == len(mask) == len(trajectory.logprobs) and trajectory.token_source == "tokenizer"
    spans = _spans(mask)
    assert [m for m, _ in spans] == [0, 1] * len(trajectory.steps)
    model = [tokenizer.decode(ids[a:b]) for m, (a, b) in spans if m == 1]
    assert model == [s.completion for s in trajectory.steps]
    environment = [tokenizer.decode(ids[a:b]) for m, (a, b) in spans if m == 0]
    assert ids[0] == 1 and environment[0].startswith(trajectory.messages[0]["content"])
    assert all(text.endswith(PLAIN_CUE) for text in environment)
    assert environment[1] == "\n\n" + trajectory.messages[3]["content"] + PLAIN_CUE


def test_recorded_turns_keep_their_tokens_so_the_sequence_can_be_rebuilt(db_url, engine) -> None:
    env = TextArenaMultistepEnv(ENV, opponent="first", tokenizer=CharTokenizer(), record=db_url)
    [episode] = rollout(env, "random", 1)
    [trajectory] = episode.trajectories
    with Session(engine) as session:
        turns = session.scalars(select(TurnRow).where(TurnRow.episode_id == episode.episode_id,
                                                      TurnRow.seat == trajectory.seat).order_by(TurnRow.idx)).all()
    rebuilt = [i for t in turns for i in t.info["env_token_ids"] + t.info["token_ids"]]
    assert rebuilt == trajectory.token_ids and len(turns) == len(trajectory.steps)
    assert [t.info["token_source"] for t in turns] == ["tokenizer"] * len(turns)


async def test_token_ids_and_logprobs_come_from_the_engine_when_it_returns_them() -> None:
    tokenizer = CharTokenizer()
    with FakeLLM() as fake:
        fake.decode = tokenizer.decode
        env = TextArenaMultistepEnv(ENV, opponent="first", tokenizer=tokenizer)
        [episode] = await env.rollout(f"openai:test-model?base_url={fake.base_url}", 1)
        bodies = [b for b in fake.bodies if "prompt" in b]
    [trajectory] = episode.trajectories
    assert trajectory.token_source == "engine" and len(bodies) == len(trajectory.steps) >= 3
    sampled = [i for i, m in zip(trajectory.token_ids, trajectory.mask, strict=True) if m]
    assert sampled == [ord(c) for s in trajectory.steps for c in s.completion], "the engine's ids (ord), not ours"
    assert [p for p, m in zip(trajectory.logprobs, trajectory.mask, strict=True) if m] == [-0.25] * len(sampled)
    for body, step in zip(bodies, trajectory.steps, strict=True):
        assert trajectory.token_ids[:len(body["prompt"])] == body["prompt"], "each prompt extends the last"
        assert body["return_token_ids"] is True and step.action in step.completion


async def test_evaluate_llm_against_an_openai_compatible_server() -> None:
    with FakeLLM() as fake:
        env = TextArenaMultistepEnv(ENV, opponent="random")
        metrics = await asyncio.to_thread(env.evaluate_llm, f"openai:test-model?base_url={fake.base_url}", 6)
        assert fake.requests >= 6 * 3
    assert metrics["episodes"] == 6 and metrics["invalid_move_rate"] == 0.0
    assert metrics["wins"] + metrics["draws"] + metrics["losses"] == 1.0
    assert 3 <= metrics["mean_turns"] <= 5 and metrics["mean_completion_tokens"] > 0
    assert metrics["mean_reward"] == pytest.approx(metrics["wins"] - metrics["losses"])


async def test_a_rollouts_llm_requests_are_in_flight_together() -> None:
    with FakeLLM(gather=12) as fake:  # the first requests are answered once all 12 games' are in flight
        env = TextArenaMultistepEnv(ENV, opponent="self")
        episodes = await env.rollout(f"openai:test-model?base_url={fake.base_url}", 12, concurrency=12)
        assert fake.peak == 12, f"at most {fake.peak} of 12 games' requests were in flight at once"
    assert all(len(e.trajectories) == 2 and e.status == "finished" for e in episodes)


@pytest.mark.slow
def test_evaluate_llm_with_the_local_model_and_its_own_tokenizer() -> None:
    env = TextArenaMultistepEnv(ENV, opponent="random", max_steps_per_episode=3)
    episodes = rollout(env, "local?max_tokens=6&temperature=0", 2, concurrency=2)
    metrics = env.evaluate_llm("local?max_tokens=6&temperature=0", 2)
    assert metrics["episodes"] == 2 and metrics["mean_turns"] >= 1 and metrics["mean_completion_tokens"] > 0
    for trajectory in (t for e in episodes for t in e.trajectories):
        assert trajectory.token_source == "tokenizer" and len(trajectory.token_ids) == len(trajectory.mask)
        assert sum(trajectory.mask) > 0 and trajectory.token_ids[0] == 2, "Gemma's BOS opens the sequence"


async def test_trainer_driven_episodes_play_against_the_opponents() -> None:
    env = TextArenaMultistepEnv(ENV, opponent="first", max_steps_per_episode=3)
    try:
        state = await env.reset(env.task(1))
        assert state.info["seat"] == 1 and "[Player 0] [0]" in state.observation, "the opponent moved first"
        while not state.done:
            move = re.findall(r"\[\d\]", state.observation.rsplit("Available Moves:", 1)[-1])[-1]
            state = await env.step(state.session_id, f"I choose {move}")
        assert state.outcome in ("win", "loss", "draw", "truncated") and state.reward is not None
        with pytest.raises(ValueError, match="is over"):
            await env.step(state.session_id, "[1]")
        with pytest.raises(KeyError, match="call reset"):
            await env.step("nope", "[1]")
    finally:
        await env.aclose()
    short = TextArenaMultistepEnv(ENV, opponent="first", max_steps_per_episode=2)
    try:
        state = await short.reset(short.task(0))
        for move in ("[8]", "[7]"):
            state = await short.step(state.session_id, move)
        assert state.done and state.outcome == "truncated" and state.reward == 0.0
    finally:
        await short.aclose()


def test_get_dataset_rows_hold_the_opening_prompt_and_the_task() -> None:
    env = TextArenaMultistepEnv(ENV, num_tasks=4, seed=7)
    rows = env.get_dataset().to_list()
    assert [(r["seed"], r["seat"]) for r in rows] == [(7, 0), (8, 1), (9, 0), (10, 1)]
    assert rows[1]["prompt"][0]["role"] == "system" and "as player 1" in rows[1]["prompt"][0]["content"]
    assert "You are Player 1 in Tic Tac Toe" in rows[1]["prompt"][1]["content"]
    assert "[Player 0] [" in rows[1]["prompt"][1]["content"], "the opponent's opening move is shown"
    episodes = rollout(env, "first", 2)
    for row, episode in zip(rows, episodes, strict=False):
        assert episode.trajectories[0].messages[:2] == row["prompt"], "the rollout starts from the dataset's prompt"


def test_the_rubric_scores_whether_a_completion_names_a_move() -> None:
    [move_format] = TextArenaMultistepEnv(ENV).get_rubric()
    completions = ["I play [4]", [{"role": "assistant", "content": "<think>[4]?</think> no idea"}], "[GAME] hi"]
    assert move_format(prompts=[None] * 3, completions=completions) == [1.0, 0.0, 0.0]


def _spans(mask: list[int]) -> list[tuple[int, tuple[int, int]]]:
    """Runs of equal mask values: (value, (start, end))."""
    spans, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            spans.append((mask[start], (start, i)))
            start = i
    return spans
