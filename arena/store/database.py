"""Opening a database by URL: SQLite (WAL) by default, any SQLAlchemy URL; migrated on open."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config

DEFAULT_URL = "sqlite:///arena.db"


class StoreError(Exception):
    """The database cannot be used: bad URL, unreachable, or not a database."""


def database_url(url: str | None = None) -> str:
    """The URL to use: the flag, then ARENA_DB, then ./arena.db."""
    return url or os.environ.get("ARENA_DB") or DEFAULT_URL


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create(url: str) -> Engine:
    """An SQLAlchemy engine for `url`, with SQLite tuned for one writer and many readers."""
    try:
        engine = sa.create_engine(url, pool_pre_ping=not url.startswith("sqlite"),
                                  json_deserializer=orjson.loads)  # JSON columns (turn info) read faster
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        raise StoreError(f"cannot use database URL '{url}': {error}") from error
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config() -> Config:
    """Alembic configuration pointing at the packaged `migrations/` folder."""
    from alembic.config import Config

    import migrations

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return config


def upgrade(engine: Engine) -> list[str]:
    """Apply pending migrations; returns the revisions applied (empty when up to date)."""
    from alembic import command  # imported here: the writer process and most readers never migrate
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.begin() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        if current == head:
            return []
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return [head or ""]


def migrate(engine: Engine) -> list[str]:
    """`upgrade`, with any database failure turned into a StoreError naming the database."""
    try:
        return upgrade(engine)
    except SQLAlchemyError as error:
        detail = getattr(error, "orig", None) or error
        one_line = " ".join(str(detail).split())  # drivers' messages can span lines
        raise StoreError(f"cannot use database '{engine.url.render_as_string()}': {one_line}") from error


def open_database(url: str | None = None) -> Engine:
    """Connect, check that it is a usable database, and migrate it to the newest schema."""
    engine = create(database_url(url))
    try:
        migrate(engine)
    except StoreError:
        engine.dispose()
        raise
    return engine
