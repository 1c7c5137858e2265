"""Shared fixtures: a private catalog cache and throwaway SQLite databases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from arena.store.database import open_database


@pytest.fixture(scope="session", autouse=True)
def catalog_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each test session checks the catalog for itself, in a cache of its own."""
    path = tmp_path_factory.mktemp("catalog-cache")
    os.environ["ARENA_CACHE_DIR"] = str(path)
    return path


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
