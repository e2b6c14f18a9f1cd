"""The README's main job: the demo pipeline on the bundled data, pushed to a real Label Studio, run twice."""
from io import StringIO

import pytest
from django.core.management import call_command

from annotation.models import Analysis, Label, LabelStudioProject, Prediction, WorkSet
from annotation.services.labelstudio.client import labelstudio_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.labelstudio]


def state() -> tuple:
    """Every row the demo writes, by identity and value: a re-run must leave each one as it was."""
    return (
        sorted(Prediction.objects.values_list("pk", "example_id", "model_id", "score", "is_failure",
                                              "content_key")),
        sorted(Label.objects.values_list("pk", "prediction_id", "taxonomy_version_id", "category_id", "source",
                                         "annotator_id", "confidence", "error_title")),
        sorted(WorkSet.objects.values_list("pk", "name", "ratio", "seed")),
        sorted(WorkSet.objects.values_list("name", "failures__prediction_id")),
        sorted(Analysis.objects.values_list("pk", "key", "status", "error_title")),
    )


def test_demo_runs_every_stage_pushes_to_label_studio_and_a_second_run_changes_nothing(labelstudio):
    out = StringIO()
    call_command("run_demo", "--dashboard-url", "http://127.0.0.1:8000/", stdout=out)
    text = out.getvalue()
    assert "ingested 3226 predictions from 6 files into 6 datasets" in text
    assert "bbm_word_sorting" in text and "wmt23-mqm-ende" in text
    sampled = WorkSet.objects.get(name="demo").failures.count()
    # Every sampled failure is analysed by the offline judge and carries a judge label.
    judged = set(Label.objects.filter(source="judge", taxonomy_version__taxonomy__name="errormap-demo")
                 .values_list("prediction_id", flat=True))
    assert judged == set(WorkSet.objects.get(name="demo").failures.values_list("prediction_id", flat=True))
    # The judge also labels the WMT23 failures in the raters' own taxonomy, so the audit compares them.
    in_mqm = set(Label.objects.filter(source="judge", taxonomy_version__taxonomy__name="wmt23-mqm")
                 .values_list("prediction_id", flat=True))
    assert in_mqm == set(WorkSet.objects.get(name="demo-wmt23").failures.values_list("prediction_id", flat=True))
    assert "judge audit in wmt23-mqm@1: judge:offline against the raters' majority on " in text
    project = LabelStudioProject.objects.get(work_set__name="demo")
    assert f"Annotate in Label Studio: {labelstudio.url}/projects/{project.labelstudio_id}" in text
    assert f"log in as {labelstudio.username} / {labelstudio.password}" in text
    assert "Dashboard: http://127.0.0.1:8000/  (log in as demo / demo-password)" in text
    client = labelstudio_client(url=labelstudio.url, api_key=labelstudio.api_key)
    tasks = list(client.tasks.list(project=project.labelstudio_id))
    assert len(tasks) == sampled
    before = state()
    again = StringIO()
    call_command("run_demo", stdout=again)
    assert state() == before
    assert "demo-password" not in again.getvalue()  # the fixed password is printed once
    assert len(list(client.tasks.list(project=project.labelstudio_id))) == sampled
