"""Change markers: cheap cache keys for what is computed from predictions or labels.

Writes are recorded in an append-only log (ChangeLogEntry): an insert per write never waits for another
writer's, unlike the one counter row it replaced, which every writer locked until it committed. On
PostgreSQL statement-level triggers (migration 0015) log every INSERT, UPDATE, DELETE or TRUNCATE of the
two tables, cascades and raw SQL included, so the log alone is the marker and no table is counted. On
SQLite writers that change rows in place call `bump_changes` (a row saved one at a time through the ORM,
as the admin does, bumps from the post_save signal); inserts and deletes show in the table's row count
and last id (ids are never reused), which SQLite counts from its smallest index in milliseconds.

Log ids come from a sequence, so on PostgreSQL a writer can commit an id below one already visible. The
marker therefore also counts the entries among the last LOG_WINDOW ids: that writer's commit fills a gap
and changes the count even though the largest id stays. Readers take the marker before reading the data,
so an entry is never stored under a marker newer than what it was computed from.
"""
from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Max
from django.db.models.signals import post_save

from annotation.models import ChangeLogEntry, Label, Prediction

PREDICTIONS = "predictions"
LABELS = "labels"
_TABLES: dict[str, type[Prediction | Label]] = {PREDICTIONS: Prediction, LABELS: Label}
# Log ids looked back over for entries committed late; a writer still open after this many later
# writes by others commit would go unseen until the next write.
LOG_WINDOW = 4096


def logged_by_triggers() -> bool:
    """Whether the database logs every write itself (PostgreSQL's triggers)."""
    return connection.vendor == "postgresql"


def bump_changes(name: str) -> None:
    """Log one in-place change of `name` (PREDICTIONS or LABELS), in the caller's transaction."""
    if name not in _TABLES:
        raise ValueError(f"unknown change log table {name!r}")
    if not logged_by_triggers():
        ChangeLogEntry.objects.create(name=name)


def change_marker(name: str) -> tuple[int, ...]:
    """A key of `name`'s table that differs after any committed write to it.

    (last log id, log entries in the window below it): the newest entries of `name` read backwards down
    one index (about 1 ms at a million entries on PostgreSQL); on SQLite also the table's rows and last id.
    """
    table = _TABLES[name]
    log = connection.ops.quote_name(ChangeLogEntry._meta.db_table)
    newest = f"SELECT id FROM {log} WHERE name = %s ORDER BY id DESC LIMIT"
    with connection.cursor() as cursor:
        # The window holds at most LOG_WINDOW entries, so the newest LOG_WINDOW of `name` cover it.
        cursor.execute(f"SELECT MAX(id), COUNT(*) FROM ({newest} %s) newest WHERE id > ({newest} 1) - %s",
                       [name, LOG_WINDOW, name, LOG_WINDOW])
        last, entries = cursor.fetchone()
    if logged_by_triggers():
        return last or 0, entries
    return last or 0, entries, table.objects.count(), table.objects.aggregate(last=Max("pk"))["last"] or 0


def prune_change_log() -> int:
    """Delete the log entries no marker can see any more; the number deleted.

    A table's marker looks only at its entries within LOG_WINDOW ids of its newest one, and that newest
    id only grows, so older entries never count again: deleting them leaves every marker as it was."""
    deleted = 0
    for name in _TABLES:
        newest = ChangeLogEntry.objects.filter(name=name).aggregate(last=Max("id"))["last"]
        if newest is not None:
            deleted += ChangeLogEntry.objects.filter(name=name, id__lte=newest - LOG_WINDOW).delete()[0]
    return deleted


def _saved(sender: type, **_: Any) -> None:
    bump_changes(PREDICTIONS if sender is Prediction else LABELS)


def connect_signals() -> None:
    """Log single-row saves of predictions and labels (called once, when the app is ready)."""
    for table in _TABLES.values():
        post_save.connect(_saved, sender=table, dispatch_uid=f"errormap-changes-{table.__name__}")
