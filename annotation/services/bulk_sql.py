"""Plain-SQL bulk writes shared by the importers: portable between SQLite and PostgreSQL, and much
faster than the ORM's per-object path for hundreds of thousands of rows."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connection
from django.db.models.constants import OnConflict


def insert_rows(cursor: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]], *,
                ignore_conflicts: bool = False) -> None:
    """Bulk insert: COPY on PostgreSQL (executemany there is a round trip per row), executemany elsewhere.

    With `ignore_conflicts`, rows whose unique key is already taken are skipped (INSERT OR IGNORE /
    ON CONFLICT DO NOTHING; COPY cannot skip, so PostgreSQL takes the pipelined executemany then).
    """
    names = ", ".join(columns)
    if connection.vendor == "postgresql" and not ignore_conflicts:
        with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join(["%s"] * len(columns))
    on_conflict = OnConflict.IGNORE if ignore_conflicts else None
    suffix = connection.ops.on_conflict_suffix_sql(columns, on_conflict, None, None) if on_conflict else ""
    cursor.executemany(
        f"{connection.ops.insert_statement(on_conflict=on_conflict)} {table} ({names}) VALUES ({marks}) {suffix}",
        rows,
    )


def bulk_cursor() -> Any:
    """A cursor that skips DEBUG query logging: it would keep every chunk's parameters in memory."""
    connection.ensure_connection()
    return connection.make_cursor(connection.create_cursor())


def batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive slices of `items` of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
