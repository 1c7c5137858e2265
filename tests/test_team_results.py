"""Results of team and multi-seat games: team wins labelled win everywhere results are read, a person rated
against a house agent that fills several seats (the house keeping its rating, rebuild equal to the stored
ratings), and the closing messages of a game reaching every seat, the one that made the final move included."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from helpers import arena, play_games
from server_helpers import Client
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.baseline import RandomAgent
from agents.remote import RemoteClient
from arena import export, ratings
from arena.engine import Game
from arena.play import GameSpec
from arena.store.models import OVERALL, AgentRow, RatingHistoryRow, RatingRow, SeatRow
from games import catalog

MAFIA = "SecretMafia-v0"
RPS = "IteratedRockPaperScissors-v0"


def expected_result(rewards: dict[int, float], seat: int) -> str:
    """The label a team game must give: win at the top reward, loss below it (these games have no draws)."""
    return "win" if rewards[seat] == max(rewards.values()) else "loss"


async def test_every_winner_of_a_team_win_is_labelled_win_and_every_loser_loss(db_url, engine) -> None:
    table = [f"{name}=random" for name in "abcdef"]
    results = await play_games(db_url, [GameSpec(MAFIA, seed, table) for seed in (1, 2, 3)])
    winners = 0
    for result in results:
        rewards = result.outcome.rewards
        assert result.outcome.status == "finished" and len(set(rewards.values())) == 2, rewards
        assert 2 <= list(rewards.values()).count(max(rewards.values())) <= 4, f"a team wins: {rewards}"
        winners += list(rewards.values()).count(max(rewards.values()))
    with Session(engine) as session:
        stored = {(row.episode_id, row.seat): row.result for row in session.scalars(select(SeatRow))}
        board = ratings.leaderboard(session, MAFIA)
    for result in results:
        for seat in result.outcome.rewards:
            assert stored[(result.episode_id, seat)] == expected_result(result.outcome.rewards, seat), (
                f"seat {seat} of {result.outcome.rewards}")
    assert sum(s.wins for s in board) == winners and sum(s.draws for s in board) == 0
    assert sum(s.losses for s in board) == 6 * len(results) - winners
    rows = list(export.rows("messages", db_url))
    assert {row["outcome"] for row in rows} == {"win", "loss"}
    assert all(row["reward"] == {"win": 1.0, "loss": -1.0}[row["outcome"]] for row in rows), "export agrees"


async def test_a_person_against_repeated_house_seats_is_rated_and_the_house_keeps_its_rating(db_url, engine) -> None:
    first_table = ["random", *[f"{name}=random" for name in "bcde"], "person=first"]
    house_table = ["person=first", *["random"] * 5]
    results = await play_games(db_url, [GameSpec(MAFIA, 1, first_table), GameSpec(MAFIA, 2, house_table),
                                        GameSpec(MAFIA, 3, house_table[::-1])], concurrency=1)
    assert {c.agent for c in results[0].rating_changes} == {"random", "b", "c", "d", "e", "person"}
    with Session(engine) as session:
        ids = {row.name: row.id for row in session.scalars(select(AgentRow))}
        stored = {(r.agent_id, r.env_id): (r.mu, r.sigma, r.games) for r in session.scalars(select(RatingRow))}
        house_history = session.scalars(select(RatingHistoryRow).where(
            RatingHistoryRow.agent_id == ids["random"])).all()
    for result in results[1:]:
        assert sorted((c.agent, c.env_id) for c in result.rating_changes) == [("person", OVERALL), ("person", MAFIA)]
        assert all(c.mu_after != c.mu_before for c in result.rating_changes), "the person is rated"
    house_after_first = {c.env_id: (c.mu_after, c.sigma_after) for c in results[0].rating_changes
                         if c.agent == "random"}
    for scope in (MAFIA, OVERALL):
        assert stored[(ids["random"], scope)] == (*house_after_first[scope], 1), "the house keeps its rating"
        assert stored[(ids["person"], scope)][2] == 3
    assert {h.episode_id for h in house_history} == {results[0].episode_id}
    with Session(engine) as session, session.begin():
        assert ratings.rebuild(session).mismatches == []


async def test_a_guest_against_the_house_filling_the_table_is_rated_over_the_server(server, db_url: str) -> None:
    catalog.require_playable(MAFIA)  # checked here, alone, rather than among every game the server warms up
    srv = server("--house-wait", "0.5")
    guest = RemoteClient(srv.ws, RandomAgent(seed=5), [MAFIA], guest="ada")
    (over,) = await asyncio.wait_for(guest.play(1), 240)
    assert over.status == "finished" and over.seat is not None
    assert over.rating_after is not None and over.mu_after != over.mu_before, "the guest is rated"
    assert over.result == expected_result(over.rewards, over.seat), f"seat {over.seat} of {over.rewards}"
    episode = srv.get(f"/api/episodes/{over.game_id}")
    agents = Counter(seat["agent"] for seat in episode["seats"])
    assert agents["guest:ada"] == 1 and agents["random"] == len(episode["seats"]) - 1 >= 4
    assert {s["seat"]: s["result"] for s in episode["seats"]} == {
        seat: expected_result(over.rewards, seat) for seat in over.rewards}
    board = {b["agent"]: b for b in srv.get(f"/api/leaderboard?env={MAFIA}")}
    assert (board["random"]["mu"], board["random"]["sigma"]) == (25.0, 25 / 3), "the house is not rated"
    assert board["guest:ada"]["mu"] == over.mu_after
    srv.stop()  # every result told is committed: nothing is lost by stopping here
    rebuild = await asyncio.to_thread(arena, "ratings", "rebuild", "--db", db_url)
    assert rebuild.returncode == 0 and "every rebuilt rating equals the stored one" in rebuild.stdout, rebuild.stdout


async def _play_rps(client: Client, seed: int) -> dict:
    """Answer every turn with a random hand until game_over; returns it."""
    rng = random.Random(seed)
    while True:
        message = await client.expect("turn", "game_over", timeout=60)
        if message["type"] == "game_over":
            return message
        await client.send(type="action", game_id=message["game_id"], action=rng.choice(["[rock]", "[paper]",
                                                                                        "[scissors]"]))


def _shown_in_the_end(client: Client) -> tuple[list[dict], list[dict]]:
    """What a seat was shown by its last `turn`, and the messages it got after that turn."""
    last = max(i for i, m in enumerate(client.seen) if m["type"] == "turn")
    after = [m for frame in client.seen[last + 1:] if frame["type"] == "event" for m in frame["messages"]]
    return client.seen[last]["messages"], after


async def test_every_seat_gets_the_closing_messages_the_last_mover_included(server) -> None:
    catalog.require_playable(RPS)
    srv = server("--house-wait", "60")
    clients = [await Client.open(srv.ws, guest=name) for name in ("rock", "paper")]
    for client in clients:
        await client.send(type="queue", envs=[RPS])
    overs = await asyncio.wait_for(asyncio.gather(*(_play_rps(c, i) for i, c in enumerate(clients))), 120)
    assert overs[0]["game_id"] == overs[1]["game_id"] and overs[0]["status"] == "finished"
    episode = srv.get(f"/api/episodes/{overs[0]['game_id']}")
    replay = Game(RPS, 2, episode["seed"])
    replay.start()
    for turn in episode["turns"]:
        replay.act(turn["seat"], turn["action"], 0.0)
    assert replay.done, "the stored turns replay the whole game"
    last_turn = episode["turns"][-1]
    for client, over in sorted(zip(clients, overs, strict=True), key=lambda pair: pair[1]["seat"] != last_turn["seat"]):
        before, after = _shown_in_the_end(client)
        seen = Counter((m["sender"], m["text"], m["kind"]) for m in [*before, *after])
        assert seen == Counter(replay.seat_logs[over["seat"]]), f"seat {over['seat']} missed closing messages"
        if over["seat"] == last_turn["seat"]:
            assert {"sender": over["seat"], "text": last_turn["action"], "kind": "PLAYER_ACTION",
                    "private": True} in after, "the last mover is shown its own final move"
    for client in clients:
        await client.close()
