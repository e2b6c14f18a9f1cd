"""Push, webhook and sync against a real Label Studio (started by the test setup), with real users."""
from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from label_studio_sdk import LabelStudio

from annotation.core.assignment import draw_assisted
from annotation.errors import ErrorMapError
from annotation.models import (
    Annotator,
    Dataset,
    Label,
    LabelStudioAnnotation,
    LabelStudioProject,
    LabelStudioTask,
    Prediction,
    PromptVersion,
    WorkSet,
)
from annotation.services.labelstudio.client import (
    WEBHOOK_SECRET_HEADER,
    LabelStudioError,
    labelstudio_client,
)
from annotation.services.labelstudio.config import PREDICTION_KEY
from annotation.services.labelstudio.push import NO_JUDGE_SHOWN, push_labelstudio
from annotation.services.labelstudio.sync import sync_labelstudio
from taxonomy.core.verdicts import NON_ERROR_VERDICTS
from taxonomy.models import Category, CategoryMapping
from taxonomy.services.versions import CategorySpec, create_version
from tests.factories import make_work_set
from tests.integration.conftest_labelstudio import settle

pytestmark = [pytest.mark.labelstudio, pytest.mark.django_db(transaction=True)]

CATEGORIES = [
    CategorySpec("Accuracy / Mistranslation", "the meaning of the source is changed"),
    CategorySpec("Accuracy / Omission", "part of the source is missing"),
    CategorySpec("Fluency / Grammar", "ungrammatical output"),
]


# --- factories -------------------------------------------------------------------------------------


def make_taxonomy(name: str):
    return create_version(taxonomy_name=name, categories=CATEGORIES)


def add_judge_labels(version, predictions, path="Accuracy / Mistranslation", confidence=0.8,
                     prompt_name="classify-v1", prompt_sha="ab" * 32, title="wrong word in"):
    judge, _ = Annotator.objects.get_or_create(name="judge:offline", defaults={"kind": Annotator.Kind.JUDGE})
    prompt, _ = PromptVersion.objects.get_or_create(
        sha256=prompt_sha, defaults={"stage": "classify", "name": prompt_name, "template": prompt_name}
    )
    category = Category.objects.get(version=version, path=path)
    for p in predictions:
        Label.objects.create(
            prediction=p, taxonomy_version=version, category=category, source=Label.Source.JUDGE,
            annotator=judge, confidence=confidence, prompt_version=prompt,
            error_title=f"{title} {p.example.example_id}", error_summary="the verb is mistranslated",
        )


def taxonomy_result(*paths: str, proposal: str = "", note: str = "") -> list[dict]:
    result = [
        {
            "from_name": "category", "to_name": "output", "type": "taxonomy",
            "value": {"taxonomy": [p.split(" / ") for p in paths]},
        }
    ] if paths else []
    if proposal:
        result.append({"from_name": "proposed_category", "to_name": "output", "type": "textarea",
                       "value": {"text": [proposal]}})
    if note:
        result.append({"from_name": "note", "to_name": "output", "type": "textarea", "value": {"text": [note]}})
    return result


def human_labels() -> set[tuple]:
    """The platform's human labels as plain tuples, for exact comparison."""
    return {
        (l.prediction_id, l.annotator.labelstudio_user_id, str(l.taxonomy_version), l.category.path, l.note,
         l.proposed_category, l.external_id)
        for l in Label.objects.filter(source=Label.Source.HUMAN).select_related(
            "annotator", "category", "taxonomy_version__taxonomy"
        )
    }


def remote_tasks(client, project_id):
    return list(client.tasks.list(project=project_id, fields="all", page_size=1000))


# --- tests -----------------------------------------------------------------------------------------


def test_annotations_by_two_users_arrive_by_webhook_and_sync_identically(
    labelstudio, labelstudio_users, live_server, settings
):
    settings.ERRORMAP_PUBLIC_URL = live_server.url
    version = make_taxonomy("errors-hooks")
    _, predictions = make_work_set("ws-hooks", 3)
    add_judge_labels(version, predictions)

    report = push_labelstudio(work_set="ws-hooks", taxonomy="errors-hooks", mode="assisted", overlap=2)
    assert report.created_project and report.tasks_imported == 3 and report.predictions_imported == 3

    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)
    project = admin.projects.get(id=report.labelstudio_project_id)
    assert project.maximum_annotations == 2
    tasks = remote_tasks(admin, report.labelstudio_project_id)
    assert sorted(t.data[PREDICTION_KEY] for t in tasks) == sorted(p.pk for p in predictions)
    for task in tasks:
        assert "wrong word" in task.data["judge_analysis"]
        (pred,) = [p if isinstance(p, dict) else p.model_dump() for p in task.predictions]
        assert pred["model_version"] == "judge:offline+classify-v1@abababab"
        assert pred["score"] == pytest.approx(0.8)
        assert pred["result"][0]["value"]["taxonomy"] == [["Accuracy", "Mistranslation"]]
    task_of = {t.data[PREDICTION_KEY]: t.id for t in tasks}
    p0, p1, p2 = predictions

    alice_id, alice = labelstudio_users["alice"]
    bob_id, bob = labelstudio_users["bob"]
    a0 = alice.annotations.create(id=task_of[p0.pk], result=taxonomy_result("Accuracy / Mistranslation"))
    a1 = alice.annotations.create(
        id=task_of[p1.pk], result=taxonomy_result("Accuracy / Omission", "Fluency / Grammar", note="two issues")
    )
    b0 = bob.annotations.create(id=task_of[p0.pk], result=taxonomy_result("Fluency / Grammar"))
    b2 = bob.annotations.create(id=task_of[p2.pk], result=taxonomy_result(proposal="Hallucinated named entity"))
    assert {a.completed_by for a in (a0, a1)} == {alice_id} and {b.completed_by for b in (b0, b2)} == {bob_id}

    v = "errors-hooks@1"
    expected = {
        (p0.pk, alice_id, v, "Accuracy / Mistranslation", "", "", f"ls:{a0.id}"),
        (p1.pk, alice_id, v, "Accuracy / Omission", "two issues", "", f"ls:{a1.id}"),
        (p1.pk, alice_id, v, "Fluency / Grammar", "two issues", "", f"ls:{a1.id}"),
        (p0.pk, bob_id, v, "Fluency / Grammar", "", "", f"ls:{b0.id}"),
        (p2.pk, bob_id, v, "Other", "", "Hallucinated named entity", f"ls:{b2.id}"),
    }
    settle(lambda: human_labels() == expected)
    assert human_labels() == expected  # delivered by webhook, nothing pulled yet

    # Edit one, delete one: the webhook replaces and removes.
    alice.annotations.update(id=a0.id, result=taxonomy_result("Accuracy / Omission"))
    bob.annotations.delete(id=b0.id)
    expected -= {
        (p0.pk, alice_id, v, "Accuracy / Mistranslation", "", "", f"ls:{a0.id}"),
        (p0.pk, bob_id, v, "Fluency / Grammar", "", "", f"ls:{b0.id}"),
    }
    expected |= {(p0.pk, alice_id, v, "Accuracy / Omission", "", "", f"ls:{a0.id}")}
    settle(lambda: human_labels() == expected)
    assert human_labels() == expected

    # Lose everything the webhooks brought: sync alone rebuilds exactly the same labels.
    Label.objects.filter(source=Label.Source.HUMAN).delete()
    LabelStudioAnnotation.objects.all().delete()
    sync = sync_labelstudio(work_set="ws-hooks")
    assert sync.annotations_seen == 3 and sync.labels_created == 4
    assert human_labels() == expected
    # A webhook carries only the user id; the sync names the annotators after their Label Studio emails.
    assert {a.labelstudio_user_id: a.email for a in Annotator.objects.filter(kind="human")} == {
        alice_id: "alice@example.org", bob_id: "bob@example.org"
    }

    # A repeated sync changes nothing, not even timestamps.
    stamps = dict(Label.objects.filter(source=Label.Source.HUMAN).values_list("pk", "updated_at"))
    again = sync_labelstudio(work_set="ws-hooks")
    assert (again.annotations_changed, again.labels_created, again.labels_updated, again.labels_deleted) == (
        0, 0, 0, 0,
    )
    assert dict(Label.objects.filter(source=Label.Source.HUMAN).values_list("pk", "updated_at")) == stamps


def test_webhook_repeats_and_stale_deliveries_change_nothing(labelstudio, labelstudio_users, client, settings):
    settings.ERRORMAP_PUBLIC_URL = "http://127.0.0.1:9"  # no live receiver: deliveries are made by hand
    make_taxonomy("errors-replay")
    _, predictions = make_work_set("ws-replay", 1)
    report = push_labelstudio(work_set="ws-replay", taxonomy="errors-replay")
    _, alice = labelstudio_users["alice"]
    task_id = LabelStudioTask.objects.get(prediction=predictions[0]).labelstudio_id
    first = alice.annotations.create(id=task_id, result=taxonomy_result("Fluency / Grammar"))
    newer = alice.annotations.update(id=first.id, result=taxonomy_result("Accuracy / Omission"))

    def deliver(action, annotation, secret=labelstudio.webhook_secret):
        body = {"action": action, "annotation": annotation, "project": {"id": report.labelstudio_project_id}}
        return client.post(
            "/api/labelstudio/webhook/", body, content_type="application/json",
            headers={WEBHOOK_SECRET_HEADER: secret},
        )

    def deliver_deleted(annotation_id):
        return client.post(
            "/api/labelstudio/webhook/",
            {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": annotation_id}],
             "project": {"id": report.labelstudio_project_id}},
            content_type="application/json", headers={WEBHOOK_SECRET_HEADER: labelstudio.webhook_secret},
        )

    as_json = lambda a: a.model_dump(mode="json")
    assert deliver("ANNOTATION_UPDATED", as_json(newer)).status_code == 200
    assert deliver("ANNOTATION_UPDATED", as_json(newer)).status_code == 200  # a repeat
    assert deliver("ANNOTATION_CREATED", as_json(first)).status_code == 200  # older, arriving late
    assert {(l[3], l[6]) for l in human_labels()} == {("Accuracy / Omission", f"ls:{first.id}")}
    assert deliver("ANNOTATION_CREATED", as_json(first), secret="wrong").status_code == 403

    # A delete that Label Studio did not make changes nothing: the delivery is only a hint.
    assert deliver_deleted(first.id).status_code == 200
    assert {(l[3], l[6]) for l in human_labels()} == {("Accuracy / Omission", f"ls:{first.id}")}
    alice.annotations.delete(id=first.id)
    assert deliver_deleted(first.id).status_code == 200 and human_labels() == set()
    assert deliver("ANNOTATION_UPDATED", as_json(newer)).status_code == 200  # late, after the delete
    assert human_labels() == set()


def test_forged_delivery_with_the_secret_changes_nothing_label_studio_does_not_hold(
    labelstudio, labelstudio_users, client, settings
):
    """An annotator who read the secret posts a payload dated 2099 with another result: nothing of it is
    stored, and the annotator's later real edit still arrives (by webhook and by sync)."""
    settings.ERRORMAP_PUBLIC_URL = "http://127.0.0.1:9"  # deliveries are made by hand
    make_taxonomy("errors-forged")
    _, predictions = make_work_set("ws-forged", 1)
    report = push_labelstudio(work_set="ws-forged", taxonomy="errors-forged")
    _, alice = labelstudio_users["alice"]
    task_id = LabelStudioTask.objects.get(prediction=predictions[0]).labelstudio_id
    real = alice.annotations.create(id=task_id, result=taxonomy_result("Fluency / Grammar"))

    def deliver(annotation):
        return client.post(
            "/api/labelstudio/webhook/",
            {"action": "ANNOTATION_UPDATED", "annotation": annotation,
             "project": {"id": report.labelstudio_project_id}},
            content_type="application/json", headers={WEBHOOK_SECRET_HEADER: labelstudio.webhook_secret},
        )

    forged = {**real.model_dump(mode="json"), "updated_at": "2099-01-01T00:00:00Z",
              "result": taxonomy_result("Accuracy / Mistranslation", note="forged")}
    assert deliver(forged).status_code == 200
    only_real = {("Fluency / Grammar", "", f"ls:{real.id}")}
    assert {(l[3], l[4], l[6]) for l in human_labels()} == only_real
    (row,) = LabelStudioAnnotation.objects.filter(labelstudio_id=real.id)
    assert row.labelstudio_updated_at.year < 2099 and row.result == real.model_dump(mode="json")["result"]
    # A forged annotation id on another project's or no task: nothing of ours to read, nothing written.
    assert deliver({**forged, "id": real.id + 1000, "task": task_id + 1000}).status_code == 200
    assert {(l[3], l[4], l[6]) for l in human_labels()} == only_real

    edited = alice.annotations.update(id=real.id, result=taxonomy_result("Accuracy / Omission", note="real"))
    assert deliver(edited.model_dump(mode="json")).status_code == 200
    assert {(l[3], l[4], l[6]) for l in human_labels()} == {("Accuracy / Omission", "real", f"ls:{real.id}")}
    before = human_labels()
    again = sync_labelstudio(work_set="ws-forged")
    assert (again.annotations_changed, again.labels_created, again.labels_deleted) == (0, 0, 0)
    assert human_labels() == before


def test_sync_does_not_delete_annotations_made_while_it_ran(labelstudio, labelstudio_users, client, settings,
                                                            monkeypatch):
    """An annotation made (and delivered) after the sync's export was taken is not in that export; the
    sync must not mark it deleted."""
    settings.ERRORMAP_PUBLIC_URL = "http://127.0.0.1:9"
    make_taxonomy("errors-during")
    _, predictions = make_work_set("ws-during", 2)
    report = push_labelstudio(work_set="ws-during", taxonomy="errors-during")
    _, alice = labelstudio_users["alice"]
    _, bob = labelstudio_users["bob"]
    tasks = dict(LabelStudioTask.objects.values_list("prediction_id", "labelstudio_id"))
    before = alice.annotations.create(id=tasks[predictions[0].pk], result=taxonomy_result("Fluency / Grammar"))
    made_during = []

    from annotation.services.labelstudio import sync as sync_module

    real_export = sync_module.export_annotations

    def export_then_annotate(ls_client, project_id, **kwargs):
        exported = real_export(ls_client, project_id, **kwargs)
        if kwargs.get("task_ids") is None and not made_during:  # the sync's export, once
            made = bob.annotations.create(id=tasks[predictions[1].pk], result=taxonomy_result("Accuracy / Omission"))
            made_during.append(made)
            delivered = client.post(
                "/api/labelstudio/webhook/",
                {"action": "ANNOTATION_CREATED", "annotation": made.model_dump(mode="json"),
                 "project": {"id": report.labelstudio_project_id}},
                content_type="application/json", headers={WEBHOOK_SECRET_HEADER: labelstudio.webhook_secret},
            )
            assert delivered.status_code == 200
        return exported

    monkeypatch.setattr(sync_module, "export_annotations", export_then_annotate)
    result = sync_labelstudio(work_set="ws-during")
    (made,) = made_during
    assert result.annotations_seen == 1 and result.annotations_deleted == 0
    assert not LabelStudioAnnotation.objects.get(labelstudio_id=made.id).deleted
    assert {(l[3], l[6]) for l in human_labels()} == {
        ("Fluency / Grammar", f"ls:{before.id}"), ("Accuracy / Omission", f"ls:{made.id}")
    }
    monkeypatch.undo()
    assert sync_labelstudio(work_set="ws-during").annotations_changed == 0  # the next sync agrees


def test_blind_mode_shows_annotators_nothing_of_the_judge(labelstudio):
    version = make_taxonomy("errors-blind")
    _, predictions = make_work_set("ws-blind", 2)
    add_judge_labels(version, predictions)
    report = push_labelstudio(work_set="ws-blind", taxonomy="errors-blind", mode="blind")
    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)
    config = admin.projects.get(id=report.labelstudio_project_id).label_config
    assert "judge" not in config.lower() and 'hint="the meaning of the source is changed"' in config
    for task in remote_tasks(admin, report.labelstudio_project_id):
        assert "judge_analysis" not in task.data and not task.predictions
        # Neither the evaluated model nor its score (the platform keeps both).
        shown = json.dumps(task.data)
        assert "model-a" not in shown and "score" not in shown and "0.1" not in shown
        assert task.data["meta"].startswith("dataset ws-blind-data · example ex")
    assert report.predictions_imported == 0
    assert Prediction.objects.get(pk=predictions[0].pk).model.name == "model-a"  # kept in the platform


def test_mixed_project_shows_predictions_on_exactly_the_stored_assisted_share(labelstudio):
    version = make_taxonomy("errors-mixed")
    _, predictions = make_work_set("ws-mixed", 10)
    add_judge_labels(version, predictions)
    report = push_labelstudio(
        work_set="ws-mixed", taxonomy="errors-mixed", mode="mixed", assisted_share=0.5, seed=3
    )
    project = LabelStudioProject.objects.get(labelstudio_id=report.labelstudio_project_id)
    assert (project.mode, project.assisted_share, project.assignment_seed) == ("mixed", 0.5, 3)
    stored = dict(project.tasks.values_list("labelstudio_id", "assisted"))
    task_of = dict(project.tasks.values_list("prediction_id", "labelstudio_id"))
    drawn = draw_assisted([p.pk for p in predictions], share=0.5, seed=3)  # the same draw, independently
    assert {t for t, assisted in stored.items() if assisted} == {task_of[pid] for pid in drawn}
    assert sorted(stored.values()) == [False] * 5 + [True] * 5 and report.tasks_assisted == 5

    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)
    remote = admin.projects.get(id=project.labelstudio_id)
    assert "judge_analysis" in remote.label_config and remote.show_collab_predictions
    tasks = remote_tasks(admin, project.labelstudio_id)
    assert len(tasks) == 10
    for task in tasks:
        shown = json.dumps(task.data)
        assert "model-a" not in shown and "score" not in shown and "0.1" not in shown
        if stored[task.id]:
            (pred,) = [p if isinstance(p, dict) else p.model_dump() for p in task.predictions]
            assert pred["result"][0]["value"]["taxonomy"] == [["Accuracy", "Mistranslation"]]
            assert "wrong word" in task.data["judge_analysis"]
        else:
            assert not task.predictions and task.data["judge_analysis"] == NO_JUDGE_SHOWN
    # Label Studio's own list of predictions covers exactly the assisted tasks.
    held = {p.task for p in admin.predictions.list(project=project.labelstudio_id)}
    assert held == {t for t, assisted in stored.items() if assisted}

    # A re-push keeps the draw and writes nothing; another share or seed is refused, not re-drawn.
    again = push_labelstudio(
        work_set="ws-mixed", taxonomy="errors-mixed", mode="mixed", assisted_share=0.5, seed=3
    )
    assert (again.tasks_imported, again.tasks_refreshed, again.predictions_refreshed) == (0, 0, 0)
    assert dict(project.tasks.values_list("labelstudio_id", "assisted")) == stored
    with pytest.raises(ErrorMapError, match="seed 3"):
        push_labelstudio(work_set="ws-mixed", taxonomy="errors-mixed", mode="mixed", assisted_share=0.5, seed=4)
    assert dict(project.tasks.values_list("labelstudio_id", "assisted")) == stored
    # The other modes leave the field empty.
    blind = push_labelstudio(work_set="ws-mixed", taxonomy="errors-mixed", mode="blind")
    assert set(LabelStudioTask.objects.filter(project__labelstudio_id=blind.labelstudio_project_id)
               .values_list("assisted", flat=True)) == {None}


def test_pushing_twice_does_not_duplicate_tasks(labelstudio):
    make_taxonomy("errors-twice")
    make_work_set("ws-twice", 5)
    first = push_labelstudio(work_set="ws-twice", taxonomy="errors-twice", batch_size=2)
    second = push_labelstudio(work_set="ws-twice", taxonomy="errors-twice", batch_size=2)
    assert (first.tasks_imported, second.tasks_imported) == (5, 0)
    assert first.labelstudio_project_id == second.labelstudio_project_id
    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)
    assert len(remote_tasks(admin, first.labelstudio_project_id)) == 5
    assert LabelStudioProject.objects.count() == 1 and LabelStudioTask.objects.count() == 5


def test_interrupted_push_resumes_without_duplicates(labelstudio):
    make_taxonomy("errors-resume")
    _, predictions = make_work_set("ws-resume", 5)
    first = push_labelstudio(work_set="ws-resume", taxonomy="errors-resume", batch_size=2)
    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)
    # As if the push had stopped in the third batch: the last task never reached Label Studio, and the
    # second batch reached it but the process died before recording it here.
    last = LabelStudioTask.objects.get(prediction=predictions[4])
    admin.tasks.delete(id=str(last.labelstudio_id))
    last.delete()
    LabelStudioTask.objects.filter(prediction__in=predictions[2:4]).delete()

    resumed = push_labelstudio(work_set="ws-resume", taxonomy="errors-resume", batch_size=2)
    assert (resumed.tasks_recovered, resumed.tasks_imported) == (2, 1)
    ids = sorted(t.data[PREDICTION_KEY] for t in remote_tasks(admin, first.labelstudio_project_id))
    assert ids == sorted(p.pk for p in predictions)
    assert LabelStudioTask.objects.filter(project__labelstudio_id=first.labelstudio_project_id).count() == 5


def test_push_adopts_a_project_created_before_an_interruption(labelstudio):
    make_taxonomy("errors-adopt")
    make_work_set("ws-adopt", 2)
    first = push_labelstudio(work_set="ws-adopt", taxonomy="errors-adopt")
    LabelStudioProject.objects.all().delete()  # the local record was never written
    again = push_labelstudio(work_set="ws-adopt", taxonomy="errors-adopt")
    assert again.labelstudio_project_id == first.labelstudio_project_id
    assert (again.created_project, again.tasks_recovered, again.tasks_imported) == (False, 2, 0)


def test_a_project_adopted_by_title_keeps_out_tasks_of_another_databases_predictions(labelstudio):
    # Label Studio outlives the platform's database (a wiped var/, or the demo run again on a new one):
    # the project is adopted by its title, but its tasks name predictions that do not exist here.
    make_taxonomy("errors-foreign")
    _, old = make_work_set("ws-foreign", 2)
    first = push_labelstudio(work_set="ws-foreign", taxonomy="errors-foreign")
    LabelStudioProject.objects.all().delete()
    WorkSet.objects.filter(name="ws-foreign").delete()
    Dataset.objects.filter(name="ws-foreign-data").delete()  # its examples and predictions go with it
    _, new = make_work_set("ws-foreign", 3)
    assert not {p.pk for p in new} & {p.pk for p in old}

    again = push_labelstudio(work_set="ws-foreign", taxonomy="errors-foreign")
    assert again.labelstudio_project_id == first.labelstudio_project_id
    assert (again.tasks_recovered, again.tasks_imported) == (0, 3)
    assert sorted(LabelStudioTask.objects.values_list("prediction_id", flat=True)) == sorted(p.pk for p in new)


def test_new_taxonomy_version_updates_config_and_keeps_annotations(labelstudio, labelstudio_users):
    v1 = make_taxonomy("errors-evolve")
    _, predictions = make_work_set("ws-evolve", 1)
    report = push_labelstudio(work_set="ws-evolve", taxonomy="errors-evolve@1")
    _, alice = labelstudio_users["alice"]
    task_id = LabelStudioTask.objects.get(prediction=predictions[0]).labelstudio_id
    annotation = alice.annotations.create(
        id=task_id, result=taxonomy_result("Fluency / Grammar", "Accuracy / Omission")
    )
    sync_labelstudio(work_set="ws-evolve")
    assert {(l[2], l[3]) for l in human_labels()} == {
        ("errors-evolve@1", "Fluency / Grammar"), ("errors-evolve@1", "Accuracy / Omission")
    }

    v2 = create_version(
        taxonomy_name="errors-evolve",
        categories=[
            CategorySpec("Accuracy / Mistranslation", "meaning changed"),
            CategorySpec("Accuracy / Omission", "part missing"),
            CategorySpec("Fluency / Grammaticality", "ungrammatical output"),
        ],
    )
    for old in Category.objects.filter(version=v1).exclude(path__in=NON_ERROR_VERDICTS):  # verdicts: same path
        new_path = old.path.replace("Grammar", "Grammaticality")
        CategoryMapping.objects.create(
            source=old, target=Category.objects.get(version=v2, path=new_path),
            kind=CategoryMapping.Kind.RENAMED if new_path != old.path else CategoryMapping.Kind.KEPT,
        )
    again = push_labelstudio(work_set="ws-evolve", taxonomy="errors-evolve@2")
    assert again.config_updated and again.labelstudio_project_id == report.labelstudio_project_id

    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)
    config = admin.projects.get(id=report.labelstudio_project_id).label_config
    assert 'value="Grammaticality"' in config and 'value="Grammar"' not in config
    (kept,) = admin.annotations.list(id=task_id)
    assert kept.id == annotation.id and kept.result[0]["value"] == annotation.result[0]["value"]
    assert {(l[2], l[3]) for l in human_labels()} == {
        ("errors-evolve@2", "Fluency / Grammaticality"), ("errors-evolve@2", "Accuracy / Omission")
    }


def test_new_taxonomy_version_gives_existing_assisted_tasks_the_judges_new_predictions(
    labelstudio, labelstudio_users
):
    v1 = make_taxonomy("errors-repredict")
    _, (p0, p1) = make_work_set("ws-repredict", 2)
    add_judge_labels(v1, [p0], path="Fluency / Grammar", confidence=0.7)
    add_judge_labels(v1, [p1], path="Accuracy / Omission", confidence=0.6)
    first = push_labelstudio(work_set="ws-repredict", taxonomy="errors-repredict@1", mode="assisted")
    project_id = first.labelstudio_project_id
    task_of = dict(LabelStudioTask.objects.values_list("prediction_id", "labelstudio_id"))
    _, alice = labelstudio_users["alice"]
    annotation = alice.annotations.create(id=task_of[p0.pk], result=taxonomy_result("Fluency / Grammar"))

    # Version 2 renames Grammar; the judge labels the work set under it with a new classify prompt.
    v2 = create_version(
        taxonomy_name="errors-repredict",
        categories=[*CATEGORIES[:2], CategorySpec("Fluency / Grammaticality", "ungrammatical output")],
    )
    for old in Category.objects.filter(version=v1).exclude(path__in=NON_ERROR_VERDICTS):  # verdicts: same path
        new_path = old.path.replace("Grammar", "Grammaticality")
        CategoryMapping.objects.create(
            source=old, target=Category.objects.get(version=v2, path=new_path),
            kind=CategoryMapping.Kind.RENAMED if new_path != old.path else CategoryMapping.Kind.KEPT,
        )
    judge_v2 = {"prompt_name": "classify-v2", "prompt_sha": "cd" * 32, "title": "v2: wrong word in"}
    add_judge_labels(v2, [p0], path="Fluency / Grammaticality", confidence=0.9, **judge_v2)
    add_judge_labels(v2, [p1], path="Accuracy / Mistranslation", confidence=0.5, **judge_v2)

    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)

    def held(task_id):
        """What Label Studio holds as the task's predictions: (id, model version, categories, score)."""
        return sorted(
            (p.id, p.model_version, p.result[0]["value"]["taxonomy"], p.score)
            for p in admin.predictions.list(task=task_id)
        )

    v2_model = "judge:offline+classify-v2@cdcdcdcd"
    again = push_labelstudio(work_set="ws-repredict", taxonomy="errors-repredict@2", mode="assisted")
    assert again.labelstudio_project_id == project_id and again.config_updated
    # Only the judge's version-2 predictions: the version-1 ones (old categories, old prompt) are gone.
    assert [h[1:] for h in held(task_of[p0.pk])] == [(v2_model, [["Fluency", "Grammaticality"]], 0.9)]
    assert [h[1:] for h in held(task_of[p1.pk])] == [(v2_model, [["Accuracy", "Mistranslation"]], 0.5)]
    tasks = remote_tasks(admin, project_id)
    assert sorted(t.id for t in tasks) == sorted(task_of.values())  # the same tasks, none added
    assert {t.data[PREDICTION_KEY]: t.data["judge_analysis"].splitlines()[0] for t in tasks} == {
        p0.pk: "v2: wrong word in ex0", p1.pk: "v2: wrong word in ex1"
    }
    # Label Studio pre-fills only the project's model version: it now names the version-2 predictions.
    assert admin.projects.get(id=project_id).model_version == v2_model
    # The human annotation is untouched, and read under version 2.
    (kept,) = admin.annotations.list(id=task_of[p0.pk])
    assert (kept.id, kept.result, kept.updated_at) == (annotation.id, annotation.result, annotation.updated_at)
    # No webhook receiver ran: the push does not pull annotations (that is the sync's job); the sync reads
    # the annotation under version 2.
    assert human_labels() == set()
    sync_labelstudio(work_set="ws-repredict")
    assert {(l[2], l[3]) for l in human_labels()} == {("errors-repredict@2", "Fluency / Grammaticality")}
    assert (again.tasks_imported, again.tasks_refreshed, again.predictions_refreshed) == (0, 2, 4)

    # Pushing again writes nothing: same predictions (same ids), no duplicates.
    before = {t: held(t) for t in task_of.values()}
    stamps = {t.id: t.updated_at for t in remote_tasks(admin, project_id)}
    repeat = push_labelstudio(work_set="ws-repredict", taxonomy="errors-repredict@2", mode="assisted")
    assert (repeat.config_updated, repeat.tasks_imported, repeat.tasks_refreshed,
            repeat.predictions_refreshed) == (False, 0, 0, 0)
    assert {t: held(t) for t in task_of.values()} == before
    assert {t.id: t.updated_at for t in remote_tasks(admin, project_id)} == stamps

    # The judge relabels one item under the same version and prompt: its prediction changes in place.
    Label.objects.filter(prediction=p1, taxonomy_version=v2, source=Label.Source.JUDGE).update(
        category=Category.objects.get(version=v2, path="Accuracy / Omission"), confidence=0.75
    )
    relabelled = push_labelstudio(work_set="ws-repredict", taxonomy="errors-repredict@2", mode="assisted")
    assert (relabelled.tasks_refreshed, relabelled.predictions_refreshed) == (1, 1)
    (prediction_id, *_), = before[task_of[p1.pk]]
    assert held(task_of[p1.pk]) == [(prediction_id, v2_model, [["Accuracy", "Omission"]], 0.75)]
    assert held(task_of[p0.pk]) == before[task_of[p0.pk]]
    assert [a.id for a in admin.annotations.list(id=task_of[p0.pk])] == [annotation.id]


def test_unreachable_labelstudio_gives_a_clear_error(settings):
    settings.LABEL_STUDIO_URL = "http://127.0.0.1:9"
    settings.LABEL_STUDIO_API_KEY = "a" * 40
    with pytest.raises(LabelStudioError, match=r"not reachable at http://127.0.0.1:9.*scripts/labelstudio start"):
        labelstudio_client()
    make_taxonomy("errors-down")
    make_work_set("ws-down", 1)
    with pytest.raises(CommandError, match="not reachable"):
        call_command("push_labelstudio", "--work-set", "ws-down", "--taxonomy", "errors-down")


def test_wrong_token_gives_a_clear_error(labelstudio, settings):
    settings.LABEL_STUDIO_API_KEY = "0" * 40
    with pytest.raises(LabelStudioError, match=r"refused the API token \(HTTP 401\)"):
        labelstudio_client()
    with pytest.raises(CommandError, match="refused the API token"):
        call_command("sync_labelstudio")


def test_push_with_a_wrong_token_gives_the_clear_error_and_records_no_project(labelstudio, settings):
    # The push does not check the token up front: opening the project is the first authenticated request.
    make_taxonomy("errors-token")
    make_work_set("ws-token", 2)
    settings.LABEL_STUDIO_API_KEY = "0" * 40
    with pytest.raises(CommandError, match=r"refused the API token \(HTTP 401\)"):
        call_command("push_labelstudio", "--work-set", "ws-token", "--taxonomy", "errors-token")
    assert not LabelStudioProject.objects.filter(work_set__name="ws-token").exists()
    assert not LabelStudioTask.objects.filter(prediction__work_sets__name="ws-token").exists()


def test_verdict_choices_are_offered_and_mirrored_like_categories(labelstudio, labelstudio_users, settings):
    settings.ERRORMAP_PUBLIC_URL = "http://127.0.0.1:9"  # no receiver: the sync reads the annotations
    version = make_taxonomy("errors-verdicts")
    _, (p0, p1) = make_work_set("ws-verdicts", 2)
    report = push_labelstudio(work_set="ws-verdicts", taxonomy="errors-verdicts")
    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)
    config = admin.projects.get(id=report.labelstudio_project_id).label_config
    assert '<Choice value="Not an error"' in config and '<Choice value="Broken item or bad reference"' in config
    tasks = dict(LabelStudioTask.objects.values_list("prediction_id", "labelstudio_id"))
    _, alice = labelstudio_users["alice"]
    a0 = alice.annotations.create(id=tasks[p0.pk], result=taxonomy_result("Not an error", note="Canberra is right"))
    a1 = alice.annotations.create(id=tasks[p1.pk], result=taxonomy_result("Broken item or bad reference"))
    sync_labelstudio(work_set="ws-verdicts")
    assert {(l[0], l[3], l[4], l[6]) for l in human_labels()} == {
        (p0.pk, "Not an error", "Canberra is right", f"ls:{a0.id}"),
        (p1.pk, "Broken item or bad reference", "", f"ls:{a1.id}"),
    }
    # Stored as the version's own top-level categories, not as 'Other' with a proposal.
    verdicts = Category.objects.filter(version=version, parent=None, path__in=["Not an error",
                                                                               "Broken item or bad reference"])
    assert verdicts.count() == 2
    assert set(Label.objects.filter(source="human").values_list("category_id", flat=True)) == {
        c.pk for c in verdicts
    }
