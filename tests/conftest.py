"""Shared fixtures: a private catalog cache, throwaway SQLite databases, and `arena serve` processes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from server_helpers import ServerProcess
from sqlalchemy.orm import Session

from arena.store.database import open_database

# Each test session checks the catalog for itself, in a cache of its own (set before collection,
# which already reads the catalog to parametrize the every-game test).
os.environ["ARENA_CACHE_DIR"] = tempfile.mkdtemp(prefix="arena-catalog-")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """URL of a new SQLite database file."""
    return f"sqlite:///{tmp_path / 'arena.db'}"


@pytest.fixture
def engine(db_url: str):
    """A migrated database engine."""
    engine = open_database(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    """A session on the migrated database."""
    with Session(engine) as session:
        yield session


@pytest.fixture
def server(db_url: str):
    """Start `arena serve` with the given flags on the test's database; every server is stopped afterwards."""
    servers: list[ServerProcess] = []

    def start(*flags: str) -> ServerProcess:
        servers.append(ServerProcess(db_url, *flags).start())
        return servers[-1]

    yield start
    for s in servers:
        s.stop()
