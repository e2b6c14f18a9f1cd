"""judge_audit on labels built with factories: references, alpha effect and the humans' mode."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.integration.agreement_factories import (
    add_label,
    make_prediction,
    make_version,
    put_in_labelstudio_project,
)

pytestmark = pytest.mark.django_db


def audit(*args: str) -> dict:
    out = io.StringIO()
    call_command("judge_audit", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def labelled():
    """6 items, 3 humans, one judge that is right on 4 of the 5 items with a human majority."""
    version = make_version(["R / Arithmetic", "R / Logic", "K / Fact"])
    humans = {  # item -> the three humans' categories
        "1": ["R / Arithmetic"] * 3,
        "2": ["R / Logic", "R / Logic", "K / Fact"],
        "3": ["K / Fact", "K / Fact", "K / Fact"],
        "4": ["R / Arithmetic", "R / Logic", "K / Fact"],  # no majority
        "5": ["R / Logic"] * 3,
        "6": ["K / Fact", "K / Fact", "R / Logic"],
    }
    judge = {"1": ("R / Arithmetic", 0.9), "2": ("R / Logic", 0.8), "3": ("K / Fact", 0.95),
             "4": ("R / Logic", 0.3), "5": ("R / Arithmetic", 0.7), "6": ("K / Fact", 0.6)}
    predictions = {}
    for example_id, cats in humans.items():
        p = predictions[example_id] = make_prediction(example_id)
        for n, cat in enumerate(cats):
            add_label(p, version, f"h{n}", cat)
        add_label(p, version, "judge-v1", judge[example_id][0], source="judge",
                  confidence=judge[example_id][1])
    add_label(predictions["1"], version, "adj", "R / Arithmetic", source="gold")
    add_label(predictions["5"], version, "adj", "R / Logic", source="gold")
    return version, predictions


def test_judge_against_human_majority_and_gold(labelled):
    report = audit()
    judge = report["judges"]["judge-v1"]
    majority = judge["vs_human_majority"]
    # Items with a majority: 1, 2, 3, 5, 6; the judge misses item 5 only -> 4/5.
    assert majority["n_items"] == 5 and majority["accuracy"] == pytest.approx(0.8)
    assert majority["n_items_without_human_majority"] == 1
    assert majority["confusion"]["R / Logic"] == {"R / Arithmetic": 1, "R / Logic": 1}
    assert majority["per_category"]["R / Logic"]["recall"] == pytest.approx(0.5)
    # Gold on items 1 (right) and 5 (wrong).
    assert judge["vs_gold"]["n_items"] == 2 and judge["vs_gold"]["accuracy"] == pytest.approx(0.5)
    assert judge["judge_effect_on_alpha"] in {"raises", "lowers", "unchanged"}
    assert judge["alpha_with_judge"] != judge["alpha_humans"]
    assert report["human_annotation_mode"] == "unknown"


def test_a_judge_that_copies_the_majority_raises_alpha(labelled):
    version, predictions = labelled
    for example_id, category in {"1": "R / Arithmetic", "2": "R / Logic", "3": "K / Fact",
                                 "5": "R / Logic", "6": "K / Fact"}.items():
        add_label(predictions[example_id], version, "copycat", category, source="judge")
    judge = audit("--judge", "copycat")["judges"]["copycat"]
    assert judge["vs_human_majority"]["accuracy"] == 1.0
    assert judge["judge_effect_on_alpha"] == "raises"
    assert judge["alpha_with_judge"] > judge["alpha_humans"]


def test_report_says_the_humans_worked_blind_when_their_project_was_blind(labelled):
    version, predictions = labelled
    put_in_labelstudio_project(list(predictions.values()), version, "blind")
    assert audit()["human_annotation_mode"] == "blind"


def test_no_judge_labels_is_a_clear_error(labelled):
    with pytest.raises(CommandError, match="no labels match.*judge.*judge-v1"):
        audit("--judge", "judge-v1", "--model", "no-such-model")


def test_a_human_annotator_is_audited_like_a_judge_against_gold_and_the_others(labelled):
    person = audit("--judge", "h2")["judges"]["h2"]
    assert person["kind"] == "human"
    # Majority of h0 and h1 (h2 left out): 1 Arith, 2 Logic, 3 Fact, 5 Logic, 6 Fact; item 4 splits 1-1.
    # h2 gave 1 Arith, 2 Fact, 3 Fact, 5 Logic, 6 Logic -> right on 1, 3, 5 = 3/5.
    majority = person["vs_human_majority"]
    assert (majority["n_items"], majority["accuracy"]) == (5, pytest.approx(0.6))
    assert majority["n_items_without_human_majority"] == 1 and "other than h2" in majority["reference_note"]
    # Gold: item 1 Arith, item 5 Logic; h2 matches both.
    assert (person["vs_gold"]["n_items"], person["vs_gold"]["accuracy"]) == (2, 1.0)
    assert person["judge_effect_on_alpha"] == "lowers"  # h2 departs from h0 and h1 on items 2 and 6
    out = io.StringIO()
    call_command("judge_audit", "--judge", "h2", stdout=out)
    assert "human h2" in out.getvalue() and "the other humans" in out.getvalue()


def test_auditing_an_unknown_name_is_a_clear_error(labelled):
    with pytest.raises(CommandError, match="no annotator or judge named 'nobody'"):
        audit("--judge", "nobody")


def test_the_selectors_return_frozen_parts_all_the_way_down(labelled):
    """Reads hand out records, not mutable dicts: every nested part is a frozen dataclass, and an
    absent comparison is its own class saying why."""
    import dataclasses

    from annotation.selectors import LabelFilter
    from annotation.selectors.agreement import AccuracyVsGold, AnnotatorAgreement, compute_agreement
    from annotation.selectors.judge_audit import (
        CalibrationBin,
        CategoryScores,
        ExamplesLeftOut,
        GoldComparison,
        MajorityComparison,
        NoGold,
        audit_judge,
    )

    judge = audit_judge(label_filter=LabelFilter()).judges["judge-v1"]
    assert isinstance(judge.vs_human_majority, MajorityComparison)
    assert isinstance(judge.vs_gold, GoldComparison) and isinstance(judge.vs_gold.cross_fitting, ExamplesLeftOut)
    assert judge.vs_gold.cross_fitting.excluded_as_examples == 0
    assert judge.vs_human_majority.per_category["R / Logic"] == CategoryScores(
        precision=1.0, recall=0.5, f1=pytest.approx(2 / 3, abs=1e-6), support=2, predicted=1)
    assert all(isinstance(b, CalibrationBin) for b in judge.vs_human_majority.calibration.bins)
    with pytest.raises(dataclasses.FrozenInstanceError):
        judge.vs_gold.n_items = 0  # type: ignore[misc]
    agreement = compute_agreement(label_filter=LabelFilter(), reps=20)
    assert isinstance(agreement.per_annotator["h0"], AnnotatorAgreement)
    assert agreement.per_annotator["h0"].n_items == 6
    assert agreement.per_annotator_vs_gold["h0"] == AccuracyVsGold(n_items=2, accuracy=1.0, cohen_kappa=1.0,
                                                                   reason=None)
    assert (agreement.bootstrap.reps, agreement.bootstrap.seed) == (20, 0)
    # Before gold exists, the gold comparison says why there is none.
    from annotation.models import Label
    Label.objects.filter(source="gold").delete()
    assert isinstance(audit_judge(label_filter=LabelFilter()).judges["judge-v1"].vs_gold, NoGold)
