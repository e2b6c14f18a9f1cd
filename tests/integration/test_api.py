"""The REST API: token authentication, filters, pagination, domain errors as 4xx JSON, the same
numbers as the commands, and the whole OpenAPI schema exercised by schemathesis without a 5xx."""
from __future__ import annotations

import json
from io import StringIO

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db

LIST_ENDPOINTS = [
    "/api/datasets/", "/api/models/", "/api/predictions/", "/api/work-sets/", "/api/stage-runs/", "/api/labels/",
    "/api/labelstudio-projects/", "/api/adjudication-items/", "/api/taxonomy-versions/", "/api/signatures/",
    "/api/atlas/", "/api/agreement/", "/api/judge-audit/", "/api/overview/", "/api/labelstudio-progress/",
    "/api/signatures/compare/?a=m1&b=m2", "/api/gold-export/",
]


@pytest.fixture
def labelled():
    """Two models, 10 and 6 judged failures; two humans on three of m1's failures."""
    version = make_version(["Reasoning / Logic", "Reasoning / Arithmetic", "Format"], name="default")
    for i in range(10):
        p = make_prediction(f"a{i}", model="m1", output="<script>alert(1)</script>")
        add_label(p, version, "judge-1", "Reasoning / Logic" if i < 7 else "Format", source="judge")
        if i < 3:
            add_label(p, version, "alice", "Reasoning / Logic")
            add_label(p, version, "bob", "Reasoning / Logic" if i < 2 else "Format")
    for i in range(6):
        p = make_prediction(f"b{i}", model="m2")
        add_label(p, version, "judge-1", "Reasoning / Arithmetic" if i < 4 else "Format", source="judge")
    return version


@pytest.fixture
def token():
    user = get_user_model().objects.create_user("api-user", password="pw-123456789")
    return Token.objects.create(user=user).key


@pytest.fixture
def client(token):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return api


@pytest.mark.parametrize("url", LIST_ENDPOINTS)
def test_every_endpoint_refuses_anonymous_requests(url):
    response = APIClient().get(url)
    assert response.status_code == 401
    assert "detail" in response.json()


def test_a_wrong_token_is_refused(labelled):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert api.get("/api/labels/").status_code == 401


def test_labels_are_filtered_and_paginated(client, labelled):
    page = client.get("/api/labels/", {"source": "judge", "model": "m1", "limit": 4}).json()
    assert page["count"] == 10
    assert len(page["results"]) == 4 and page["next"]
    assert {r["model"] for r in page["results"]} == {"m1"}
    subtree = client.get("/api/labels/", {"category": "Reasoning", "source": "judge"}).json()
    assert subtree["count"] == 7 + 4  # Logic on m1 and Arithmetic on m2, both under Reasoning
    humans = client.get("/api/labels/", {"source": "human", "annotator": "bob"}).json()
    assert humans["count"] == 3


def test_a_huge_page_size_is_cut_to_the_ceiling(client, labelled):
    # A limit past 2**63 once reached SQLite as a number it refuses ("datatype mismatch", a 500).
    page = client.get("/api/predictions/", {"limit": 2**64, "offset": 1})
    assert page.status_code == 200
    assert len(page.json()["results"]) == min(1000, page.json()["count"] - 1)


def test_signatures_api_gives_the_command_json(client, labelled):
    out = StringIO()
    call_command("signatures", "--json", "--source", "judge", "--taxonomy", "default", stdout=out)
    response = client.get("/api/signatures/", {"source": "judge", "taxonomy": "default"})
    assert response.status_code == 200
    assert response.json() == json.loads(out.getvalue())
    m1 = next(s for s in response.json()["signatures"] if s["group"] == "m1")
    assert m1["n_errors"] == 10 and m1["shares"][0] == pytest.approx(
        {"category": "Reasoning", "count": 7.0, "share": 0.7, "ci_low": 0.3968, "ci_high": 0.8922}, abs=1e-4)


def test_comparison_and_atlas_endpoints(client, labelled):
    comparison = client.get("/api/signatures/compare/", {"a": "m1", "b": "m2", "depth": 2, "taxonomy": "default"})
    assert comparison.status_code == 200
    rows = {d["category"]: d for d in comparison.json()["categories"]}
    assert rows["Reasoning / Logic"]["test"].startswith("Fisher")  # small counts
    atlas = client.get("/api/atlas/", {"taxonomy": "default", "model": "m2"}).json()
    assert atlas["n_errors"] == 6
    assert [c["name"] for c in atlas["tree"]["children"]] == ["Reasoning", "Format"]


def test_domain_errors_become_400_json(client, labelled):
    response = client.get("/api/signatures/", {"taxonomy": "no-such-taxonomy"})
    assert response.status_code == 400
    assert "unknown taxonomy 'no-such-taxonomy'" in response.json()["detail"]
    response = client.get("/api/signatures/compare/", {"a": "m1", "b": "m1"})
    assert response.status_code == 400
    response = client.get("/api/signatures/", {"source": "robots"})
    assert response.status_code == 400 and "source" in response.json()


def test_gold_export_lists_gold_items(client, labelled):
    from annotation.models import Prediction
    from tests.integration.agreement_factories import add_label as label

    for p in Prediction.objects.filter(example__example_id__in=["a0", "a1"]):
        label(p, labelled, "adjudicator", "Reasoning / Logic", source="gold")
    page = client.get("/api/gold-export/", {"taxonomy": "default", "limit": 1}).json()
    assert page["count"] == 2 and len(page["results"]) == 1


def test_missing_objects_are_404(client, labelled):
    assert client.get("/api/taxonomy-versions/999999/").status_code == 404
    assert client.get("/api/work-sets/999999/").status_code == 404


def test_ingest_upload_then_reupload_changes_nothing(client):
    body = (b"example_id,model,input_text,output_text,score\n"
            b"e1,m,<b>in</b>,out,1\ne2,m,in,out,0\ne3,m,in,out,1\n")
    first = client.post("/api/ingest/", {"file": SimpleUploadedFile("../../evil name.csv", body),
                                         "dataset": "uploaded"}, format="multipart")
    assert first.status_code == 202, first.content
    assert first.json()["status"] == "done"  # no broker in tests: the task ran in process
    assert first.json()["report"]["rows"] == 3 and first.json()["report"]["files"][0]["created"] == 3
    again = client.post("/api/ingest/", {"file": SimpleUploadedFile("x.csv", body), "dataset": "uploaded"},
                        format="multipart")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    failures = client.get("/api/predictions/", {"dataset": "uploaded", "is_failure": "true"}).json()
    assert failures["count"] == 1 and failures["results"][0]["example_id"] == "e2"
    broken = client.post("/api/ingest/", {"file": SimpleUploadedFile("y.csv", b"nope\n1\n")}, format="multipart")
    assert broken.status_code == 202 and broken.json()["status"] == "failed"
    assert broken.json()["error"].startswith("y.csv") and "missing column" in broken.json()["error"]


def test_work_set_created_through_the_api(client):
    body = "example_id,model,input_text,output_text,score\n" + "".join(f"e{i},m,in,out,{i % 2}\n" for i in range(20))
    client.post("/api/ingest/", {"file": SimpleUploadedFile("r.csv", body.encode()), "dataset": "ws"},
                format="multipart")
    response = client.post("/api/work-sets/", {"ratio": 0.5, "seed": 1, "name": "api-set", "datasets": ["ws"]},
                           format="json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "api-set" and response.json()["failures"] == 5  # half of 10 failures
    assert client.get("/api/stage-runs/", {"stage": "sample_failures"}).json()["count"] == 1


def _load_schema():
    """The schema as /api/schema/ serves it (generated in process: the endpoint needs a signed-in user)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    from server.wsgi import application

    raw = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = application
    return schema


schema = _load_schema()


@pytest.fixture
def connection_kept_across_requests():
    """Requests sent straight to the WSGI application end with Django closing the database connection
    (request_finished); on PostgreSQL that is the test's own transaction. Django's test client keeps it
    open the same way: by not listening for the signal while a test runs."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_api_operation_answers_with_a_server_error(case, labelled, token, connection_kept_across_requests):
    from schemathesis.checks import not_a_server_error

    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=[not_a_server_error])


def test_a_first_taxonomy_version_has_previous_null_and_a_later_one_names_it(client):
    # DRF's source="previous.__str__" on a null `previous` found None's own __str__ and printed
    # "<method-wrapper '__str__' of NoneType object ...>".
    first = make_version(["A", "B"], name="tax")
    second = make_version(["A", "B", "C"], name="tax")
    rows = {row["spec"]: row for row in client.get("/api/taxonomy-versions/").json()["results"]}
    assert second.previous_id == first.pk
    assert rows["tax@1"]["previous"] is None
    assert rows["tax@2"]["previous"] == "tax@1"
    assert client.get(f"/api/taxonomy-versions/{first.pk}/").json()["previous"] is None


def test_a_nul_byte_in_a_filter_is_a_400_on_every_database(client, labelled):
    # Found on PostgreSQL: NUL in a query parameter reached the database as text it refuses (500).
    response = client.get("/api/labels/", {"taxonomy": "a\x00b"})
    assert response.status_code == 400 and "NUL" in response.json()["detail"]
    assert client.get("/api/labels/", {"source": "judge"}).status_code == 200


def test_the_schema_and_the_docs_page_need_a_signed_in_user(client):
    anonymous = APIClient()
    assert anonymous.get("/api/schema/").status_code in (401, 403)
    docs = anonymous.get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"].startswith("/accounts/login/")
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200 and "/api/labels/" in schema.json()["paths"]
