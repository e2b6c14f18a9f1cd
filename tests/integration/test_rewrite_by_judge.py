"""With the OpenAI judge configured, a rewrite proposal's description is written by it (a local
chat-completions server through the real openai client) from the rule's draft; offline keeps the rule's."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from tests.fake_openai_server import FakeOpenAIServer, Reply
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db
WRITTEN = "Use A when the output drops a clause; not when it only reorders words (that is B)."


@pytest.fixture
def confused():
    """Two annotators who never agree on A: its per-category alpha is low, so a rewrite is proposed."""
    version = make_version(["A", "B", "Other"])
    for i in range(8):
        p = make_prediction(str(i), output=f"output {i}")
        add_label(p, version, "h1", "A" if i % 2 else "B")
        add_label(p, version, "h2", "B" if i % 2 else "A")
    return version


def propose(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("propose_taxonomy_changes", "--taxonomy", "errors", "--json", *args, stdout=out)
    return [p for p in json.loads(out.getvalue())["proposals"] if p["kind"] == "rewrite"]


def test_the_openai_judge_writes_the_rewrite(confused, settings):
    offline = propose("--judge", "offline")
    assert offline and offline[0]["evidence"]["written_by"].startswith("offline rule")
    draft = {p["categories"][0]: p["description"] for p in offline}
    settings.OPENAI_API_KEY = "test-key"
    with FakeOpenAIServer(lambda body: Reply(content=json.dumps({"description": WRITTEN}))) as server:
        settings.OPENAI_BASE_URL = server.base_url
        rewrites = propose("--judge", "openai", "--model", "fake-model")
        asked = [json.loads(m["content"]) for body in server.requests for m in body["messages"] if m["role"] == "user"]
    assert {p["categories"][0] for p in rewrites} == set(draft)
    for p in rewrites:
        assert p["description"] == WRITTEN
        assert p["evidence"]["written_by"] == "openai judge fake-model from the rule's draft"
        assert p["evidence"]["draft"] == draft[p["categories"][0]]
    # The judge saw each category's rule draft (with its examples) as data.
    assert sorted((a["category"], a["draft_with_examples"]) for a in asked) == sorted(draft.items())
    # Stored: the same proposal (same id) now carries the judge's description.
    assert [p["id"] for p in rewrites] == [p["id"] for p in offline]


def test_a_failed_answer_keeps_the_draft_and_says_why(confused, settings):
    settings.OPENAI_API_KEY = "test-key"
    with FakeOpenAIServer(lambda body: Reply(content="not json")) as server:
        settings.OPENAI_BASE_URL = server.base_url
        rewrites = propose("--judge", "openai", "--model", "fake-model")
    assert rewrites and all(p["evidence"]["written_by"].startswith("offline rule") for p in rewrites)
    assert all(p["evidence"]["judge_error"] for p in rewrites)
