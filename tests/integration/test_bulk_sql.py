"""Bulk SQL writes: multi-row INSERT statements store exactly what one-row statements store."""
from __future__ import annotations

import gc

import pytest
from django.db import connection, transaction

from annotation.models import Dataset, Example
from annotation.services import bulk_sql

pytestmark = pytest.mark.django_db

COLUMNS = ("dataset_id", "example_id", "input_text", "reference")


class _Rollback(Exception):
    pass


def inserted(rows: list[tuple], *, ignore_conflicts: bool = False) -> list[tuple]:
    """The example rows after insert_rows (ids counted from the first one), then rolled back."""
    table = connection.ops.quote_name(Example._meta.db_table)
    found: list[tuple] = []
    try:
        with transaction.atomic():
            Example.objects.create(dataset_id=rows[0][0], example_id="taken", input_text="old", reference="")
            with bulk_sql.bulk_cursor() as cursor:
                bulk_sql.insert_rows(cursor, table, COLUMNS, rows, ignore_conflicts=ignore_conflicts)
            stored = list(Example.objects.order_by("pk").values_list("pk", *COLUMNS))
            found = [(pk - stored[0][0], *values) for pk, *values in stored]
            raise _Rollback
    except _Rollback:
        pass
    return found


@pytest.mark.parametrize("ignore_conflicts", [False, True])
def test_multi_row_inserts_store_the_rows_one_row_statements_store(monkeypatch, ignore_conflicts):
    dataset = Dataset.objects.create(name="d")
    per_statement = bulk_sql.rows_per_statement(len(COLUMNS))
    if connection.vendor == "sqlite":
        assert per_statement > 1  # else both sides below would take the one-row path
    # Two full statements and a short tail; text with quotes, commas, NUL-free unicode and empties.
    rows = [(dataset.pk, f"e{i}", f"q'{i}, \"é\" {i}" * (i % 3), "" if i % 5 else f"r{i}")
            for i in range(2 * per_statement + 3)]
    if ignore_conflicts:
        rows += [(dataset.pk, "taken", "new", ""), (dataset.pk, "e1", "again", "")]
    multi = inserted(rows, ignore_conflicts=ignore_conflicts)
    monkeypatch.setattr(bulk_sql, "rows_per_statement", lambda columns: 1)
    single = inserted(rows, ignore_conflicts=ignore_conflicts)
    assert multi == single
    assert len(multi) == 2 * per_statement + 4  # the rows and the one already there, no repeats


def test_paused_gc_restores_the_collector_as_it_was():
    assert gc.isenabled()
    with bulk_sql.paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with bulk_sql.paused_gc():
            pass
        assert not gc.isenabled()  # left off: someone else turned it off
    finally:
        gc.enable()
