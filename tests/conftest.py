"""Shared fixtures: a private catalog cache and throwaway SQLite databases."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
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
