"""Training data from the episode log: `export` writes a file (or stdout) as a stream, `rows` yields the rows,
`to_dataset` gives a `datasets.Dataset`. The same database and arguments always give the same bytes.

Formats (`ExportFormat`) and their row schemas are in docs/export.md; filters are `ExportFilters`' fields.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from arena.envs.rewards import RewardMode
from arena.export.filters import ExportError, ExportFilters
from arena.export.formats import FORMATS, ExportFormat, ExportRow, FormatSpec
from arena.export.writers import FileType, file_type, staged, write
from arena.store import export as store
from arena.store.database import open_database
from games import catalog

Progress = Callable[[int], Callable[[int], None]]  # called with the episodes to read; returns advance(episodes)

__all__ = ["ExportError", "ExportFilters", "ExportFormat", "ExportSummary", "FileType", "export", "rows",
           "to_dataset"]


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    target: str
    format: ExportFormat
    file_type: FileType
    rows: int
    episodes: int


@dataclass(frozen=True)
class _Request:
    """A checked export request: the format, the reward mode and the filters."""

    format: ExportFormat
    mode: RewardMode
    filters: ExportFilters

    @property
    def spec(self) -> FormatSpec:
        return FORMATS[self.format]


def _request(fmt: str, reward: str, filters: dict[str, Any]) -> _Request:
    """Parse the format, reward mode and filters; ExportError naming what is wrong."""
    try:
        chosen = ExportFormat(fmt)
    except ValueError:
        raise ExportError(f"unknown format '{fmt}': use one of {', '.join(ExportFormat)}", "format") from None
    try:
        mode = RewardMode(reward)
    except ValueError:
        raise ExportError(f"unknown reward mode '{reward}': use one of {', '.join(RewardMode)}", "reward") from None
    return _Request(chosen, mode, ExportFilters.parse(**filters))


def _selection(connection: Connection, request: _Request) -> store.Selection:
    """The store's selection for a request, once its env, agent and tournament names are known."""
    filters = request.filters
    missing = store.unknown_agents(connection, filters.agents)
    if missing:
        raise ExportError(f"unknown agent '{missing[0]}': no agent of that name is in the database")
    for env_id in sorted(set(filters.envs) - store.stored_envs(connection, filters.envs)):
        try:
            catalog.lookup(env_id)
        except catalog.GameError as error:
            raise ExportError(str(error)) from None
    if filters.tournament is not None and not store.tournament_exists(connection, filters.tournament):
        raise ExportError(f"unknown tournament '{filters.tournament}'")
    return store.Selection(filters.envs, store.agent_ids(connection, filters.agents) if filters.agents else (),
                           filters.since, filters.until, filters.min_rating, filters.result, filters.tournament,
                           request.spec.statuses, request.spec.by_position)


def _episodes(connection: Connection, selection: store.Selection, seen: list[int],
              advance: Callable[[int], None] | None) -> Iterator[store.StoredEpisode]:
    """The selected episodes one by one, counting them in `seen[0]` and reporting each chunk to `advance`."""
    for chunk in store.read_episodes(connection, selection):
        yield from chunk
        seen[0] += len(chunk)
        if advance is not None:
            advance(len(chunk))


def _engine(db: str | Engine | None) -> tuple[Engine, bool]:
    """(engine, opened here) for a database URL (default: $ARENA_DB or ./arena.db) or an engine."""
    return (db, False) if isinstance(db, Engine) else (open_database(db), True)


def export(target: str | Path, fmt: str, db: str | Engine | None = None, *, reward: str = "outcome",
           progress: Progress | None = None, **filters: Any) -> ExportSummary:
    """Write the rows of format `fmt` to `target` (*.jsonl, *.parquet, or - for stdout), in constant memory;
    `filters` are `ExportFilters`' fields. ExportError (one line) for bad input; the target is then untouched."""
    request, kind = _request(fmt, reward, filters), file_type(target)
    engine, owned = _engine(db)
    try:
        with engine.connect() as connection:
            selection = _selection(connection, request)
            with staged(target) as stream:
                advance = progress(store.count_episodes(connection, selection)) if progress else None
                seen = [0]
                episodes = _episodes(connection, selection, seen, advance)
                written = write(request.spec.rows(episodes, request.mode), stream, kind, request.format)
    finally:
        if owned:
            engine.dispose()
    return ExportSummary(str(target), request.format, kind, written, seen[0])


def rows(fmt: str, db: str | Engine | None = None, *, reward: str = "outcome", **filters: Any) -> Iterator[ExportRow]:
    """The rows of format `fmt`, read from the database as they are consumed. The request is checked before
    this returns (ExportError), so a caller can refuse it before streaming anything."""
    request = _request(fmt, reward, filters)
    engine, owned = _engine(db)
    try:
        with engine.connect() as connection:
            selection = _selection(connection, request)
    except BaseException:
        if owned:
            engine.dispose()
        raise
    return _stream(engine, owned, request, selection)


def _stream(engine: Engine, owned: bool, request: _Request, selection: store.Selection) -> Iterator[ExportRow]:
    try:
        with engine.connect() as connection:
            yield from request.spec.rows(_episodes(connection, selection, [0], None), request.mode)
    finally:
        if owned:
            engine.dispose()


def to_dataset(fmt: str, db: str | Engine | None = None, *, reward: str = "outcome", **filters: Any) -> Any:
    """The rows of format `fmt` as a `datasets.Dataset` (in memory), with the columns of its Parquet schema."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    with tempfile.TemporaryDirectory(prefix="arena-export-") as folder:
        path = Path(folder) / "export.parquet"
        export(path, fmt, db, reward=reward, **filters)
        return Dataset(pq.read_table(path))
