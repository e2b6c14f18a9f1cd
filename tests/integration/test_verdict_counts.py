"""Verdicts (Not an error; Broken item or bad reference) are counted apart: a false-failure rate per
dataset in `summary` and in signatures, never an error category in shares or the atlas."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from taxonomy.core.verdicts import BROKEN_ITEM, NOT_AN_ERROR
from taxonomy.services.signatures import atlas, failure_signatures
from taxonomy.services.versions import ensure_verdict_categories
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def version():
    """Dataset ds (4 labelled failures) and ds2 (1), two human annotators.

    ds:  p1 Logic/Logic; p2 Not an error/Not an error; p3 Not an error/Fact; p4 Broken item (one annotator)
    verdict weight in ds = 1 (p2) + 0.5 (p3) + 1 (p4) = 2.5 of 4 labelled failures -> 62.5 %
    errors in ds: p1 (Logic, weight 1) and p3 (Fact, weight 1: h1 is the only one naming an error) -> n 2
    """
    version = make_version(["R / Logic", "K / Fact"])
    assert [c.path for c in ensure_verdict_categories(version)] == [NOT_AN_ERROR, BROKEN_ITEM]
    assert len(ensure_verdict_categories(version)) == 2  # idempotent
    rows = {"p1": ("R / Logic", "R / Logic"), "p2": (NOT_AN_ERROR, NOT_AN_ERROR),
            "p3": (NOT_AN_ERROR, "K / Fact"), "p4": (BROKEN_ITEM,)}
    for example_id, cats in rows.items():
        p = make_prediction(example_id)
        for n, cat in enumerate(cats):
            add_label(p, version, f"h{n}", cat)
    add_label(make_prediction("p5", dataset="ds2"), version, "h0", "R / Logic")
    return version


def test_signatures_count_verdicts_apart(version):
    report = failure_signatures(taxonomy="errors", source="human", by="dataset")
    ds = next(s for s in report.signatures if s.group == "ds")
    assert ds.n_errors == 2
    assert {s.category: s.share for s in ds.shares} == {"R": 0.5, "K": 0.5}
    assert NOT_AN_ERROR not in report.heatmap.categories and BROKEN_ITEM not in report.heatmap.categories
    rates = {f.group: f for f in report.false_failures}
    assert (rates["ds"].labelled_failures, rates["ds"].false_failures, rates["ds"].rate) == (4, 2.5, 0.625)
    assert rates["ds"].by_verdict == {NOT_AN_ERROR: 1.5, BROKEN_ITEM: 1.0}
    assert (rates["ds2"].labelled_failures, rates["ds2"].false_failures) == (1, 0.0)


def test_atlas_has_no_verdict_nodes(version):
    report = atlas(taxonomy="errors", source="human")
    assert report.n_errors == 3  # p1, p3, p5
    assert {child.name for child in report.tree.children} == {"R", "K"}
    assert report.false_failures.false_failures == 2.5 and report.false_failures.labelled_failures == 5


def test_summary_prints_the_false_failure_rate_per_dataset(version):
    out = io.StringIO()
    call_command("summary", stdout=out)
    line = next(x for x in out.getvalue().splitlines() if x.startswith("human") and " ds " in x)
    assert line.split()[2:5] == ["4", "2.5", "62.5%"]
    out = io.StringIO()
    call_command("summary", "--json", stdout=out)
    rows = {r["dataset"]: r for r in json.loads(out.getvalue())}
    human = rows["ds"]["false_failures"]["human"]
    assert (human["labelled_failures"], human["false_failures"], human["rate"]) == (4, 2.5, 0.625)
    assert human["taxonomy_version"] == "errors@1"
