"""Small helpers shared by tests: scripted agents, a synchronous game driver, writer operations, playing."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from agents.base import Agent, Decision, TurnContext
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
