"""Judge endpoint faults are failed attempts of one item, never a crashed run: a 200 whose body is not a
chat completion, and a server dripping one byte every 0.5 s (each read is quick, the whole never ends),
through the real `openai` client against a local HTTP server."""
from __future__ import annotations

import json

import pytest

from annotation.models import Analysis, StageRun
from annotation.services.judging import analyze_failures
from tests.factories import make_failures
from tests.fake_openai_server import FakeOpenAIServer, Reply, completion, valid_analysis
from tests.integration.test_judging import judge

pytestmark = pytest.mark.django_db

DRIPPED = json.dumps(completion("fake-judge", valid_analysis("Dripped"))).encode()  # ~600 bytes: 5 minutes


@pytest.fixture
def server():
    with FakeOpenAIServer() as s:
        yield s


@pytest.mark.parametrize("reply", [
    Reply(raw_body=b"<html>502 Bad Gateway</html>"),  # JSON content type, HTML body
    Reply(raw_body=b"upstream said no", content_type="text/plain"),
    Reply(raw_body=b'{"detail": "queue full"}'),  # JSON, but no choices and no usage
], ids=["html-as-json", "text-plain", "json-without-choices"])
def test_a_200_that_is_not_a_chat_completion_is_a_failed_attempt_then_retried(server, reply):
    make_failures(1)
    server.queue(reply)
    report = analyze_failures(backend=judge(server, max_retries=2))
    assert (report.analysed, report.failed, server.count) == (1, 0, 2)
    assert report.usage["http_retries"] == 1
    assert Analysis.objects.get().error_title == "Misread the question"


def test_a_server_that_keeps_answering_garbage_fails_that_item_only(server):
    make_failures(2)
    server.responder = lambda body: (
        Reply(raw_body=b"not json") if "0 + 3 * 4" in json.dumps(body) else Reply(content=valid_analysis()))
    report = analyze_failures(backend=judge(server, max_retries=1, concurrency=1))
    assert (report.analysed, report.failed) == (1, 1)
    failed = Analysis.objects.get(status="failed")
    assert failed.failure_reason.startswith("transport:") and "not JSON" in failed.failure_reason
    assert StageRun.objects.get(stage="analyze").status == "succeeded"


def test_a_dripping_server_is_cut_off_by_the_total_deadline_then_retried(server):
    make_failures(1)
    server.queue(Reply(raw_body=DRIPPED, drip=0.5))
    # Each read arrives within 0.5 s, so a per-read timeout of 1.5 s would wait the whole 5 minutes.
    report = analyze_failures(backend=judge(server, timeout=1.5, max_retries=1))
    assert (report.analysed, report.failed, server.count) == (1, 0, 2)
    assert Analysis.objects.get().error_title == "Misread the question"  # the retry's, not the dripped one


def test_a_server_that_always_drips_is_recorded_as_failed_with_the_deadline(server):
    make_failures(1)
    server.responder = lambda body: Reply(raw_body=DRIPPED, drip=0.5)
    report = analyze_failures(backend=judge(server, timeout=1.0, max_retries=0))
    assert (report.analysed, report.failed) == (0, 1)
    assert "no complete answer within 1 s" in Analysis.objects.get().failure_reason
