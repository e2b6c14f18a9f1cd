"""The Label Studio adjudication project against a real Label Studio (started by the test setup): open
queue items pushed with every annotator's and the judge's labels, an adjudicator's annotations coming back
as decisions (who, why, gold labels) by webhook and by sync, updates superseding, deletions withdrawing."""
from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from label_studio_sdk import LabelStudio

from annotation.core.adjudication import RULES
from annotation.models import (
    AdjudicationDecision,
    AdjudicationItem,
    Annotator,
    Label,
    LabelStudioProject,
    LabelStudioTask,
    WorkSet,
    WorkSetFailure,
)
from annotation.selectors import LabelFilter
from annotation.services.adjudication import adjudicate_labels, resolve_item
from annotation.services.labelstudio.adjudication import push_adjudication
from annotation.services.labelstudio.client import WEBHOOK_SECRET_HEADER
from annotation.services.labelstudio.config import ITEM_KEY, PREDICTION_KEY
from annotation.services.labelstudio.sync import sync_labelstudio
from tests.integration.agreement_factories import add_label, make_prediction, make_version
from tests.integration.conftest_labelstudio import settle

pytestmark = [pytest.mark.labelstudio, pytest.mark.django_db(transaction=True)]

HOSTILE = "<script>alert(1)</script> $output {{ 7*7 }}"


@pytest.fixture(scope="session")
def adjudicator_users(labelstudio_server):
    """Label Studio users who adjudicate, each with their own API token."""
    return labelstudio_server.create_users(("carol", "dave"))


def make_queue(taxonomy: str, example_ids: list[str], dataset: str) -> dict[str, AdjudicationItem]:
    """Items where three annotators disagree (and the judge says Logic), queued by the unanimous rule."""
    version = make_version(["R / Arithmetic", "R / Logic", "K / Fact"], name=taxonomy)
    for example_id in example_ids:
        p = make_prediction(example_id, dataset=dataset, output=HOSTILE)
        for n, category in enumerate(["R / Arithmetic", "R / Logic", "K / Fact"]):
            add_label(p, version, f"h{n}", category)
        add_label(p, version, "judge-v1", "R / Logic", source="judge", confidence=0.7)
    report = adjudicate_labels(label_filter=LabelFilter(taxonomy=taxonomy), rule=RULES["unanimous"])
    assert (report.queued, report.auto_gold) == (len(example_ids), 0)
    return {q.prediction.example.example_id: q
            for q in AdjudicationItem.objects.filter(taxonomy_version=version).select_related("prediction__example")}


def decision_result(*paths: str, reason: str = "") -> list[dict]:
    result = [{"from_name": "category", "to_name": "output", "type": "taxonomy",
               "value": {"taxonomy": [p.split(" / ") for p in paths]}}] if paths else []
    if reason:
        result.append({"from_name": "reason", "to_name": "output", "type": "textarea",
                       "value": {"text": [reason]}})
    return result


def gold(item: AdjudicationItem) -> list[tuple[str, str, str]]:
    return sorted(Label.objects.filter(source="gold", prediction_id=item.prediction_id)
                  .values_list("category__path", "annotator__name", "rationale"))


def decisions(item: AdjudicationItem) -> list[tuple]:
    """(categories, who, their Label Studio id, kind, why, superseded, external id), oldest first."""
    return [(d.categories, d.decided_by.name, d.decided_by.labelstudio_user_id, d.decided_by.kind, d.reason,
             d.superseded, d.external_id)
            for d in AdjudicationDecision.objects.filter(prediction_id=item.prediction_id)
            .select_related("decided_by").order_by("pk")]


def status(item: AdjudicationItem) -> str:
    return AdjudicationItem.objects.get(pk=item.pk).status


def remote_tasks(client: LabelStudio, project_id: int) -> list:
    return list(client.tasks.list(project=project_id, fields="all", page_size=1000))


def test_push_shows_every_label_as_text_and_decisions_arrive_by_webhook_and_by_sync(
    labelstudio, adjudicator_users, live_server, settings
):
    settings.ERRORMAP_PUBLIC_URL = live_server.url
    queue = make_queue("adj-flow", ["a", "b", "c"], dataset="adjflow")
    a, b, c = queue["a"], queue["b"], queue["c"]
    carol_id, carol = adjudicator_users["carol"]

    report = push_adjudication(taxonomy="adj-flow", adjudicators=["carol@example.org"])
    assert (report.created_project, report.open_items, report.tasks_imported) == (True, 3, 3)
    assert report.adjudicators == ("carol@example.org",)
    carol_row = Annotator.objects.get(labelstudio_user_id=carol_id)
    assert (carol_row.name, carol_row.kind) == ("carol@example.org", "adjudicator")
    project = LabelStudioProject.objects.get(labelstudio_id=report.labelstudio_project_id)
    assert (project.mode, project.work_set, str(project.taxonomy_version)) == ("adjudication", None, "adj-flow@1")

    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)
    config = admin.projects.get(id=report.labelstudio_project_id).label_config
    assert '<Taxonomy name="category" toName="output" showFullPath="true" required="true">' in config
    assert '<TextArea name="reason" toName="output" required="true"' in config
    for name in ("annotator_labels", "judge_labels", "why", "input", "output", "reference"):
        assert f'<Text name="{name}" value="${name}"/>' in config
    assert "h0" not in config and "script" not in config  # untrusted text is task data, never config XML
    tasks = remote_tasks(admin, report.labelstudio_project_id)
    assert sorted(t.data[ITEM_KEY] for t in tasks) == sorted(q.pk for q in (a, b, c))
    for task in tasks:
        assert task.data["annotator_labels"] == "h0: R / Arithmetic\nh1: R / Logic\nh2: K / Fact"
        assert task.data["judge_labels"] == "judge-v1: R / Logic (confidence 0.70)"
        assert task.data["output"] == HOSTILE  # kept as text; <Text> shows it as text
        assert not task.predictions  # the adjudicator decides; nothing is pre-filled
    task_of = {t.data[PREDICTION_KEY]: t.id for t in tasks}

    # By webhook: a decision with who and why, gold labels as the command writes them.
    reason = "the first wrong step is 12*3=38 <b>not</b> logic"
    made = carol.annotations.create(id=task_of[a.prediction_id], result=decision_result("R / Arithmetic",
                                                                                        reason=reason))
    settle(lambda: status(a) == "resolved")
    assert decisions(a) == [(["R / Arithmetic"], "carol@example.org", carol_id, "adjudicator", reason, False,
                             f"ls:{made.id}")]
    assert gold(a) == [("R / Arithmetic", "carol@example.org", reason)]
    assert status(a) == "resolved"
    decision_id = AdjudicationDecision.objects.get(prediction_id=a.prediction_id).pk
    assert set(Label.objects.filter(source="gold", prediction_id=a.prediction_id)
               .values_list("external_id", flat=True)) == {f"adjudication:{decision_id}"}

    # An update supersedes; the first decision stays in the history.
    carol.annotations.update(id=made.id, result=decision_result("K / Fact", "R / Arithmetic", reason="both"))
    settle(lambda: len(decisions(a)) == 2)
    assert [(d[0], d[4], d[5]) for d in decisions(a)] == [
        (["R / Arithmetic"], reason, True), (["K / Fact", "R / Arithmetic"], "both", False)]
    assert gold(a) == [("K / Fact", "carol@example.org", "both"), ("R / Arithmetic", "carol@example.org", "both")]

    # A deletion withdraws: no gold, the item is open again, the history is kept.
    on_c = carol.annotations.create(id=task_of[c.prediction_id], result=decision_result("R / Logic", reason="x"))
    settle(lambda: status(c) == "resolved")
    assert gold(c) == [("R / Logic", "carol@example.org", "x")] and status(c) == "resolved"
    carol.annotations.delete(id=on_c.id)
    settle(lambda: status(c) == "open")
    assert gold(c) == [] and status(c) == "open"
    assert [(d[0], d[5]) for d in decisions(c)] == [(["R / Logic"], True)]

    # Pushing again imports nothing (the open item c is already there, resolved a is not pushed again);
    # the webhook now points nowhere, so only the sync can bring what follows.
    settings.ERRORMAP_PUBLIC_URL = "http://127.0.0.1:9"
    again = push_adjudication(taxonomy="adj-flow")
    assert (again.created_project, again.labelstudio_project_id, again.open_items, again.tasks_imported) == (
        False, report.labelstudio_project_id, 2, 0)
    assert len(remote_tasks(admin, report.labelstudio_project_id)) == 3
    assert LabelStudioTask.objects.filter(project=project).count() == 3

    on_b = carol.annotations.create(id=task_of[b.prediction_id], result=decision_result("K / Fact", reason="a fact"))
    assert decisions(b) == [] and status(b) == "open"
    pulled = sync_labelstudio()
    assert (pulled.decisions_made, pulled.decisions_withdrawn, pulled.decisions_refused) == (1, 0, 0)
    assert decisions(b) == [(["K / Fact"], "carol@example.org", carol_id, "adjudicator", "a fact", False,
                             f"ls:{on_b.id}")]
    assert gold(b) == [("K / Fact", "carol@example.org", "a fact")] and status(b) == "resolved"

    # Repeats change nothing, and a later decision made elsewhere is not overridden by an old annotation.
    before = list(AdjudicationDecision.objects.order_by("pk").values_list("pk", "superseded"))
    assert sync_labelstudio().decisions_made == 0
    assert list(AdjudicationDecision.objects.order_by("pk").values_list("pk", "superseded")) == before
    resolve_item(item=str(b.pk), categories=["R / Logic"], by="dave", reason="on second thought")
    assert sync_labelstudio().decisions_made == 0
    assert gold(b) == [("R / Logic", "dave", "on second thought")]

    # A deletion that only the sync sees withdraws too.
    carol.annotations.delete(id=made.id)
    pulled = sync_labelstudio()
    assert (pulled.decisions_made, pulled.decisions_withdrawn, pulled.annotations_deleted) == (0, 1, 1)
    assert gold(a) == [] and status(a) == "open"
    assert [d[5] for d in decisions(a)] == [True, True]


def test_lost_decisions_are_rebuilt_by_sync_exactly(labelstudio, adjudicator_users, settings):
    settings.ERRORMAP_PUBLIC_URL = "http://127.0.0.1:9"  # no webhook receiver
    queue = make_queue("adj-sync", ["x"], dataset="adjsync")
    x = queue["x"]
    report = push_adjudication(taxonomy="adj-sync")
    dave_id, dave = adjudicator_users["dave"]
    task_id = LabelStudioTask.objects.get(project__labelstudio_id=report.labelstudio_project_id,
                                          prediction_id=x.prediction_id).labelstudio_id
    first = dave.annotations.create(id=task_id, result=decision_result("R / Logic", reason="chain breaks at 2"))
    # An annotation without a reason cannot be a decision: refused, nothing written.
    dave.annotations.create(id=task_id, result=decision_result("K / Fact"))
    out = io.StringIO()
    call_command("sync_labelstudio", stdout=out)
    assert "0 made, 0 withdrawn, 1 annotations refused" in out.getvalue()
    assert decisions(x) == []
    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)
    (latest,) = [a for a in admin.annotations.list(id=task_id) if a.id != first.id]
    admin.annotations.delete(id=latest.id)
    out = io.StringIO()
    call_command("sync_labelstudio", stdout=out)
    assert "1 made, 0 withdrawn, 0 annotations refused" in out.getvalue()
    # First seen by the sync: the adjudicator is named after their Label Studio email.
    assert decisions(x) == [(["R / Logic"], "dave@example.org", dave_id, "adjudicator", "chain breaks at 2", False,
                             f"ls:{first.id}")]
    assert gold(x) == [("R / Logic", "dave@example.org", "chain breaks at 2")]


def test_push_twice_duplicates_nothing_and_resolved_items_are_not_pushed(labelstudio):
    queue = make_queue("adj-twice", ["p", "q", "r"], dataset="adjtwice")
    resolve_item(item=str(queue["p"].pk), categories=["K / Fact"], by="ada", reason="settled before the push")
    out = io.StringIO()
    call_command("push_adjudication", "--taxonomy", "adj-twice@1", stdout=out)
    assert "2 open items, 2 imported now" in out.getvalue()
    out = io.StringIO()
    call_command("push_adjudication", "--taxonomy", "adj-twice", stdout=out)
    assert "up to date: 2 open items, 0 imported now" in out.getvalue()
    (project,) = LabelStudioProject.objects.all()
    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)
    pushed = sorted(t.data[ITEM_KEY] for t in remote_tasks(admin, project.labelstudio_id))
    assert pushed == sorted([queue["q"].pk, queue["r"].pk])

    # One work set's items go to a project of their own.
    work_set = WorkSet.objects.create(name="adj-ws", ratio=1, seed=0)
    WorkSetFailure.objects.create(work_set=work_set, prediction_id=queue["r"].prediction_id)
    scoped = push_adjudication(taxonomy="adj-twice", work_set="adj-ws")
    assert scoped.labelstudio_project_id != project.labelstudio_id and scoped.tasks_imported == 1
    assert [t.data[ITEM_KEY] for t in remote_tasks(admin, scoped.labelstudio_project_id)] == [queue["r"].pk]


def relabel(item: AdjudicationItem, annotator: str, *paths: str) -> None:
    """The annotator's human labels on the item become `paths` (as a later import or sync would make them)."""
    Label.objects.filter(prediction_id=item.prediction_id, taxonomy_version=item.taxonomy_version,
                         annotator__name=annotator, source="human").delete()
    add_label(item.prediction, item.taxonomy_version, annotator, *paths)


def test_a_reopened_item_shows_its_new_labels_in_the_same_task(labelstudio):
    queue = make_queue("adj-reopen", ["k", "m"], dataset="adjreopen")
    k, m = queue["k"], queue["m"]
    first = push_adjudication(taxonomy="adj-reopen")
    project_id = first.labelstudio_project_id
    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)
    pushed = {t.data[ITEM_KEY]: t for t in remote_tasks(admin, project_id)}
    assert pushed[k.pk].data["annotator_labels"] == "h0: R / Arithmetic\nh1: R / Logic\nh2: K / Fact"

    # h1 and h2 come round to h0's view and the rule settles k; then h2 changes their mind again and a
    # fourth annotator arrives: k is open again, with other labels and another reason.
    unanimous = {"label_filter": LabelFilter(taxonomy="adj-reopen"), "rule": RULES["unanimous"]}
    relabel(k, "h1", "R / Arithmetic")
    relabel(k, "h2", "R / Arithmetic")
    adjudicate_labels(**unanimous)
    assert status(k) == "auto_gold"
    relabel(k, "h2", "K / Fact")
    add_label(k.prediction, k.taxonomy_version, "h3", "R / Logic")
    assert adjudicate_labels(**unanimous).reopened == 1 and status(k) == "open"

    again = push_adjudication(taxonomy="adj-reopen")
    tasks = {t.data[ITEM_KEY]: t for t in remote_tasks(admin, project_id)}
    assert sorted(t.id for t in tasks.values()) == sorted(t.id for t in pushed.values())  # no new task
    assert tasks[k.pk].data["annotator_labels"] == (
        "h0: R / Arithmetic\nh1: R / Arithmetic\nh2: K / Fact\nh3: R / Logic")
    # The queue's reason, as the adjudicate command shows it (with how to proceed after the first "; ").
    assert tasks[k.pk].data["why"].split("; ")[0] == "disagreement: at most 2 of 4 annotators give the same categories"
    assert tasks[k.pk].data["judge_labels"] == "judge-v1: R / Logic (confidence 0.70)"
    assert tasks[k.pk].data["output"] == HOSTILE
    assert tasks[m.pk].data == pushed[m.pk].data  # unchanged item, unchanged task
    assert (again.tasks_imported, again.tasks_refreshed) == (0, 1)
    assert LabelStudioTask.objects.filter(project__labelstudio_id=project_id).count() == 2

    # Pushing again writes nothing.
    stamps = {t.id: t.updated_at for t in tasks.values()}
    repeat = push_adjudication(taxonomy="adj-reopen")
    assert (repeat.tasks_imported, repeat.tasks_refreshed) == (0, 0)
    assert {t.id: t.updated_at for t in remote_tasks(admin, project_id)} == stamps


def test_webhook_repeats_and_stale_deliveries_change_nothing(labelstudio, adjudicator_users, client, settings):
    settings.ERRORMAP_PUBLIC_URL = "http://127.0.0.1:9"  # deliveries are made by hand below
    queue = make_queue("adj-replay", ["z"], dataset="adjreplay")
    z = queue["z"]
    report = push_adjudication(taxonomy="adj-replay")
    _, carol = adjudicator_users["carol"]
    task_id = LabelStudioTask.objects.get(prediction_id=z.prediction_id).labelstudio_id
    first = carol.annotations.create(id=task_id, result=decision_result("R / Logic", reason="old"))
    newer = carol.annotations.update(id=first.id, result=decision_result("K / Fact", reason="new"))

    def deliver(action, annotation):
        return client.post("/api/labelstudio/webhook/",
                           {"action": action, "annotation": annotation,
                            "project": {"id": report.labelstudio_project_id}},
                           content_type="application/json", headers={WEBHOOK_SECRET_HEADER: labelstudio.webhook_secret})

    assert deliver("ANNOTATION_UPDATED", newer.model_dump(mode="json")).status_code == 200
    assert deliver("ANNOTATION_UPDATED", newer.model_dump(mode="json")).status_code == 200  # a repeat
    assert deliver("ANNOTATION_CREATED", first.model_dump(mode="json")).status_code == 200  # older, late
    assert [(d[0], d[4], d[5]) for d in decisions(z)] == [(["K / Fact"], "new", False)]
    # Delivered by webhook only: the adjudicator is known by id until a sync learns the email.
    assert decisions(z)[0][1] == f"labelstudio-user-{newer.completed_by}"
    assert sync_labelstudio().decisions_made == 0
    assert decisions(z)[0][1] == "carol@example.org"
    # Human labels are untouched by an adjudication project.
    assert not Label.objects.filter(source="human", external_id__startswith="ls:").exists()
