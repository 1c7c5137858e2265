"""Alembic environment: uses the connection the arena passes in, or ARENA_DB / alembic.ini's URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from arena.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    """Run migrations on the given connection, or on one made from the configured URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = os.environ.get("ARENA_DB") or config.get_main_option("sqlalchemy.url") or "sqlite:///arena.db"
    with create_engine(url).connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
