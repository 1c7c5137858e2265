"""The store: migrations from an empty database, SQLite settings, and the batched single writer."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from alembic import command
from helpers import add_nameless_agent, transaction_number, wait_for_file, which_form
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from arena.engine import Turn
from arena.recorder import turn_row
from arena.store import agents, episodes
from arena.store.database import StoreError, alembic_config, create, open_database
from arena.store.models import AgentRow, Base
from arena.store.writer import Writer, WriterStopped

TABLES = set(Base.metadata.tables) | {"alembic_version"}


def test_migrations_downgrade_and_upgrade_again(engine) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    with engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) == {"alembic_version"}
    open_database(str(engine.url)).dispose()
    with engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) == TABLES


def test_sqlite_runs_in_wal_mode_with_foreign_keys(engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


@pytest.mark.parametrize("url, message", [
    ("not a url", "cannot use database URL"),
    ("nosuchdialect://x/y", "cannot use database URL"),
    ("sqlite:////no/such/directory/arena.db", "unable to open database file"),
])
def test_unusable_urls_raise_store_errors(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        open_database(url)


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 50)
    with pytest.raises(StoreError, match="not a database"):
        open_database(f"sqlite:///{path}")
    assert path.read_text() == "these are my notes, not a database\n" * 50


async def test_writer_batches_many_operations_into_few_commits(db_url: str, engine, tmp_path) -> None:
    gate = tmp_path / "go"
    writer = Writer(db_url)
    held = writer.submit(wait_for_file, str(gate))  # hold the writer so the next operations queue up
    numbers = [writer.submit(transaction_number) for _ in range(200)]
    ids = [writer.submit(agents.ensure_agent, f"agent{i}", "test", "x") for i in range(200)]
    await asyncio.sleep(0.2)
    gate.touch()
    await held
    assert len(set(await asyncio.gather(*ids))) == 200
    transactions = set(await asyncio.gather(*numbers))
    assert len(transactions) <= 10, f"400 queued writes took {len(transactions)} commits"
    await writer.close()


async def test_the_writer_runs_batched_operations_in_their_many_at_once_form(db_url: str, engine) -> None:
    writer = Writer(db_url)
    assert set(await asyncio.gather(*[writer.submit(which_form) for _ in range(50)])) == {"many"}
    await writer.close()


async def test_one_failing_write_in_a_batch_loses_only_itself(db_url: str, engine, tmp_path) -> None:
    """The lost-turn bug: a batch failed, was replayed op by op, and the turns' op replayed nothing."""
    gate = tmp_path / "go"
    writer = Writer(db_url)
    [agent_id] = await writer.run(agents.ensure_agents, [("p", "test", "p")])
    episode_id = await writer.run(episodes.create_episode, "TicTacToe-v0", 1, [agent_id, agent_id], "textarena")
    held = writer.submit(wait_for_file, str(gate))
    turns = writer.submit(episodes.add_turns, [turn_row(episode_id, Turn(0, 0, "board", "[4]", False, 0.1))])
    bad = writer.submit(add_nameless_agent)
    taken = writer.submit(agents.create_with_token, "p")  # a name already taken: AgentConflict
    kept = writer.submit(agents.ensure_agent, "kept", "test", "x")
    gate.touch()
    await held
    await turns
    assert await kept
    with pytest.raises(StoreError, match="IntegrityError"):
        await bad
    with pytest.raises(agents.AgentConflict):
        await taken
    await writer.close()
    with Session(engine) as session:
        assert [(t.idx, t.action) for t in episodes.episode_turns(session, episode_id)] == [(0, "[4]")]
        assert set(session.scalars(select(AgentRow.name))) == {"p", "kept"}


async def test_a_lambda_is_refused_with_a_clear_error(db_url: str, engine) -> None:
    writer = Writer(db_url)
    with pytest.raises(StoreError, match="module-level function"):
        await writer.run(lambda session: None)
    assert await writer.run(agents.ensure_agent, "still", "test", "x")
    await writer.close()


async def test_a_killed_writer_fails_every_waiting_and_later_write(db_url: str, engine, tmp_path) -> None:
    writer = Writer(db_url)
    await writer.run(agents.ensure_agent, "before", "test", "x")
    held = writer.submit(wait_for_file, str(tmp_path / "never"))
    waiting = writer.submit(agents.ensure_agent, "lost", "test", "x")
    await asyncio.sleep(0.2)
    os.kill(writer.pid, signal.SIGKILL)
    for future in (held, waiting):
        with pytest.raises(WriterStopped, match="writer process stopped"):
            await asyncio.wait_for(future, 10)
    with pytest.raises(WriterStopped):
        writer.submit(agents.ensure_agent, "after", "test", "x")
    await writer.close()
    with Session(engine) as session:
        assert set(session.scalars(select(AgentRow.name))) == {"before"}


def test_agent_names_cannot_change_spec(session) -> None:
    agents.ensure_agent(session, "alice", "random", "random")
    assert agents.ensure_agent(session, "alice", "random", "random") == 1
    with pytest.raises(agents.AgentConflict, match="already used by spec 'random'"):
        agents.ensure_agent(session, "alice", "first", "first")


def test_create_returns_an_engine_without_touching_the_database(tmp_path) -> None:
    path = tmp_path / "lazy.db"
    create(f"sqlite:///{path}").dispose()
    assert not path.exists()


def test_tokens_are_stored_hashed_and_never_look_like_flags(session) -> None:
    tokens = [agents.create_with_token(session, f"bot{i}") for i in range(200)]
    assert all(t.startswith("arena_") for t in tokens) and len(set(tokens)) == 200
    row = agents.by_token(session, tokens[0])
    assert row.name == "bot0" and row.token_hash != tokens[0] and tokens[0] not in row.token_hash
    assert agents.by_token(session, "arena_wrong") is None
