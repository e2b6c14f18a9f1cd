"""The one label query: LabelFilter, select_labels and default_version, shared by every reader."""
from __future__ import annotations

import io
import json

import pytest
from django.core.cache import cache
from django.core.management import call_command

from annotation.errors import ErrorMapError
from annotation.models import Dataset, Label, WorkSet
from annotation.selectors import LabelFilter, default_version, select_labels
from annotation.services.ingest import apply_failure_rule
from taxonomy.services.signatures import atlas, failure_signatures
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_taxonomies():
    """errors@1: 3 items with judge and human labels. judge-only@1: 5 items with judge labels only."""
    cache.clear()
    shared = make_version(["R / Arithmetic", "K / Fact"], name="errors")
    judge_only = make_version(["X / Y"], name="judge-only")
    items = []
    for i in range(3):
        p = make_prediction(f"s{i}")
        add_label(p, shared, "judge-v1", "R / Arithmetic", source="judge")
        add_label(p, shared, "h0", "R / Arithmetic" if i else "K / Fact")
        add_label(p, shared, "h1", "R / Arithmetic")
        items.append(p)
    for i in range(5):
        add_label(make_prediction(f"j{i}", dataset="other"), judge_only, "judge-v1", "X / Y", source="judge")
    return shared, judge_only, items


def test_judge_audit_without_taxonomy_uses_the_version_judge_and_humans_share(two_taxonomies):
    out = io.StringIO()
    call_command("judge_audit", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["taxonomy_version"] == "errors@1"
    assert report["taxonomy_version_chosen"] == (
        "shared by the most judge and human labels (3 items) of 2 versions")
    # s0: the two humans split (no majority); s1 and s2: both chose the judge's category.
    majority = report["judges"]["judge-v1"]["vs_human_majority"]
    assert (majority["n_items"], majority["accuracy"]) == (2, 1.0)
    text = io.StringIO()
    call_command("judge_audit", stdout=text)
    assert text.getvalue().splitlines()[0] == (
        "taxonomy version errors@1 (shared by the most judge and human labels (3 items) of 2 versions)")


def test_without_sharing_the_version_with_most_matching_labels_wins(two_taxonomies):
    # Judge labels: 5 in judge-only@1, 3 in errors@1.
    choice = default_version(LabelFilter(sources=(Label.Source.JUDGE,)))
    assert (str(choice.version), choice.reason) == ("judge-only@1", "the most matching labels (5) of 2 versions")
    # Human labels exist in one version only.
    choice = default_version(LabelFilter())
    assert (str(choice.version), choice.reason) == ("errors@1", "the only version with matching labels")
    # A named version wins whatever the counts.
    assert default_version(LabelFilter(taxonomy="errors")).reason == "named"
    # Filters narrow the candidates: the judge's labels on dataset "ds" are all in errors@1.
    assert str(default_version(LabelFilter(sources=(Label.Source.JUDGE,), datasets=("ds",))).version) == "errors@1"
    with pytest.raises(ErrorMapError, match="no labels match"):
        default_version(LabelFilter(sources=(Label.Source.GOLD,)))


def test_select_labels_applies_every_part_of_the_filter(two_taxonomies):
    shared, _, items = two_taxonomies

    def rows(**parts) -> set[tuple]:
        return set(select_labels(LabelFilter(**parts), shared).values_list(
            "prediction__example__example_id", "annotator__name", "category__path"))

    assert rows() == {("s0", "h0", "K / Fact"), ("s0", "h1", "R / Arithmetic"), ("s1", "h0", "R / Arithmetic"),
                      ("s1", "h1", "R / Arithmetic"), ("s2", "h0", "R / Arithmetic"), ("s2", "h1", "R / Arithmetic")}
    assert rows(annotators=("h0",), categories=("K",)) == {("s0", "h0", "K / Fact")}
    assert rows(sources=(Label.Source.JUDGE,), predictions=(items[1].pk,)) == {("s1", "judge-v1", "R / Arithmetic")}
    items[2].is_failure = False
    items[2].save()
    assert {r[0] for r in rows(failures_only=True)} == {"s0", "s1"}
    with pytest.raises(ErrorMapError, match="unknown label source"):
        LabelFilter(sources=("robot",))


def test_signatures_and_atlas_see_a_failure_flag_flipped_by_the_failure_rule():
    """Re-ingest (the failure rule) can flip a labelled prediction to a success: cached pages must follow."""
    cache.clear()
    version = make_version(["R / Arithmetic", "K / Fact"], name="errors")
    for i in range(3):
        add_label(make_prediction(f"a{i}", dataset="kept"), version, "judge-v1", "R / Arithmetic", source="judge")
    for i in range(2):
        add_label(make_prediction(f"b{i}", dataset="flipped"), version, "judge-v1", "K / Fact", source="judge")
    before = failure_signatures(source="judge")
    (signature,) = before.signatures
    assert signature.n_errors == 5 and atlas(source="judge").n_errors == 5
    # Scores are 0.0: an explicit threshold below them makes every prediction of "flipped" a success.
    Dataset.objects.filter(name="flipped").update(success_threshold=-1.0)
    apply_failure_rule(dataset_ids=list(Dataset.objects.filter(name="flipped").values_list("pk", flat=True)))
    (signature,) = failure_signatures(source="judge").signatures
    assert signature.n_errors == 3 and [(s.category, s.count) for s in signature.shares] == [("R", 3)]
    assert atlas(source="judge").n_errors == 3


def test_after_the_demo_judge_audit_without_taxonomy_compares_judge_and_raters():
    """Issue: the demo's judge labels were all in its own taxonomy, the raters' in MQM: the audit was
    empty, and plain `judge_audit` failed once two taxonomies existed."""
    call_command("run_demo", "--no-labelstudio", stdout=io.StringIO())
    out = io.StringIO()
    call_command("judge_audit", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["taxonomy_version"] == "wmt23-mqm@1"
    assert report["taxonomy_version_chosen"].startswith("shared by the most judge and human labels")
    judged = WorkSet.objects.get(name="demo-wmt23").failures.count()
    judge = report["judges"]["judge:offline"]
    assert judge["n_items_judged"] == judged > 0
    assert 0 < judge["vs_human_majority"]["n_items"] <= judged
    assert judge["alpha_humans"] is not None and judge["alpha_with_judge"] is not None
