"""Writing labels: each (item, taxonomy version, source, annotator) holds one *set* of categories.

Writers hand over complete sets; `replace_label_sets` makes the table match them exactly,
touching only rows that differ, so repeating a write (a re-import, a repeated webhook) changes nothing.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from annotation.changes import LABELS, bump_changes
from annotation.models import Annotator, Label
from annotation.services.bulk_sql import batches, bulk_cursor, insert_rows

# Fields a label carries besides its key; a change in any of them is an update.
LABEL_DETAIL_FIELDS = (
    "confidence",
    "error_title",
    "error_summary",
    "rationale",
    "note",
    "proposed_category",
    "prompt_version_id",
    "analysis_id",
    "external_id",
)


@dataclass(frozen=True)
class LabelEntry:
    """One category of a set, with its details."""

    category_id: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelSet:
    """All categories one annotator gives one item under one taxonomy version and source."""

    prediction_id: int
    taxonomy_version_id: int
    source: str
    annotator_id: int
    entries: tuple[LabelEntry, ...]

    @property
    def key(self) -> tuple[int, int, str, int]:
        return (self.prediction_id, self.taxonomy_version_id, self.source, self.annotator_id)


@dataclass(frozen=True)
class LabelWriteReport:
    created: int
    updated: int
    deleted: int
    unchanged: int

    def __add__(self, other: LabelWriteReport) -> LabelWriteReport:
        return LabelWriteReport(self.created + other.created, self.updated + other.updated,
                                self.deleted + other.deleted, self.unchanged + other.unchanged)


def get_annotator(name: str, *, kind: str = Annotator.Kind.HUMAN, **fields: Any) -> Annotator:
    """The annotator of that name, created on first use."""
    annotator, _ = Annotator.objects.get_or_create(name=name, defaults={"kind": kind, **fields})
    return annotator


_KEY_FIELDS = ("prediction_id", "taxonomy_version_id", "source", "annotator_id", "category_id")


@transaction.atomic
def replace_label_sets(label_sets: Iterable[LabelSet], *, batch_size: int = 500) -> LabelWriteReport:
    """Make each set's rows exactly its entries (an empty set removes the annotator's labels on the item).

    Rows are compared and written as plain tuples with bulk SQL (the ORM's per-object path cost
    about 0.6 ms a label), so a write of a million labels takes seconds, not minutes.
    """
    created = updated = deleted = unchanged = 0
    sets = list({s.key: s for s in label_sets}.values())  # the last set given for a key wins
    table = connection.ops.quote_name(Label._meta.db_table)
    column_of = {name: field.column for field in Label._meta.concrete_fields if field.column is not None
                 for name in (field.name, field.attname)}  # a foreign key by its name or its attname
    columns = [column_of[name] for name in (*_KEY_FIELDS, *LABEL_DETAIL_FIELDS)]
    assignments = ", ".join(f"{column} = %s" for column in columns[len(_KEY_FIELDS):])
    # Adapted once: the driver would otherwise format the same timestamp for every row.
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with bulk_cursor() as cursor:
        for batch in batches(sets, batch_size):
            existing: dict[tuple[Any, ...], dict[int, tuple[Any, ...]]] = {}
            rows = Label.objects.filter(
                prediction_id__in={s.prediction_id for s in batch},
                annotator_id__in={s.annotator_id for s in batch},
                taxonomy_version_id__in={s.taxonomy_version_id for s in batch},
            ).values_list("pk", *_KEY_FIELDS, *LABEL_DETAIL_FIELDS)
            for pk, prediction_id, version_id, source, annotator_id, category_id, *details in rows:
                existing.setdefault((prediction_id, version_id, source, annotator_id), {})[category_id] = (
                    pk, tuple(details))
            to_create: list[tuple[Any, ...]] = []
            to_update: list[tuple[Any, ...]] = []
            to_delete: list[int] = []
            for label_set in batch:
                current = existing.get(label_set.key, {})
                wanted = {entry.category_id: entry for entry in label_set.entries}
                to_delete.extend(pk for category_id, (pk, _) in current.items() if category_id not in wanted)
                for category_id, entry in wanted.items():
                    details = _detail_values(entry.details)
                    old = current.get(category_id)
                    if old is None:
                        to_create.append((*label_set.key, category_id, *details, now, now))
                    elif old[1] != details:
                        to_update.append((*details, now, old[0]))
                    else:
                        unchanged += 1
            if to_delete:
                deleted += Label.objects.filter(pk__in=to_delete).delete()[0]
            if to_create:
                insert_rows(cursor, table, (*columns, "created_at", "updated_at"), to_create)
                created += len(to_create)
            if to_update:
                cursor.executemany(f"UPDATE {table} SET {assignments}, updated_at = %s WHERE id = %s", to_update)
                updated += len(to_update)
        if created or updated or deleted:
            bump_changes(LABELS)
    return LabelWriteReport(created=created, updated=updated, deleted=deleted, unchanged=unchanged)


_DETAIL_DEFAULTS = tuple(
    None if name in ("confidence", "prompt_version_id", "analysis_id") else "" for name in LABEL_DETAIL_FIELDS
)
_DETAIL_NAMES = frozenset(LABEL_DETAIL_FIELDS)


def _detail_values(details: dict[str, Any]) -> tuple[Any, ...]:
    """The detail fields in LABEL_DETAIL_FIELDS order, defaults for those not given (so a missing
    detail resets to empty rather than lingering); an unknown field is a ValueError."""
    if not details.keys() <= _DETAIL_NAMES:
        raise ValueError(f"unknown label fields: {sorted(details.keys() - _DETAIL_NAMES)}")
    get = details.get
    return tuple(get(name, default) for name, default in zip(LABEL_DETAIL_FIELDS, _DETAIL_DEFAULTS))


def replace_label_table(cursor: Any, table: str, *, version_id: int) -> LabelWriteReport:
    """`replace_label_sets` for sets already in a table, in four set-wise statements instead of Python
    per row: for a whole imported file (the same rows result, a test holds the two to it).

    `table` has the columns prediction_id, source, annotator_id, category_id and LABEL_DETAIL_FIELDS,
    one row per label, unique on the first four, every row of each set it names (all under the
    taxonomy version `version_id`); each such set's label rows become exactly its rows.
    """
    label = connection.ops.quote_name(Label._meta.db_table)
    column_of = {field.attname: str(field.column) for field in Label._meta.concrete_fields}
    columns = [column_of[name] for name in LABEL_DETAIL_FIELDS]
    # A null-safe "differs": SQLite's IS NOT, PostgreSQL's IS DISTINCT FROM.
    differs = "IS NOT" if connection.vendor == "sqlite" else "IS DISTINCT FROM"
    same_set = ("l.prediction_id = w.prediction_id AND l.source = w.source AND l.annotator_id = w.annotator_id "
                "AND l.taxonomy_version_id = %s")
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    cursor.execute(
        f"DELETE FROM {label} WHERE id IN (SELECT l.id FROM {label} l "
        f"JOIN (SELECT DISTINCT prediction_id, source, annotator_id FROM {table}) w ON {same_set} "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} k WHERE k.prediction_id = l.prediction_id "
        "AND k.source = l.source AND k.annotator_id = l.annotator_id AND k.category_id = l.category_id))",
        [version_id],
    )
    deleted = cursor.rowcount
    cursor.execute(
        f"UPDATE {label} AS l SET {', '.join(f'{c} = w.{c}' for c in columns)}, updated_at = %s FROM {table} w "
        f"WHERE {same_set} AND l.category_id = w.category_id "
        f"AND ({' OR '.join(f'l.{c} {differs} w.{c}' for c in columns)})",
        [now, version_id],
    )
    updated = cursor.rowcount
    key_columns = "prediction_id, taxonomy_version_id, source, annotator_id, category_id"
    cursor.execute(
        f"INSERT INTO {label} ({key_columns}, {', '.join(columns)}, created_at, updated_at) "
        f"SELECT w.prediction_id, %s, w.source, w.annotator_id, w.category_id, "
        f"{', '.join(f'w.{c}' for c in columns)}, %s, %s FROM {table} w "
        f"WHERE NOT EXISTS (SELECT 1 FROM {label} l WHERE {same_set} AND l.category_id = w.category_id) "
        "ORDER BY w.prediction_id, w.source, w.annotator_id, w.category_id",
        [version_id, now, now, version_id],
    )
    created = cursor.rowcount
    if created or updated or deleted:
        bump_changes(LABELS)  # in-place updates leave the count and last id as they were
    cursor.execute(f"SELECT count(*) FROM {table}")
    (total,) = cursor.fetchone()
    return LabelWriteReport(created=created, updated=updated, deleted=deleted, unchanged=total - created - updated)
