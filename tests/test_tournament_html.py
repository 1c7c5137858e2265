"""The HTML tournament report: a real tournament's report opened in Debian's Chromium with the network cut off."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, require_chromium

from arena.cli import main
from arena.tournament.html import render_html
from arena.tournament.report import (
    BradleyTerryStanding,
    Conduct,
    EnvStandings,
    HeadToHead,
    TournamentReport,
    TrueSkillStanding,
)

require_chromium()

from playwright.async_api import Page, Route, async_playwright  # noqa: E402 - only once Chromium exists

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
MARKUP = "<b>x</b>"
# An agent whose name (its spec, as it has no NAME=) carries HTML: a user could register one like it.
TRICKY = f"python:fixtures.ta_agents:make_center?prefer={MARKUP}"
AGENTS = ["random", "first", "a=random", TRICKY]


@pytest.fixture
def played(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[TournamentReport, Path]:
    """A real round-robin through the CLI, its `--json` report and the `--html` file written with it."""
    db = f"sqlite:///{tmp_path / 'arena.db'}"
    assert main(["tournament", "run", "--name", "t", "--envs", "TicTacToe-v0", "--agents", ",".join(AGENTS),
                 "--games-per-pair", "2", "--db", db]) == 0
    capsys.readouterr()
    path = tmp_path / "report.html"
    assert main(["tournament", "report", "t", "--json", "--html", str(path), "--db", db]) == 0
    return TournamentReport.model_validate_json(capsys.readouterr().out), path


async def open_offline(page: Page, path: Path) -> list[str]:
    """Open a local file with every other request aborted; the list fills with the URLs that were tried."""
    tried: list[str] = []

    async def only_the_file(route: Route) -> None:
        if route.request.url == path.as_uri():
            await route.continue_()
        else:
            tried.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_the_file)
    await page.goto(path.as_uri())
    await page.wait_for_load_state("load")
    return tried


async def test_the_report_is_self_contained_and_shows_the_tournament(played, tmp_path: Path) -> None:
    report, path = played
    probe = tmp_path / "probe.html"  # proves that the route catches a page that reaches out
    probe.write_text('<link rel="stylesheet" href="https://example.invalid/s.css"><img src="http://example.invalid/x">')
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            assert len(await open_offline(page, probe)) == 2
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            assert await open_offline(page, path) == []
            await check_report_page(page, report)
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "tournament-report.png"
            await page.screenshot(path=str(shot), full_page=True)
        finally:
            await browser.close()
    assert shot.stat().st_size > 30_000


async def check_report_page(page: Page, report: TournamentReport) -> None:
    """Charts with one mark per agent and per pair, tables in the report's order, user names as text."""
    n = len(report.agents)
    assert await page.title() == "Tournament t"
    assert await page.locator("#bt-chart .interval").count() == n
    assert await page.locator("#bt-chart .rating").count() == n
    rows = await page.locator("#bt-chart .agent-row > title").all_text_contents()  # best first, like the report
    assert [row.rsplit(": ", 1)[0] for row in rows] == [s.agent for s in report.bradley_terry]
    assert await page.locator("#heat-map rect.cell").count() == n * n
    scores = await page.locator("#heat-map text.score").all_text_contents()
    assert sum(bool(re.fullmatch(r"[01]\.\d\d", s)) for s in scores) == n * (n - 1)  # a round robin: all met
    tips = await page.locator("#heat-map rect.cell title").all_text_contents()
    assert sum(bool(re.search(r": \d+-\d+-\d+ \(W-D-L\)", t)) for t in tips) == n * (n - 1)
    agents = page.locator("#standings tbody td:nth-child(2)")
    assert await agents.all_text_contents() == [s.agent for s in report.trueskill]
    assert await page.locator("#bradley-terry tbody td:nth-child(2)").all_text_contents() == [
        s.agent for s in report.bradley_terry]
    assert TRICKY in await agents.all_text_contents()
    assert await page.locator("main b, main script").count() == 0  # the name's <b> stayed text


def made_report() -> TournamentReport:
    """A report by hand: two agents named with markup, a third that met nobody, no conduct issues."""
    names = [MARKUP, "<i>y</i>", "z & co"]
    standing = [TrueSkillStanding(agent=n, rating=10.0 - i, mu=25.0, sigma=5.0, games=2, wins=1, draws=0, losses=1)
                for i, n in enumerate(names)]
    return TournamentReport(
        name="<script>alert(1)</script>", format="round-robin", status="finished", created_at=datetime(2025, 1, 2),
        ended_at=None, envs=["TicTacToe-v0"], agents=names, rounds=1, seeds=[1, 2], games_scheduled=4,
        games_played=2, aborted_attempts=1, trueskill=standing,
        bradley_terry=[BradleyTerryStanding(agent=n, rating=1000.0 + 50 * i, low=900.0, high=1200.0 + 50 * i)
                       for i, n in enumerate(names)],
        first_move_advantage=35.0, bootstrap_rounds=100,
        head_to_head=[HeadToHead(agent=names[0], opponent=names[1], games=4, wins=3, draws=0, losses=1, score=0.75),
                      HeadToHead(agent=names[1], opponent=names[0], games=4, wins=1, draws=0, losses=3, score=0.25)],
        predictions=[], per_env=[EnvStandings(env_id="TicTacToe-v0", games=2, standings=standing)],
        conduct=[Conduct(agent=n, moves=10, invalid_moves=1, invalid_rate=0.1, timeouts=0, timeout_rate=0.0,
                         errors=0, seconds=1.0, seconds_per_move=0.1, prompt_tokens=5, completion_tokens=7)
                 for n in names])


def test_every_string_from_the_report_is_escaped() -> None:
    html = render_html(made_report())
    assert "<b>" not in html and "<i>" not in html and "<script" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "z &amp; co" in html and "&lt;script&gt;" in html


def test_the_document_references_nothing_outside_itself() -> None:
    html = render_html(made_report())
    assert not re.search(r"src=|href=|url\(|@import|@font-face", html)
    assert re.findall(r"https?://[^\"' ]+", html) == ["http://www.w3.org/2000/svg"] * html.count("<svg")


def test_the_heat_map_colours_scores_and_greys_pairs_that_never_met() -> None:
    html = render_html(made_report())
    assert html.count('class="cell"') == 9
    assert ">0.75</text>" in html and ">0.25</text>" in html
    assert "3-0-1 (W-D-L) in 4 games" in html
    assert html.count("never played") == 4  # z met neither of the others, both ways
