"""The judge page reads each label row once: agreement with the judge, the gold comparison and the judge
audit are cut from one read per label source, and give what separate reads give."""
from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.models import Label
from annotation.pages import judge_context
from annotation.selectors import LabelFilter, label_rows
from annotation.selectors import agreement as agreement_selectors
from annotation.selectors.agreement import compute_agreement
from annotation.selectors.judge_audit import audit_judge
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db
PATHS = ["R / Arithmetic", "R / Logic", "K / Fact"]
LABEL_TABLE = f'FROM "{Label._meta.db_table}"'


@pytest.fixture
def labelled():
    cache.clear()
    version = make_version(PATHS)
    humans = {"1": ["R / Arithmetic"] * 3, "2": ["R / Logic", "R / Logic", "K / Fact"],
              "3": ["K / Fact"] * 3, "4": ["R / Arithmetic", "R / Logic", "K / Fact"]}
    judge = {"1": "R / Arithmetic", "2": "R / Logic", "3": "R / Logic", "4": "R / Logic"}
    for example_id, cats in humans.items():
        p = make_prediction(example_id)
        for n, cat in enumerate(cats):
            add_label(p, version, f"h{n}", cat)
        add_label(p, version, "judge-v1", judge[example_id], source="judge", confidence=0.2 * int(example_id))
        if example_id in ("1", "2"):
            add_label(p, version, "adj", cats[0], source="gold")
    return version


def _row_reads(queries) -> list[str]:
    """The queries that read label rows themselves (not counts or marks)."""
    return [q["sql"] for q in queries if LABEL_TABLE in q["sql"] and '"annotation_label"."category_id"' in q["sql"]
            and "COUNT(" not in q["sql"].upper()]


def test_the_judge_page_reads_each_source_once_and_shows_what_separate_reads_give(labelled):
    with CaptureQueriesContext(connection) as captured:
        context = judge_context({"taxonomy": "errors@1"})
    reads = _row_reads(captured.captured_queries)
    # One read per source (judge, human, gold); before, five reads: two for agreement, three for the audit.
    assert len(reads) == 3, reads
    assert sorted(s for s in ("'judge'", "'human'", "'gold'") for sql in reads if s in sql) == [
        "'gold'", "'human'", "'judge'"]
    cache.clear()
    alone_audit = audit_judge(label_filter=LabelFilter(taxonomy="errors@1"))
    alone_agreement = compute_agreement(label_filter=LabelFilter(sources=("judge", "human"), taxonomy="errors@1"),
                                        reps=200)
    assert context["audit"].to_dict() == alone_audit.to_dict()
    assert context["report"].krippendorff_alpha == alone_agreement.krippendorff_alpha
    assert context["report"].per_annotator_vs_gold == alone_agreement.per_annotator_vs_gold
    assert context["report"].to_dict() == alone_agreement.to_dict()


def test_the_judge_page_builds_each_label_row_into_one_table(labelled, monkeypatch):
    # The judge-and-human table is joined from the judge's and the humans' own tables, which the audit
    # reads too (before: the judge and human rows were built into tables twice).
    built: list[int] = []
    build = agreement_selectors.table_of

    def counted(ids, version, depth=None):
        built.append(len(ids))
        return build(ids, version, depth)

    monkeypatch.setattr(agreement_selectors, "table_of", counted)
    context = judge_context({"taxonomy": "errors@1"})
    assert sorted(built) == sorted(Label.objects.filter(source=s).count() for s in ("judge", "human", "gold"))
    cache.clear()
    monkeypatch.setattr(agreement_selectors, "table_of", build)
    # The joined table gives what one table of all those rows gives.
    whole = build(label_rows(LabelFilter(sources=("judge", "human"), taxonomy="errors@1"), labelled).ids, labelled)
    assert context["report"].to_dict() == compute_agreement(
        label_filter=LabelFilter(sources=("judge", "human"), taxonomy="errors@1"), reps=200).to_dict()
    joined = agreement_selectors.label_table(LabelFilter(sources=("judge", "human"), taxonomy="errors@1"), labelled)
    assert joined.annotators == whole.annotators and joined.values == whole.values
    assert joined.items.tolist() == whole.items.tolist() and joined.codes.tolist() == whole.codes.tolist()
