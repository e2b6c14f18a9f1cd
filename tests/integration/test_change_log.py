"""The change log behind the cache keys (annotation/changes.py): deletes, cascades and late commits change
the markers; on PostgreSQL writers logging changes never wait for each other and no table is counted."""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from annotation.changes import LABELS, PREDICTIONS, bump_changes, change_marker
from annotation.models import ChangeLogEntry, Label, Prediction
from tests.integration.agreement_factories import add_label, make_prediction, make_version

T = TypeVar("T")
on_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only (its pass runs it)")


def postgres_committed(test: Callable[..., None]) -> Callable[..., None]:
    """A PostgreSQL test whose data is committed, so other connections see it."""
    return on_postgres(pytest.mark.postgres(pytest.mark.django_db(transaction=True)(test)))


@pytest.fixture
def other(labelled: Prediction) -> Prediction:
    """The prediction beside `labelled`."""
    return Prediction.objects.exclude(pk=labelled.pk).get()


def markers() -> tuple[tuple[int, ...], tuple[int, ...]]:
    return change_marker(PREDICTIONS), change_marker(LABELS)


@pytest.fixture
def labelled() -> Prediction:
    version = make_version(["R / Logic", "R / Arithmetic"])
    prediction = make_prediction("e0")
    make_prediction("e1")
    add_label(prediction, version, "rater", "R / Logic", "R / Arithmetic")
    return prediction


@pytest.mark.django_db
def test_deleting_a_prediction_changes_both_markers(labelled):
    before = markers()
    labelled.delete()  # cascades to its labels
    assert not Label.objects.exists()
    after = markers()
    assert after[0] != before[0] and after[1] != before[1]


@pytest.mark.django_db
def test_an_entry_committed_below_the_last_id_changes_the_marker():
    """A writer that took its log id before another one committed its own commits it late: the largest
    id is unchanged, the entries under it are not."""
    ChangeLogEntry.objects.create(id=10, name=LABELS)
    ChangeLogEntry.objects.create(id=12, name=LABELS)
    before = change_marker(LABELS)
    ChangeLogEntry.objects.create(id=11, name=LABELS)
    assert change_marker(LABELS)[0] == before[0] == 12
    assert change_marker(LABELS) != before


def in_other_connection(work: Callable[[], T]) -> T:
    """`work`'s result in a thread, which Django gives its own database connection (its errors re-raised)."""
    def run() -> T:
        try:
            return work()
        finally:
            connection.close()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=30)


def flip(prediction_id: int, *, lock_timeout: bool = False) -> None:
    """Change one prediction in place and log it, as re-ingest does, in one transaction."""
    with transaction.atomic():
        if lock_timeout:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '1s'")
        Prediction.objects.filter(pk=prediction_id).update(score=1.0)
        bump_changes(PREDICTIONS)


@postgres_committed
def test_writers_logging_changes_do_not_wait_for_each_other(labelled, other):
    with transaction.atomic():
        flip(labelled.pk)  # logged, not committed yet
        # Before the change log both bumped one counter row: this one waited for the lock and failed.
        in_other_connection(lambda: flip(other.pk, lock_timeout=True))


@postgres_committed
def test_a_writer_committing_after_a_later_one_changes_the_marker(labelled, other):
    with transaction.atomic():
        flip(labelled.pk)  # takes the lower log id
        in_other_connection(lambda: flip(other.pk))  # takes a higher one and commits first
        seen = in_other_connection(lambda: change_marker(PREDICTIONS))
    assert change_marker(PREDICTIONS)[0] == seen[0]
    assert change_marker(PREDICTIONS) != seen


@on_postgres
@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_markers_count_no_table_and_see_raw_deletes(labelled):
    before = markers()
    with connection.cursor() as cursor:  # raw SQL, no ORM signal or explicit log
        cursor.execute("DELETE FROM annotation_label WHERE prediction_id = %s", [labelled.pk])
    middle = markers()
    assert middle[1] != before[1] and middle[0] == before[0]
    with CaptureQueriesContext(connection) as queries:
        labelled.delete()
        after = markers()
    assert after[0] != middle[0]
    marker_sql = [q["sql"] for q in queries.captured_queries if "changelogentry" in q["sql"]]
    assert len(marker_sql) == 2
    assert not [q["sql"] for q in queries.captured_queries
                if "COUNT" in q["sql"].upper() and "changelogentry" not in q["sql"]]


@pytest.mark.django_db
def test_pruning_the_log_keeps_every_marker_and_only_the_entries_a_marker_can_see(monkeypatch):
    from annotation import changes

    monkeypatch.setattr(changes, "LOG_WINDOW", 5)
    ChangeLogEntry.objects.bulk_create(
        [ChangeLogEntry(name=PREDICTIONS if i % 3 else LABELS) for i in range(30)])
    before = {name: change_marker(name) for name in (PREDICTIONS, LABELS)}
    logged = set(ChangeLogEntry.objects.values_list("id", "name"))
    newest = {name: max(i for i, n in logged if n == name) for name in (PREDICTIONS, LABELS)}

    deleted = changes.prune_change_log()

    assert {name: change_marker(name) for name in (PREDICTIONS, LABELS)} == before
    kept = set(ChangeLogEntry.objects.values_list("id", "name"))
    assert kept == {(i, n) for i, n in logged if i > newest[n] - 5}
    assert deleted == len(logged) - len(kept) > 0
    assert changes.prune_change_log() == 0  # nothing more to trim
