"""`POST /api/ingest/` keeps the file privately under var/ and ingests it as a task (in process here,
with no broker): 202 with a URL to poll, the same upload twice is one upload, and a bad file's
`FILE:LINE` error is the upload's status with nothing written. tests/integration/test_tasks.py shows
the same with a real worker, where the web process does not ingest at all."""
from __future__ import annotations

import os
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import IngestUpload, Prediction, StageRun

pytestmark = pytest.mark.django_db

HEADER = b"example_id,model,input_text,output_text,score\n"
GOOD = HEADER + b"e1,m,<b>in</b>,out,1\ne2,m,in,out,0\ne3,m,in,out,1\n"
# Line 3 is bad after a good line 2: an ingest that wrote as it went would leave e1 behind.
BAD = HEADER + b"e1,m,in,out,1\ne2,m,in,out,not-a-number\n"


@pytest.fixture
def client(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    user = get_user_model().objects.create_user("uploader", password="pw-123456789")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


def post(client, name: str, body: bytes, **fields: str):
    return client.post("/api/ingest/", {"file": SimpleUploadedFile(name, body), **fields}, format="multipart")


def predictions() -> list[tuple]:
    return list(Prediction.objects.order_by("pk").values_list(
        "pk", "example__dataset__name", "example__example_id", "model__name", "output_text", "score", "is_failure"))


def test_an_upload_is_accepted_with_a_url_to_poll_and_ingested_by_its_task(client, tmp_path):
    response = post(client, "../../evil name.csv", GOOD, dataset="uploaded")

    assert response.status_code == 202, response.content
    accepted = response.json()
    assert accepted["name"] == "evil_name.csv" and accepted["uploaded_by"] == "uploader"
    assert accepted["url"].endswith(f"/api/ingest/{accepted['id']}/")
    polled = client.get(accepted["url"]).json()
    assert polled["status"] == "done" and polled["error"] == ""
    assert polled["report"]["rows"] == 3 and polled["report"]["datasets"] == ["uploaded"]
    assert polled["report"]["files"] == [{"path": "evil_name.csv", "format": "csv", "rows": 3, "created": 3,
                                          "updated": 0, "unchanged": 0}]
    assert sorted(p[2] for p in predictions()) == ["e1", "e2", "e3"]
    # Ingested, the file is gone from var/uploads; nothing is left half-received either.
    assert [p.name for p in (tmp_path / "uploads").iterdir()] == ["incoming"]
    assert not any((tmp_path / "uploads" / "incoming").iterdir())


def test_the_same_upload_again_is_the_same_upload_and_ingests_nothing(client):
    first = post(client, "a.csv", GOOD, dataset="uploaded").json()
    before = predictions()

    again = post(client, "b.csv", GOOD, dataset="uploaded")

    assert again.status_code == 200 and again.json()["id"] == first["id"] and again.json()["status"] == "done"
    assert IngestUpload.objects.count() == 1 and StageRun.objects.filter(stage="ingest").count() == 1
    assert predictions() == before
    # Another dataset is another upload.
    other = post(client, "a.csv", GOOD, dataset="elsewhere")
    assert other.status_code == 202 and other.json()["id"] != first["id"]


def test_a_bad_file_fails_its_upload_with_file_and_line_and_writes_nothing(client):
    post(client, "good.csv", GOOD, dataset="kept")
    before = predictions()

    response = post(client, "bad.csv", BAD, dataset="kept")

    assert response.status_code == 202
    status = client.get(response.json()["url"]).json()
    assert status["status"] == "failed" and status["report"] == {}
    assert status["error"].startswith("bad.csv:3: ") and "score" in status["error"], status["error"]
    assert predictions() == before
    # The file's fault: sending it again gives the same answer and runs nothing.
    runs = StageRun.objects.filter(stage="ingest").count()
    again = post(client, "bad.csv", BAD, dataset="kept")
    assert again.status_code == 200 and again.json()["status"] == "failed"
    assert StageRun.objects.filter(stage="ingest").count() == runs


def test_an_upload_longer_than_declared_limit_stops_streaming_with_413(client, settings, tmp_path):
    # Under the declared-length check (the limit plus room for the form) but over the file limit:
    # the handler stops reading and removes what it wrote.
    settings.ERRORMAP_MAX_UPLOAD_BYTES = 10_000
    body = HEADER + b"".join(b"e%d,m,%s,o,1\n" % (i, b"q" * 100) for i in range(150))
    assert 10_000 < len(body) < 10_000 + 64 * 1024

    response = post(client, "big.csv", body)

    assert response.status_code == 413 and "ERRORMAP_MAX_UPLOAD_BYTES" in response.json()["detail"]
    assert not IngestUpload.objects.exists() and not Prediction.objects.exists()
    assert not any((tmp_path / "uploads" / "incoming").iterdir())


def test_upload_status_needs_a_user_and_an_existing_upload(client):
    accepted = post(client, "a.csv", GOOD).json()
    assert client.get("/api/ingest/999999/").status_code == 404
    assert APIClient().get(accepted["url"]).status_code in (401, 403)
    assert APIClient().post("/api/ingest/", {"file": SimpleUploadedFile("a.csv", GOOD)},
                            format="multipart").status_code in (401, 403)


def test_files_left_in_incoming_by_a_request_that_died_are_removed_by_the_next_upload(client, tmp_path):
    incoming = tmp_path / "uploads" / "incoming"
    incoming.mkdir(parents=True)
    stale, recent = incoming / "stale.part", incoming / "recent.part"
    stale.write_bytes(b"half an upload")
    recent.write_bytes(b"an upload still streaming")
    day_ago = time.time() - 24 * 3600
    os.utime(stale, (day_ago, day_ago))

    assert post(client, "good.csv", GOOD, dataset="d").status_code == 202
    assert sorted(p.name for p in incoming.iterdir()) == ["recent.part"]
