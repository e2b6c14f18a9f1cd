"""compute_agreement reuses a computed report until anything it is computed from changes."""
from __future__ import annotations

import pytest
from django.core.cache import cache

from annotation.models import Annotator, Dataset, Label, StageRun
from annotation.selectors import LabelFilter, agreement
from annotation.selectors.agreement import compute_agreement
from taxonomy.models import Category
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def labelled():
    """4 items x 3 humans over two categories; h0 and h1 agree everywhere, h2 on items 1 and 2."""
    cache.clear()
    version = make_version(["A / x", "A / y"])
    rows = {"1": ["A / x"] * 3, "2": ["A / y"] * 3, "3": ["A / x", "A / x", "A / y"],
            "4": ["A / y", "A / y", "A / x"]}
    predictions = {}
    for example_id, cats in rows.items():
        predictions[example_id] = make_prediction(example_id, dataset="ds")
        for n, cat in enumerate(cats):
            add_label(predictions[example_id], version, f"h{n}", cat)
    return version, predictions


@pytest.fixture
def computations(monkeypatch):
    """How many times the statistics were actually computed (not taken from the cache)."""
    calls = []
    compute = agreement._statistics

    def counted(*args, **kwargs):
        calls.append(args)
        return compute(*args, **kwargs)

    monkeypatch.setattr(agreement, "_statistics", counted)
    return calls


def report(**filters) -> dict:
    return compute_agreement(label_filter=LabelFilter(**filters), reps=50).to_dict()


def test_a_second_request_is_served_from_the_cache_with_the_same_numbers(labelled, computations):
    first, second = report(), report()
    assert first == second and len(computations) == 1
    assert not StageRun.objects.exists()  # a read records no run (the command does)
    # Another configuration is another entry.
    compute_agreement(label_filter=LabelFilter(), reps=50, depth=1)
    assert len(computations) == 2


def test_an_added_label_is_seen(labelled, computations):
    version, predictions = labelled
    before = report()
    add_label(make_prediction("5", dataset="ds"), version, "h0", "A / x")
    add_label(predictions["4"], version, "h3", "A / y")
    after = report()
    assert len(computations) == 2
    assert after["n_ratings"] == before["n_ratings"] + 2 and "h3" in after["per_annotator"]


def test_a_deleted_label_is_seen_even_when_it_was_not_the_last(labelled, computations):
    before = report()
    Label.objects.filter(annotator__name="h2", prediction__example__example_id="1").delete()
    after = report()
    assert len(computations) == 2 and after["n_ratings"] == before["n_ratings"] - 1


def test_a_label_edited_in_place_is_seen(labelled, computations):
    version, _ = labelled
    before = report()
    # As the admin does: the same row, another category (count and last id unchanged).
    label = Label.objects.get(annotator__name="h2", prediction__example__example_id="3")
    label.category = Category.objects.get(version=version, path="A / x")
    label.save()
    after = report()
    assert len(computations) == 2
    assert after["krippendorff_alpha"] > before["krippendorff_alpha"]  # h2 now agrees on item 3


def test_a_delete_and_an_add_in_one_write_are_seen(labelled, computations):
    # replace_label_sets changes a category by deleting one row and adding another: same count.
    version, predictions = labelled
    before = report()
    Label.objects.filter(annotator__name="h2", prediction__example__example_id="4").delete()
    add_label(predictions["4"], version, "h2", "A / y")
    after = report()
    assert len(computations) == 2 and after["n_ratings"] == before["n_ratings"]
    assert after["krippendorff_alpha"] > before["krippendorff_alpha"]


def test_renamed_annotators_categories_and_datasets_are_seen(labelled, computations):
    version, _ = labelled
    other = make_prediction("9", dataset="ds2")
    for n in range(3):
        add_label(other, version, f"h{n}", "A / x")
    assert "h2" in report()["per_annotator"]
    Annotator.objects.filter(name="h2").update(name="rater-2")
    assert "rater-2" in report()["per_annotator"]
    Category.objects.filter(version=version, path="A / y").update(path="A / z")
    assert "A / z" in report()["per_category"]
    assert report(datasets=("ds",))["n_items"] == 4
    # The label rows stay as they are; the name now points at the other dataset.
    Dataset.objects.filter(name="ds").update(name="old")
    Dataset.objects.filter(name="ds2").update(name="ds")
    assert report(datasets=("ds",))["n_items"] == 1
    assert len(computations) == 5


def test_labels_of_other_sources_and_versions_leave_the_numbers_alone(labelled, computations):
    # The label table's change marker is one for the whole table (three index look-ups, where a grouped
    # pass over the version's rows per source took 0.3-1 s at a million labels): any label write means
    # one recomputation, which must give the same numbers.
    version, predictions = labelled
    first = report(taxonomy=str(version))
    add_label(predictions["1"], version, "h0", "A / y", source="judge")  # (a new annotator would count)
    other = make_version(["B / x"], name="other")
    add_label(predictions["1"], other, "h0", "B / x")
    assert report(taxonomy=str(version)) == first
    assert report(taxonomy=str(version)) == first
    assert len(computations) == 2
