"""Migrations on every database (`[sqlite]`, `[postgresql]`): they build the schema from an empty
database, and that schema is exactly what the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from arena.store.database import alembic_config, open_database
from arena.store.models import Base

TABLES = {"agents", "episodes", "episode_seats", "turns", "ratings", "rating_history", "alembic_version", "tournaments",
          "tournament_games"}


def test_upgrade_head_builds_the_schema_from_an_empty_database(db_url: str) -> None:
    engine = open_database(db_url)
    try:
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == TABLES
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert MigrationContext.configure(connection).get_current_revision() == head
    finally:
        engine.dispose()


def test_the_migrated_schema_matches_the_models(db_url: str) -> None:
    engine = open_database(db_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], "models and migrations disagree (alembic revision --autogenerate)"
