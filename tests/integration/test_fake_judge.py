"""The stand-in judge (tests/fake_openai_server.answer_every_stage, served by scripts/fake-judge) answers
every judge stage, so the OpenAI path runs end to end without a key: analyze, induce_taxonomy (generate,
review, classify) and prelabel through the real `openai` client, configured as a user would."""
from __future__ import annotations

import io
import os
import socket
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from openai import OpenAI

from annotation.models import Label, Prediction, WorkSet
from annotation.services.ingest import ingest_results
from taxonomy.models import Category, TaxonomyVersion
from tests.fake_openai_server import STAND_IN_TITLES, FakeOpenAIServer, answer_every_stage, stage_of

ROOT = Path(__file__).resolve().parents[2]
BBM = ROOT / "data" / "big-bench-mistake"

pytestmark = pytest.mark.django_db


@pytest.fixture
def stand_in(settings):
    with FakeOpenAIServer(responder=answer_every_stage) as server:
        settings.ERRORMAP_JUDGE = "openai"
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = "not-needed"
        settings.ERRORMAP_JUDGE_MODEL = "fake-judge"
        yield server


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_induce_taxonomy_with_the_openai_judge_runs_end_to_end_against_the_stand_in(stand_in):
    ingest_results(paths=[BBM / "multistep_arithmetic.jsonl", BBM / "word_sorting.jsonl"])
    run("sample_failures", "--ratio", "0.2", "--name", "tryout")
    failures = set(WorkSet.objects.get(name="tryout").failures.values_list("prediction_id", flat=True))
    run("analyze", "--work-set", "tryout")
    out = run("induce_taxonomy", "tryout", "--work-set", "tryout", "--max-categories", "10", "--rare-freq", "0")
    assert "tryout@1 created by judge openai:fake-judge" in out
    stages = {stage_of(body) for body in stand_in.requests}
    assert {"analysis", "induce_generate", "induce_review", "induce_classify"} <= stages
    version = TaxonomyVersion.objects.get(taxonomy__name="tryout")
    top = set(Category.objects.filter(version=version, depth=1).values_list("name", flat=True))
    wanted = {category for category, _ in STAND_IN_TITLES.values()}
    assert len(top & wanted) >= 3  # the stand-in's categories made it through every stage
    labels = Label.objects.filter(taxonomy_version=version, source="judge")
    assert set(labels.values_list("prediction_id", flat=True)) == failures  # every failure labelled
    before = stand_in.count
    assert "reused" in run("induce_taxonomy", "tryout", "--work-set", "tryout", "--max-categories", "10",
                           "--rare-freq", "0")
    assert stand_in.count == before  # same inputs: nothing asked again
    out = run("prelabel", "--taxonomy", "tryout@1", "--work-set", "tryout")
    assert Prediction.objects.filter(pk__in=failures, labels__taxonomy_version=version).distinct().count() == len(
        failures)


def test_a_small_set_says_what_the_category_limit_dropped_and_max_categories_keeps_it(stand_in):
    ingest_results(paths=[BBM / "multistep_arithmetic.jsonl"])
    run("sample_failures", "--ratio", "0.03", "--name", "small")
    run("analyze", "--work-set", "small")
    out = run("induce_taxonomy", "small", "--work-set", "small", "--max-depth", "1", "--rare-freq", "0")
    assert "proposed categories are not in the taxonomy" in out and "over the limit of" in out
    raised = run("induce_taxonomy", "small", "--work-set", "small", "--max-depth", "1", "--rare-freq", "0",
                 "--max-categories", "10")
    assert "over the limit" not in raised
    v1, v2 = TaxonomyVersion.objects.filter(taxonomy__name="small").order_by("number")
    assert v2.categories.filter(depth=1).count() > v1.categories.filter(depth=1).count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scripts_fake_judge_prints_the_settings_and_answers_with_the_real_client():
    port = free_port()
    process = subprocess.Popen([str(ROOT / "scripts" / "fake-judge"), str(port)], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        lines = [process.stdout.readline() for _ in range(4)]
        exports = next(line for line in lines if line.startswith("export "))
        settings = dict(part.split("=", 1) for part in exports.split()[1:])
        assert settings["ERRORMAP_JUDGE"] == "openai" and settings["ERRORMAP_JUDGE_MODEL"] == "fake-judge"
        assert lines[-1].strip() == settings["OPENAI_BASE_URL"] == f"http://127.0.0.1:{port}/v1"
        client = OpenAI(base_url=settings["OPENAI_BASE_URL"], api_key=settings["OPENAI_API_KEY"])
        answer = client.chat.completions.create(model="fake-judge", messages=[
            {"role": "user", "content": "<<<FAILED_ANSWER\n2 + 2 = 5\nFAILED_ANSWER>>>"}])
        assert '"error_title"' in answer.choices[0].message.content
    finally:
        process.terminate()
        process.wait(timeout=10)
