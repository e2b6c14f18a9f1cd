"""Stages 2-4 on the database: induce_taxonomy and prelabel with the offline judge on the bundled
BIG-Bench-Mistake failures, with the OpenAI backend through the real `openai` client against a local
chat-completions server, and the tree / error-table exports.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation.models import (
    Analysis,
    Annotator,
    Dataset,
    EvaluatedModel,
    Example,
    Label,
    Prediction,
    StageRun,
)
from annotation.services.ingest import content_key, ingest_results
from annotation.services.judging import get_judge_backend
from taxonomy.core.paths import OTHER
from taxonomy.models import Category, TaxonomyVersion
from taxonomy.services.induction import induce_taxonomy, prelabel_failures
from taxonomy.services.versions import CategorySpec, create_version
from tests.fake_openai_server import FakeOpenAIServer, Reply

BBM = Path(__file__).resolve().parents[2] / "data" / "big-bench-mistake"

pytestmark = pytest.mark.django_db


def judge_labels(version: TaxonomyVersion):
    return Label.objects.filter(taxonomy_version=version, source=Label.Source.JUDGE)


# --- offline, on the real data ------------------------------------------------------------------


def test_offline_analyze_induce_prelabel_label_every_bbm_failure_and_reruns_add_nothing(settings, tmp_path, capsys):
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    settings.ERRORMAP_JUDGE = "offline"
    ingest_results(paths=[BBM])
    failures = set(Prediction.objects.filter(is_failure=True).values_list("id", flat=True))
    assert len(failures) > 1000
    call_command("analyze")

    call_command("induce_taxonomy", "bbm", "--max-depth", "2")
    version = TaxonomyVersion.objects.get(taxonomy__name="bbm")
    assert version.origin == TaxonomyVersion.Origin.INDUCED and version.number == 1
    labels = judge_labels(version)
    # every failure exactly one judge label, at a leaf, tied to its analysis and a stored prompt version
    assert sorted(labels.values_list("prediction_id", flat=True)) == sorted(failures)
    leaves = set(Category.objects.filter(version=version, children__isnull=True).values_list("id", flat=True))
    assert set(labels.values_list("category_id", flat=True)) <= leaves
    assert not labels.filter(analysis__isnull=True).exists()
    assert not labels.filter(prompt_version__isnull=True).exists()
    assert {lab.annotator.name for lab in labels.select_related("annotator")} == {"judge:offline"}
    assert Annotator.objects.get(name="judge:offline").kind == Annotator.Kind.JUDGE
    top = Category.objects.filter(version=version, depth=1)
    assert 2 <= top.count() <= 25
    assert all(c.description for c in Category.objects.filter(version=version))
    first = capsys.readouterr().out
    assert f"{len(failures)} created" in first

    # same inputs: the same version is reused and nothing is written
    rows = Label.objects.count()
    call_command("induce_taxonomy", "bbm", "--max-depth", "2")
    assert TaxonomyVersion.objects.filter(taxonomy__name="bbm").count() == 1
    assert Label.objects.count() == rows
    assert "reused (same inputs)" in capsys.readouterr().out

    # prelabel against the same list keeps the induced labels; --relabel recomputes, still one per failure
    call_command("prelabel", "--taxonomy", "bbm@1")
    assert Label.objects.count() == rows
    call_command("prelabel", "--taxonomy", "bbm", "--relabel")
    call_command("prelabel", "--taxonomy", "bbm", "--relabel")
    assert Label.objects.count() == rows
    assert sorted(judge_labels(version).values_list("prediction_id", flat=True)) == sorted(failures)
    assert "0 created, 0 updated" in capsys.readouterr().out.splitlines()[-1]

    # exports: the tree adds up, the table has one row per label with every level, bytes are stable
    call_command("export_taxonomy", "bbm", str(tmp_path / "a.json"))
    call_command("export_taxonomy", "bbm@1", str(tmp_path / "b.json"))
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    tree = json.loads((tmp_path / "a.json").read_text())["tree"]
    assert tree["name"] == "LLM Errors" and tree["count"] == len(failures) and tree["share"] == 1.0
    assert sum(c["count"] for c in tree["children"]) == len(failures)  # one leaf label per failure
    assert abs(sum(c["share"] for c in tree["children"]) - 1.0) < 1e-4
    counts = [c["count"] for c in tree["children"]]
    assert counts == sorted(counts, reverse=True)
    for node in tree["children"]:
        assert set(node) >= {"name", "description", "count", "share", "children"}
        if node["children"]:
            assert sum(c["count"] for c in node["children"]) == node["count"]
    call_command("export_errors", "bbm", str(tmp_path / "a.csv"))
    call_command("export_errors", "bbm", str(tmp_path / "b.csv"))
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    with open(tmp_path / "a.csv", newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(failures)
    assert {"level_1", "level_2", "category_path", "error_title"} <= set(table[0])
    for row in table:
        assert row["category_path"].split(" / ")[0] == row["level_1"]


def make_analysed(titles: list[str], *, backend: str = "offline", model: str = "") -> list[Prediction]:
    """Failures with an ok analysis each (title i for failure i)."""
    dataset = Dataset.objects.create(name=f"ds-{backend}")
    evaluated = EvaluatedModel.objects.create(name=f"model-{backend}")
    out = []
    for i, title in enumerate(titles):
        example = Example.objects.create(dataset=dataset, example_id=f"e{i}", input_text=f"q{i}", reference="r")
        ckey = content_key(example.input_text, f"out {i}", "r")
        pred = Prediction.objects.create(example=example, model=evaluated, output_text=f"out {i}", score=0,
                                         is_failure=True, content_key=ckey)
        Analysis.objects.create(key=f"{backend}-{i}", content_key=ckey, backend=backend, model_name=model,
                                status="ok", error_title=title, error_summary=f"Summary of {title}.", confidence=0.7)
        out.append(pred)
    return out


def test_prelabel_offline_uses_category_text_and_gold_neighbours():
    preds = make_analysed(["Calculation error in arithmetic", "Items in the wrong order", "Quantum flux capacitor",
                           "Quantum flux capacitor"])
    version = create_version(taxonomy_name="manual", categories=[
        CategorySpec("Arithmetic", "Calculation errors with numbers"),
        CategorySpec("Ordering / Sequence", "Items placed in the wrong order"),
        CategorySpec("Other", "anything else"),
    ])
    annotator = Annotator.objects.create(name="alice")
    gold_category = Category.objects.get(version=version, path="Arithmetic")
    Label.objects.create(prediction=preds[2], taxonomy_version=version, category=gold_category, source="gold",
                         annotator=annotator, error_title="Quantum flux capacitor")
    unanalysed = Prediction.objects.create(example=preds[0].example, model=EvaluatedModel.objects.create(name="m2"),
                                           output_text="x", score=0, is_failure=True, content_key="none")
    report = prelabel_failures(taxonomy="manual", judge="offline")
    assert report.unanalysed == 1 and not Label.objects.filter(prediction=unanalysed).exists()
    chosen = dict(judge_labels(version).values_list("prediction_id", "category__path"))
    assert chosen[preds[0].id] == "Arithmetic"
    assert chosen[preds[1].id] == "Ordering / Sequence"
    assert chosen[preds[3].id] == "Arithmetic"  # same title as the gold-labelled failure
    # The gold-labelled failure itself never sees its own gold label (cross-fitting): "Quantum flux
    # capacitor" shares no word with any category, so it falls to Other, and only its neighbour
    # is labelled via gold.
    assert chosen[preds[2].id] == "Other"
    assert report.via_gold == 1 and report.analysed == 4 and report.labels_created == 4


def test_missing_analyses_and_unknown_taxonomies_are_clear_command_errors():
    make_analysed(["Calculation error"])
    with pytest.raises(CommandError, match="run `analyze` first"):
        call_command("induce_taxonomy", "x", "--judge", "openai", "--model", "nobody")
    with pytest.raises(CommandError, match="unknown taxonomy"):
        call_command("prelabel", "--taxonomy", "missing")


# --- OpenAI-compatible judge through the real client ----------------------------------------------

TOPICS = {"Arithmetic Slip": "arith", "Misread Question": "read"}


def stage_of(body: dict) -> str:
    fmt = body.get("response_format") or {}
    name = (fmt.get("json_schema") or {}).get("name", "")
    return name.removeprefix("errormap_")


def llm(body: dict) -> Reply:
    """A judge that proposes two categories (plus a vague one it must not keep) and classifies by keyword."""
    stage = stage_of(body)
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    cats = [{"name": n, "description": f"Errors of kind {n.lower()}."} for n in TOPICS]
    if stage == "induce_generate":
        return Reply(content=json.dumps({"categories": cats + [{"name": "Other", "description": "vague"}]}))
    if stage in ("induce_update", "induce_review"):
        return Reply(content=json.dumps({"rating": 90, "suggestions": "none", "categories": cats}))
    if stage == "induce_classify":
        titles = json.loads(user.split("<<<TITLES\n")[1].split("\nTITLES>>>")[0])
        out = []
        for i, title in titles.items():
            name = next((n for n, key in TOPICS.items() if key in title), "Something New")
            out.append({"id": int(i), "category": name.upper()})  # case differs on purpose
        return Reply(content=json.dumps({"assignments": out}))
    return Reply(status=400, error=f"unexpected stage {stage!r}")


@pytest.fixture
def server():
    with FakeOpenAIServer(responder=llm) as s:
        yield s


def openai_judge(server: FakeOpenAIServer):
    return get_judge_backend("openai", model="fake-judge", base_url=server.base_url, api_key="k",
                             concurrency=4, timeout=5.0, max_retries=2)


def test_openai_induction_runs_the_stages_labels_every_failure_and_a_rerun_makes_no_requests(server):
    titles = [f"arith slip {i % 4}" for i in range(30)] + [f"read wrong {i % 3}" for i in range(20)] + ["odd one"] * 2
    preds = make_analysed(titles, backend="openai", model="fake-judge")
    report = induce_taxonomy(name="llm", backend=openai_judge(server), max_depth=1, rare_freq=0.0)
    stages = [stage_of(b) for b in server.requests]
    # 9 distinct titles: one batch -> generate, review, one classify call (no update)
    assert stages == ["induce_generate", "induce_review", "induce_classify"]
    assert all(b["model"] == "fake-judge" for b in server.requests)
    version = TaxonomyVersion.objects.get(taxonomy__name="llm", number=report.version)
    assert version.origin == "induced"
    paths = dict(judge_labels(version).values_list("prediction_id", "category__path"))
    assert len(paths) == len(preds)
    assert paths[preds[0].id] == "Arithmetic Slip" and paths[preds[35].id] == "Misread Question"
    assert paths[preds[-1].id] == OTHER  # an unknown name from the judge is Other
    assert set(Category.objects.filter(version=version).values_list("name", flat=True)) == {
        "Arithmetic Slip", "Misread Question", OTHER}
    label = judge_labels(version).select_related("annotator", "prompt_version").first()
    assert label.annotator.name == "judge:openai:fake-judge"
    assert label.prompt_version.stage == "induce_classify"

    before, rows = server.count, Label.objects.count()
    again = induce_taxonomy(name="llm", backend=openai_judge(server), max_depth=1, rare_freq=0.0)
    assert again.reused and again.version == report.version
    assert server.count == before and Label.objects.count() == rows

    # A stopped run (version never written) resumes from the response cache: zero new requests.
    TaxonomyVersion.objects.filter(pk=version.pk).update(config={})
    resumed = induce_taxonomy(name="llm", backend=openai_judge(server), max_depth=1, rare_freq=0.0)
    assert not resumed.reused and server.count == before
    assert resumed.labels_created == len(preds)


def test_openai_prelabel_classifies_into_the_version_with_other_fallback(server):
    preds = make_analysed(["arith slip", "read wrong", "zzz"], backend="openai", model="fake-judge")
    version = create_version(taxonomy_name="given", categories=[
        CategorySpec("Arithmetic Slip", "calc"), CategorySpec("Misread Question", "reading"), CategorySpec("Other")])
    report = prelabel_failures(taxonomy="given", backend=openai_judge(server))
    assert [stage_of(b) for b in server.requests] == ["induce_classify"]
    chosen = dict(judge_labels(version).values_list("prediction_id", "category__path"))
    assert chosen == {preds[0].id: "Arithmetic Slip", preds[1].id: "Misread Question", preds[2].id: "Other"}
    assert report.to_other == 1
    assert StageRun.objects.filter(stage="prelabel", status="succeeded").count() == 1
