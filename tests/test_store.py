"""The store: migrations from an empty database, SQLite settings, and the batched single writer."""

from __future__ import annotations

import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from arena.store import agents
from arena.store.database import StoreError, alembic_config, create, open_database
from arena.store.models import AgentRow, Base
from arena.store.writer import Writer

TABLES = {"agents", "episodes", "episode_seats", "turns", "ratings", "rating_history", "alembic_version"}


def test_migrations_build_the_schema_from_an_empty_database(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) == TABLES
        context = MigrationContext.configure(connection)
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert context.get_current_revision() == head
        assert compare_metadata(context, Base.metadata) == [], "models and migrations disagree"
    engine.dispose()


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


def test_writer_batches_many_operations_into_few_commits(engine) -> None:
    commits = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    writer = Writer(engine)
    gate = threading.Event()
    writer.submit(lambda s: gate.wait(5))  # hold the writer so the next operations queue up
    futures = [writer.submit(lambda s, i=i: agents.ensure_agent(s, f"agent{i}", "test", "x"))
               for i in range(200)]
    gate.set()
    ids = [f.result(10) for f in futures]
    writer.close()
    assert len(set(ids)) == 200
    assert len(commits) <= 3, f"200 writes took {len(commits)} commits"


def test_one_failing_write_loses_only_itself(engine) -> None:
    writer = Writer(engine)
    gate = threading.Event()
    writer.submit(lambda s: gate.wait(5))
    good = writer.submit(lambda s: agents.ensure_agent(s, "kept", "test", "x"))
    bad = writer.submit(lambda s: s.add(AgentRow(name=None, kind="test", spec="")))
    also_good = writer.submit(lambda s: agents.ensure_agent(s, "kept too", "test", "x"))
    gate.set()
    assert good.result(10) and also_good.result(10)
    with pytest.raises(IntegrityError):
        bad.result(10)
    writer.close()
    with Session(engine) as session:
        assert set(session.scalars(select(AgentRow.name))) == {"kept", "kept too"}


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
