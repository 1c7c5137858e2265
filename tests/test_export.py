"""`arena export`: every format loaded back and checked against the database, rewards equal to the RL bridge's,
each filter, byte-identical files, bad input, and the row schemas TRL and verl document."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest
from helpers import ARENA, ScriptedAgent, arena, play_games
from rl_helpers import CharTokenizer
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, selectinload

from arena import cli
from arena.envs.episode import Episode
from arena.envs.textarena_env import TextArenaMultistepEnv
from arena.envs.verl import ArenaInteraction
from arena.export import ExportError, export, rows, to_dataset
from arena.export import writers as export_writers
from arena.play import GameSpec, schedule
from arena.store import tournaments as tournament_store
from arena.store.database import open_database
from arena.store.episodes import create_episodes, end_episodes
from arena.store.export import Selection, read_episodes
from arena.store.models import AgentRow, EpisodeRow, RatingHistoryRow, RatingRow, SeatRow, TournamentGameRow, TurnRow
from arena.testing.fake_openai import FakeLLM

ENV, POKER = "TicTacToe-v0", "KuhnPoker-v0"
FORMATS = ["messages", "prompt-completion", "preference", "verl", "tokens", "episodes"]
# seat 0's moves against `first` on seed 7: a and c win, b, d and e lose; a and d part after [0] [1] [3] [2]
LINES = {"line-a": ["[0]", "[3]", "[6]"], "line-b": ["[8]", "[7]", "[5]", "[3]"], "line-c": ["[0]", "[4]", "[8]"],
         "line-d": ["[0]", "[3]", "[5]", "[7]", "[8]"], "line-e": ["[6]", "[7]", "[3]", "[5]"]}
START = datetime(2025, 1, 1, tzinfo=UTC)  # episode i started at START + (i - 1) days
OUTCOME = {"win": 1.0, "draw": 0.0, "loss": -1.0}


# --- one played database per backend, shared by the module's tests (they only read it) ---------------------


@dataclass
class Played:
    """A database of every kind of game the export reads, and the rollouts that wrote some of them."""

    url: str
    rollouts: dict[str, list[Episode]]  # by reward mode
    tokens: list[Episode]  # rollouts with a tokenizer: their turns keep token ids


def play_everything(url: str) -> Played:
    """Scripted, LLM, tournament, RL-rollout, seed-sharing, engine-token and aborted games, with fixed start times."""
    with FakeLLM() as llm:
        chatty = f"chatty=openai:test-model?base_url={llm.base_url}&conversation=true"
        terse = f"terse=openai:test-model?base_url={llm.base_url}&system=Win."
        games = [*schedule(ENV, ["random", "first"], 4, 101), *schedule(POKER, ["random", "first"], 2, 301),
                 GameSpec(ENV, 201, [chatty, "first"]), GameSpec(ENV, 202, ["first", terse]),
                 *[GameSpec(ENV, 7, [ScriptedAgent(moves, name=name), "first"]) for name, moves in LINES.items()]]
        asyncio.run(play_games(url, games))
    engine = open_database(url)
    with Session(engine) as session, session.begin():
        tournament = tournament_store.create_tournament(session, "cup", "round-robin", {}, [
            {"idx": i, "round": 0, "env_id": ENV, "seed": 401 + i, "seats": ["random", "first"]} for i in range(2)])
        slots = session.scalars(select(TournamentGameRow.id).where(TournamentGameRow.tournament_id == tournament)
                                .order_by(TournamentGameRow.idx)).all()
    asyncio.run(play_games(url, [GameSpec(ENV, 401 + i, ["random", "first"], ("tournament:cup",), slot)
                                 for i, slot in enumerate(slots)]))
    rollouts = {mode: asyncio.run(TextArenaMultistepEnv(ENV, opponent="first", reward_mode=mode, record=url, seed=seed,
                                                        name="learner").rollout("random", 2))
                for mode, seed in (("outcome", 500), ("trueskill", 510), ("surprise", 520))}
    tokens = asyncio.run(TextArenaMultistepEnv(ENV, opponent="first", tokenizer=CharTokenizer(), record=url, seed=600,
                                               name="learner").rollout("random", 2))
    with Session(engine) as session, session.begin():
        _store_by_hand(session)
        for episode in session.scalars(select(EpisodeRow)):
            episode.started_at = START + timedelta(days=episode.id - 1)
    engine.dispose()
    return Played(url, rollouts, tokens)


def _store_by_hand(session: Session) -> None:
    """A finished game whose seat 0 kept only the tokens it sampled (as `vllm:` agents do), and an aborted one."""
    ids = dict(session.execute(select(AgentRow.name, AgentRow.id)).all())
    sampled, aborted = create_episodes(session, [(ENV, 950, [ids["random"], ids["first"]], "textarena", (), None),
                                                 (ENV, 900, [ids["random"], ids["first"]], "textarena", (), None)])
    turn = {"invalid": False, "invalid_reason": None, "elapsed": 0.25, "error": None}
    end_episodes(session, [
        (sampled, "finished", {0: 1.0, 1: -1.0}, "seat 0 won", {}, [
            {**turn, "episode_id": sampled, "idx": 0, "seat": 0, "observation": "Move?", "action": "[4]",
             "info": {"token_ids": [7, 8, 9], "logprobs": [-0.5, -0.25, -0.125], "token_source": "engine"}},
            {**turn, "episode_id": sampled, "idx": 1, "seat": 1, "observation": "Move!", "action": "[0]", "info": {}}]),
        (aborted, "aborted", {}, "the test stopped it", {}, [
            {**turn, "episode_id": aborted, "idx": 0, "seat": 0, "observation": "Move?", "action": "[4]",
             "info": {}}])])


@pytest.fixture(scope="module")
def played_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str, Any], Played]]:
    """Play the games once per backend, on first use."""
    made: dict[str, Played] = {}
    with ExitStack() as stack:
        def get(backend: str, server: Any) -> Played:
            if backend not in made:
                url = (stack.enter_context(server.database()) if backend == "postgresql"
                       else f"sqlite:///{tmp_path_factory.mktemp('export') / 'arena.db'}")
                made[backend] = play_everything(url)
            return made[backend]

        yield get


@pytest.fixture
def played(db_backend: str, played_databases: Callable[[str, Any], Played], request: pytest.FixtureRequest) -> Played:
    """The played database of this test's backend."""
    server = request.getfixturevalue("postgres_server") if db_backend == "postgresql" else None
    return played_databases(db_backend, server)


# --- reading the database and the files ------------------------------------------------------------------------


@dataclass
class StoredGame:
    """An episode as the ORM reads it."""

    row: EpisodeRow
    turns: list[TurnRow]

    def seat_turns(self, seat: int) -> list[TurnRow]:
        return [t for t in self.turns if t.seat == seat]


def stored(url: str) -> dict[int, StoredGame]:
    """Every stored episode with its seats, agents and turns."""
    engine = create_engine(url)
    with Session(engine) as session:
        games = {e.id: StoredGame(e, []) for e in session.scalars(
            select(EpisodeRow).options(selectinload(EpisodeRow.seats).selectinload(SeatRow.agent)))}
        for turn in session.scalars(select(TurnRow).order_by(TurnRow.episode_id, TurnRow.idx)):
            games[turn.episode_id].turns.append(turn)
        session.expunge_all()
    engine.dispose()
    return games


def moved_seats(games: dict[int, StoredGame]) -> set[tuple[int, int]]:
    """(episode id, seat) of every seat that moved in a finished game."""
    return {(i, s.seat) for i, g in games.items() if g.row.status == "finished" for s in g.row.seats
            if g.seat_turns(s.seat)}


def exported(played: Played, folder: Path, fmt: str, ext: str = "jsonl", **options: Any) -> list[dict[str, Any]]:
    """Export to a file and read the rows back (JSON lines, or Parquet through pyarrow)."""
    path = folder / f"{fmt}.{ext}"
    export(path, fmt, played.url, **options)
    if ext == "parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text().splitlines()]


def keyed(rows_: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    return {(r["episode_id"], r["seat"]): r for r in rows_}


def without_nulls(value: Any) -> Any:
    """`value` with None-valued keys dropped from every dict (Parquet structs hold every field)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def chat_only(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def reply_of(turn: TurnRow) -> str:
    return turn.info.get("completion", turn.action)


# --- every format, loaded back --------------------------------------------------------------------------------


def test_every_format_loads_back_with_datasets_and_pyarrow_with_the_databases_row_counts(
        played: Played, tmp_path: Path) -> None:
    games = stored(played.url)
    finished = [g for g in games.values() if g.row.status == "finished"]
    expected = {"messages": len(moved_seats(games)), "prompt-completion": sum(len(g.turns) for g in finished),
                "preference": 4, "verl": len(moved_seats(games)), "tokens": len(played.tokens) + 1,
                "episodes": len(games)}
    for fmt, count in expected.items():
        from_jsonl = exported(played, tmp_path, fmt)
        from_parquet = exported(played, tmp_path, fmt, "parquet")
        loaded = datasets.load_dataset("json", data_files=str(tmp_path / f"{fmt}.jsonl"), split="train",
                                       cache_dir=str(tmp_path / "cache"))
        assert len(from_jsonl) == len(from_parquet) == loaded.num_rows == to_dataset(fmt, played.url).num_rows == count
        if fmt == "episodes":  # Parquet holds each turn's info object as JSON text
            for episode in from_parquet:
                episode["turns"] = [{**t, "info": json.loads(t["info"])} for t in episode["turns"]]
        assert without_nulls(from_parquet) == without_nulls(from_jsonl), fmt


def test_messages_are_each_seats_chat_with_its_replies_weighted_by_good_play(played: Played, tmp_path: Path) -> None:
    games = stored(played.url)
    rows_ = keyed(exported(played, tmp_path, "messages"))
    assert set(rows_) == moved_seats(games)
    for (episode_id, seat), row in rows_.items():
        game = games[episode_id]
        stored_seat = game.row.seats[seat]
        turns = game.seat_turns(seat)
        replies = [m for m in row["messages"] if m["role"] == "assistant"]
        assert [m["content"] for m in replies] == [reply_of(t) for t in turns]
        assert [m["weight"] for m in replies] == [int(stored_seat.result == "win" and not t.invalid) for t in turns]
        assert all("weight" not in m for m in row["messages"] if m["role"] != "assistant")
        assert (row["env_id"], row["seed"], row["agent"], row["outcome"], row["reward"]) == (
            game.row.env_id, game.row.seed, stored_seat.agent.name, stored_seat.result, OUTCOME[stored_seat.result])
    by_agent = {row["agent"]: (key, row) for key, row in rows_.items()}
    (chatty_key, chatty), (_, terse) = by_agent["chatty"], by_agent["terse"]
    chatty_turns = games[chatty_key[0]].seat_turns(chatty_key[1])
    sent, answered = chatty_turns[-1].info["prompt"], chatty_turns[-1].info["completion"]
    assert chat_only(chatty["messages"]) == [*sent, {"role": "assistant", "content": answered}]
    assert len(chatty_turns) > 1, "the growing chat must span several moves"
    assert terse["messages"][0] == {"role": "system", "content": "Win."}, "an LLM's own system prompt is kept"
    assert any(m["content"].startswith("I will play") for m in terse["messages"]), "the whole completion, not the move"


def test_messages_of_a_rollout_are_the_chat_its_rl_environment_showed(played: Played, tmp_path: Path) -> None:
    rows_ = keyed(exported(played, tmp_path, "messages"))
    for episode in [*played.tokens, *[e for episodes in played.rollouts.values() for e in episodes]]:
        [trajectory] = episode.trajectories
        assert chat_only(rows_[(episode.episode_id, trajectory.seat)]["messages"]) == trajectory.messages


def trl_format_problems(row: dict[str, Any]) -> list[str]:
    """What keeps a row from TRL's conversational language-modeling format (the SFT trainer's `messages`), as
    documented at huggingface.co/docs/trl/dataset_formats: `messages`, a list of {"role", "content"} dicts with
    system/user/assistant roles; TRL's `is_conversational` reads the first message's `role` and `content`. Also
    what OpenAI's chat fine-tuning format asks: alternating user/assistant turns ending with the assistant, and
    `weight` (0 or 1) only on assistant messages."""
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["no messages list"]
    problems = [f"message {i} is not role/content text" for i, m in enumerate(messages)
                if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str))]
    roles = [m.get("role") for m in messages]
    turns = roles[1:] if roles[0] == "system" else roles
    if turns != ["user", "assistant"] * (len(turns) // 2) or not turns:
        problems.append(f"roles do not alternate user/assistant: {roles}")
    problems += [f"weight {m['weight']!r} on a {m['role']} message" for m in messages
                 if "weight" in m and (m["role"] != "assistant" or m["weight"] not in (0, 1))]
    return problems


def test_messages_rows_follow_trls_sft_and_openais_chat_format(played: Played, tmp_path: Path) -> None:
    assert trl_format_problems({"messages": [{"role": "assistant", "content": "x"}]}), "the check can fail"
    assert trl_format_problems({"messages": [{"role": "user", "content": "x", "weight": 1}]})
    rows_ = exported(played, tmp_path, "messages")
    assert rows_ and [trl_format_problems(r) for r in rows_] == [[] for _ in rows_]
    features = to_dataset("messages", played.url).features["messages"]
    assert {"role", "content"} <= set(features.feature)
    winners = exported(played, tmp_path, "messages", only_winners=True)
    assert winners and {r["outcome"] for r in winners} == {"win"}
    assert all(any(m.get("weight") == 1 for m in r["messages"]) for r in winners), "every example trains something"


def test_prompt_completion_rows_are_every_move_with_the_chat_before_it(played: Played, tmp_path: Path) -> None:
    games = stored(played.url)
    rows_ = exported(played, tmp_path, "prompt-completion")
    chats = keyed(exported(played, tmp_path, "messages"))
    expected = {(i, t.seat, t.idx) for i, g in games.items() if g.row.status == "finished" for t in g.turns}
    assert {(r["episode_id"], r["seat"], r["turn"]) for r in rows_} == expected and len(rows_) == len(expected)
    for row in rows_:
        game = games[row["episode_id"]]
        turn = next(t for t in game.turns if t.idx == row["turn"])
        assert row["completion"] == [{"role": "assistant", "content": reply_of(turn)}]
        assert (row["invalid"], row["reward"]) == (turn.invalid, OUTCOME[game.row.seats[row["seat"]].result])
        if "prompt" in turn.info:  # what the LLM was sent
            assert row["prompt"] == turn.info["prompt"]
        else:  # the seat's chat up to this move
            chat = chat_only(chats[(row["episode_id"], row["seat"])]["messages"])
            assert row["prompt"] == chat[:len(row["prompt"])] and chat[len(row["prompt"])] == row["completion"][0]


def test_rewards_equal_the_rl_bridges_in_every_reward_mode(played: Played, tmp_path: Path) -> None:
    for mode, episodes in played.rollouts.items():
        exported_rows = keyed(exported(played, tmp_path, "messages", reward=mode))
        rewards = {key: row["reward"] for key, row in exported_rows.items()}
        bridge = {(e.episode_id, e.trajectories[0].seat): e.trajectories[0].raw_reward for e in episodes}
        assert {key: rewards[key] for key in bridge} == pytest.approx(bridge), mode
        if mode != "outcome":  # rating-based rewards are not the outcome's +1/0/-1
            assert not set(rewards.values()) <= {1.0, 0.0, -1.0}, mode


def test_trueskill_rewards_are_the_change_of_the_conservative_rating(played: Played, tmp_path: Path) -> None:
    engine = create_engine(played.url)
    with Session(engine) as session:
        history = {(h.episode_id, h.agent_id): h for h in session.scalars(
            select(RatingHistoryRow).join(EpisodeRow).where(RatingHistoryRow.env_id == EpisodeRow.env_id))}
        agents = dict(session.execute(select(AgentRow.name, AgentRow.id)).all())
    engine.dispose()
    rows_ = exported(played, tmp_path, "prompt-completion", reward="trueskill")
    for row in rows_:
        h = history.get((row["episode_id"], agents[row["agent"]]))
        change = 0.0 if h is None else (h.mu_after - 3 * h.sigma_after) - (h.mu_before - 3 * h.sigma_before)
        assert row["reward"] == pytest.approx(change)
    assert any(row["reward"] != 0.0 for row in rows_)


def test_preference_pairs_are_moves_from_one_position_whose_outcomes_differ(played: Played, tmp_path: Path) -> None:
    games = stored(played.url)
    lines = {g.row.seats[0].agent.name: i for i, g in games.items() if g.row.seed == 7}
    pairs = sorted(exported(played, tmp_path, "preference"), key=lambda r: (r["turn"], str(r["chosen"]),
                                                                            str(r["rejected"])))
    move = [[{"role": "assistant", "content": f"[{cell}]"}] for cell in range(9)]
    assert [(r["turn"], r["chosen"], r["rejected"], r["chosen_reward"], r["rejected_reward"]) for r in pairs] == [
        (0, move[0], move[6], pytest.approx(1 / 3), -1.0),  # the opening: [0] won two games of three,
        (0, move[0], move[8], pytest.approx(1 / 3), -1.0),  # [6] and [8] lost theirs (so they make no pair)
        (2, move[4], move[3], 1.0, 0.0),
        (4, move[6], move[5], 1.0, -1.0)]
    assert {(r["env_id"], r["seed"], r["seat"]) for r in pairs} == {(ENV, 7, 0)}
    assert [(r["chosen_episode_id"], r["rejected_episode_id"]) for r in pairs[1:]] == [
        (min(lines[k] for k in ("line-a", "line-c", "line-d")), lines["line-b"]),
        (lines["line-c"], min(lines["line-a"], lines["line-d"])), (lines["line-a"], lines["line-d"])]
    chats = keyed(exported(played, tmp_path, "messages"))
    for pair in pairs:
        chat = chat_only(chats[(pair["chosen_episode_id"], 0)]["messages"])
        assert pair["prompt"] == chat[:len(pair["prompt"])] and pair["prompt"][-1]["role"] == "user"
        assert chat[len(pair["prompt"])] == pair["chosen"][0]
    assert exported(played, tmp_path, "preference", agents=["first"]) == [], "`first` never varied its moves"


def verl_schema_problems(row: dict[str, Any]) -> list[str]:
    """What keeps a row from verl's documented schema (docs/preparation/prepare_data.rst: `data_source`, `prompt`
    as chat messages, `ability`, `reward_model` with `style` and `ground_truth`, `extra_info` with `split` and
    `index`) and its multi-turn interaction rows (docs/sglang_multiturn/interaction_system.rst: `agent_name`,
    `extra_info.interaction_kwargs` with the interaction's `name`)."""
    problems = [f"missing {key}" for key in ("data_source", "prompt", "ability", "reward_model", "extra_info",
                                              "agent_name") if key not in row]
    if problems:
        return problems
    if not isinstance(row["data_source"], str) or not isinstance(row["ability"], str):
        problems.append("data_source and ability must be text")
    if not row["prompt"] or any(set(m) != {"role", "content"} for m in row["prompt"]):
        problems.append("prompt is not chat messages")
    if not {"style", "ground_truth"} <= set(row["reward_model"]):
        problems.append("reward_model lacks style or ground_truth")
    extra = row["extra_info"]
    if not isinstance(extra.get("index"), int) or not isinstance(extra.get("split"), str):
        problems.append("extra_info lacks split or index")
    if not isinstance((extra.get("interaction_kwargs") or {}).get("name"), str):
        problems.append("extra_info.interaction_kwargs lacks the interaction's name")
    return problems


async def test_verl_rows_follow_verls_schema_and_replay_through_the_bridges_interaction(
        played: Played, tmp_path: Path) -> None:
    assert verl_schema_problems({"data_source": "x"}), "the check can fail"
    games = stored(played.url)
    rows_ = exported(played, tmp_path, "verl", "parquet")
    assert [verl_schema_problems(r) for r in rows_] == [[] for _ in rows_]
    assert [r["extra_info"]["index"] for r in rows_] == list(range(len(rows_)))
    for row in rows_:
        task, extra = row["extra_info"]["interaction_kwargs"], row["extra_info"]
        game = games[extra["episode_id"]]
        assert (row["agent_name"], task["name"], task["env_id"], task["seed"]) == (
            "tool_agent", game.row.env_id, game.row.env_id, game.row.seed)
        assert row["prompt"][-1] == {"role": "user", "content": game.seat_turns(task["seat"])[0].observation.strip()}
    row = next(r for r in rows_ if r["extra_info"]["interaction_kwargs"]["seat"] == 0 and r["data_source"] == ENV)
    kwargs = row["extra_info"]["interaction_kwargs"]
    interaction = ArenaInteraction({"name": ENV}, env=TextArenaMultistepEnv(ENV, opponent="first"))
    request = await interaction.start_interaction("request", **kwargs)
    _, _, _, metadata = await interaction.generate_response(
        request, [*row["prompt"], {"role": "assistant", "content": "[4]"}], **kwargs)
    assert metadata["steps"] == 1, "the row's prompt showed the interaction's whole first observation"
    await interaction.finalize_interaction(request)


def test_tokens_rows_are_the_recorded_sequences_with_their_mask_and_logprobs(played: Played, tmp_path: Path) -> None:
    rows_ = keyed(exported(played, tmp_path, "tokens"))
    for episode in played.tokens:
        [trajectory] = episode.trajectories
        row = rows_.pop((episode.episode_id, trajectory.seat))
        assert (row["input_ids"], row["assistant_masks"], row["logprobs"]) == (
            trajectory.token_ids, trajectory.mask, trajectory.logprobs)
        assert row["attention_mask"] == [1] * len(row["input_ids"])
        assert (row["token_source"], row["complete"], row["agent"]) == ("tokenizer", True, "learner")
    [sampled_only] = rows_.values()  # the game whose seat kept only the model's tokens, as `vllm:` agents do
    assert (sampled_only["input_ids"], sampled_only["assistant_masks"], sampled_only["logprobs"]) == (
        [7, 8, 9], [1, 1, 1], [-0.5, -0.25, -0.125])
    assert (sampled_only["complete"], sampled_only["token_source"], sampled_only["seat"]) == (False, "engine", 0)


def test_episodes_are_the_whole_log_with_ratings_before_and_after(played: Played, tmp_path: Path) -> None:
    games = stored(played.url)
    engine = create_engine(played.url)
    with Session(engine) as session:
        history = {(h.episode_id, h.agent_id, h.env_id): h for h in session.scalars(select(RatingHistoryRow))}
    engine.dispose()
    rows_ = exported(played, tmp_path, "episodes")
    assert [r["id"] for r in rows_] == sorted(games)
    for row in rows_:
        game = games[row["id"]]
        assert (row["env_id"], row["seed"], row["status"], row["reason"], row["tags"]) == (
            game.row.env_id, game.row.seed, game.row.status, game.row.reason, game.row.tags)
        assert row["started_at"] == (START + timedelta(days=row["id"] - 1)).isoformat()
        assert row["tournament"] == ("cup" if game.row.tournament_game_id else None)
        assert [(t["idx"], t["seat"], t["observation"], t["action"], t["invalid"], t["elapsed"], t["error"], t["info"],
                 t["prompt_tokens"]) for t in row["turns"]] == [
            (t.idx, t.seat, t.observation, t.action, t.invalid, t.elapsed, t.error, t.info, t.info.get("prompt_tokens"))
            for t in game.turns]
        for seat, stored_seat in zip(row["seats"], game.row.seats, strict=True):
            assert (seat["agent"], seat["game_reward"], seat["result"], seat["invalid_moves"]) == (
                stored_seat.agent.name, stored_seat.reward, stored_seat.result, stored_seat.invalid_moves)
            assert seat["reward"] == OUTCOME.get(stored_seat.result, 0.0)
            for scope, env_id in (("env", game.row.env_id), ("overall", "*")):
                h = history.get((row["id"], stored_seat.agent_id, env_id))
                rating = (seat["rating"] or {}).get(scope)
                assert rating == (None if h is None else {"mu_before": h.mu_before, "sigma_before": h.sigma_before,
                                                          "mu_after": h.mu_after, "sigma_after": h.sigma_after})
    assert {r["status"] for r in rows_} == {"finished", "aborted"}
    assert sum(bool(s["rating"]) for r in rows_ for s in r["seats"]) > 10
    assert any(t["prompt_tokens"] for r in rows_ for t in r["turns"]), "the LLM turns' token counts"


# --- filters --------------------------------------------------------------------------------------------------


def test_each_filter_picks_its_games_and_seats(played: Played) -> None:
    games = stored(played.url)
    everything = moved_seats(games)

    def seats(**filters: Any) -> set[tuple[int, int]]:
        return {(r["episode_id"], r["seat"]) for r in rows("messages", played.url, **filters)}

    def where(test: Callable[[StoredGame, SeatRow], bool]) -> set[tuple[int, int]]:
        chosen = {(i, s) for i, s in everything if test(games[i], games[i].row.seats[s])}
        assert chosen and chosen != everything, "each filter must keep some seats and drop others"
        return chosen

    engine = create_engine(played.url)
    with Session(engine) as session:
        rating = {(r.agent_id, r.env_id): r.mu - 3 * r.sigma for r in session.scalars(select(RatingRow))}
    engine.dispose()
    threshold = sorted(rating.values())[len(rating) // 2]
    assert seats() == everything
    assert seats(envs=[POKER]) == where(lambda g, s: g.row.env_id == POKER)
    assert seats(agents=["first", "chatty"]) == where(lambda g, s: s.agent.name in ("first", "chatty"))
    assert seats(outcome="loss") == where(lambda g, s: s.result == "loss")
    assert seats(only_winners=True) == seats(outcome="win") == where(lambda g, s: s.result == "win")
    assert seats(min_rating=threshold) == where(lambda g, s: rating.get((s.agent_id, g.row.env_id), -1e9) >= threshold)
    assert seats(since="2025-01-06") == where(lambda g, s: g.row.id >= 6)
    assert seats(until="2025-01-06") == where(lambda g, s: g.row.id <= 6), "a date alone runs through that day"
    assert seats(since="2025-01-06T12:00:00+02:00") == where(lambda g, s: g.row.id >= 7), "10:00 UTC"
    assert seats(tournament="cup") == where(lambda g, s: "tournament:cup" in g.row.tags)
    assert seats(envs=[ENV], agents=["random"], outcome="win", until="2025-01-10") == where(
        lambda g, s: g.row.env_id == ENV and s.agent.name == "random" and s.result == "win" and g.row.id <= 10)
    episodes = {r["id"] for r in rows("episodes", played.url, agents=["chatty"])}
    assert episodes == {i for i, _ in where(lambda g, s: s.agent.name == "chatty")}, "whole games with the agent"


def test_the_store_reads_episodes_in_chunks_in_a_stable_order(played: Played) -> None:
    engine = open_database(played.url)
    with engine.connect() as connection:
        chunks = list(read_episodes(connection, Selection(statuses=("finished", "aborted")), chunk=5))
        by_position = [e for chunk in read_episodes(connection, Selection(by_position=True), chunk=4) for e in chunk]
    engine.dispose()
    assert [len(c) for c in chunks[:-1]] == [5] * (len(chunks) - 1) and 0 < len(chunks[-1]) <= 5
    ids = [e.id for chunk in chunks for e in chunk]
    assert ids == sorted(ids) == sorted(stored(played.url))
    assert all([t.idx for t in e.turns] == sorted(t.idx for t in e.turns) and e.turns for c in chunks for e in c)
    keys = [(e.env_id, e.seed, e.id) for e in by_position]
    assert keys == sorted(keys) and len({e.seed for e in by_position}) < len(by_position)


# --- the same bytes every time ----------------------------------------------------------------------------------


def test_the_same_database_and_filters_give_byte_identical_files(played: Played, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    for fmt in FORMATS:
        for ext in ("jsonl", "parquet"):
            export(first / f"{fmt}.{ext}", fmt, played.url, reward="surprise", envs=[ENV])
            export(second / f"{fmt}.{ext}", fmt, played.url, reward="surprise", envs=[ENV])
            assert (first / f"{fmt}.{ext}").read_bytes() == (second / f"{fmt}.{ext}").read_bytes(), (fmt, ext)
    for fmt, ext in (("preference", "jsonl"), ("episodes", "parquet")):  # another process, another hash seed
        done = arena("export", "--format", fmt, "-o", str(tmp_path / f"cli.{ext}"), "--db", played.url,
                     "--reward", "surprise", "--env", ENV, env={"PYTHONHASHSEED": "random"}, process=True)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / f"cli.{ext}").read_bytes() == (first / f"{fmt}.{ext}").read_bytes(), fmt


# --- the command ----------------------------------------------------------------------------------------------


def test_arena_export_writes_the_file_or_stdout_and_says_what_it_wrote(played: Played, tmp_path: Path) -> None:
    target = tmp_path / "wins.jsonl"
    done = arena("export", "--format", "messages", "-o", str(target), "--db", played.url, "--env", ENV,
                 "--agent", "first", "random", "--outcome", "win", "--since", "2025-01-02")
    assert done.returncode == 0, done.stderr
    expected = list(rows("messages", played.url, envs=[ENV], agents=["first", "random"], outcome="win",
                         since="2025-01-02"))
    assert [json.loads(line) for line in target.read_text().splitlines()] == expected and expected
    games = len({row["episode_id"] for row in expected})
    assert done.stdout.strip() == f"wrote {len(expected)} messages rows from {games} games to {target}"
    piped = subprocess.run([ARENA, "export", "--format", "episodes", "-o", "-", "--db", played.url,
                            "--tournament", "cup"], capture_output=True, timeout=300)  # bytes on a real stdout
    assert piped.returncode == 0 and [json.loads(line)["tournament"] for line in piped.stdout.splitlines()] == [
        "cup", "cup"]
    assert b"wrote 2 episodes rows from 2 games to stdout" in piped.stderr


def test_an_empty_result_writes_a_valid_empty_file_and_says_so(played: Played, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    for fmt in FORMATS:
        target = tmp_path / "empty" / f"{fmt}.parquet"
        flags = ["--format", fmt, "-o", str(target), "--db", played.url, "--since", "2099-01-01"]
        assert cli.main(["export", *flags]) == 0
        assert f"no {fmt} rows matched (0 games read): wrote an empty file to {target}" in capsys.readouterr().out
        table = pq.read_table(target)
        assert table.num_rows == 0 and table.schema.names == list(exported(played, tmp_path, fmt, "parquet")[0])
    assert cli.main(["export", "--format", "tokens", "-o", str(tmp_path / "t.jsonl"), "--db", played.url,
                     "--agent", "chatty"]) == 0
    assert (tmp_path / "t.jsonl").read_text() == ""
    assert "no tokens rows matched (1 games read)" in capsys.readouterr().out
    assert to_dataset("verl", played.url, since="2099-01-01").num_rows == 0


def test_bad_input_is_one_line_exit_2_and_leaves_the_target_alone(played: Played, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("the previous export\n")
    (tmp_path / "folder.jsonl").mkdir()
    cases = [(["--format", "sft"], "--format: unknown format 'sft': use one of messages, prompt-completion"),
             (["--env", ENV, "TicTacToe-v9"], "unknown env id 'TicTacToe-v9'"),
             (["--agent", "nobody"], "unknown agent 'nobody'"),
             (["--since", "last week"], "--since: 'last week' is not a date: use YYYY-MM-DD"),
             (["--until", "2025-13-01"], "--until: '2025-13-01' is not a date"),
             (["--min-rating", "high"], "--min-rating: "),
             (["--outcome", "lost"], "--outcome: "),
             (["--reward", "elo"], "--reward: unknown reward mode 'elo'"),
             (["--tournament", "nope"], "unknown tournament 'nope'"),
             (["--outcome", "loss", "--only-winners"], "only_winners means outcome win, not loss")]
    for flags, message in cases:
        assert cli.main(["export", "--format", "messages", "-o", str(target), "--db", played.url, *flags]) == 2, flags
        err = capsys.readouterr().err
        assert err.startswith("arena: error: ") and message in err and err.count("\n") == 1, err
    for path, message in ((tmp_path / "missing" / "out.jsonl", "No such file or directory"),
                          (tmp_path / "folder.jsonl", "it is a folder"),
                          (tmp_path / "out.csv", "cannot tell the file type")):
        assert cli.main(["export", "--format", "messages", "-o", str(path), "--db", played.url]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert target.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.jsonl", "out.jsonl"], "no partial or temporary file"


def test_an_export_that_fails_midway_leaves_no_partial_file(played: Played, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("the previous export\n")
    encoded: list[dict[str, Any]] = []

    def failing(row: dict[str, Any]) -> bytes:
        encoded.append(row)
        if len(encoded) == 3:
            raise RuntimeError("disk full")
        return json.dumps(row).encode() + b"\n"

    monkeypatch.setattr(export_writers, "BATCH", 1)
    monkeypatch.setattr(export_writers, "json_line", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        export(target, "prompt-completion", played.url)
    assert len(encoded) == 3 and target.read_text() == "the previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
    with pytest.raises(ExportError, match="unknown agent 'ghost'"):
        list(rows("messages", played.url, agents=["ghost"]))
