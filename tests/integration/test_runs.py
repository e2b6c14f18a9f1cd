"""Stage runs: reads record none, a failed stage keeps its FAILED row, a killed run shows as interrupted."""
from __future__ import annotations

import io
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.errors import ErrorMapError
from annotation.models import StageRun
from annotation.services.runs import heartbeat, run_state, stage_run
from annotation.services.sampling import sample_failures
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def labelled():
    """3 items, 2 humans and a judge on them."""
    version = make_version(["R / Arithmetic", "K / Fact"])
    for i, (a, b) in enumerate([("R / Arithmetic", "R / Arithmetic"), ("K / Fact", "R / Arithmetic"),
                                ("K / Fact", "K / Fact")]):
        p = make_prediction(str(i))
        add_label(p, version, "h0", a)
        add_label(p, version, "h1", b)
        add_label(p, version, "judge-v1", a, source="judge", confidence=0.8)
    return version


def _runs() -> list[tuple]:
    return list(StageRun.objects.order_by("pk").values_list("pk", "stage", "status", "finished_at"))


def test_pages_and_api_reads_record_no_run(labelled, client):
    user = get_user_model().objects.create_user("reader", password="pw-123456789")
    client.force_login(user)
    api = APIClient()
    api.force_authenticate(user)
    before = _runs()
    for url in ("/agreement/", "/judge/", "/"):
        assert client.get(url).status_code == 200
    for url in ("/api/agreement/", "/api/judge-audit/"):
        assert api.get(url).status_code == 200, url
    assert _runs() == before  # the same rows, unchanged: reading wrote nothing


def test_the_commands_record_their_run(labelled):
    call_command("agreement", "--json", "--reps", "20", stdout=io.StringIO(), stderr=io.StringIO())
    call_command("judge_audit", "--json", stdout=io.StringIO())
    runs = {r.stage: r for r in StageRun.objects.all()}
    assert runs["agreement"].status == "succeeded" and runs["agreement"].counts["n_items"] == 3
    assert runs["agreement"].config["taxonomy_version"] == "errors@1"
    assert runs["judge_audit"].status == "succeeded" and runs["judge_audit"].counts["judges"] == 1


def test_a_refused_sample_keeps_its_failed_run_while_its_work_rolls_back():
    for i in range(4):
        make_prediction(str(i))
    sample_failures(ratio=1.0, seed=0, name="frozen")
    with pytest.raises(ErrorMapError):
        sample_failures(ratio=0.5, seed=0, name="frozen")  # same name, other ratio: refused
    failed = StageRun.objects.get(stage="sample_failures", status="failed")
    assert "ratio" in failed.error and failed.finished_at is not None
    assert failed.pid is not None and failed.host == socket.gethostname()


def test_a_stage_run_cannot_start_inside_a_callers_transaction():
    from django.db import transaction

    # Its FAILED row would roll back with the caller's work: refused outright.
    with pytest.raises(RuntimeError, match="durable"), transaction.atomic(), stage_run("nested", {}):
        pass


def test_a_running_row_whose_process_is_gone_is_interrupted(labelled, client):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = socket.gethostname()
    killed = StageRun.objects.create(stage="analyze", pid=dead.pid, host=here, heartbeat_at=timezone.now())
    alive = StageRun.objects.create(stage="ingest", pid=subprocess.os.getpid(), host=here,
                                    heartbeat_at=timezone.now())
    stale = StageRun.objects.create(stage="sync", pid=1, host="elsewhere",
                                    heartbeat_at=timezone.now() - timedelta(hours=2))
    fresh = StageRun.objects.create(stage="push", pid=1, host="elsewhere", heartbeat_at=timezone.now())
    old_row = StageRun.objects.create(stage="old")  # from before pids were recorded: as it says
    assert [run_state(r) for r in (killed, alive, stale, fresh, old_row)] == [
        "interrupted", "running", "interrupted", "running", "running"]
    api = APIClient()
    user = get_user_model().objects.create_user("reader", password="pw-123456789")
    api.force_authenticate(user)
    states = {r["id"]: r["state"] for r in api.get("/api/stage-runs/?limit=50").json()["results"]}
    assert states[killed.pk] == "interrupted" and states[alive.pk] == "running"
    client.force_login(user)
    page = client.get("/").content.decode()
    assert '<td class="run-state">interrupted</td>' in page


def test_heartbeat_stamps_the_current_run():
    with stage_run("long", {}) as run:
        started = StageRun.objects.get(pk=run.pk).heartbeat_at
        heartbeat(force=True)
        assert StageRun.objects.get(pk=run.pk).heartbeat_at > started
    heartbeat(force=True)  # outside a run: nothing to stamp, no error


@pytest.mark.django_db(transaction=True)
def test_a_killed_stage_process_leaves_a_row_shown_as_interrupted():
    """A real process: a stage started by manage.py and SIGKILLed keeps 'running'; its state is interrupted."""
    script = (
        "import os, signal, django\n"
        "django.setup()\n"
        "from annotation.services.runs import stage_run\n"
        "with stage_run('doomed', {}) as run:\n"
        "    print(run.pk, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")
    from django.db import connection

    # The child opens the test database (a file on SQLite; the same server on PostgreSQL).
    name = connection.settings_dict["NAME"]
    url = (f"sqlite:///{name}" if connection.vendor == "sqlite" else
           "postgres://{USER}:{PASSWORD}@{HOST}:{PORT}/{NAME}".format(**connection.settings_dict))
    env = {**subprocess.os.environ, "DJANGO_SETTINGS_MODULE": "server.settings", "DATABASE_URL": url}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == -9, done.stderr
    pk = int(done.stdout.split()[0])
    row = StageRun.objects.get(pk=pk)
    assert row.status == "running" and run_state(row) == "interrupted"
