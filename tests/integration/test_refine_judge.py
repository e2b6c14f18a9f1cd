"""refine_judge: the gate accepts a candidate prompt only when it beats the current one on held-out gold.

A local chat-completions server plays the judge: in one mode its answers follow the gold examples the
prompt carries (so the candidate is better), in the other they ignore the prompt (so it is not).
"""
from __future__ import annotations

import io
import json
import re
import zlib

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Analysis, JudgeRefinement, StageRun
from tests.fake_openai_server import FakeOpenAIServer, Reply
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db

CATEGORIES = {"zorp": "Reasoning / Arithmetic", "blick": "Reasoning / Logic", "quux": "Knowledge / Fact"}
MODEL = "fake-judge"


def _json_between(text: str, start: str, end: str):
    match = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.DOTALL)
    return json.loads(match.group(1)) if match else None


def learns_from_examples(body: dict) -> Reply:
    """Classifies a title like the gold example whose title starts with the same word, else Other."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    titles = _json_between(user, "<<<TITLES", "TITLES>>>")
    examples = _json_between(user, "<<<EXAMPLES", "EXAMPLES>>>") or {}
    by_word = {t.split()[0]: c for t, c in examples.items()}
    return Reply(json.dumps({"assignments": [{"id": int(i), "category": by_word.get(t.split()[0], "Other")}
                                             for i, t in titles.items()]}))


def ignores_the_prompt(body: dict) -> Reply:
    """The same answer for a title whatever else the prompt says (a fixed hash of the title)."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    titles = _json_between(user, "<<<TITLES", "TITLES>>>")
    names = sorted(CATEGORIES.values()) + ["Other"]
    return Reply(json.dumps({"assignments": [{"id": int(i), "category": names[zlib.crc32(t.encode()) % 4]}
                                             for i, t in titles.items()]}))


@pytest.fixture
def gold_with_openai_analyses(settings):
    """60 gold items in three categories; the OpenAI judge's titles start with a code word per category."""
    version = make_version([*CATEGORIES.values(), "Other"], name="codes")
    for i in range(60):
        word = list(CATEGORIES)[i % 3]
        p = make_prediction(str(i))
        add_label(p, version, "adjudicator", CATEGORIES[word], source="gold")
        Analysis.objects.create(key=f"a{i}", content_key=p.content_key, backend="openai", model_name=MODEL,
                                status="ok", error_title=f"{word} case {i}", error_summary="")
    settings.OPENAI_API_KEY = "test-key"
    settings.ERRORMAP_JUDGE_MODEL = MODEL
    return version


def refine(server: FakeOpenAIServer, settings, *args: str) -> dict:
    settings.OPENAI_BASE_URL = server.base_url
    out = io.StringIO()
    call_command("refine_judge", "--taxonomy", "codes", "--judge", "openai", "--json", "--reps", "500", *args,
                 stdout=out)
    return json.loads(out.getvalue())


def test_a_candidate_whose_examples_help_is_accepted_and_becomes_the_default(gold_with_openai_analyses, settings):
    with FakeOpenAIServer(learns_from_examples) as server:
        report = refine(server, settings)
        # Without examples every answer is Other (kappa 0); with the other folds' examples, right.
        assert report["current"]["kappa"] == 0 and report["candidate"]["kappa"] == 1.0
        assert report["difference"]["kappa"] == 1.0 and report["difference"]["ci95"][0] > 0
        assert report["accepted"] is True and report["folds"] == 5
        assert set(report) >= {"current", "candidate", "difference", "accepted", "folds"}
        assert set(report["current"]) >= {"prompt_version", "kappa", "ci95"}
        stored = JudgeRefinement.objects.get()
        assert stored.accepted and stored.report == report
        assert stored.candidate_prompt.name in report["candidate"]["prompt_version"]
        assert "<<<EXAMPLES" in stored.candidate_prompt.template
        assert StageRun.objects.filter(stage="refine_judge", status="succeeded").exists()
        # The accepted prompt is now what prelabel classifies with, for this taxonomy.
        settings.OPENAI_BASE_URL = server.base_url
        before = server.count
        call_command("prelabel", "--taxonomy", "codes", "--judge", "openai", stdout=io.StringIO())
        asked = [next(m["content"] for m in body["messages"] if m["role"] == "user")
                 for body in server.requests[before:]]
        assert asked and all("<<<EXAMPLES" in text for text in asked)
    # Those labels are audited against gold without the items whose own gold the prompt carried.
    out = io.StringIO()
    call_command("judge_audit", "--json", "--taxonomy", "codes", "--judge", f"judge:openai:{MODEL}", stdout=out)
    vs_gold = json.loads(out.getvalue())["judges"][f"judge:openai:{MODEL}"]["vs_gold"]
    examples = JudgeRefinement.objects.get().candidate_spec["examples"]
    assert len(examples) == 9  # 3 per category
    assert vs_gold["cross_fitting"]["excluded_as_examples"] == 9 and vs_gold["n_items"] == 60 - 9


def test_a_candidate_the_judge_ignores_is_rejected(gold_with_openai_analyses, settings):
    with FakeOpenAIServer(ignores_the_prompt) as server:
        report = refine(server, settings)
    # Same answers with or without examples: difference exactly 0, its interval [0, 0] does not exclude 0.
    assert report["current"]["kappa"] == report["candidate"]["kappa"]
    assert report["difference"] == {"kappa": 0.0, "ci95": [0.0, 0.0]}
    assert report["accepted"] is False
    assert not JudgeRefinement.objects.get().accepted


def test_clear_errors(gold_with_openai_analyses, settings):
    with pytest.raises(CommandError, match="too few gold labels for 40 folds: 60 distinct gold item"):
        call_command("refine_judge", "--taxonomy", "codes", "--folds", "40")
    make_version(["A"], name="empty")
    with pytest.raises(CommandError, match=r"no gold labels in empty@1 yet: run `adjudicate` first"):
        call_command("refine_judge", "--taxonomy", "empty")
    with pytest.raises(CommandError, match="unknown taxonomy 'nope'"):
        call_command("refine_judge", "--taxonomy", "nope")


def test_learning_curve_of_the_openai_judge_rises_with_examples_and_is_shown(gold_with_openai_analyses, settings,
                                                                            tmp_path, client):
    from django.contrib.auth import get_user_model

    settings.OPENAI_BASE_URL = ""
    with FakeOpenAIServer(learns_from_examples) as server:
        settings.OPENAI_BASE_URL = server.base_url
        out = io.StringIO()
        png = tmp_path / "curve.png"
        call_command("judge_learning_curve", "--taxonomy", "codes", "--judge", "openai", "--json", "--reps", "200",
                     "--plot", str(png), stdout=out)
    curve = json.loads(out.getvalue())
    points = curve["points"]
    # 60 distinct gold texts: 0, then doubling to 32, then all 60.
    assert [p["n_gold"] for p in points] == [0, 1, 2, 4, 8, 16, 32, 60]
    assert points[0]["kappa"] == 0 and points[-1]["kappa"] == 1.0
    assert all(set(p) >= {"n_gold", "kappa", "ci95"} for p in points)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client.force_login(get_user_model().objects.create_user("dana", password="pw"))
    page = client.get("/learning-curve/", {"taxonomy": "codes@1"}).content.decode()
    assert "openai:fake-judge on codes@1" in page and page.count("<circle") == len(points)
    assert 'id="empty"' in client.get("/learning-curve/", {"taxonomy": "other@1"}).content.decode()
