"""The browser client in `web/`, driven in Debian's Chromium by Playwright: play, come back, watch."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from server_helpers import ARENA, Client, ServerProcess, first_move

require_chromium()

from playwright.async_api import Page, async_playwright, expect  # noqa: E402 - only once Chromium exists


@asynccontextmanager
async def browser_page() -> AsyncIterator[Page]:
    """A fresh page in headless Chromium (its own profile, so its own localStorage)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            await browser.close()


async def join(page: Page, srv: ServerProcess, name: str) -> None:
    """Open the arena page (once the server has checked its catalog) and join as guest `name`."""
    srv.get("/api/games", timeout=300)
    await page.goto(srv.url)
    await page.fill("#name", name)
    await page.click("#join-button")
    await expect(page.locator("#identity")).to_have_text(f"Playing as guest:{name}")


async def waiting(srv: ServerProcess, count: int) -> None:
    """Wait (up to 10 s) until the server has `count` players in its queues."""
    for _ in range(100):
        if srv.get("/health")["waiting"] == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the server did not reach {count} waiting players: {srv.get('/health')}")


async def play_moves(page: Page, moves: int | None = None) -> None:
    """Answer turns with the first listed move until the result shows (or `moves` have been sent)."""
    sent = 0
    while moves is None or sent < moves:
        await page.wait_for_selector("#send:not([disabled]), #result:not([hidden])")
        if await page.locator("#result").is_visible():
            return
        observation = await page.locator("#observation").text_content() or ""
        asked = await page.locator("#status").text_content() or ""  # "Your move (turn N)."
        await page.fill("#action", first_move(observation))
        await page.click("#send")
        await expect(page.locator("#status")).not_to_have_text(asked)
        sent += 1


async def test_a_person_plays_a_house_agent_in_the_browser(server, db_url: str) -> None:
    subprocess.run([ARENA, "play", "ConnectFour-v0", "--agents", "first,random", "--db", db_url], check=True,
                   capture_output=True)  # `first` is rated overall and in ConnectFour only
    srv = server("--house-wait", "60")
    async with browser_page() as page:
        await join(page, srv, "ada")
        await page.select_option("#env", "TicTacToe-v0")
        await page.click("#find-button")  # anyone: nobody else waits, and house agents come after 60 s
        await expect(page.locator("#status")).to_have_text(re.compile(r"Waiting for a game: position 1"))
        assert srv.get("/health")["waiting"] == 1
        await page.click("#leave-button")
        await expect(page.locator("#status")).to_have_text("You left the queue.")
        await waiting(srv, 0)
        await page.select_option("#opponent", "random")
        await page.click("#find-button")
        await expect(page.locator("#game-title")).to_contain_text("TicTacToe-v0")
        await play_moves(page)
        result = await page.locator("#result").text_content()
        assert re.match(r"(You won|You lost|A draw) \(reward -?\d", result or ""), result
        assert re.search(r"Rating -?\d+\.\d\d → -?\d+\.\d\d \([+-]\d+\.\d\d\)", result or ""), result
        shown = await page.locator("#observation").text_content() or ""
        assert re.search(r"\[(guest:ada|random) \(Player [01]\)\] \[\d\]", shown), "the last move is shown"
        await expect(page.locator("#join")).to_be_hidden()
        await expect(page.locator("#board")).to_contain_text("guest:ada", timeout=10_000)
        await expect(page.locator("#board tbody tr")).to_have_count(3)
        await page.select_option("#board-env", "TicTacToe-v0")
        await expect(page.locator("#board tbody tr")).to_have_count(2)
        await expect(page.locator("#board")).not_to_contain_text("first")
        [episode] = srv.get("/api/episodes?agent=guest:ada")
        await page.locator("#recent tbody tr", has_text="guest:ada").get_by_role("button", name="view").click()
        await expect(page.locator("#episode-title")).to_contain_text(f"Game {episode['id']}: TicTacToe-v0")
        turns = page.locator("#episode-turns li")
        await expect(turns).to_have_count(len(srv.get(f"/api/episodes/{episode['id']}")["turns"]))
        await expect(turns.first).to_contain_text(re.compile(r"\(Player 0\) played \[\d\]"))
        await turns.first.locator("summary").click()
        await expect(turns.first.locator("pre")).to_contain_text("Available Moves")
    board = srv.get("/api/leaderboard?env=TicTacToe-v0")
    assert {b["agent"] for b in board} == {"guest:ada", "random"}
    assert episode["status"] == "finished" and episode["tags"] == ["server"]


async def test_a_reload_keeps_the_guest_and_its_game(server) -> None:
    srv = server("--house-wait", "60", "--resume-grace", "30")
    async with browser_page() as page:
        await join(page, srv, "bea")
        await page.select_option("#opponent", "random")  # TicTacToe-v0 is preselected
        await page.click("#find-button")
        await play_moves(page, moves=1)
        await page.reload()
        await expect(page.locator("#name")).to_have_value("bea")
        await page.click("#join-button")
        await expect(page.locator("#identity")).to_have_text("Playing as guest:bea")
        await expect(page.locator("#status")).to_have_text(re.compile(r"Your move \(turn \d+\)"))  # resumed
        await play_moves(page)
        assert "(reward" in (await page.locator("#result").text_content() or "")
    [episode] = srv.get("/api/episodes?agent=guest:bea")
    assert episode["status"] == "finished" and "forfeit" not in (episode["reason"] or "")
    assert {s["agent"] for s in episode["seats"]} == {"guest:bea", "random"}


async def test_a_browser_watches_a_live_game_in_its_public_view(server) -> None:
    srv = server("--house-wait", "60")
    a, b = await Client.open(srv.ws, guest="ann"), await Client.open(srv.ws, guest="bob")
    await a.send(type="queue", envs=["TicTacToe-v0"], opponent="guest:bob")
    await b.send(type="queue", envs=["TicTacToe-v0"], opponent="guest:ann")
    match = await a.expect("match")
    await b.expect("match")
    async with browser_page() as page:
        await page.goto(srv.url)
        await page.locator("#live tbody tr", has_text=str(match["game_id"])).get_by_role("button").click()
        await expect(page.locator("#watch-title")).to_contain_text(" vs ".join(match["players"]))
        await asyncio.gather(a.play_first_moves(), b.play_first_moves())
        log = page.locator("#watch-log")
        await expect(log).to_contain_text("Game over:")
        text = await log.text_content() or ""
    assert re.search(r"\[guest:(ann|bob) \(Player [01]\)\] \[\d\]", text), text
    assert "You are Player" not in text, "a spectator never sees a seat's private prompt"
    await a.close()
    await b.close()


async def test_joining_a_stopped_server_says_so(server) -> None:
    srv = server()
    async with browser_page() as page:
        await page.goto(srv.url)
        assert srv.terminate() == 0
        await page.fill("#name", "cal")
        await page.click("#join-button")
        await expect(page.locator("#error")).to_have_text("Could not reach the arena server; try again.")
        await expect(page.locator("#join-button")).to_be_enabled()
