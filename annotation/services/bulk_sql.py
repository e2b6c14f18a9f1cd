"""Plain-SQL bulk writes shared by the importers: portable between SQLite and PostgreSQL, and much
faster than the ORM's per-object path for hundreds of thousands of rows."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connection


def insert_rows(cursor: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert: COPY on PostgreSQL (executemany there is a round trip per row), executemany elsewhere."""
    if connection.vendor == "postgresql":
        with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join(["%s"] * len(columns))
    cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def bulk_cursor() -> Any:
    """A cursor that skips DEBUG query logging: it would keep every chunk's parameters in memory."""
    connection.ensure_connection()
    return connection.make_cursor(connection.create_cursor())


def batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive slices of `items` of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
