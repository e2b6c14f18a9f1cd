"""Plain-SQL bulk writes shared by the importers: portable between SQLite and PostgreSQL, and much
faster than the ORM's per-object path for hundreds of thousands of rows."""
from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from typing import Any

from django.db import connection
from django.db.models.constants import OnConflict


def insert_rows(cursor: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]], *,
                ignore_conflicts: bool = False) -> None:
    """Bulk insert: COPY on PostgreSQL (executemany there is a round trip per row), executemany elsewhere;
    on SQLite of statements that each insert as many rows as its parameter limit allows, in order.

    With `ignore_conflicts`, rows whose unique key is already taken are skipped (INSERT OR IGNORE /
    ON CONFLICT DO NOTHING; COPY cannot skip, so PostgreSQL takes the pipelined executemany then).
    """
    names = ", ".join(columns)
    if connection.vendor == "postgresql" and not ignore_conflicts:
        with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    on_conflict = OnConflict.IGNORE if ignore_conflicts else None
    suffix = connection.ops.on_conflict_suffix_sql(columns, on_conflict, None, None) if on_conflict else ""
    insert = f"{connection.ops.insert_statement(on_conflict=on_conflict)} {table} ({names}) VALUES"
    row_marks = f"({', '.join(['%s'] * len(columns))})"
    per_statement = rows_per_statement(len(columns))
    whole = len(rows) - len(rows) % per_statement if per_statement > 1 else 0  # rows in full statements
    if whole:
        # SQLite steps one statement per row of an executemany: a statement of ~140 rows cut the
        # CPU of inserting 200,000 predictions by a third (the rows and their order are the same).
        flat = chain.from_iterable
        statements = [tuple(flat(rows[start : start + per_statement])) for start in range(0, whole, per_statement)]
        cursor.executemany(f"{insert} {', '.join([row_marks] * per_statement)} {suffix}", statements)
    if whole < len(rows):
        cursor.executemany(f"{insert} {row_marks} {suffix}", rows[whole:])


def rows_per_statement(columns: int) -> int:
    """How many rows one INSERT of `insert_rows` carries: as many as SQLite's parameter limit allows
    (one elsewhere, where executemany is already pipelined or COPY is used)."""
    limit = connection.features.max_query_params
    if connection.vendor != "sqlite" or limit is None:
        return 1
    return max(1, limit // columns)


def bulk_cursor() -> Any:
    """A cursor that skips DEBUG query logging: it would keep every chunk's parameters in memory."""
    connection.ensure_connection()
    return connection.make_cursor(connection.create_cursor())


def batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive slices of `items` of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: a bulk write allocates millions of row tuples, none in a
    cycle, and the collector's passes over them were a sixth of an ingest's CPU. Reference counting
    still frees everything; the collector runs again on leaving."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
