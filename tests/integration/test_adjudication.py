"""adjudicate: auto-gold by rule, the queue, resolving with who and why, and idempotent re-runs."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotation.models import AdjudicationDecision, AdjudicationItem, Label
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db


def run(*args: str):
    out = io.StringIO()
    call_command("adjudicate", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def gold(example_id: str) -> list[tuple[str, str]]:
    return sorted(Label.objects.filter(source="gold", prediction__example__example_id=example_id)
                  .values_list("category__path", "annotator__name"))


@pytest.fixture
def items():
    version = make_version(["R / Arithmetic", "R / Logic", "K / Fact"])
    labels = {
        "all": ["R / Logic", "R / Logic", "R / Logic"],
        "two": ["K / Fact", "K / Fact", "R / Logic"],
        "split": ["R / Arithmetic", "R / Logic", "K / Fact"],
        "proposal": ["K / Fact", "K / Fact", "K / Fact"],
    }
    predictions = {}
    for example_id, cats in labels.items():
        p = predictions[example_id] = make_prediction(example_id)
        for n, cat in enumerate(cats):
            add_label(p, version, f"h{n}", cat,
                      proposed_category="Outdated fact" if example_id == "proposal" and n == 0 else "")
        add_label(p, version, "judge-v1", "R / Logic", source="judge")
    return version, predictions


def test_unanimous_rule_makes_gold_and_queues_the_rest(items):
    report = run()
    assert (report["items"], report["auto_gold"], report["queued"]) == (4, 1, 3)
    assert gold("all") == [("R / Logic", "auto-gold")]
    assert gold("two") == [] and gold("proposal") == []
    queue = run("--list")
    assert {q["item"] for q in queue} == {"ds|two|m1", "ds|split|m1", "ds|proposal|m1"}
    proposal = next(q for q in queue if q["item"] == "ds|proposal|m1")
    assert "Outdated fact" in proposal["why"]
    # The adjudicator sees every annotator's and the judge's labels.
    assert proposal["labels"]["judge"] == {"judge-v1": ["R / Logic"]}
    assert proposal["labels"]["human"]["h0"] == ["K / Fact"]


def test_two_thirds_rule_settles_two_of_three_but_not_a_proposal(items):
    report = run("--rule", "two-thirds")
    assert report["auto_gold"] == 2
    assert gold("two") == [("K / Fact", "auto-gold")]
    assert gold("proposal") == []  # nobody may propose a new category under this rule
    assert run("--rule", "two-thirds", "--allow-proposals")["auto_gold"] == 3


def test_rerunning_the_rule_changes_nothing(items):
    run("--rule", "two-thirds")
    before = (list(Label.objects.order_by("pk").values_list("pk", "category_id")),
              AdjudicationDecision.objects.count(), AdjudicationItem.objects.count())
    again = run("--rule", "two-thirds")
    assert again["changed"] == 0
    after = (list(Label.objects.order_by("pk").values_list("pk", "category_id")),
             AdjudicationDecision.objects.count(), AdjudicationItem.objects.count())
    assert after == before


def test_resolving_keeps_decision_who_and_why_and_the_rule_never_overrides_it(items):
    run()
    queue_id = next(q["id"] for q in run("--list") if q["item"] == "ds|split|m1")
    decision = run("--resolve", str(queue_id), "--category", "R/Arithmetic", "--by", "ada",
                   "--reason", "the first wrong step is 12*3=38")
    assert decision["categories"] == ["R / Arithmetic"] and decision["decided_by"] == "ada"
    assert gold("split") == [("R / Arithmetic", "ada")]
    label = Label.objects.get(source="gold", prediction__example__example_id="split")
    assert label.rationale == "the first wrong step is 12*3=38"
    assert AdjudicationItem.objects.get(pk=queue_id).status == "resolved"
    run("--rule", "two-thirds")
    assert gold("split") == [("R / Arithmetic", "ada")]  # still the person's decision
    # Overriding an auto-gold item keeps the history.
    run("--resolve", "ds|all|m1", "--category", "K / Fact", "--by", "bo", "--reason", "it is a fact error")
    history = run("--history", "ds|all|m1")
    # unanimous rule, then the two-thirds rule (a new rule is a new decision), then the person.
    assert [(h["method"], h["superseded"]) for h in history] == [
        ("auto_rule", True), ("auto_rule", True), ("adjudicator", False)]
    assert "2/3" in history[1]["rule"] and history[2]["reason"] == "it is a fact error"
    assert gold("all") == [("K / Fact", "bo")]


def test_changed_labels_reopen_an_auto_gold_item(items):
    version, predictions = items
    run()
    Label.objects.filter(prediction=predictions["all"], annotator__name="h2").delete()
    add_label(predictions["all"], version, "h2", "K / Fact")
    report = run()
    assert report["reopened"] == 1
    assert gold("all") == []
    assert "ds|all|m1" in {q["item"] for q in run("--list")}


@pytest.mark.parametrize("args, message", [
    (["--category", "R / Logic", "--by", "ada"], "needs a reason"),
    (["--category", "Made up", "--by", "ada", "--reason", "x"], "unknown categories"),
    (["--by", "ada", "--reason", "x"], "at least one category"),
])
def test_resolving_refuses_incomplete_decisions(items, args, message):
    run()
    with pytest.raises(CommandError, match=message):
        run("--resolve", "ds|split|m1", *args)
    assert gold("split") == []


def test_two_thirds_at_overlap_two_settles_unanimous_pairs_and_says_how_to_go_on():
    version = make_version(["R / Logic", "K / Fact"])
    for example_id, cats in {"same": ["R / Logic", "R / Logic"], "split": ["R / Logic", "K / Fact"],
                             "alone": ["K / Fact"]}.items():
        p = make_prediction(example_id)
        for n, cat in enumerate(cats):
            add_label(p, version, f"h{n}", cat)
    report = run("--rule", "two-thirds")
    assert (report["auto_gold"], report["auto_gold_unanimous"], report["auto_gold_by_share"]) == (1, 1, 0)
    assert gold("same") == [("R / Logic", "auto-gold")]
    assert report["queued"] == 2 and "adjudicate --resolve" in report["next_step"]
    why = {q["item"]: q["why"] for q in run("--list")}
    assert "push_labelstudio --overlap" in why["ds|alone|m1"]
    assert "adjudicate --resolve" in why["ds|split|m1"]
    history = run("--history", "ds|same|m1")
    assert "(unanimous)" in history[0]["reason"]
