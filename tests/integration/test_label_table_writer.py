"""replace_label_table (set-wise SQL, used by import_labels) leaves exactly the label rows that
replace_label_sets (rows compared in Python) leaves for the same sets, and reports the same counts."""
from __future__ import annotations

import pytest
from django.db import transaction

from annotation.models import Label
from annotation.services.bulk_sql import bulk_cursor, insert_rows
from annotation.services.labels import (
    LABEL_DETAIL_FIELDS,
    LabelEntry,
    LabelSet,
    get_annotator,
    replace_label_sets,
    replace_label_table,
)
from taxonomy.services.versions import CategorySpec, add_categories, resolve_version
from tests.factories import make_failures

pytestmark = pytest.mark.django_db
TABLE = "test_wanted_labels"


class Rollback(Exception):
    pass


def label_rows() -> list[tuple]:
    """Every label row by identity and value (timestamps aside)."""
    return list(Label.objects.order_by("pk").values_list(
        "pk", "prediction_id", "taxonomy_version_id", "source", "annotator_id", "category_id", *LABEL_DETAIL_FIELDS))


def through_table(sets: list[LabelSet], version_id: int):
    with bulk_cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {TABLE} (prediction_id bigint, source text, annotator_id bigint, "
            "category_id bigint, confidence double precision, error_title text, error_summary text, "
            "rationale text, note text, "
            "proposed_category text, prompt_version_id bigint, analysis_id bigint, external_id text, "
            "PRIMARY KEY (prediction_id, source, annotator_id, category_id))")
        defaults = {"confidence": None, "prompt_version_id": None, "analysis_id": None}
        insert_rows(cursor, TABLE, ("prediction_id", "source", "annotator_id", "category_id", *LABEL_DETAIL_FIELDS), [
            (s.prediction_id, s.source, s.annotator_id, e.category_id,
             *(e.details.get(name, defaults.get(name, "")) for name in LABEL_DETAIL_FIELDS))
            for s in sets for e in s.entries])
        report = replace_label_table(cursor, TABLE, version_id=version_id)
        cursor.execute(f"DROP TABLE {TABLE}")
    return report


def test_the_table_writer_leaves_what_the_set_writer_leaves():
    predictions = make_failures(4)
    version = resolve_version("t", create=True)
    a, b, c = add_categories(version, [CategorySpec("A"), CategorySpec("B"), CategorySpec("C")])
    ann, bob = get_annotator("ann"), get_annotator("bob")

    def label_set(prediction, annotator, *entries, source=Label.Source.HUMAN):
        return LabelSet(prediction.pk, version.pk, source, annotator.pk, tuple(entries))

    before = [
        label_set(predictions[0], ann, LabelEntry(a.pk, {"note": "kept"}), LabelEntry(b.pk, {"note": "dropped"})),
        label_set(predictions[1], ann, LabelEntry(a.pk, {"confidence": 0.5, "note": "old"})),
        label_set(predictions[1], bob, LabelEntry(c.pk)),  # not in the new sets: stays
        label_set(predictions[2], ann, LabelEntry(a.pk), source=Label.Source.JUDGE),
    ]
    replace_label_sets(before)
    wanted = [
        label_set(predictions[0], ann, LabelEntry(a.pk, {"note": "kept"}), LabelEntry(c.pk, {"error_title": "new"})),
        label_set(predictions[1], ann, LabelEntry(a.pk, {"confidence": None, "note": "old"})),  # confidence cleared
        label_set(predictions[2], ann, LabelEntry(b.pk), source=Label.Source.JUDGE),  # category replaced
        label_set(predictions[3], bob, LabelEntry(a.pk, {"external_id": "import:x"}), LabelEntry(b.pk)),
    ]
    start = label_rows()
    try:
        with transaction.atomic():
            by_sets = replace_label_sets(wanted)
            rows_by_sets = label_rows()
            raise Rollback
    except Rollback:
        pass
    assert label_rows() == start
    by_table = through_table(wanted, version.pk)
    rows_by_table = label_rows()
    assert by_table == by_sets
    assert (by_table.created, by_table.updated, by_table.deleted, by_table.unchanged) == (4, 1, 2, 1)
    # Rows kept or updated keep their identity; new rows may be numbered in another order.
    kept = {row[0] for row in start}
    assert [r for r in rows_by_table if r[0] in kept] == [r for r in rows_by_sets if r[0] in kept]
    assert sorted(r[1:] for r in rows_by_table) == sorted(r[1:] for r in rows_by_sets)
    # Running it again changes nothing.
    again = through_table(wanted, version.pk)
    assert (again.created, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 6)
    assert label_rows() == rows_by_table
