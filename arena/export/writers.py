"""Writing rows as they come: JSONL or Parquet (by the target's extension), into a temporary file beside the
target that replaces it only once every row is written; `-` writes JSONL to standard output."""

from __future__ import annotations

import itertools
import os
import secrets
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from arena.export.filters import ExportError
from arena.export.formats import ExportFormat

STDOUT = "-"
BATCH = 1000  # rows encoded together (a Parquet row group)


class FileType(StrEnum):
    """What an export file holds."""

    JSONL = "jsonl"
    PARQUET = "parquet"


def file_type(target: str | Path) -> FileType:
    """The file type a target's extension names (standard output is JSONL); ExportError for any other."""
    if str(target) == STDOUT:
        return FileType.JSONL
    suffix = Path(target).suffix.lower().lstrip(".")
    if suffix in set(FileType):
        return FileType(suffix)
    raise ExportError(f"cannot tell the file type of '{target}': name it *.jsonl or *.parquet, or use - for stdout")


def json_line(row: dict[str, Any]) -> bytes:
    """One JSONL line: UTF-8, compact, keys in the row's order (orjson: several times faster than json)."""
    return orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE)


@contextmanager
def staged(target: str | Path) -> Iterator[BinaryIO]:
    """Standard output for `-`; else a new temporary file beside `target`, moved onto it when the block ends
    well and removed when it fails. ExportError when the folder cannot take the file."""
    if str(target) == STDOUT:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(target)
    if path.is_dir():
        raise ExportError(f"cannot write '{target}': it is a folder")
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise ExportError(f"cannot write '{target}': {error.strerror or error}") from None
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def batches(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """The rows in lists of BATCH."""
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, BATCH)):
        yield batch


def write_jsonl(rows: Iterable[dict[str, Any]], stream: BinaryIO) -> int:
    """Write rows as JSON lines; returns how many."""
    count = 0
    for batch in batches(rows):
        stream.write(b"".join(json_line(row) for row in batch))
        count += len(batch)
    return count


def write_parquet(rows: Iterable[dict[str, Any]], stream: BinaryIO, fmt: ExportFormat) -> int:
    """Write rows as Parquet with the format's schema, a row group per batch; returns how many."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from arena.export.schemas import SCHEMAS, arrow_row
    except ImportError:
        raise ExportError("Parquet files need pyarrow: pip install pyarrow (or write *.jsonl)") from None
    count, schema = 0, SCHEMAS[fmt]
    with pq.ParquetWriter(stream, schema) as writer:
        for batch in batches(rows):
            writer.write_table(pa.Table.from_pylist([arrow_row(fmt, row) for row in batch], schema=schema))
            count += len(batch)
    return count


def write(rows: Iterable[dict[str, Any]], stream: BinaryIO, kind: FileType, fmt: ExportFormat) -> int:
    """Write rows in the file type; returns how many."""
    return write_parquet(rows, stream, fmt) if kind == FileType.PARQUET else write_jsonl(rows, stream)
