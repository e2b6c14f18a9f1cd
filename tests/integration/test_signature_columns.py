"""Signatures and the atlas read the labels alone and group them through one read of the predictions: the
rows they count equal the straightforward join of each label to its prediction and example (model,
dataset, failure flag), with failure flags flipped, filters by model and dataset, and a derived version."""
from __future__ import annotations

import io
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.changes import PREDICTIONS, bump_changes
from annotation.models import Dataset, EvaluatedModel, Label, Prediction
from annotation.selectors import (
    _int_columns,
    _read_packed_predictions,
    label_values,
    prediction_groups,
    shared_label_reads,
)
from taxonomy.core.signatures import LabelRecord
from taxonomy.core.signatures import failure_signatures as core_signatures
from taxonomy.models import Category, TaxonomyProposal
from taxonomy.pages import signatures_context
from taxonomy.services.signatures import (
    _columns,
    atlas,
    failure_signatures,
    pick_version,
    signature_filter,
)
from taxonomy.services.versions import resolve_version
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db
PATHS = ["R / Arithmetic", "R / Logic", "K / Fact", "K / Date", "Other"]
FIELDS = ("prediction__model_id", "prediction__example__dataset_id", "prediction_id", "annotator_id", "category_id")


@pytest.fixture
def labelled():
    """Three models on two datasets; judge, three people (some with two categories) and gold; a fifth of the
    labelled predictions flipped to successes afterwards, and unlabelled predictions between them."""
    cache.clear()
    version = make_version(PATHS)
    items = []
    for i in range(30):
        dataset, model = f"ds{i % 2}", f"m{i % 3}"
        make_prediction(f"unlabelled-{i}", dataset=dataset, model=model)
        p = make_prediction(f"e{i}", dataset=dataset, model=model)
        add_label(p, version, "judge-v1", PATHS[i % 5], source="judge", confidence=0.1 * (i % 10))
        for h in range(3):
            picks = [PATHS[(i + h) % 5]] + ([PATHS[(i * h) % 4]] if (i + h) % 4 == 0 else [])
            add_label(p, version, f"h{h}", *sorted(set(picks)))
        if i % 5 in (0, 3):
            add_label(p, version, "adj", PATHS[(i + 1) % 5], source="gold")
        items.append(p)
    # Re-ingest flipping flags in place, as the failure rule does (a bulk update that logs a change).
    Prediction.objects.filter(pk__in=[p.pk for p in items[::5]]).update(is_failure=False)
    bump_changes(PREDICTIONS)
    return version, items


def joined(label_filter, version) -> Counter:
    """The straightforward read: each label joined to its prediction and example in SQL."""
    return Counter(label_values(label_filter, version, *FIELDS))


def columns_rows(label_filter, version) -> Counter:
    columns = _columns(label_filter, version)
    return Counter(zip(*(columns[name].tolist() for name in ("model", "dataset", "item", "annotator", "category")),
                       strict=True))


FILTERS = [
    {},
    {"models": ["m1"]},
    {"models": ["m0", "m2"]},
    {"datasets": ["ds1"]},
    {"models": ["m2"], "datasets": ["ds0"]},
    {"models": ["no such model"]},
]


@pytest.mark.parametrize("source", ["judge", "human", "gold"])
@pytest.mark.parametrize("narrowing", FILTERS)
def test_columns_are_the_joined_rows(labelled, source, narrowing):
    version, _ = labelled
    label_filter = signature_filter(source=source, **narrowing)
    expected = joined(label_filter, version)
    assert columns_rows(label_filter, version) == expected
    if narrowing.get("models") != ["no such model"]:
        assert expected  # something to compare
        # The flipped predictions' labels are in the table but not counted.
        assert expected.total() < joined(replace(label_filter, failures_only=False), version).total()


def _records(rows: Counter, by: int, names: dict[int, str], paths: dict[int, str]) -> list[LabelRecord]:
    return [LabelRecord(group=names[row[by]], item=str(row[2]), annotator=str(row[3]), path=paths[row[4]])
            for row, n in rows.items() for _ in range(n)]


@pytest.mark.parametrize("source", ["judge", "human", "gold"])
@pytest.mark.parametrize("by", ["model", "dataset"])
@pytest.mark.parametrize("depth", [1, 2])
def test_signatures_equal_those_counted_from_the_join(labelled, source, by, depth):
    version, _ = labelled
    rows = joined(signature_filter(source=source), version)
    names = dict((EvaluatedModel if by == "model" else Dataset).objects.values_list("pk", "name"))
    paths = dict(Category.objects.filter(version=version).values_list("pk", "path"))
    expected = core_signatures(_records(rows, 0 if by == "model" else 1, names, paths), depth)
    report = failure_signatures(taxonomy=str(version), source=source, by=by, depth=depth)
    assert [(s.group, s.n_errors) for s in report.signatures] == [(s.group, s.n_errors) for s in expected]
    for got, want in zip(report.signatures, expected, strict=True):
        # The same rows summed in another order may differ in the last bit: compare counts to 1e-12.
        assert [c.category for c in got.shares] == [c.category for c in want.shares]
        for figures in ("count", "share", "ci_low", "ci_high"):
            assert [getattr(c, figures) for c in got.shares] == pytest.approx(
                [getattr(c, figures) for c in want.shares], rel=1e-12)
    tree = atlas(taxonomy=str(version), source=source)
    assert tree.n_errors == len({row[2] for row in rows})


def test_a_flag_flipped_back_counts_again(labelled):
    version, items = labelled
    before = failure_signatures(source="human")
    Prediction.objects.filter(pk=items[0].pk).update(is_failure=True)
    bump_changes(PREDICTIONS)
    after = failure_signatures(source="human")
    assert sum(s.n_errors for s in after.signatures) == sum(s.n_errors for s in before.signatures) + 1
    assert columns_rows(signature_filter(source="human"), version) == joined(signature_filter(source="human"),
                                                                            version)


def test_a_derived_version_reads_the_earlier_labels_through_the_mapping(labelled):
    version, items = labelled
    proposal = TaxonomyProposal.objects.create(version=version, key="m", kind="merge",
                                               categories=["R / Arithmetic", "R / Logic"], new_name="R / Reasoning",
                                               description="either", source="human")
    call_command("accept_proposals", "errors", str(proposal.pk), "--by", "alice", stdout=io.StringIO())
    derived = resolve_version("errors@2")
    # Some items relabelled on the new version, the rest carried over through the mapping.
    for p in items[:6]:
        add_label(p, derived, "judge-v1", "K / Fact", source="judge")
    for source in ("judge", "human", "gold"):
        for narrowing in FILTERS:
            label_filter = signature_filter(source=source, taxonomy="errors@2", **narrowing)
            assert pick_version(label_filter, "errors@2") == derived
            assert columns_rows(label_filter, derived) == joined(label_filter, derived), (source, narrowing)
    assert joined(signature_filter(source="judge"), derived)


def test_the_signatures_page_reads_predictions_once_and_never_joins_labels_to_them(labelled):
    label_table, prediction_table = Label._meta.db_table, Prediction._meta.db_table
    with CaptureQueriesContext(connection) as captured:
        context = signatures_context({"taxonomy": "errors@1"})
    assert "corrected" in context  # the judge's labels and gold were both read
    sqls = [q["sql"] for q in captured.captured_queries]
    assert not [sql for sql in sqls if f'"{label_table}"' in sql and f'JOIN "{prediction_table}"' in sql]
    assert [sql for sql in sqls if f'"{label_table}"' in sql and '"category_id"' in sql]  # the labels were read
    # Row reads (not the change marker's count and last id), shared by the judge's and gold's labels.
    reads = [sql for sql in sqls if f'FROM "{prediction_table}"' in sql and '"example_id"' in sql]
    assert len(reads) == 1, reads


def test_prediction_groups_are_the_predictions_with_their_model_and_dataset(labelled):
    with shared_label_reads():
        groups = prediction_groups(failures_only=True, models=["m1", "m2"], datasets=["ds0"])
        assert prediction_groups(failures_only=True, models=["m1", "m2"], datasets=["ds0"]) is groups
    expected = list(Prediction.objects.filter(is_failure=True, model__name__in=["m1", "m2"],
                                              example__dataset__name="ds0").order_by("pk")
                    .values_list("pk", "model_id", "example__dataset_id"))
    assert list(zip(groups.ids.tolist(), groups.model.tolist(), groups.dataset.tolist(), strict=True)) == expected
    assert expected


def test_the_packed_prediction_read_equals_the_cursor_and_steps_aside_past_63_bits(labelled):
    def query():
        return Prediction.objects.filter(is_failure=True).values_list("pk", "model_id", "example__dataset_id")

    packed = _read_packed_predictions(query())
    assert (packed is not None) == (connection.vendor == "sqlite")
    if packed is not None:
        assert [c.tolist() for c in packed] == [c.tolist() for c in _int_columns(query(), 3)]
    # An id near 2**60: packed with the model and dataset it would pass 63 bits, so the cursor reads it,
    # and labels find it by binary search (a table from id to position would be too large).
    huge = make_prediction("huge", dataset="ds1", model="m2")
    Prediction.objects.filter(pk=huge.pk).update(id=2**60)
    assert _read_packed_predictions(query()) is None
    groups = prediction_groups(failures_only=True)
    assert list(zip(groups.ids.tolist(), groups.model.tolist(), groups.dataset.tolist(), strict=True)) == list(
        query().order_by("pk"))
    found, at = groups.locate(np.array([2**60, 2**60 - 1, -5, *groups.ids[:3].tolist()], dtype=np.int64))
    assert found.tolist() == [True, False, False, True, True, True]
    assert groups.ids[at].tolist() == [2**60, *groups.ids[:3].tolist()]
