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
