"""Label rows read as arrays: SQLite's one-statement packed read gives exactly the rows and confidences the
cursor gives, and falls back to the cursor where packing could not be exact."""
from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.models import Annotator, Label
from annotation.selectors import LabelFilter, label_rows, select_labels
from taxonomy.models import Category
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db
PATHS = ["R / Arithmetic", "R / Logic", "K / Fact"]
# Confidences a judge writes, and edge values: 0, 1, a third (all 53 bits used), a negative one.
CONFIDENCES = [None, 0.0, 1.0, 0.1, 1 / 3, 0.987654321, -0.25, 0.5]


@pytest.fixture
def version():
    version = make_version(PATHS)
    for i in range(12):
        p = make_prediction(str(i), dataset=f"ds{i % 2}", model=f"m{i % 3}")
        add_label(p, version, "h1", PATHS[i % 3])
        add_label(p, version, "h2", PATHS[i % 3], PATHS[(i + 1) % 3])
        add_label(p, version, "judge-v1", PATHS[(i + 2) % 3], source="judge",
                  confidence=CONFIDENCES[i % len(CONFIDENCES)])
        if i % 4 == 0:
            add_label(p, version, "adj", PATHS[i % 3], source="gold")
    return version


def cursor_rows(label_filter: LabelFilter, version) -> tuple[np.ndarray, np.ndarray]:
    """The same rows through Django's values_list, ordered by (source, id) as the reads go source by source."""
    rows = list(select_labels(label_filter, version).order_by("source", "pk").values_list(
        "source", "pk", "prediction_id", "annotator_id", "category_id", "confidence"))
    order = {s: k for k, s in enumerate(label_filter.sources)}
    rows.sort(key=lambda r: (order[r[0]], r[1]))
    ids = np.array([r[2:5] for r in rows], dtype=np.int64).reshape(-1, 3)
    return ids, np.array([np.nan if r[5] is None else r[5] for r in rows], dtype=np.float64)


def assert_same_rows(ids, confidence, expected_ids, expected_confidence) -> None:
    """The same rows with exactly equal confidences (NaN where none). SQLite reads each source in id order,
    so there the order must match too; another database's cursor returns rows in an order of its own."""
    assert ids.dtype == np.int64
    if connection.vendor != "sqlite":
        order = np.lexsort((confidence, *ids.T[::-1]))
        expected = np.lexsort((expected_confidence, *expected_ids.T[::-1]))
        ids, confidence = ids[order], confidence[order]
        expected_ids, expected_confidence = expected_ids[expected], expected_confidence[expected]
    assert np.array_equal(ids, expected_ids)
    assert np.array_equal(confidence, expected_confidence, equal_nan=True)  # exactly equal floats


def read(label_filter: LabelFilter, version) -> tuple[np.ndarray, np.ndarray, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        rows = label_rows(label_filter, version)
    return rows.ids, rows.confidence, [q["sql"] for q in captured.captured_queries]


@pytest.mark.parametrize("label_filter", [
    LabelFilter(sources=("judge", "human", "gold")),
    LabelFilter(sources=("judge",), datasets=("ds1",), models=("m0", "m2")),  # joins to prediction and example
    LabelFilter(sources=("human",), annotators=("h2",), categories=("R",)),
    LabelFilter(sources=("gold",), datasets=("no such dataset",)),  # no rows
])
def test_the_packed_read_gives_the_rows_and_confidences_the_cursor_gives(version, label_filter):
    ids, confidence, queries = read(label_filter, version)
    expected_ids, expected_confidence = cursor_rows(label_filter, version)
    assert_same_rows(ids, confidence, expected_ids, expected_confidence)
    if connection.vendor == "sqlite":
        # One statement per source, and no row comes back through the cursor.
        reads = [q for q in queries if "annotation_label" in q]
        assert len(reads) == len(label_filter.sources) and all("group_concat" in q for q in reads), reads


def test_a_confidence_the_scaled_integer_cannot_hold_falls_back_to_the_cursor(version):
    Label.objects.filter(source="judge", confidence=0.5).update(confidence=1e-30)
    Label.objects.filter(source="judge", confidence=0.1).update(confidence=3.0)
    label_filter = LabelFilter(sources=("judge",))
    ids, confidence, queries = read(label_filter, version)
    expected_ids, expected_confidence = cursor_rows(label_filter, version)
    assert 1e-30 in confidence.tolist() and 3.0 in confidence.tolist()
    assert_same_rows(ids, confidence, expected_ids, expected_confidence)
    if connection.vendor == "sqlite":
        assert len([q for q in queries if "annotation_label" in q]) == 2  # the packed try, then the cursor


def test_ids_too_large_to_pack_fall_back_to_the_cursor(version):
    # Annotator and category ids whose product with a prediction id passes 63 bits.
    big = Annotator.objects.create(pk=2**40, name="big ids", kind=Annotator.Kind.HUMAN)
    category = Category.objects.create(pk=2**21, version=version, path="Z / Wide", name="Wide")
    p = make_prediction("wide")
    Label.objects.create(prediction=p, taxonomy_version=version, category=category, source="human", annotator=big)
    label_filter = LabelFilter(sources=("human",))
    ids, confidence, queries = read(label_filter, version)
    expected_ids, expected_confidence = cursor_rows(label_filter, version)
    assert [p.pk, 2**40, 2**21] in ids.tolist()
    assert_same_rows(ids, confidence, expected_ids, expected_confidence)
    if connection.vendor == "sqlite":
        assert len([q for q in queries if "annotation_label" in q]) == 2  # the packed try, then the cursor
