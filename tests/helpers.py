"""Small helpers shared by tests: scripted agents, a synchronous game driver, writer operations, playing, and
the `arena` command."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import io
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy.orm import Session

from agents.base import Agent, Decision, TurnContext
from arena import cli
from arena.engine import Game
from arena.play import Arena
from arena.store.models import AgentRow
from arena.store.writer import batched


class ScriptedAgent(Agent):
    """Plays a fixed list of actions (then repeats the last); can sleep or raise instead."""

    def __init__(self, actions: list[str], delay: float = 0.0, error: Exception | None = None,
                 name: str = "scripted") -> None:
        self.actions, self.delay, self.error, self.name = actions, delay, error, name
        self.seen: list[str] = []

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """The next scripted action."""
        self.seen.append(observation)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error:
            raise self.error
        action = self.actions[min(len(self.seen) - 1, len(self.actions) - 1)]
        return Decision(action, {"scripted": True})


def play_out(game: Game, choose: Callable[[int, str], str], max_turns: int = 5000) -> Game:
    """Drive a game to the end with a synchronous policy `choose(seat, observation)`."""
    game.start()
    while not game.done and len(game.turns) < max_turns:
        pending = game.pending
        game.act(pending.seat, choose(pending.seat, pending.observation), 0.0)
    return game


# --- write operations for the writer process (module-level, so they can be sent by reference) -------------


def wait_for_file(session: Session, path: str) -> None:
    """Hold the writer until `path` exists, so the operations submitted meanwhile queue up."""
    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


_transactions = itertools.count()


def transaction_number(session: Session) -> int:
    """A number that is the same for every operation run in one transaction (session) of the writer."""
    if "number" not in session.info:
        session.info["number"] = next(_transactions)
    return session.info["number"]


def _which_form_many(session: Session, calls: list) -> list[str]:
    return ["many"] * len(calls)


@batched(_which_form_many)
def which_form(session: Session) -> str:
    """'many' when the writer ran this operation in its batched form, 'one' when alone."""
    return "one"


def add_nameless_agent(session: Session) -> None:
    """A write that always fails: agents.name is NOT NULL."""
    session.add(AgentRow(name=None, kind="test", spec=""))
    session.flush()


async def play_games(db_url: str, games: list, concurrency: int = 8, **options) -> list:
    """Play a schedule through the library API into `db_url`; the results in schedule order."""
    async with Arena(db_url, **options) as arena:
        return await arena.play_all(games, concurrency)


# --- the `arena` command ------------------------------------------------------------------------------------

ARENA = str(Path(sys.executable).parent / "arena")
TESTS = Path(__file__).resolve().parent
VLLM_SPEC = "vllm?max_tokens=8&temperature=0.8&seed=7"  # the vLLM suite's agent: its engine is the suite's one


@dataclass
class Ran:
    """What a command did: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def arena(*args: str, cwd: Path | None = None, env: dict[str, str | None] | None = None, process: bool = False,
          timeout: float = 300) -> Ran:
    """Run the `arena` command with `args` (200 columns wide; `env` sets variables, or unsets those it maps to
    None): in this process through `arena.cli.main`, which the console script calls; with `process`, as the
    installed console script in a subprocess (for what only a process shows: its own interpreter, signals, a
    fresh hash seed). `arena serve` always runs in a subprocess: here, one it accepted would serve on and on.
    From a running event loop, call it through `asyncio.to_thread` (the command runs its own loop)."""
    environment = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(TESTS), **(env or {})}
    environment = {name: value for name, value in environment.items() if value is not None}
    if process or args[:1] == ("serve",):
        done = subprocess.run([ARENA, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              env=environment)
        return Ran(done.returncode, done.stdout, done.stderr)
    out, err = io.StringIO(), io.StringIO()
    with patched_environment(environment), contextlib.chdir(cwd or os.getcwd()), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err), swapped(cli, "console", Console(width=200)):
        try:
            code = cli.main(list(args))
        except SystemExit as stop:  # argparse's usage errors
            code = stop.code if isinstance(stop.code, int) else 1
    return Ran(code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def patched_environment(env: dict[str, str]) -> Iterator[None]:
    """`os.environ` replaced by `env` for the block."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def swapped(owner: object, name: str, value: object) -> Iterator[None]:
    """`owner.name` set to `value` for the block."""
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


# --- what a suite needs -----------------------------------------------------------------------------------


def suite_needs(module: str) -> bool:
    """Whether the running suite must have `module` (ARENA_TEST_NEEDS, which `make test-vllm` sets to vllm,trl):
    there a missing or broken package is an error, as a missing PostgreSQL or Chromium is under CI."""
    return module.split(".")[0] in os.environ.get("ARENA_TEST_NEEDS", "").split(",")


def needed(module: str, reason: str):
    """`module` imported, or the test module skipped saying `reason`; where the suite needs it, its import
    error fails the run instead."""
    if suite_needs(module):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=reason)


def installed(module: str) -> bool:
    """Whether `module` is installed; where the suite needs it, its absence is an ImportError."""
    if importlib.util.find_spec(module) is not None:
        return True
    if suite_needs(module):
        raise ImportError(f"this suite needs {module} (ARENA_TEST_NEEDS), and it is not installed")
    return False
