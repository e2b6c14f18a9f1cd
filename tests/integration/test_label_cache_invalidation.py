"""Cached judge-audit and agreement results: a repeat is a cache read, and every kind of label write
(import, adjudication, a sync-like removal) is seen on the next read with the freshly computed values."""
from __future__ import annotations

import csv

import pytest
from django.core.cache import cache

from annotation.models import Annotator, Label
from annotation.selectors import LabelFilter, judge_audit
from annotation.selectors.agreement import compute_agreement
from annotation.selectors.judge_audit import audit_judge
from annotation.services.adjudication import resolve_item
from annotation.services.label_import import import_labels
from annotation.services.labels import LabelSet, replace_label_sets
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db
PATHS = ["R / Arithmetic", "R / Logic", "K / Fact"]


@pytest.fixture
def labelled():
    """5 items, 3 humans, a judge with confidences, gold on item 1."""
    cache.clear()
    version = make_version(PATHS)
    humans = {"1": ["R / Arithmetic"] * 3, "2": ["R / Logic", "R / Logic", "K / Fact"],
              "3": ["K / Fact"] * 3, "4": ["R / Arithmetic", "R / Logic", "K / Fact"],
              "5": ["R / Logic", "R / Logic", "R / Arithmetic"]}
    judge = {"1": "R / Arithmetic", "2": "R / Logic", "3": "R / Logic", "4": "R / Logic", "5": "R / Arithmetic"}
    predictions = {}
    for example_id, cats in humans.items():
        p = predictions[example_id] = make_prediction(example_id)
        for n, cat in enumerate(cats):
            add_label(p, version, f"h{n}", cat)
        add_label(p, version, "judge-v1", judge[example_id], source="judge", confidence=0.1 * int(example_id))
    add_label(predictions["1"], version, "adj", "R / Arithmetic", source="gold")
    return version, predictions


@pytest.fixture
def audits(monkeypatch):
    """How many times the audit was computed (not read from the cache)."""
    calls = []
    compute = judge_audit._audit

    def counted(*args, **kwargs):
        calls.append(args)
        return compute(*args, **kwargs)

    monkeypatch.setattr(judge_audit, "_audit", counted)
    return calls


def read() -> tuple[dict, dict]:
    """The judge audit and the judge-with-humans agreement, as the judge page reads them (as JSON)."""
    return (audit_judge(label_filter=LabelFilter(taxonomy="errors@1")).to_dict(),
            compute_agreement(label_filter=LabelFilter(sources=("judge", "human"), taxonomy="errors@1"),
                              reps=50).to_dict())


def computed_afresh() -> tuple[dict, dict]:
    cache.clear()
    return read()


def test_a_repeat_is_read_from_the_cache(labelled, audits):
    first = read()
    assert read() == first and len(audits) == 1


def test_an_imported_label_is_seen(labelled, audits, tmp_path):
    before = read()
    # h2 changes their mind on item 4 (now R / Logic: a majority) and rates item 3 like the judge.
    path = tmp_path / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "example_id", "model", "annotator", "category", "source"])
        writer.writerow(["ds", "4", "m1", "h2", "R / Logic", "human"])
        writer.writerow(["ds", "3", "m1", "h2", "R / Logic", "human"])
    import_labels(path=path, taxonomy="errors@1")
    after = read()
    assert len(audits) == 2
    assert after == computed_afresh() and after != before
    majority_before = before[0]["judges"]["judge-v1"]["vs_human_majority"]
    majority_after = after[0]["judges"]["judge-v1"]["vs_human_majority"]
    # Item 4 gains a majority the judge matches: 4 items (2 right) -> 5 items (3 right).
    assert (majority_before["n_items"], majority_before["accuracy"]) == (4, 0.5)
    assert (majority_after["n_items"], majority_after["accuracy"]) == (5, 0.6)
    assert after[1]["krippendorff_alpha"] != before[1]["krippendorff_alpha"]


def test_an_adjudication_is_seen(labelled, audits):
    before = read()
    resolve_item(item="ds|3|m1", categories=["K / Fact"], by="adj", reason="all three people say so",
                 taxonomy="errors@1")
    after = read()
    assert len(audits) == 2
    assert after == computed_afresh() and after != before
    gold_before = before[0]["judges"]["judge-v1"]["vs_gold"]
    gold_after = after[0]["judges"]["judge-v1"]["vs_gold"]
    assert (gold_before["n_items"], gold_before["accuracy"]) == (1, 1.0)
    assert (gold_after["n_items"], gold_after["accuracy"]) == (2, 0.5)  # the judge said R / Logic on item 3
    assert after[0]["n_items_with_gold"] == 2 and before[0]["n_items_with_gold"] == 1


def test_a_removed_annotation_is_seen(labelled, audits):
    version, predictions = labelled
    before = read()
    # What a sync does when an annotation is gone from Label Studio: the annotator's set on the item emptied.
    h2 = Annotator.objects.get(name="h2")
    replace_label_sets([LabelSet(predictions["2"].pk, version.pk, Label.Source.HUMAN, h2.pk, ())])
    after = read()
    assert len(audits) == 2
    assert after == computed_afresh() and after != before
    # Item 2 keeps its majority (R / Logic by both remaining people); h2's dissent no longer counts.
    assert after[1]["n_ratings"] == before[1]["n_ratings"] - 1
    assert after[0]["judges"]["judge-v1"]["alpha_humans"] != before[0]["judges"]["judge-v1"]["alpha_humans"]


def test_a_judge_confidence_rewritten_in_place_is_seen(labelled, audits):
    before = read()
    # Same rows, same count and ids: only the confidence and the update time change (as a re-judge does).
    label = Label.objects.get(annotator__name="judge-v1", prediction__example__example_id="5")
    label.confidence = 0.95
    label.save()
    after = read()
    assert len(audits) == 2 and after == computed_afresh()
    bins_before = before[0]["judges"]["judge-v1"]["vs_human_majority"]["calibration"]["bins"]
    bins_after = after[0]["judges"]["judge-v1"]["vs_human_majority"]["calibration"]["bins"]
    assert bins_after != bins_before and bins_after[-1]["n"] == bins_before[-1]["n"] + 1


def test_an_imported_confidence_rewritten_in_place_is_seen(labelled, audits, tmp_path):
    before = read()
    # import_labels' set-wise UPDATE: the judge's row on item 5 keeps its category, id and the count.
    path = tmp_path / "judge.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "example_id", "model", "annotator", "category", "source", "confidence"])
        writer.writerow(["ds", "5", "m1", "judge-v1", "R / Arithmetic", "judge", "0.95"])
    ids = sorted(Label.objects.values_list("pk", flat=True))
    import_labels(path=path, taxonomy="errors@1")
    assert sorted(Label.objects.values_list("pk", flat=True)) == ids
    after = read()
    assert len(audits) == 2 and after == computed_afresh()
    bins_before = before[0]["judges"]["judge-v1"]["vs_human_majority"]["calibration"]["bins"]
    bins_after = after[0]["judges"]["judge-v1"]["vs_human_majority"]["calibration"]["bins"]
    assert bins_after != bins_before and bins_after[-1]["n"] == bins_before[-1]["n"] + 1
