"""Where webhooks go and whether they arrive: the URL is derived from where the app serves, an existing
webhook is never moved to a derived default without a word, and failing deliveries are reported (Label
Studio keeps no record of them)."""
from __future__ import annotations

import io
import os

import pytest
from django.core.management import call_command
from label_studio_sdk import LabelStudio

from annotation import selectors
from annotation.models import LabelStudioProject, LabelStudioTask
from annotation.services.labelstudio import sync as sync_module
from annotation.services.labelstudio.client import WEBHOOK_PATH, public_url
from annotation.services.labelstudio.push import push_labelstudio
from annotation.services.labelstudio.sync import sync_labelstudio
from tests.integration.conftest_labelstudio import settle
from tests.integration.test_labelstudio import make_taxonomy, make_work_set, taxonomy_result

pytestmark = [pytest.mark.labelstudio, pytest.mark.django_db(transaction=True)]


def test_public_url_is_where_the_app_serves_when_not_set(settings, tmp_path):
    settings.ERRORMAP_PUBLIC_URL = ""
    settings.ERRORMAP_WEB_PORT = 8123
    settings.VAR_DIR = tmp_path
    assert public_url() == ("http://127.0.0.1:8123", "ERRORMAP_WEB_PORT")  # was always :8000 before
    # scripts/web writes the URL it serves at; it counts while its server runs.
    (tmp_path / "web.url").write_text("http://127.0.0.1:8555\n")
    (tmp_path / "web.pid").write_text(str(os.getpid()))
    assert public_url()[0] == "http://127.0.0.1:8555"
    (tmp_path / "web.pid").write_text("999999999")  # no such process: a stale file
    assert public_url()[0] == "http://127.0.0.1:8123"
    settings.ERRORMAP_PUBLIC_URL = "https://errormap.example.org/"
    assert public_url() == ("https://errormap.example.org", "ERRORMAP_PUBLIC_URL")


def hooks(labelstudio, project_id):
    admin = LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key)
    return [h.url for h in admin.webhooks.list(project=str(project_id)) if h.project == project_id]


def test_a_push_never_moves_a_webhook_to_a_derived_default_without_saying_so(labelstudio, settings, tmp_path):
    settings.ERRORMAP_PUBLIC_URL = ""
    settings.VAR_DIR = tmp_path
    settings.ERRORMAP_WEB_PORT = 8123
    make_taxonomy("errors-hookurl")
    make_work_set("ws-hookurl", 1)
    first = push_labelstudio(work_set="ws-hookurl", taxonomy="errors-hookurl")
    served = "http://127.0.0.1:8123" + WEBHOOK_PATH
    assert hooks(labelstudio, first.labelstudio_project_id) == [served] and first.webhook_url == served

    # A later push from a shell with another (derived) port keeps the webhook, and says so.
    settings.ERRORMAP_WEB_PORT = 8000
    out, err = io.StringIO(), io.StringIO()
    call_command("push_labelstudio", "--work-set", "ws-hookurl", "--taxonomy", "errors-hookurl", stdout=out,
                 stderr=err)
    assert hooks(labelstudio, first.labelstudio_project_id) == [served]
    assert "goes to " + served in err.getvalue() and "--webhook-url" in err.getvalue()

    # Told where: it moves (an explicit --webhook-url, or ERRORMAP_PUBLIC_URL).
    moved = push_labelstudio(work_set="ws-hookurl", taxonomy="errors-hookurl", webhook_url="http://10.0.0.5:9000")
    assert hooks(labelstudio, first.labelstudio_project_id) == ["http://10.0.0.5:9000" + WEBHOOK_PATH]
    assert moved.webhook_warning == ""
    settings.ERRORMAP_PUBLIC_URL = "http://127.0.0.1:8777"
    push_labelstudio(work_set="ws-hookurl", taxonomy="errors-hookurl")
    assert hooks(labelstudio, first.labelstudio_project_id) == ["http://127.0.0.1:8777" + WEBHOOK_PATH]


def test_sync_and_the_progress_page_report_failing_deliveries(labelstudio, labelstudio_users, live_server,
                                                            settings, monkeypatch):
    # Deliveries go nowhere: nothing listens on port 9.
    settings.ERRORMAP_PUBLIC_URL = "http://127.0.0.1:9"
    make_taxonomy("errors-failing")
    _, predictions = make_work_set("ws-failing", 2)
    report = push_labelstudio(work_set="ws-failing", taxonomy="errors-failing")
    tasks = dict(LabelStudioTask.objects.values_list("prediction_id", "labelstudio_id"))
    _, alice = labelstudio_users["alice"]
    alice.annotations.create(id=tasks[predictions[0].pk], result=taxonomy_result("Fluency / Grammar"))
    # Changes older than the grace period count as missed; here every change is (the test cannot wait).
    monkeypatch.setattr(sync_module, "DELIVERY_GRACE", sync_module.DELIVERY_GRACE * 0)

    err = io.StringIO()
    call_command("sync_labelstudio", "--work-set", "ws-failing", stdout=io.StringIO(), stderr=err)
    assert f"project {report.labelstudio_project_id}" in err.getvalue()
    assert "1 annotation change(s) reached the platform only by this sync" in err.getvalue()
    assert "http://127.0.0.1:9" + WEBHOOK_PATH in err.getvalue() and "last delivery received: never" in err.getvalue()
    (progress,) = [p for p in selectors.labelstudio_progress() if p.labelstudio_id == report.labelstudio_project_id]
    assert progress.webhook.startswith("failing: 1 change(s)")

    # Pointed at a live receiver, deliveries arrive: the next sync finds nothing missed, the page says so.
    push_labelstudio(work_set="ws-failing", taxonomy="errors-failing", webhook_url=live_server.url)
    alice.annotations.create(id=tasks[predictions[1].pk], result=taxonomy_result("Accuracy / Omission"))
    settle(lambda: LabelStudioTask.objects.get(labelstudio_id=tasks[predictions[1].pk]).annotations.exists())
    project = LabelStudioProject.objects.get(labelstudio_id=report.labelstudio_project_id)
    assert project.last_delivery_at is not None
    again = sync_labelstudio(work_set="ws-failing")
    assert again.webhook_problems == () and again.annotations_changed == 0
    (progress,) = [p for p in selectors.labelstudio_progress() if p.labelstudio_id == report.labelstudio_project_id]
    assert progress.webhook.startswith("deliveries arriving")
