"""agreement --json: each annotator's accuracy and Cohen's kappa against gold, and the items annotators
disagreed on (ids and item keys, for linking)."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db


def agreement() -> dict:
    out = io.StringIO()
    call_command("agreement", "--json", "--reps", "50", stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def labelled():
    version = make_version(["A", "B"])
    rows = {"1": (["A", "A"], "A"), "2": (["A", "B"], "B"), "3": (["B", "B"], "B"), "4": (["A"], None),
            "5": (["B", "A"], None)}
    predictions = {}
    for example_id, (humans, gold) in rows.items():
        p = predictions[example_id] = make_prediction(example_id)
        for n, cat in enumerate(humans):
            add_label(p, version, f"h{n}", cat)
        if gold:
            add_label(p, version, "adj", gold, source="gold")
    return version, predictions


def test_per_annotator_accuracy_and_kappa_against_gold(labelled):
    report = agreement()
    h0, h1 = report["per_annotator_vs_gold"]["h0"], report["per_annotator_vs_gold"]["h1"]
    # h0 vs gold on items 1, 2, 3: (A,A) (A,B) (B,B) -> accuracy 2/3;
    # p_o = 2/3, p_e = (2/3)(1/3) + (1/3)(2/3) = 4/9, kappa = (2/3 - 4/9) / (1 - 4/9) = 0.4
    assert (h0["n_items"], h0["accuracy"], h0["cohen_kappa"]) == (3, pytest.approx(2 / 3), pytest.approx(0.4))
    assert (h1["n_items"], h1["accuracy"], h1["cohen_kappa"]) == (3, 1.0, 1.0)


def test_items_annotators_disagreed_on_are_listed_with_their_keys(labelled):
    _, predictions = labelled
    disagreements = agreement()["disagreements"]
    assert disagreements["n_items"] == 2  # item 4 has one annotator only: nothing to disagree with
    assert [(i["id"], i["item"]) for i in disagreements["items"]] == [
        (predictions["2"].pk, "ds|2|m1"), (predictions["5"].pk, "ds|5|m1")]
    assert disagreements["items"][1]["labels"] == {"h0": ["B"], "h1": ["A"]}


def test_new_gold_changes_the_cached_report(labelled):
    version, predictions = labelled
    assert agreement()["per_annotator_vs_gold"]["h0"]["n_items"] == 3
    add_label(predictions["5"], version, "adj", "B", source="gold")
    assert agreement()["per_annotator_vs_gold"]["h0"]["n_items"] == 4
