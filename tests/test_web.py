"""The browser client in `web/`, driven in Debian's Chromium by Playwright: what a person sees and clicks.

Every test runs a real `arena serve` on a real SQLite database; pages are saved as screenshots in
test-artifacts/ (web-*.png) for a person to look at.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from browser import browser_page, require_chromium, screenshot
from helpers import arena
from server_helpers import InProcessServer, ServerUnderTest

from agents.base import Decision, TurnContext
from agents.baseline import RandomAgent
from agents.remote import RemoteClient

require_chromium()

from playwright.async_api import Page, expect  # noqa: E402 - only once Chromium exists

YOUR_MOVE = re.compile(r"Your move \(turn \d+\)")


async def open_lobby(page: Page, srv: ServerUnderTest) -> None:
    """Open the lobby once the server has checked its catalog, with the game list loaded."""
    srv.get("/api/games", timeout=300)
    await page.goto(srv.url)
    await expect(page.locator("#variant")).to_have_value("TicTacToe-v0")  # the default pick, once listed


async def join(page: Page, srv: ServerUnderTest, name: str) -> None:
    """Open the lobby and join as guest `name`."""
    await open_lobby(page, srv)
    await page.fill("#name", name)
    await page.click("#join-button")
    await expect(page.locator("#identity")).to_have_text(f"Playing as guest:{name}")


async def challenge_house(page: Page, opponent: str = "random") -> int:
    """From the lobby: queue for the picked game against a house agent; returns the game id the page shows."""
    await page.select_option("#opponent", opponent)
    await page.click("#find-button")
    await expect(page).to_have_url(re.compile(r"#/game/\d+$"))
    await expect(page.locator("#game-title")).to_contain_text("TicTacToe-v0")
    return int(page.url.rsplit("/", 1)[1])


async def waiting(srv: ServerUnderTest, count: int) -> None:
    """Wait (up to 10 s) until the server has `count` players in its queues."""
    for _ in range(100):
        if srv.get("/health")["waiting"] == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the server did not reach {count} waiting players: {srv.get('/health')}")


async def play_by_clicking(page: Page, where: str = "#board", moves: int | None = None) -> int:
    """Click the first clickable move in `where` (#board: the board itself; #moves: the move buttons) on every
    turn until the result shows (or `moves` were played); returns how many moves were clicked."""
    clicked = 0
    turn_info = page.locator("#turn-info")
    while moves is None or clicked < moves:
        await page.wait_for_selector(f"{where} button[data-move], #result:not([hidden])")
        if await page.locator("#result").is_visible():
            break
        asked = await turn_info.text_content()  # "Your move (turn N)."
        await page.locator(f"{where} button[data-move]").first.click()
        clicked += 1
        await expect(turn_info).not_to_have_text(asked or "")  # the move went: waiting, the next turn, or the end
    return clicked


async def test_a_person_plays_tictactoe_by_clicking_the_board(server, db_url: str) -> None:
    played = await asyncio.to_thread(arena, "play", "ConnectFour-v0", "--agents", "first,random", "--db", db_url)
    assert played.returncode == 0, played.stderr  # `first` is rated overall and in ConnectFour only
    srv = server("--house-wait", "60")
    async with browser_page() as page:
        await join(page, srv, "ada")
        await screenshot(page, "lobby")
        await page.click("#find-button")  # anyone: nobody else waits, and house agents come after 60 s
        status = page.locator("#status")
        await expect(status).to_have_text(re.compile(r"Waiting for a game of TicTacToe-v0: position 1, \d+ s waited"))
        assert srv.get("/health")["waiting"] == 1
        await expect(status).to_have_text(re.compile(r"[3-9] s waited"))  # the page counts the seconds itself
        await page.click("#leave-button")
        await expect(status).to_have_text("You left the queue.")
        await waiting(srv, 0)

        game_id = await challenge_house(page)
        board = page.locator("#board")
        await expect(board.locator("button[data-move]").first).to_be_visible()
        on_board = await board.locator("button[data-move]").evaluate_all("bs => bs.map(b => b.dataset.move)")
        listed = await page.locator("#moves button[data-move]").evaluate_all("bs => bs.map(b => b.dataset.move)")
        assert sorted(on_board) == sorted(listed) and on_board, (on_board, listed)  # every valid move, on the board
        labels = await board.locator("button[data-move]").evaluate_all(
            "bs => bs.map(b => [b.dataset.move, b.textContent])")
        assert all(move == f"[{text}]" for move, text in labels), labels  # `4` on the board sends `[4]`
        await expect(page.locator("#transcript .private")).to_contain_text("You are Player")  # the rules: yours only
        await screenshot(page, "game")
        assert await play_by_clicking(page, "#board") >= 1

        await expect(page.locator("#verdict")).to_have_text(re.compile(r"^(You won|You lost|Draw)$"))
        rating = page.locator("#rating-change")
        await expect(rating).to_contain_text(re.compile(r"skill μ \(mu\) 25\.00 → \d+\.\d\d"))
        await expect(rating).to_contain_text(re.compile(r"uncertainty σ \(sigma\) 8\.33 → \d+\.\d\d"))
        await expect(rating).to_contain_text(re.compile(r"μ − 3σ: 0\.00 → -?\d+\.\d\d \([+−]\d+\.\d\d\)"))
        await expect(rating).to_contain_text("rises as you play more")
        placed = re.compile(r"placed their symbol \([XO]\) in cell \d")
        await expect(page.locator("#transcript")).to_contain_text(placed)
        await expect(page.locator("#rematch")).to_be_enabled()
        await expect(page.locator("#back")).to_have_attribute("href", "#/")
        await screenshot(page, "result")

        await page.get_by_role("link", name="Leaderboard", exact=True).click()
        table = page.locator("#leaderboard tbody tr")
        await expect(page.locator('#leaderboard tr[data-agent="guest:ada"] .games-count')).to_have_text("1")
        await expect(table).to_have_count(3)
        await page.select_option("#lb-env", "TicTacToe-v0")
        await expect(page).to_have_url(re.compile(r"#/leaderboard\?env=TicTacToe-v0$"))
        await expect(table).to_have_count(2)
        await expect(page.locator("#leaderboard")).not_to_contain_text("first")
        await screenshot(page, "leaderboard")

        await page.locator("#leaderboard").get_by_role("link", name="guest:ada").click()
        await expect(page).to_have_url(re.compile(r"#/agent/guest%3Aada\?env=TicTacToe-v0$"))
        await expect(page.locator("#chart svg polyline.conservative")).to_have_count(1)
        await expect(page.locator("#chart svg circle.dot")).to_have_count(1)  # one rated game
        await expect(page.locator("#agent-stats")).to_contain_text(re.compile(r"Rank\s*[12] of 2"))
        await screenshot(page, "agent-history")
    board_rows = srv.get("/api/leaderboard?env=TicTacToe-v0")
    assert {b["agent"] for b in board_rows} == {"guest:ada", "random"}
    [episode] = srv.get("/api/episodes?agent=guest:ada")
    assert episode["id"] == game_id and episode["status"] == "finished" and episode["tags"] == ["server"]


async def test_the_leaderboard_filters_by_tournament_with_bradley_terry_intervals(server, db_url: str) -> None:
    for command in (["tournament", "run", "--name", "cup", "--envs", "TicTacToe-v0", "--agents", "random,first",
                     "--games-per-pair", "4"],
                    ["play", "ConnectFour-v0", "--agents", "first,third=random"]):  # `third` plays outside the cup
        done = await asyncio.to_thread(arena, *command, "--db", db_url)
        assert done.returncode == 0, done.stderr
    srv = server()
    async with browser_page() as page:
        await page.goto(f"{srv.url}/#/leaderboard")
        rows = page.locator("#leaderboard tbody tr")
        await expect(rows).to_have_count(3)
        await page.select_option("#lb-tournament", "cup")
        await expect(page).to_have_url(re.compile(r"#/leaderboard\?tournament=cup$"))
        await expect(rows).to_have_count(2)
        await expect(page.locator("#leaderboard thead")).to_contain_text("Bradley–Terry")
        expected = srv.get("/api/leaderboard?tournament=cup")
        for standing in expected:
            agent = standing["agent"]
            row = page.locator(f'#leaderboard tr[data-agent="{agent}"]')
            await expect(row.locator(".games-count")).to_have_text(str(standing["games"]))
            number = r"-?\d+(\.\d\d)?"
            await expect(row.locator(".bt")).to_have_text(re.compile(rf"^{number} \[{number}, {number}\]$"))
        srv.get("/api/games", timeout=300)  # the catalog, checked once by a new server, names the games to pick
        await expect(page.locator("#lb-env option")).to_have_count(2)
        envs = await page.locator("#lb-env option").evaluate_all("os => os.map(o => o.value)")
        assert envs == ["", "TicTacToe-v0"], envs  # the games of that tournament
        await screenshot(page, "leaderboard-tournament")
        await page.reload()
        await expect(page.locator("#lb-tournament")).to_have_value("cup")
        await expect(rows).to_have_count(2)


class SlowAgent(RandomAgent):
    """A random SDK agent that waits for `go`, then takes `delay` seconds a move; it keeps what it was shown."""

    def __init__(self, go: asyncio.Event, name: str, delay: float = 0.4) -> None:
        super().__init__(name=name)
        self.go, self.delay, self.seen = go, delay, []

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        self.seen.append(observation)
        await self.go.wait()
        await asyncio.sleep(self.delay)
        return await super().decide(observation, context)


def agent_token(db_url: str, name: str) -> str:
    created = arena("agents", "create", name, "--db", db_url)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


async def test_the_live_page_shows_two_sdk_agents_and_a_spectator_sees_their_moves(server, db_url: str) -> None:
    srv = server("--house-wait", "60")
    go = asyncio.Event()
    alice, bob = SlowAgent(go, "alice"), SlowAgent(go, "bob")
    clients = [RemoteClient(srv.ws, alice, ["TicTacToe-v0"], token=agent_token(db_url, "alice"), opponent="bob"),
               RemoteClient(srv.ws, bob, ["TicTacToe-v0"], token=agent_token(db_url, "bob"), opponent="alice")]
    playing = asyncio.ensure_future(asyncio.gather(*(c.play(games=1) for c in clients)))
    try:
        async with browser_page() as page:
            await page.goto(f"{srv.url}/#/live")
            row = page.locator("#live tbody tr", has_text="alice")
            await expect(row).to_contain_text("bob")
            await expect(row).to_contain_text("TicTacToe-v0")
            await screenshot(page, "live")
            await row.get_by_role("link", name=re.compile("Watch")).click()
            await expect(page).to_have_url(re.compile(r"#/watch/\d+$"))
            game_id = int(page.url.rsplit("/", 1)[1])
            await expect(page.locator("#watch-players")).to_contain_text(re.compile(r"Player 0: (alice|bob)"))
            await expect(page.locator("#watch-state")).to_have_text(re.compile("^Live"))
            moves = page.locator("#transcript .kind-player_action")
            assert await moves.count() == 0  # nobody has moved: the agents wait for `go`
            go.set()
            await expect(moves.first).to_be_visible()
            first_seen = await moves.count()
            await screenshot(page, "spectate")
            await expect(page.locator("#watch-result")).to_be_visible(timeout=60_000)
            verdict = re.compile(r"(alice|bob) \(Player \d\) won|Draw")
            await expect(page.locator("#watch-result h2")).to_have_text(verdict)
            text = await page.locator("#transcript").inner_text()
            shown = await moves.count()
        await playing
    finally:
        go.set()
        if not playing.done():
            playing.cancel()
    turns = srv.get(f"/api/episodes/{game_id}")["turns"]
    assert shown == len(turns) > first_seen, "every move arrived while the page was open, one after another"
    assert re.search(r"(alice|bob) \(Player [01]\) · move\s*\[\d\]", text), text
    assert any("You are Player" in seen for seen in alice.seen + bob.seen), "the seats' prompts say it: the probe works"
    assert "You are Player" not in text, "a spectator never sees a seat's private prompt"


async def test_a_replay_steps_through_a_finished_game_and_a_rematch_meets_the_same_opponent(server) -> None:
    srv = server("--house-wait", "60")
    async with browser_page() as page:
        await join(page, srv, "cy")
        first_game = await challenge_house(page)
        await play_by_clicking(page, "#moves")
        await expect(page.locator("#rematch")).to_have_text("Rematch random")
        await page.click("#rematch")
        await expect(page).not_to_have_url(re.compile(rf"#/game/{first_game}$"))
        await expect(page).to_have_url(re.compile(r"#/game/\d+$"))
        second_game = int(page.url.rsplit("/", 1)[1])
        await expect(page.locator("#players")).to_contain_text("random")
        await play_by_clicking(page, "#board")
        await expect(page.locator("#verdict")).to_be_visible()
        episodes = srv.get("/api/episodes?agent=guest:cy")
        assert [e["id"] for e in episodes] == [second_game, first_game]
        assert all({s["agent"] for s in e["seats"]} == {"guest:cy", "random"} for e in episodes)

        turns = srv.get(f"/api/episodes/{first_game}")["turns"]
        await page.goto(f"{srv.url}/#/live")
        await page.locator(f'#recent tr[data-episode="{first_game}"]').get_by_role("link", name="Replay").click()
        await expect(page).to_have_url(re.compile(rf"#/replay/{first_game}/1$"))
        label, action = page.locator("#step-label"), page.locator("#step-action")
        await expect(label).to_have_text(f"Move 1 of {len(turns)}")
        await expect(action).to_contain_text(f"played {turns[0]['action']}")
        await page.keyboard.press("ArrowRight")
        await expect(label).to_have_text(f"Move 2 of {len(turns)}")
        await expect(page).to_have_url(re.compile(rf"#/replay/{first_game}/2$"))
        await page.click("#next")
        await expect(label).to_have_text(f"Move 3 of {len(turns)}")
        await expect(action).to_contain_text(f"played {turns[2]['action']}")
        await page.keyboard.press("ArrowLeft")
        await expect(label).to_have_text(f"Move 2 of {len(turns)}")
        await page.click("#prev")
        await expect(label).to_have_text(f"Move 1 of {len(turns)}")
        await page.keyboard.press("End")
        await expect(label).to_have_text(f"Move {len(turns)} of {len(turns)}")
        await page.click("#first")
        await page.click("#next")
        await page.click("#next")
        await expect(page).to_have_url(re.compile(rf"#/replay/{first_game}/3$"))
        shown = await action.inner_text()
        await page.reload()
        await expect(label).to_have_text(f"Move 3 of {len(turns)}")
        await expect(action).to_have_text(shown)
        seats = srv.get(f"/api/episodes/{first_game}")["seats"]
        guest_seat = next(s["seat"] for s in seats if s["agent"] == "guest:cy")
        await page.select_option("#replay-seat", str(guest_seat))
        await expect(page).to_have_url(re.compile(rf"#/replay/{first_game}/3\?seat={guest_seat}$"))
        await expect(page.locator("#view-title")).to_contain_text(f"guest:cy (Player {guest_seat})")
        seen = next(t for t in reversed(turns[:3]) if t["seat"] == guest_seat)["observation"]
        await expect(page.locator("#replay-observation")).to_have_text(seen, use_inner_text=False)
        await screenshot(page, "replay")


async def test_an_invalid_typed_move_shows_the_games_feedback(server) -> None:
    srv = server("--house-wait", "60")
    async with browser_page() as page:
        await join(page, srv, "dee")
        game_id = await challenge_house(page)
        await expect(page.locator("#action")).to_be_enabled()
        await page.fill("#action", "[9]")
        await page.press("#action", "Enter")
        feedback = page.locator("#feedback")
        await expect(feedback).to_contain_text("Invalid move [9]")
        await expect(feedback).to_contain_text("Must be between 0 and 8")
        await expect(page.locator("#transcript")).to_contain_text("attempted an invalid move")
        await expect(page.locator("#turn-info")).to_have_text(YOUR_MOVE)  # TextArena allows one more try
        await expect(page.locator("#action")).to_be_focused()  # the text box again, for the next typed move
        await screenshot(page, "invalid-move")
        await play_by_clicking(page, "#board")
        await expect(page.locator("#verdict")).to_be_visible()
        turns = srv.get(f"/api/episodes/{game_id}")["turns"]
        step = next(i + 1 for i, t in enumerate(turns) if t["invalid"])
        await page.goto(f"{srv.url}/#/replay/{game_id}/{step}")
        await expect(page.locator("#step-action")).to_contain_text("played [9]")
        await expect(page.locator("#step-action .invalid-badge")).to_have_text("invalid")
        await expect(page.locator(f'#move-list li[data-step="{step}"]')).to_have_class(re.compile("invalid"))


async def test_the_lobby_works_at_phone_width(server) -> None:
    srv = server("--house-wait", "60")
    async with browser_page(390, 844) as page:
        await open_lobby(page, srv)
        width = "document.documentElement.scrollWidth"
        assert await page.evaluate(width) <= 390, "no horizontal scrolling of the page"
        await screenshot(page, "mobile-lobby")
        families = page.locator("#games button.family")
        names = await families.evaluate_all("bs => bs.map(b => b.dataset.family)")
        assert "TicTacToe" in names and not any(n.endswith(("-train", "-raw")) or "-v" in n for n in names)
        assert len(names) < len(srv.get("/api/games")) / 3, "variants sit under their family"

        await page.fill("#search", "connect")
        await expect(page.locator('#games button[data-family="ConnectFour"]')).to_be_visible()
        await expect(page.locator('#games button[data-family="TicTacToe"]')).to_be_hidden()
        await page.locator('#games button[data-family="ConnectFour"]').click()
        await expect(page.locator("#selected-title")).to_have_text("ConnectFour")
        await expect(page.locator("#variant")).to_have_value("ConnectFour-v0")
        variants = await page.locator("#variant option").evaluate_all("os => os.map(o => o.value)")
        assert "ConnectFour-v0-train" in variants and all(v.startswith("ConnectFour-v0") for v in variants)

        await page.fill("#name", "eve")
        await page.locator("#join-button").click()
        await expect(page.locator("#identity")).to_have_text("Playing as guest:eve")
        await page.locator("#find-button").click()
        await expect(page.locator("#status")).to_have_text(re.compile(r"Waiting for a game of ConnectFour-v0"))
        await expect(page.locator("#leave-button")).to_be_visible()
        for control in ("#search", "#find-button", "#leave-button", "#sign-out"):
            await page.locator(control).scroll_into_view_if_needed()
            box = await page.locator(control).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (control, box)
        assert await page.evaluate(width) <= 390
        await page.locator("#leave-button").click()
        await expect(page.locator("#status")).to_have_text("You left the queue.")
        await waiting(srv, 0)


async def test_a_reload_keeps_the_guest_and_its_game(server) -> None:
    srv = server("--house-wait", "60", "--resume-grace", "30")
    async with browser_page() as page:
        await join(page, srv, "bea")
        game_id = await challenge_house(page)
        await play_by_clicking(page, "#board", moves=1)
        await page.reload()
        await expect(page.locator("#me")).to_have_text("guest:bea")  # signed in again with the stored token
        await expect(page).to_have_url(re.compile(rf"#/game/{game_id}$"))
        await expect(page.locator("#status")).to_have_text(YOUR_MOVE)  # resumed: the pending turn came back
        await play_by_clicking(page, "#board")
        await expect(page.locator("#verdict")).to_be_visible()
    [episode] = srv.get("/api/episodes?agent=guest:bea")
    assert episode["status"] == "finished" and "forfeit" not in (episode["reason"] or "")
    assert {s["agent"] for s in episode["seats"]} == {"guest:bea", "random"}


async def test_joining_a_stopped_server_says_so(server) -> None:
    srv = server()
    async with browser_page() as page:
        await page.goto(srv.url)
        await asyncio.to_thread(srv.stop)  # as on SIGTERM: players told, games stored aborted
        await page.fill("#name", "cal")
        await page.click("#join-button")
        await expect(page.locator("#error")).to_have_text("Could not reach the arena server; try again.")
        await expect(page.locator("#join-button")).to_be_enabled()


async def test_a_game_in_progress_when_the_server_stops_says_so(server) -> None:
    srv = server("--house-wait", "60")
    async with browser_page() as page:
        await join(page, srv, "fay")
        await challenge_house(page)
        await expect(page.locator("#turn-info")).to_have_text(YOUR_MOVE)
        await asyncio.to_thread(srv.stop)  # as on SIGTERM: players told, games stored aborted
        await expect(page.locator("#error")).to_have_text(re.compile(r"^The server is shutting down"))
        await expect(page.locator("#verdict")).to_have_text("Game aborted")
        await expect(page.locator("#rating-change")).to_contain_text("it is not rated")
        await expect(page.locator("#status")).to_have_text("The server stopped. Join again when it is back.")


@pytest.mark.slow
async def test_the_local_house_model_only_makes_legal_moves_against_a_person(db_url: str) -> None:
    # About 30 s: three games against the real model through a real browser, which the constraint needs to show
    # holding over rematches (each a fresh game, prompt and grammar).
    srv = InProcessServer(db_url, "--house", "local", "--house-wait", "60").start()
    try:
        async with browser_page() as page:
            await join(page, srv, "eve")
            await challenge_house(page, "local")
            model_turns: list[dict] = []
            for _ in range(8):  # about four model moves a game: 12 take three games, and two rematches
                await play_by_clicking(page, "#board")
                await expect(page.locator("#verdict")).to_be_visible()
                model_turns = local_turns(srv)
                if len(model_turns) >= 12 and len({t["episode"] for t in model_turns}) >= 3:
                    break
                await expect(page.locator("#rematch")).to_have_text("Rematch local")
                await page.click("#rematch")
                await expect(page.locator("#verdict")).to_be_hidden()  # the new game is on
            await screenshot(page, "house-model-result")
    finally:
        srv.stop()
    assert len(model_turns) >= 12, len(model_turns)
    for turn in model_turns:
        assert turn["info"]["constrained"] is True, turn["info"]
        assert not turn["invalid"] and turn["action"] in turn["info"]["choices"], turn
    assert len({t["episode"] for t in model_turns}) >= 3, "the turns come from several games"


def local_turns(srv: ServerUnderTest) -> list[dict]:
    """Every turn the `local` house model played on this server, oldest game first."""
    episodes = sorted(srv.get("/api/episodes?agent=local&status=finished"), key=lambda e: e["id"])
    turns = []
    for episode in episodes:
        seat = next(s["seat"] for s in episode["seats"] if s["agent"] == "local")
        turns += [t | {"episode": episode["id"]} for t in srv.get(f"/api/episodes/{episode['id']}")["turns"]
                  if t["seat"] == seat]
    return turns


async def test_connect_four_is_played_by_clicking_its_column_numbers(server) -> None:
    srv = server("--house-wait", "60")
    async with browser_page() as page:
        await join(page, srv, "fay")
        await page.fill("#search", "connect four")
        await page.locator('#games button[data-family="ConnectFour"]').click()
        await page.select_option("#opponent", "random")
        await page.click("#find-button")
        await expect(page.locator("#game-title")).to_contain_text("ConnectFour-v0")
        columns = page.locator("#board button[data-move]")
        await expect(columns).to_have_count(7)
        labels = await columns.evaluate_all("bs => bs.map(b => [b.textContent, b.dataset.move])")
        assert labels == [[str(c), f"[col {c}]"] for c in range(7)], labels
        await screenshot(page, "connect-four")
        assert await play_by_clicking(page, "#board") >= 4
        await expect(page.locator("#verdict")).to_be_visible()
    [episode] = srv.get("/api/episodes?agent=guest:fay")
    turns = srv.get(f"/api/episodes/{episode['id']}")["turns"]
    mine = [t for t in turns if t["seat"] == next(s["seat"] for s in episode["seats"] if s["agent"] == "guest:fay")]
    assert all(re.fullmatch(r"\[col \d\]", t["action"]) and not t["invalid"] for t in mine), mine
