"""push_labelstudio --plan N against a real Label Studio: the planned items, grouped by overlap, and nothing else."""
from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from label_studio_sdk import LabelStudio

from annotation.models import LabelStudioProject, LabelStudioTask
from annotation.services.labelstudio.config import PREDICTION_KEY
from annotation.services.planning import plan_annotation
from tests.integration.test_labelstudio import add_judge_labels, make_taxonomy, make_work_set, remote_tasks

pytestmark = pytest.mark.django_db


def test_push_plan_sends_exactly_the_planned_items_with_each_overlap(labelstudio):
    version = make_taxonomy("errors-plan")
    _, predictions = make_work_set("ws-plan", 8)
    add_judge_labels(version, predictions[:4], confidence=0.9)
    add_judge_labels(version, predictions[4:], confidence=0.2)  # low confidence: disputed, three people
    plan = plan_annotation(work_set="ws-plan", budget=6, taxonomy="errors-plan")
    out = io.StringIO()
    call_command("push_labelstudio", "--work-set", "ws-plan", "--taxonomy", "errors-plan", "--plan", "6", stdout=out)
    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)
    wanted = {3: {p.prediction_id for p in plan.picks if p.overlap == 3},
              2: {p.prediction_id for p in plan.picks if p.overlap == 2}}
    assert wanted[3] == {p.pk for p in predictions[4:]} and len(wanted[2]) == 2
    projects = LabelStudioProject.objects.filter(work_set__name__startswith="ws-plan-plan-")
    assert projects.count() == 2
    for project in projects:
        remote = admin.projects.get(id=project.labelstudio_id)
        assert remote.maximum_annotations == project.overlap
        in_ls = {task.data[PREDICTION_KEY] for task in remote_tasks(admin, project.labelstudio_id)}
        assert in_ls == wanted[project.overlap]
        assert set(LabelStudioTask.objects.filter(project=project).values_list("prediction_id", flat=True)) \
            == wanted[project.overlap]
    assert "planned work set ws-plan-plan-" in out.getvalue()
    # The planned items now have tasks, so the next plan picks from the two items left.
    assert {p.prediction_id for p in plan_annotation(work_set="ws-plan", budget=6, taxonomy="errors-plan").picks} \
        == {p.pk for p in predictions} - wanted[2] - wanted[3]
