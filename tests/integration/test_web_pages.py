"""Web pages rendered by Django's test client on small factory data: what each page must survive
(data whose keys collide with template attribute lookups) and what it must show."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from annotation.models import StageRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def user_client() -> Client:
    user = get_user_model().objects.create_user("viewer", password="pw-123456789")
    client = Client()
    client.force_login(user)
    return client


def test_dashboard_renders_a_run_whose_counts_have_a_key_named_items(user_client):
    # adjudicate and export_gold record counts with a key "items": the template's `counts.items`
    # used to pick that key (an int) instead of the dict's items, and `/` answered 500.
    StageRun.objects.create(stage="adjudicate", status="succeeded", counts={"items": 3, "auto_gold": 1})
    StageRun.objects.create(stage="export_gold", status="succeeded", counts={"items": 12, "keys": 2})
    response = user_client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<span class="run-count">items <b>3</b></span>' in html
    assert '<span class="run-count">auto_gold <b>1</b></span>' in html
    assert '<span class="run-count">items <b>12</b></span>' in html


def test_atlas_examples_show_the_judges_required_criteria(user_client):
    # Criteria are dicts without a "name": `default:c.name` raised VariableDoesNotExist (500) on
    # every analysis with criteria, i.e. on every example the judge analysed.
    from annotation.models import Analysis, Label
    from tests.integration.agreement_factories import add_label, make_prediction, make_version

    version = make_version(["Reasoning / Logic"], name="tax")
    prediction = make_prediction("e1")
    add_label(prediction, version, "offline-judge", "Reasoning / Logic", source="judge")
    analysis = Analysis.objects.create(
        key="k1", content_key=prediction.content_key, backend="offline", status="ok",
        required_criteria=[{"criterion": "Keeps <b>order</b>", "present_in_wrong": False, "quality": "incorrect",
                            "evidence": "", "comment": "nearest gold failure"}])
    Label.objects.filter(prediction=prediction).update(analysis=analysis)
    response = user_client.get("/atlas/examples/", {"taxonomy": "tax@1", "source": "judge",
                                                     "category": "Reasoning / Logic"})
    assert response.status_code == 200
    assert "<li>Keeps &lt;b&gt;order&lt;/b&gt; — incorrect</li>" in response.content.decode()
