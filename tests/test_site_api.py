"""What the browser client reads from the protocol and the HTTP API: valid moves and structured messages in
`turn`, invalid-move acks, rating changes explained, the grouped catalog, Bradley–Terry on the leaderboard,
rating history, and logs that keep a live game's secrets."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

from helpers import arena, play_games
from server_helpers import Client, ServerUnderTest
from test_server import make_tokens

from agents.moves import valid_moves
from arena.engine import Game
from arena.play import schedule
from games import catalog


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def kuhn_poker_pair(srv: ServerUnderTest, db_url: str) -> tuple[Client, Client]:
    """Two agents queued for KuhnPoker-v0, so that they meet each other."""
    alice, bob = make_tokens(db_url, "alice", "bob")
    a, b = await Client.open(srv.ws, token=alice), await Client.open(srv.ws, token=bob)
    for client in (a, b):
        await client.send(type="queue", envs=["KuhnPoker-v0"])
    return a, b


async def test_a_turn_lists_its_valid_moves_and_marks_what_only_this_seat_saw(server, db_url: str) -> None:
    a, b = await kuhn_poker_pair(server("--house-wait", "60"), db_url)
    await asyncio.gather(a.play_first_moves(), b.play_first_moves())
    turns = [m for c in (a, b) for m in c.seen if m["type"] == "turn"]
    for turn in turns:
        assert turn["moves"] and all(move in turn["observation"] for move in turn["moves"]), turn
        texts = [m["text"] for m in turn["messages"]]
        assert all(text in turn["observation"] for text in texts)
        private = [m for m in turn["messages"] if m["private"]]
        assert any("Your card" in m["text"] for m in private), "a seat's own card is private"
        assert not any("Your card" in m["text"] for m in turn["messages"] if not m["private"])
        assert any(m["kind"] == "PROMPT" for m in turn["messages"])
    await a.close()
    await b.close()


def test_connect_fours_moves_are_read_from_its_board_and_all_of_them_are_legal() -> None:
    game = Game("ConnectFour-v0", 2, seed=4)
    game.start()
    assert valid_moves(game.pending.observation, "ConnectFour-v0") == [f"[col {c}]" for c in range(7)]
    assert valid_moves(game.pending.observation) == [], "without the env id nothing says which board it is"
    for _ in range(6):
        game.act(game.pending.seat, "[col 3]", 0.0)
    assert "[col 3]" not in valid_moves(game.pending.observation, "ConnectFour-v0"), "a full column is no move"
    while not game.done:
        moves = valid_moves(game.pending.observation, "ConnectFour-v0")
        game.act(game.pending.seat, moves[len(game.turns) % len(moves)], 0.0)
    assert not any(turn.invalid for turn in game.turns) and len(game.turns) > 10


async def test_an_invalid_move_is_acked_with_the_games_reason_and_the_seat_moves_again(server) -> None:
    srv = server("--house-wait", "60")
    ada = await Client.open(srv.ws, guest="ada")
    await ada.send(type="queue", envs=["TicTacToe-v0"], opponent="random")
    match = await ada.expect("match")
    turn = await ada.expect("turn")
    assert set(turn["moves"]) <= {f"[{cell}]" for cell in range(9)} and len(turn["moves"]) == 9 - turn["turn"]
    await ada.send(type="action", game_id=match["game_id"], action="[9]")
    ack = await ada.expect("ack")
    assert ack["invalid"] is True and "9" in ack["reason"], ack
    again = await ada.expect("turn", "game_over")
    assert again["type"] == "turn" and "invalid" in again["observation"].lower()
    await ada.close()


async def test_game_over_explains_the_rating_change_in_mu_and_sigma(server) -> None:
    srv = server("--house-wait", "60")
    ada = await Client.open(srv.ws, guest="ada")
    await ada.send(type="queue", envs=["TicTacToe-v0"], opponent="random")
    over = await ada.play_first_moves()
    assert over["status"] == "finished"
    assert over["mu_before"] == 25.0 and abs(over["sigma_before"] - 25 / 3) < 1e-9
    moved = {"win": 1, "draw": 0, "loss": -1}[over["result"]]  # random may draw: equal ratings then keep mu
    assert (over["mu_after"] > over["mu_before"]) - (over["mu_after"] < over["mu_before"]) == moved, over
    assert over["sigma_after"] < over["sigma_before"]
    assert abs(over["rating_after"] - (over["mu_after"] - 3 * over["sigma_after"])) < 1e-9
    [point] = srv.get("/api/agents/guest:ada/history?env=TicTacToe-v0")
    assert (point["mu"], point["sigma"]) == (over["mu_after"], over["sigma_after"])
    await ada.close()


def test_the_catalog_groups_variants_under_their_game_with_a_description(server) -> None:
    srv = server()
    games = {g["env_id"]: g for g in srv.get("/api/games", timeout=300)}
    assert games["TicTacToe-v0"] | {"description": ""} == {
        "env_id": "TicTacToe-v0", "players": [2], "family": "TicTacToe", "variant": "", "description": "",
        "single_player": False}
    assert "3×3" in games["TicTacToe-v0"]["description"] or "3x3" in games["TicTacToe-v0"]["description"]
    assert (games["TicTacToe-v0-raw"]["family"], games["TicTacToe-v0-raw"]["variant"]) == ("TicTacToe", "raw")
    assert games["ConnectFour-v0"]["family"] == "ConnectFour"
    assert games["Sudoku-v0"]["single_player"] is True
    described = catalog.descriptions()
    assert all(g["description"] == described[g["family"]] for g in games.values())
    assert len({g["family"] for g in games.values()}) < len(games) / 2, "variants are grouped"


async def test_the_leaderboard_adds_bradley_terry_with_enough_games_and_filters_by_tournament(server,
                                                                                                db_url: str) -> None:
    await play_games(db_url, schedule("TicTacToe-v0", ["random", "first"], 3, 1))
    srv = server()
    few = srv.get("/api/leaderboard?env=TicTacToe-v0")
    assert [entry["bt"] for entry in few] == [None, None], "three games are too few for Bradley–Terry"
    await play_games(db_url, schedule("TicTacToe-v0", ["random", "first"], 20, 2))
    board = srv.get("/api/leaderboard?env=TicTacToe-v0")
    assert {entry["agent"] for entry in board} == {"random", "first"}
    for entry in board:
        assert entry["bt"]["low"] <= entry["bt"]["rating"] <= entry["bt"]["high"]
        assert entry["rating"] == entry["mu"] - 3 * entry["sigma"]
        assert entry["wins"] + entry["draws"] + entry["losses"] == entry["games"] == 23
    done = await asyncio.to_thread(arena, "tournament", "run", "--name", "cup", "--envs", "TicTacToe-v0", "--agents",
                                   "first,random", "--games-per-pair", "4", "--db", db_url)
    assert done.returncode == 0, done.stderr
    played = srv.get("/api/tournaments/cup")["games_played"]
    cup = srv.get("/api/leaderboard?env=TicTacToe-v0&tournament=cup")
    assert 0 < played < 23 and [entry["games"] for entry in cup] == [played, played]
    assert all(entry["bt"] for entry in cup), "a tournament always gets Bradley–Terry"
    assert status_of(f"{srv.url}/api/leaderboard?tournament=nope") == 404


async def test_rating_history_has_one_point_per_rated_game_ending_at_the_current_rating(server, db_url) -> None:
    await play_games(db_url, schedule("TicTacToe-v0", ["random", "first"], 5, 1))
    await play_games(db_url, schedule("ConnectFour-v0", ["random", "first"], 2, 1))
    srv = server()
    history = srv.get("/api/agents/first/history?env=TicTacToe-v0")
    overall = srv.get("/api/agents/first/history")
    assert len(history) == 5 and len(overall) == 7
    assert all(later["mu_before"] == earlier["mu"] for earlier, later in zip(history, history[1:], strict=False))
    [first] = [entry for entry in srv.get("/api/leaderboard?env=TicTacToe-v0") if entry["agent"] == "first"]
    assert (history[-1]["mu"], history[-1]["sigma"], history[-1]["rating"]) == (first["mu"], first["sigma"],
                                                                                  first["rating"])
    assert status_of(f"{srv.url}/api/agents/nobody/history") == 404


async def test_a_running_games_log_keeps_what_each_seat_saw_until_it_ends(server, db_url: str) -> None:
    srv = server("--house-wait", "60")
    a, b = await kuhn_poker_pair(srv, db_url)
    game_id = (await a.expect("match"))["game_id"]
    await b.expect("match")
    waits = {asyncio.create_task(c.expect("turn")): c for c in (a, b)}  # recv is cancellation-safe
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    [task] = done
    turn, mover = task.result(), waits[task]
    await mover.send(type="action", game_id=game_id, action=turn["moves"][0])
    await mover.expect("ack")
    running = srv.get(f"/api/episodes/{game_id}")
    assert running["status"] == "running" and running["turns"]
    assert all(t["observation"] == "" and t["action"] == "" and t["info"] == {} for t in running["turns"])
    assert srv.get("/api/episodes?status=running")[0]["id"] == game_id
    await asyncio.gather(a.play_first_moves(), b.play_first_moves())
    finished = srv.get(f"/api/episodes/{game_id}")
    assert all("Your card" in t["observation"] and t["action"] for t in finished["turns"])
    assert srv.get("/api/episodes?status=running") == []
    await a.close()
    await b.close()
