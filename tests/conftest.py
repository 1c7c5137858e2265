"""Shared fixtures: a private catalog cache, throwaway databases, and servers.

The database suites (`DATABASE_SUITES`) run every test that uses `db_url` (or `engine`, `session`,
`server`) twice, `test_x[sqlite]` and `test_x[postgresql]`; other files get SQLite only. PostgreSQL
starts lazily, once per session (per xdist worker), the first time a `[postgresql]` test runs (see
tests/postgres.py). A test whose name mentions sqlite, or marked `sqlite_only`, runs on SQLite only.

Under pytest-xdist (`make test` runs `-n auto`), the controller makes the run's catalog cache and checks the
catalog once before the workers start; the workers share that cache. docs/testing.md has the whole picture.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from helpers import VLLM_SPEC
from postgres import CATALOG_PREFIX, OWNER, PostgresServer, PostgresUnavailable, remove_left_behind
from server_helpers import InProcessServer, ServerProcess, ServerUnderTest
from sqlalchemy.orm import Session

from arena.store.database import open_database
from games import catalog

# Each test run checks the catalog for itself, in a cache of its own (set before collection, which already
# reads the catalog to parametrize the every-game test). xdist workers inherit the controller's.
if not os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["ARENA_CACHE_DIR"] = tempfile.mkdtemp(prefix=CATALOG_PREFIX)


DATABASE_SUITES = {"test_store.py", "test_ratings.py", "test_runner.py", "test_server.py", "test_migrations.py",
                   "test_cli.py", "test_tournament.py", "test_tournament_server.py", "test_textarena_env.py",
                   "test_export.py", "test_export_api.py", "test_hostile_input.py", "test_limits.py",
                   "test_fuzz.py", "test_crash.py", "test_isolation.py", "test_team_results.py", "test_soak.py",
                   "test_auth.py"}
BACKENDS = ["sqlite", "postgresql"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: a database-suite test that runs on SQLite only")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    remove_left_behind()  # clusters and caches of earlier runs that were killed before they could clean up
    Path(os.environ["ARENA_CACHE_DIR"], OWNER).write_text(str(os.getpid()))
    if getattr(config.option, "numprocesses", None):  # xdist: check once here, before the workers collect
        catalog.load()


def pytest_unconfigure(config: pytest.Config) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        shutil.rmtree(os.environ["ARENA_CACHE_DIR"], ignore_errors=True)  # the run's catalog cache


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the database suites' tests on every backend (ids `[sqlite]`, `[postgresql]`)."""
    if "db_backend" not in metafunc.fixturenames or Path(metafunc.module.__file__).name not in DATABASE_SUITES:
        return
    sqlite_only = "sqlite" in metafunc.function.__name__ or metafunc.definition.get_closest_marker("sqlite_only")
    metafunc.parametrize("db_backend", BACKENDS[:1] if sqlite_only else BACKENDS)


@pytest.fixture
def db_backend() -> str:
    """The kind of database `db_url` gives: "sqlite", unless the database suites parametrize it."""
    return "sqlite"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session: ARENA_TEST_POSTGRES_URL's, or a private cluster started on
    first use and deleted at the end. Skips without PostgreSQL binaries, except under CI (an error)."""
    try:
        server = PostgresServer.find()
    except PostgresUnavailable as error:
        reason = str(error)
    else:
        reason = ""
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI needs PostgreSQL for the [postgresql] tests: {reason}", pytrace=False)
    if reason:
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def db_url(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a new empty database: an SQLite file, or a PostgreSQL database dropped afterwards."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'arena.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        yield url


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


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def vllm_agent():
    """A started `vllm` agent on the default model, for the vLLM suite. Agents on the same model and engine options
    in the same event loop share one engine, so tests that build theirs from `VLLM_SPEC`'s options and run on the
    session's loop (`@pytest.mark.asyncio(loop_scope="session")`) use this one: the suite starts it once."""
    from agents.specs import build_agent, parse_spec

    agent = build_agent(parse_spec(VLLM_SPEC))
    await agent.start()
    yield agent
    await agent.close()


@pytest.fixture(scope="session")
def checked_catalog() -> None:
    """The whole catalog, checked once into the session's cache before a server starts (a server with a cold
    cache checks it itself, and answers `/api/games` only when done: a minute on a busy machine)."""
    catalog.load()


@pytest.fixture
def server(db_url: str, tmp_path: Path, checked_catalog: None):
    """Start the server with `arena serve`'s flags on the test's database, in this process (`process=True`: as
    `arena serve` in a subprocess); every server is stopped afterwards."""
    servers: list[ServerUnderTest] = []

    def start(*flags: str, process: bool = False, **options) -> ServerUnderTest:
        kind = ServerProcess if process else InProcessServer
        servers.append(kind(db_url, *flags, cwd=tmp_path, **options).start())
        return servers[-1]

    yield start
    for s in servers:
        s.stop()
