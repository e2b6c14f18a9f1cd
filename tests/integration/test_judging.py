"""Stage 1 (`analyze`) against the real database: the OpenAI backend through the real `openai` client
talking to a local chat-completions server, and the offline judge on the bundled BIG-Bench-Mistake data.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from openai import AsyncOpenAI

from annotation.core.judge import JudgeError
from annotation.core.openai_judge import OpenAIJudge
from annotation.errors import ErrorMapError
from annotation.models import (
    Analysis,
    EvaluatedModel,
    Prediction,
    PromptVersion,
    ResponseCache,
    StageRun,
    WorkSet,
    WorkSetFailure,
)
from annotation.services.ingest import ingest_results
from annotation.services.judging import (
    analyses_for_predictions,
    analyze_failures,
    get_judge_backend,
)
from tests.factories import make_failures
from tests.fake_openai_server import FakeOpenAIServer, Reply, valid_analysis

BBM = Path(__file__).resolve().parents[2] / "data" / "big-bench-mistake"

pytestmark = pytest.mark.django_db


# --- factories ----------------------------------------------------------------------------------


@pytest.fixture
def server():
    with FakeOpenAIServer() as s:
        yield s


def judge(server: FakeOpenAIServer, **overrides):
    options = {"model": "fake-judge", "base_url": server.base_url, "api_key": "test-key", "concurrency": 4,
               "timeout": 5.0, "max_retries": 3}
    options.update(overrides)
    return get_judge_backend("openai", **options)


def user_prompt(body: dict) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


# --- OpenAI-compatible backend ------------------------------------------------------------------


def test_valid_structured_answers_are_stored_with_prompt_version_and_token_counts(server):
    preds = make_failures(3)
    report = analyze_failures(backend=judge(server), k_correct=2)

    assert (report.analysed, report.failed, server.count) == (3, 0, 3)
    body = server.requests[0]
    assert body["model"] == "fake-judge"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    # strict mode: every property required, including the optional confidence
    assert "confidence" in body["response_format"]["json_schema"]["schema"]["required"]
    prompts = [user_prompt(b) for b in server.requests]
    for p in preds:
        prompt = next(x for x in prompts if p.output_text in x)
        assert f"<<<REFERENCE\n{p.example.reference}\nREFERENCE>>>" in prompt
        assert f"The answer is {p.example.reference}" in prompt  # model-b's correct output is shown
    analyses = Analysis.objects.order_by("id")
    assert [a.error_title for a in analyses] == ["Misread the question"] * 3
    assert all(a.status == "ok" and a.confidence == 0.8 and a.model_name == "fake-judge" for a in analyses)
    assert analyses[0].required_criteria[0]["quality"] == "incorrect"
    version = PromptVersion.objects.get()
    assert {a.prompt_version_id for a in analyses} == {version.id}
    assert "$output_text" in version.template and version.stage == "analyze"
    run = StageRun.objects.get(stage="analyze")
    assert run.status == "succeeded"
    assert (run.counts["requests"], run.counts["prompt_tokens"], run.counts["completion_tokens"]) == (3, 300, 60)


def test_cost_is_accounted_when_prices_are_set(server, settings):
    settings.ERRORMAP_JUDGE_PRICE_INPUT = 2.0  # USD per million tokens
    settings.ERRORMAP_JUDGE_PRICE_OUTPUT = 10.0
    make_failures(2)
    report = analyze_failures(backend=judge(server))
    # 2 requests x (100 in x 2 + 20 out x 10) / 1e6 = 0.0008
    assert report.cost_usd == pytest.approx(0.0008)
    assert StageRun.objects.get(stage="analyze").counts["cost_usd"] == pytest.approx(0.0008)


def test_identical_failures_are_analysed_once_and_shared(server):
    (first,) = make_failures(1)
    twin_model = EvaluatedModel.objects.create(name="model-c")
    twin = Prediction.objects.create(
        example=first.example, model=twin_model, output_text=first.output_text, score=0, is_failure=True,
        content_key=first.content_key,
    )
    report = analyze_failures(backend=judge(server))
    assert (report.failures, report.unique, server.count) == (2, 1, 1)
    mapping = analyses_for_predictions(Prediction.objects.filter(is_failure=True), judge="openai", model="fake-judge")
    assert mapping[first.id].id == mapping[twin.id].id


def test_malformed_json_then_valid_retry_with_the_problem_fed_back(server):
    make_failures(1)
    server.queue(Reply(content='{"required_criteria": [ oops'))
    report = analyze_failures(backend=judge(server))
    assert (report.analysed, report.failed, server.count) == (1, 0, 2)
    retry = server.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": '{"required_criteria": [ oops'}
    assert "invalid JSON" in retry[-1]["content"]
    assert report.usage["invalid_retries"] == 1


def test_schema_invalid_answers_end_in_a_recorded_failed_analysis_without_stopping_the_batch(server):
    make_failures(2)
    invalid = json.dumps({"final_answer": {"error_title": 3, "error_summary": "x"}})
    server.queue(Reply(content=invalid), Reply(content=invalid), Reply(content=invalid))
    report = analyze_failures(backend=judge(server, concurrency=1))
    assert (report.analysed, report.failed, server.count) == (1, 1, 4)
    bad = Analysis.objects.get(status="failed")
    assert "after 3 attempts" in bad.failure_reason
    assert "missing required property 'required_criteria'" in bad.failure_reason
    assert "$.final_answer.error_title: expected string" in bad.failure_reason
    assert ResponseCache.objects.count() == 1  # invalid answers are never cached
    # A re-run keeps the recorded failure and asks nothing (--retry-failed would ask again).
    again = analyze_failures(backend=judge(server))
    assert (again.analysed, again.failed, server.count) == (0, 0, 4)
    retried = analyze_failures(backend=judge(server), retry_failed=True)
    assert (retried.analysed, server.count) == (1, 5)
    assert Analysis.objects.filter(status="ok").count() == 2 and Analysis.objects.count() == 2


def test_429_and_500_responses_are_retried_with_backoff_then_succeed(server):
    make_failures(1)
    server.queue(Reply(status=429, error="slow down", headers={"Retry-After": "0"}), Reply(status=500),
                 Reply(status=503))
    report = analyze_failures(backend=judge(server))
    assert (report.analysed, report.failed, server.count) == (1, 0, 4)
    assert report.usage["http_retries"] == 3
    assert report.usage["requests"] == 4


def test_a_timeout_is_retried(server):
    make_failures(1)
    server.queue(Reply(content=valid_analysis("Too slow"), delay=1.5))
    report = analyze_failures(backend=judge(server, timeout=0.5))
    assert (report.analysed, report.failed, server.count) == (1, 0, 2)
    assert Analysis.objects.get().error_title == "Misread the question"  # from the retry, not the late one


def test_persistent_transport_failure_is_recorded_then_retried_by_the_next_run(server):
    make_failures(1)
    server.queue(Reply(status=500), Reply(status=502))
    report = analyze_failures(backend=judge(server, max_retries=1))
    assert (report.analysed, report.failed, server.count) == (0, 1, 2)
    failed = Analysis.objects.get()
    assert failed.status == "failed" and failed.failure_reason.startswith("transport:")
    assert "InternalServerError" in failed.failure_reason or "502" in failed.failure_reason
    again = analyze_failures(backend=judge(server, max_retries=1))
    assert (again.analysed, server.count) == (1, 3)
    assert Analysis.objects.get().status == "ok"


def test_resumed_run_makes_zero_new_requests(server):
    make_failures(6)
    first = analyze_failures(backend=judge(server), limit=2)
    assert (first.analysed, server.count) == (2, 2)
    second = analyze_failures(backend=judge(server))
    assert (second.already_done, second.analysed, server.count) == (2, 4, 6)
    third = analyze_failures(backend=judge(server))
    assert (third.already_done, third.analysed, server.count) == (6, 0, 6)
    # Killed after answers were cached but before analyses were committed: the cache answers.
    Analysis.objects.all().delete()
    fourth = analyze_failures(backend=judge(server))
    assert (fourth.analysed, fourth.usage["cache_hits"], server.count) == (6, 6, 6)
    assert Analysis.objects.count() == 6


def test_unsupported_structured_output_steps_down_to_json_mode(server):
    make_failures(1)
    server.reject_response_formats = {"json_schema"}
    report = analyze_failures(backend=judge(server))
    assert report.analysed == 1
    assert [(b.get("response_format") or {}).get("type") for b in server.requests] == ["json_schema", "json_object"]


@pytest.mark.parametrize("response_format", ["json_schema", "json_object", "none"])
def test_the_judge_sends_the_very_bytes_chat_completions_create_sends(server, response_format):
    # The judge posts through the client's generic `post`; the body must be what `create` would send.
    make_failures(1)
    with OpenAIJudge(model="fake-judge", base_url=server.base_url, api_key="test-key",
                     response_format=response_format, max_tokens=300) as backend:
        analyze_failures(backend=backend)
    (ours,) = server.raw_requests

    async def by_create() -> None:
        client = AsyncOpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        await client.chat.completions.create(**server.requests[0])
        await client.close()

    asyncio.run(by_create())
    assert server.raw_requests[1] == ours
    assert json.loads(ours)["max_tokens"] == 300


def test_an_answer_without_usage_counts_no_tokens_and_is_still_used(server):
    make_failures(1)
    answer = {"choices": [{"message": {"content": valid_analysis("No usage")}}]}  # no "usage" key
    server.queue(Reply(raw_body=json.dumps(answer).encode()))
    report = analyze_failures(backend=judge(server))
    assert (report.analysed, report.usage["prompt_tokens"], report.usage["completion_tokens"]) == (1, 0, 0)
    assert Analysis.objects.get().error_title == "No usage"


def test_an_answer_with_null_content_is_an_invalid_answer_retried_with_the_problem(server):
    make_failures(1)
    server.queue(Reply(raw_body=json.dumps({"choices": [{"message": {"content": None}}]}).encode()))
    report = analyze_failures(backend=judge(server))
    assert (report.analysed, report.usage["invalid_retries"], server.count) == (1, 1, 2)


def test_prose_and_fenced_answers_are_parsed_tolerantly(server):
    make_failures(1)
    server.reject_response_formats = {"json_schema", "json_object"}
    server.queue(Reply(status=400, error="response_format json_schema is not supported"))
    server.responder = lambda body: Reply(content=f"Sure, here it is:\n```json\n{valid_analysis('Fenced')}\n```")
    report = analyze_failures(backend=judge(server))
    assert report.analysed == 1 and Analysis.objects.get().error_title == "Fenced"
    assert "response_format" not in server.requests[-1]


def test_wrong_api_key_stops_the_run_with_a_clear_error(server):
    make_failures(2)
    server.responder = lambda body: Reply(status=401, error="Incorrect API key provided")
    with pytest.raises(ErrorMapError, match="refused the request: AuthenticationError 401"):
        analyze_failures(backend=judge(server))
    run = StageRun.objects.get(stage="analyze")
    assert run.status == "failed" and "Incorrect API key" in run.error
    assert Analysis.objects.count() == 0


def test_complete_json_validates_against_the_stage_schema_and_is_cached(server):
    schema = {
        "type": "object",
        "properties": {"categories": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "description": {"type": "string"}}, "required": ["name", "description"]}}},
        "required": ["categories"],
    }
    good = json.dumps({"categories": [{"name": "Arithmetic slip", "description": "A wrong calculation."}]})
    server.queue(Reply(content=json.dumps({"categories": "none"})), Reply(content=good))
    backend = judge(server)
    answer = backend.complete_json("generate", "Make categories from these titles: ...", schema)
    assert answer["categories"][0]["name"] == "Arithmetic slip"
    assert server.count == 2
    assert server.requests[0]["response_format"]["json_schema"]["name"] == "errormap_generate"
    assert judge(server).complete_json("generate", "Make categories from these titles: ...", schema) == answer
    assert server.count == 2  # answered from ResponseCache
    server.responder = lambda body: Reply(content="[]")
    with pytest.raises(JudgeError, match="review: invalid answer after 3 attempts"):
        backend.complete_json("review", "Review", schema)


def test_analyze_command_with_the_openai_judge_from_settings(server, settings, capsys):
    settings.OPENAI_BASE_URL = server.base_url
    settings.OPENAI_API_KEY = "k"
    make_failures(2)
    call_command("analyze", "--judge", "openai", "--model", "served-model", "--k-correct", "0")
    out = capsys.readouterr().out
    assert "judge openai:served-model" in out and "2 analysed, 0 failed" in out
    assert all("(none available)" in user_prompt(b) for b in server.requests)
    assert {b["model"] for b in server.requests} == {"served-model"}


def test_openai_judge_without_a_model_name_is_a_clear_command_error(settings):
    settings.ERRORMAP_JUDGE_MODEL = ""
    with pytest.raises(CommandError, match="needs a model name"):
        call_command("analyze", "--judge", "openai")


# --- offline judge on the real data -------------------------------------------------------------


def test_offline_analyze_gives_every_bbm_failure_an_analysis_with_no_configuration(settings, capsys):
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    settings.ERRORMAP_JUDGE = "offline"
    ingest_results(paths=[BBM])
    failures = Prediction.objects.filter(is_failure=True)
    assert failures.count() > 1000
    call_command("analyze")
    keys = set(failures.values_list("content_key", flat=True))
    analysed = set(Analysis.objects.filter(status="ok", backend="offline").values_list("content_key", flat=True))
    assert analysed == keys
    assert not Analysis.objects.filter(error_title="").exists()
    assert Analysis.objects.filter(confidence__isnull=True).count() == 0
    # The rules explain most of these failures, not the fallback.
    assert Analysis.objects.filter(error_title="Unexplained failure").count() < 0.05 * len(keys)
    rows = Analysis.objects.count()
    call_command("analyze")
    assert Analysis.objects.count() == rows
    assert "0 analysed" in capsys.readouterr().out.splitlines()[-1]


def test_default_scope_is_the_most_recent_work_set(server):
    preds = make_failures(5)
    older = WorkSet.objects.create(name="older", ratio=1, seed=0)
    WorkSetFailure.objects.bulk_create([WorkSetFailure(work_set=older, prediction=p) for p in preds])
    newest = WorkSet.objects.create(name="newest", ratio=0.5, seed=0)
    WorkSetFailure.objects.bulk_create([WorkSetFailure(work_set=newest, prediction=p) for p in preds[:2]])
    report = analyze_failures(backend=judge(server))
    assert (report.failures, report.analysed) == (2, 2)
    assert set(Analysis.objects.values_list("content_key", flat=True)) == {p.content_key for p in preds[:2]}
    assert analyze_failures(backend=judge(server), work_set="older").analysed == 3
    with pytest.raises(ErrorMapError, match="no work set named 'nope'"):
        analyze_failures(backend=judge(server), work_set="nope")


def test_offline_judge_retrieves_titles_from_gold_labels():
    from annotation.core.judge import AnalysisRequest
    from annotation.core.offline_judge import GoldExample, OfflineJudge

    gold = GoldExample(
        input_text="Sort the following words alphabetically: List: pear apple fig",
        output_text="apple fig pear banana kiwi", reference="apple fig pear",
        category="Hallucinated items", error_title="Invented words not in the list",
    )
    backend = OfflineJudge(gold=[gold])
    near = AnalysisRequest("k1", gold.input_text, "apple fig pear banana kiwi grape", "apple fig pear")
    far = AnalysisRequest("k2", "Translate to German: good morning", "Bonjour", "Guten Morgen")
    result_near, result_far = backend.analyze([near, far])
    assert result_near.error_title == "Invented words not in the list"
    assert 0.35 <= result_near.confidence <= 0.9
    assert result_far.error_title != gold.error_title
    assert backend.config()["gold"] != OfflineJudge().config()["gold"]
    # The gold failure itself (or a duplicate of its text, up to case and spacing) never retrieves itself.
    itself = AnalysisRequest("k3", gold.input_text, "  Apple fig pear banana   kiwi", "apple fig pear")
    assert backend.analyze([itself])[0].error_title != gold.error_title
