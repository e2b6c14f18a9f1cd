"""REST adjudication: resolving a queue item through the same resolve_item as the command (the
authenticated user is who decided), the decision history, and refusals (anonymous, unknown category)."""
from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import AdjudicationDecision, AdjudicationItem, Annotator, Label
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue():
    """Two disputed items (three annotators disagree; the judge says Logic) queued by the unanimous rule."""
    version = make_version(["R / Arithmetic", "R / Logic", "K / Fact"])
    for example_id in ("split", "other"):
        p = make_prediction(example_id)
        for n, cat in enumerate(["R / Arithmetic", "R / Logic", "K / Fact"]):
            add_label(p, version, f"h{n}", cat)
        add_label(p, version, "judge-v1", "R / Logic", source="judge", confidence=0.7)
    call_command("adjudicate", stdout=io.StringIO())
    return {q.prediction.example.example_id: q for q in AdjudicationItem.objects.select_related("prediction__example")}


def api(username: str = "ada") -> APIClient:
    user = get_user_model().objects.create_user(username, password="pw-123456789")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def gold(item: AdjudicationItem) -> list[tuple[str, str, str]]:
    return sorted(Label.objects.filter(source="gold", prediction=item.prediction)
                  .values_list("category__path", "annotator__name", "rationale"))


def test_resolve_and_history_refuse_anonymous_and_bad_tokens(queue):
    item = queue["split"]
    anonymous, bad = APIClient(), APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    for client in (anonymous, bad):
        post = client.post(f"/api/adjudication/{item.pk}/resolve/", {"category": "R / Logic", "reason": "x"},
                           format="json")
        get = client.get(f"/api/adjudication/{item.pk}/decisions/")
        assert (post.status_code, get.status_code) == (401, 401)
    assert AdjudicationDecision.objects.count() == 0 and gold(item) == []


def test_resolving_through_the_api_records_the_user_the_reason_and_gold_as_the_command_does(queue):
    split, other = queue["split"], queue["other"]
    response = api("ada").post(f"/api/adjudication/{split.pk}/resolve/",
                               {"category": "R/Arithmetic", "reason": "the first wrong step is 12*3=38"},
                               format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["categories"], body["decided_by"], body["reason"], body["method"], body["superseded"]) == (
        ["R / Arithmetic"], "ada", "the first wrong step is 12*3=38", "adjudicator", False)
    assert body["external_id"].startswith("api:")
    assert gold(split) == [("R / Arithmetic", "ada", "the first wrong step is 12*3=38")]
    assert AdjudicationItem.objects.get(pk=split.pk).status == "resolved"
    assert Annotator.objects.get(name="ada").kind == "adjudicator"

    # The same decision through the command on the twin item gives the same gold rows and decision fields.
    call_command("adjudicate", "--resolve", str(other.pk), "--category", "R / Arithmetic", "--by", "ada",
                 "--reason", "the first wrong step is 12*3=38", stdout=io.StringIO())
    assert gold(other) == gold(split)
    fields = ("categories", "method", "decided_by_id", "reason", "superseded")
    by_api, by_command = (AdjudicationDecision.objects.filter(prediction=q.prediction).values(*fields).get()
                          for q in (split, other))
    assert by_api == by_command


def test_a_newer_decision_supersedes_and_the_history_keeps_both(queue):
    split = queue["split"]
    ada, bo = api("ada"), api("bo")
    ada.post(f"/api/adjudication/{split.pk}/resolve/", {"category": "R / Logic", "reason": "one"}, format="json")
    second = bo.post(f"/api/adjudication/{split.pk}/resolve/",
                     {"categories": ["K / Fact", "R / Arithmetic"], "reason": "two <b>errors</b>"}, format="json")
    assert second.status_code == 201
    history = ada.get(f"/api/adjudication/{split.pk}/decisions/")
    assert history.status_code == 200
    data = history.json()
    assert (data["item"], data["status"]) == (split.pk, "resolved")
    assert [(d["decided_by"], d["categories"], d["reason"], d["superseded"]) for d in data["decisions"]] == [
        ("ada", ["R / Logic"], "one", True),
        ("bo", ["K / Fact", "R / Arithmetic"], "two <b>errors</b>", False),
    ]
    assert gold(split) == [("K / Fact", "bo", "two <b>errors</b>"), ("R / Arithmetic", "bo", "two <b>errors</b>")]
    # The command's history shows the same decisions.
    out = io.StringIO()
    call_command("adjudicate", "--history", str(split.pk), "--json", stdout=out)
    assert [d["id"] for d in json.loads(out.getvalue())] == [d["id"] for d in data["decisions"]]


@pytest.mark.parametrize("body, message", [
    ({"category": "Made up / Thing", "reason": "x"}, "unknown categories"),
    ({"category": "R / Logic"}, "reason"),
    ({"category": "R / Logic", "reason": "   "}, "reason"),
    ({"reason": "x"}, "category"),
])
def test_bad_decisions_are_400_and_change_nothing(queue, body, message):
    split = queue["split"]
    response = api().post(f"/api/adjudication/{split.pk}/resolve/", body, format="json")
    assert response.status_code == 400
    assert message in json.dumps(response.json())
    assert AdjudicationDecision.objects.count() == 0 and gold(split) == []
    assert AdjudicationItem.objects.get(pk=split.pk).status == "open"


def test_unknown_items_are_404(queue):
    client = api()
    assert client.post("/api/adjudication/999999/resolve/", {"category": "R / Logic", "reason": "x"},
                       format="json").status_code == 404
    assert client.get("/api/adjudication/999999/decisions/").status_code == 404
    assert client.get("/api/adjudication/99999999999999999999999/decisions/").status_code == 404


def test_a_human_annotator_who_adjudicates_decides_as_a_separate_adjudicator(queue):
    split = queue["split"]
    response = api("h0").post(f"/api/adjudication/{split.pk}/resolve/", {"category": "R / Logic", "reason": "x"},
                              format="json")
    assert response.json()["decided_by"] == "h0 (adjudicator)"
    assert Annotator.objects.get(name="h0").kind == "human"
    assert Annotator.objects.get(name="h0 (adjudicator)").kind == "adjudicator"
