"""accept_proposals queues for re-labelling the items whose labels hit a split category: a work set
named after the new version, which the judge (analyze, prelabel) and then people (push_labelstudio) take."""
from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotation.models import Label, WorkSetFailure
from taxonomy.models import TaxonomyProposal
from taxonomy.services.proposals import queue_relabelling
from taxonomy.services.versions import resolve_version
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def split_accepted():
    version = make_version(["A", "B", "Other"])
    items = [make_prediction(str(i), output=f"output number {i} with words") for i in range(6)]
    for p in items[:3]:
        add_label(p, version, "h1", "A")
        add_label(p, version, "h2", "A", "B")
    for p in items[3:]:
        add_label(p, version, "h1", "B")
    add_label(items[4], version, "offline", "B", source="judge")
    proposal = TaxonomyProposal.objects.create(
        version=version, key="split-A", kind="split", categories=["A"], new_name="A1 | A2",
        description="two kinds of A", evidence={"targets": ["A1", "A2"]}, source="human")
    out = io.StringIO()
    call_command("accept_proposals", "errors", str(proposal.pk), "--by", "alice", stdout=out)
    return items, out.getvalue()


def test_accepting_a_split_queues_its_items_and_prints_the_queue(split_accepted):
    items, printed = split_accepted
    queued = set(WorkSetFailure.objects.filter(work_set__name="relabel-errors@2").values_list("prediction_id",
                                                                                               flat=True))
    assert queued == {p.pk for p in items[:3]}
    assert "re-labelling queue: 3 item(s) with labels of a split category, in work set relabel-errors@2" in printed
    assert "prelabel --taxonomy errors@2 --work-set relabel-errors@2" in printed
    # Idempotent: queueing again adds nothing (same rows, same ids).
    before = list(WorkSetFailure.objects.filter(work_set__name="relabel-errors@2").order_by("pk")
                  .values_list("pk", "prediction_id"))
    queue_relabelling(resolve_version("errors@2"))
    assert list(WorkSetFailure.objects.filter(work_set__name="relabel-errors@2").order_by("pk")
                .values_list("pk", "prediction_id")) == before


def test_the_proposals_page_and_api_show_the_queue_size(split_accepted, client):
    user = get_user_model().objects.create_user("carol", password="pw")
    client.force_login(user)
    page = client.get("/proposals/", {"taxonomy": "errors@1"}).content.decode()
    assert "errors@2: <strong>3</strong> item(s) queued for re-labelling" in page
    listing = client.get("/api/proposals/", {"taxonomy": "errors@1"}).json()
    assert listing["relabel_queues"] == [{"version": "errors@2", "work_set": "relabel-errors@2", "items": 3}]


def test_the_judge_relabels_only_the_queue(split_accepted):
    items, _ = split_accepted
    call_command("analyze", "--work-set", "relabel-errors@2", "--judge", "offline", stdout=io.StringIO())
    call_command("prelabel", "--taxonomy", "errors@2", "--work-set", "relabel-errors@2", "--judge", "offline",
                 stdout=io.StringIO())
    judged = set(Label.objects.filter(taxonomy_version__number=2, source="judge").values_list("prediction_id",
                                                                                               flat=True))
    assert judged == {p.pk for p in items[:3]}


def test_no_split_no_queue():
    version = make_version(["A", "B", "Other"])
    add_label(make_prediction("1"), version, "h1", "A")
    proposal = TaxonomyProposal.objects.create(version=version, key="m", kind="merge", categories=["A", "B"],
                                               new_name="A", description="A or B", source="human")
    out = io.StringIO()
    call_command("accept_proposals", "errors", str(proposal.pk), "--by", "alice", stdout=out)
    assert "re-labelling queue: 0 item(s)\n" in out.getvalue() + "\n"
    assert not WorkSetFailure.objects.exists()
