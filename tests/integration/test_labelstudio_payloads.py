"""Task payloads a push sends, built from the database without Label Studio: what the judge shows, and a
number of queries that does not grow with the batch (the reads take only the fields a task shows)."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.models import Analysis, Annotator, Label, Prediction, PromptVersion
from annotation.services.labelstudio.push import label_tasks
from taxonomy.models import Category
from taxonomy.services.versions import CategorySpec, create_version
from tests.factories import make_work_set

pytestmark = pytest.mark.django_db


def judged_work_set(name: str, size: int):
    """`size` failures, each with two labels by a judge with a prompt version and one by a judge without;
    the first failure's labels have no title, so its task shows its analysis."""
    version = create_version(taxonomy_name=f"{name}-tax", categories=[
        CategorySpec("Accuracy / Omission", "missing"), CategorySpec("Fluency / Grammar", "ungrammatical")])
    omission, grammar = (Category.objects.get(version=version, path=p)
                         for p in ("Accuracy / Omission", "Fluency / Grammar"))
    _, predictions = make_work_set(name, size)
    prompted = Annotator.objects.create(name=f"judge:{name}-a", kind=Annotator.Kind.JUDGE)
    plain = Annotator.objects.create(name=f"judge:{name}-b", kind=Annotator.Kind.JUDGE)
    prompt = PromptVersion.objects.create(stage="classify", name="classify", template="long template " * 500,
                                          sha256=f"{name:0<8}" + "ab" * 28)
    labels = []
    for i, p in enumerate(predictions):
        title = "" if i == 0 else f"title {i}"
        labels += [
            Label(prediction=p, taxonomy_version=version, category=omission, source=Label.Source.JUDGE,
                  annotator=prompted, prompt_version=prompt, confidence=0.6, error_title=title,
                  error_summary=f"summary {i}" if i else ""),
            Label(prediction=p, taxonomy_version=version, category=grammar, source=Label.Source.JUDGE,
                  annotator=prompted, prompt_version=prompt, confidence=0.9, error_title=title),
            Label(prediction=p, taxonomy_version=version, category=grammar, source=Label.Source.JUDGE,
                  annotator=plain, confidence=None, error_title=title),
        ]
    Label.objects.bulk_create(labels)
    Analysis.objects.create(key=f"{name}-k", content_key=predictions[0].content_key, backend="openai",
                            status=Analysis.Status.OK, error_title="From the analysis", error_summary="Why")
    return version, list(Prediction.objects.filter(pk__in=[p.pk for p in predictions])
                         .select_related("example__dataset", "model").order_by("pk")), prompt


def test_assisted_tasks_show_the_judges_labels_and_analysis():
    version, predictions, prompt = judged_work_set("shown", 3)
    first, second = label_tasks(predictions[:2], version=version, mode="assisted")
    assert first["data"]["judge_analysis"] == "From the analysis\n\nWhy"  # the labels have no title
    assert second["data"]["judge_analysis"] == "title 1\n\nsummary 1"
    assert second["predictions"] == [
        {"model_version": f"judge:shown-a+classify@{prompt.sha256[:8]}", "score": 0.9,
         "result": [{"from_name": "category", "to_name": "output", "type": "taxonomy",
                     "value": {"taxonomy": [["Accuracy", "Omission"], ["Fluency", "Grammar"]]}}]},
        {"model_version": "judge:shown-b",
         "result": [{"from_name": "category", "to_name": "output", "type": "taxonomy",
                     "value": {"taxonomy": [["Fluency", "Grammar"]]}}]},
    ]
    assert second["data"]["output"] == predictions[1].output_text


def test_building_tasks_takes_the_same_queries_for_3_and_30_failures():
    # A field the reads leave out but a task shows would cost one query per label.
    counts = []
    for name, size in (("few", 3), ("many", 30)):
        version, predictions, _ = judged_work_set(name, size)
        with CaptureQueriesContext(connection) as queries:
            tasks = label_tasks(predictions, version=version, mode="assisted")
        assert len(tasks) == size and all(len(t["predictions"]) == 2 for t in tasks)
        counts.append(len(queries))
    assert counts[0] == counts[1]
