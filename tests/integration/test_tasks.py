"""Stages as Celery tasks on Redis, run by real worker processes against the test's database.

The webhook view answers before anything is applied (the delivery waits in the queue for a worker);
a worker that dies mid-`analyze` leaves the task to another worker, which finishes it with nothing
lost or duplicated. Needs Redis (ERRORMAP_TEST_BROKER_URL); scripts/test runs these in its PostgreSQL pass.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.core.cache import cache, caches
from django.db import connection

from annotation.models import Analysis, Prediction, StageRun
from annotation.services.ingest import ingest_results
from annotation.services.labelstudio.client import WEBHOOK_SECRET_HEADER
from annotation.services.sampling import sample_failures
from annotation.tasks import analyze_task
from server.celery import app as celery_app
from tests.fake_openai_server import FakeOpenAIServer
from tests.integration.test_kill_resume import HeldAfter, write_arithmetic_results

ROOT = Path(__file__).resolve().parents[2]
WAIT = 120.0  # generous ceilings for polls, never asserted as timings
# Not CELERY_BROKER_URL: with that set, every test would queue its tasks for workers that are not there.
BROKER = os.environ.get("ERRORMAP_TEST_BROKER_URL", "")
QUEUE = f"errormap-test-{uuid.uuid4().hex[:8]}"  # this run's own queue: nothing left over from another

pytestmark = [
    pytest.mark.celery,
    pytest.mark.slow,
    # The workers and this process share Redis as the cache too (REDIS_URL), as a deployment does.
    pytest.mark.skipif(not (BROKER and os.environ.get("REDIS_URL")),
                       reason="needs Redis: set ERRORMAP_TEST_BROKER_URL and REDIS_URL (scripts/services start)"),
    pytest.mark.django_db(transaction=True),  # committed rows: the workers read them from their own connections
]


def database_url() -> str:
    """The test database as a URL for worker processes."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def redis_client():
    return celery_app.connection_for_write().default_channel.client


def queued(queue: str = QUEUE) -> list[dict]:
    """The messages waiting in a queue (Redis list), as their decoded bodies and headers."""
    messages = [json.loads(raw) for raw in redis_client().lrange(queue, 0, -1)]
    for message in messages:
        message["decoded_body"] = json.loads(base64.b64decode(message["body"]))
    return messages


@pytest.fixture
def broker():
    """Tasks go to Redis (this run's queue) instead of running in process; restored afterwards."""
    saved = {key: celery_app.conf[key] for key in ("task_always_eager", "broker_url", "task_default_queue")}
    celery_app.conf.update(task_always_eager=False, broker_url=BROKER, task_default_queue=QUEUE)
    _drop_connections()
    redis_client().delete(QUEUE)
    cache.clear()  # no delivery marked as waiting by an earlier run
    yield
    redis_client().delete(QUEUE)
    celery_app.conf.update(saved)
    _drop_connections()


def _drop_connections() -> None:
    """Forget the app's connection and producer pools: made before the broker URL changed (by any
    earlier use of the app in this process), they would still point at the old broker."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


class Worker:
    """`celery worker` in its own process group, on this run's queue and the test database."""

    def __init__(self, name: str, log: Path, **env: str) -> None:
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ERRORMAP_"))}
        child_env.update(DATABASE_URL=database_url(), CELERY_BROKER_URL=BROKER, ERRORMAP_TASK_QUEUE=QUEUE,
                         **env)
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "server", "worker", "-n", f"{name}@%h", "-c", "1",
                 "-P", "prefork", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
                cwd=ROOT, env=child_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL the worker and its pool child at once, as when its machine goes away."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=WAIT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def workers(tmp_path):
    started: list[Worker] = []

    def start(name: str, **env: str) -> Worker:
        worker = Worker(name, tmp_path / f"{name}.log", **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_until(condition, what: str, worker: Worker | None = None) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if worker is not None and worker.proc.poll() is not None:
            pytest.fail(f"the worker exited ({worker.proc.returncode}) before {what}:\n{worker.log.read_text()}")
        if time.monotonic() > deadline:
            log = worker.log.read_text() if worker else ""
            pytest.fail(f"gave up waiting for {what}\n{log}")
        time.sleep(0.05)


def test_the_webhook_answers_before_the_delivery_is_applied_and_a_worker_applies_it(
    broker, workers, client, settings
):
    settings.LABEL_STUDIO_WEBHOOK_SECRET = "s3cret"
    body = {"action": "ANNOTATION_CREATED", "project": {"id": 4242},
            "annotation": {"id": 17, "task": 5, "result": [{"forged": True}], "updated_at": "2099-01-01"}}

    def deliver(payload: dict, secret: str = "s3cret"):
        return client.post("/api/labelstudio/webhook/", payload, content_type="application/json",
                           headers={WEBHOOK_SECRET_HEADER: secret})

    response = deliver(body)

    assert response.status_code == 200 and response.json()["status"] == "queued"
    # Nothing ran yet: one read-back waits in the queue for the project, and only ids were kept.
    (message,) = queued()
    assert message["headers"]["task"] == "annotation.tasks.handle_labelstudio_webhook_task"
    assert message["decoded_body"][1] == {"project_id": 4242}
    assert pending_ids(4242) == ({17}, {5})
    refused = deliver(body, secret="wrong")
    assert refused.status_code == 403 and len(queued()) == 1  # no secret, nothing queued

    # A burst for the project joins the waiting read-back: repeats and other annotations alike.
    for _ in range(3):
        again = deliver(body)
        assert again.status_code == 200 and again.json()["status"] == "already queued"
    assert deliver({**body, "annotation": {"id": 18, "task": 6}}).json()["status"] == "already queued"
    assert len(queued()) == 1 and pending_ids(4242) == ({17, 18}, {5, 6})
    # Another project gets its own read-back.
    assert deliver({**body, "project": {"id": 4343}}).json()["status"] == "queued"
    assert sorted(m["decoded_body"][1]["project_id"] for m in queued()) == [4242, 4343]

    worker = workers("webhooks")
    wait_until(lambda: not queued() and worker.log.read_text().count("succeeded") == 2,
               "the worker read both projects back", worker)
    # The projects are not ours: the task took the ids and ran the service, which ignored them.
    assert worker.log.read_text().count("'detail': 'unknown project'") == 2
    assert pending_ids(4242) == pending_ids(4343) == (set(), set())
    # Once its task has started, a delivery for the project is queued again: a later change is never skipped.
    assert deliver(body).json()["status"] == "queued"


def pending_ids(project_id: int) -> tuple[set[int], set[int]]:
    """The ids waiting in Redis for a project's next read-back (annotations, tasks)."""
    from annotation.tasks import _PendingWebhookIds

    annotations, tasks, _ = _PendingWebhookIds._keys(project_id)
    client = caches["default"]._cache.get_client(write=True)
    return {int(i) for i in client.smembers(annotations)}, {int(i) for i in client.smembers(tasks)}


N_ITEMS = 150  # failing predictions, each its own content
CONCURRENCY = 4
OPEN_FOR = 80  # answered before the judge holds every request: one batch of 64 committed, then the kill


def failures_to_analyze(tmp_path: Path) -> None:
    """N_ITEMS failing predictions, each its own content, all in the work set `everything`."""
    results = tmp_path / "results.csv"
    write_arithmetic_results(results, N_ITEMS)
    ingest_results(paths=[results])
    sample_failures(ratio=1, name="everything")


def worker_judge_env(server: FakeOpenAIServer, **extra: str) -> dict[str, str]:
    """A worker's judge: the local chat-completions server, CONCURRENCY requests at a time."""
    return {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test-key",
            "ERRORMAP_JUDGE_CONCURRENCY": str(CONCURRENCY), "ERRORMAP_JUDGE_TIMEOUT": "60", **extra}

def test_a_worker_killed_mid_analyze_leaves_the_task_to_another_that_finishes_it_exactly(
    broker, workers, tmp_path
):
    failures_to_analyze(tmp_path)
    responder = HeldAfter(OPEN_FOR, delay=0.01)
    with FakeOpenAIServer(responder=responder) as server:
        # a task whose worker is gone is handed out again after 10 s
        judge_env = worker_judge_env(server, ERRORMAP_TASK_VISIBILITY_TIMEOUT="10",
                                     ERRORMAP_TASK_RESTORE_INTERVAL="1")
        analyze_task.delay(work_set="everything", judge="openai", model="fake-judge")
        first = workers("first", **judge_env)
        wait_until(lambda: server.count == OPEN_FOR + CONCURRENCY, "the judge's slots filled up", first)
        first.kill()
        responder.released.set()
        committed = set(Analysis.objects.values_list("content_key", flat=True))
        assert 0 < len(committed) < N_ITEMS
        assert not queued()  # the task is taken (unacknowledged), not waiting

        asked_before = server.count
        second = workers("second", **judge_env)
        wait_until(lambda: StageRun.objects.filter(stage="analyze", status="succeeded").exists(),
                   "another worker finished the task", second)

    # Every failure analysed exactly once, and nothing committed before the kill asked for again.
    keys = list(Analysis.objects.values_list("content_key", flat=True))
    assert len(keys) == len(set(keys)) == N_ITEMS
    assert set(keys) == set(Prediction.objects.filter(is_failure=True).values_list("content_key", flat=True))
    assert server.count - asked_before <= N_ITEMS - len(committed)
    runs = list(StageRun.objects.filter(stage="analyze").order_by("pk").values_list("status", flat=True))
    assert runs[-1] == "succeeded" and len(runs) == 2  # the dead worker's run, then the one that finished
    assert "first@" not in second.log.read_text()


def pool_children(worker: Worker) -> list[int]:
    """The pids of a worker's prefork pool processes (its children, read from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == worker.proc.pid:  # fields after the name: state, ppid, ...
            children.append(int(stat.parent.name))
    return sorted(children)


ANALYSIS_FIELDS = ("pk", "key", "content_key", "backend", "model_name", "prompt_version_id", "status",
                   "required_criteria", "error_title", "error_summary", "confidence", "failure_reason", "run_id",
                   "created_at")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the pool process through /proc")
def test_a_pool_process_killed_mid_analyze_is_redelivered_and_finished_with_nothing_duplicated(
    broker, workers, tmp_path
):
    """Only the prefork pool child that runs the task dies (the worker's main process lives): with
    acks_late and reject_on_worker_lost the main process requeues the task at once (the broker's
    visibility timeout stays at its 6 hours default, so waiting for it would fail this test), a new
    pool child runs it, and the analyses committed before the kill stay exactly as they were."""
    failures_to_analyze(tmp_path)
    responder = HeldAfter(OPEN_FOR, delay=0.01)
    with FakeOpenAIServer(responder=responder) as server:
        judge_env = worker_judge_env(server)
        analyze_task.delay(work_set="everything", judge="openai", model="fake-judge")
        worker = workers("pool", **judge_env)
        wait_until(lambda: server.count == OPEN_FOR + CONCURRENCY, "the judge's slots filled up", worker)
        (child,) = pool_children(worker)
        os.kill(child, signal.SIGKILL)
        # Every request from now on is held until released: nothing new commits before this snapshot.
        committed = {row[0]: row for row in Analysis.objects.order_by("pk").values_list(*ANALYSIS_FIELDS)}
        assert 0 < len(committed) < N_ITEMS
        asked_before = server.count
        responder.released.set()
        wait_until(lambda: StageRun.objects.filter(stage="analyze", status="succeeded").exists(),
                   "a new pool process finished the requeued task", worker)

    log = worker.log.read_text()
    assert worker.proc.poll() is None, log  # the main process lived through its child's death
    assert f"pid:{child} exited with 'signal 9 (SIGKILL)'" in log
    assert child not in pool_children(worker)
    # Every failure analysed exactly once; the rows committed before the kill are the same rows (ids)
    # with the same values; nothing they answered was asked for again.
    after = {row[0]: row for row in Analysis.objects.order_by("pk").values_list(*ANALYSIS_FIELDS)}
    keys = [row[2] for row in after.values()]
    assert len(keys) == len(set(keys)) == N_ITEMS
    assert set(keys) == set(Prediction.objects.filter(is_failure=True).values_list("content_key", flat=True))
    assert {pk: after.get(pk) for pk in committed} == committed
    assert server.count - asked_before <= N_ITEMS - len(committed)
    runs = list(StageRun.objects.filter(stage="analyze").order_by("pk").values_list("status", flat=True))
    assert runs[-1] == "succeeded" and len(runs) == 2  # the killed child's run, then the one that finished


UPLOAD_HEADER = b"example_id,model,input_text,output_text,score\n"


def test_an_api_upload_waits_privately_for_a_worker_that_ingests_it_and_reports_a_bad_file_by_line(
    broker, workers, settings, tmp_path
):
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from annotation.models import IngestUpload

    var = tmp_path / "var"
    settings.VAR_DIR = var  # the worker gets the same folder
    user = get_user_model().objects.create_user("uploader", password="pw-123456789")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    good = UPLOAD_HEADER + b"".join(b"g%d,m,in,out,%d\n" % (i, i % 2) for i in range(50))
    bad = UPLOAD_HEADER + b"b1,m,in,out,1\nb2,m,in,out,1\nb3,m,in,out,oops\n"

    def post(name: str, body: bytes):
        return client.post("/api/ingest/", {"file": SimpleUploadedFile(name, body), "dataset": "up"},
                           format="multipart")

    accepted = post("good.csv", good)
    rejected_later = post("bad.csv", bad)

    # The web process only stored and queued them: nothing ingested, no ingest run.
    assert accepted.status_code == rejected_later.status_code == 202
    assert accepted.json()["status"] == rejected_later.json()["status"] == "queued"
    assert not Prediction.objects.exists() and not StageRun.objects.filter(stage="ingest").exists()
    assert sorted(m["decoded_body"][1]["upload_id"] for m in queued()) == sorted(
        [accepted.json()["id"], rejected_later.json()["id"]])
    stored = var / "uploads" / IngestUpload.objects.get(pk=accepted.json()["id"]).key / "good.csv"
    assert stored.read_bytes() == good
    assert stored.stat().st_mode & 0o777 == 0o600 and stored.parent.stat().st_mode & 0o777 == 0o700
    # Sent again while it waits: the same upload, nothing more queued.
    again = post("good-again.csv", good)
    assert again.status_code == 200 and again.json()["id"] == accepted.json()["id"] and len(queued()) == 2

    worker = workers("ingest", ERRORMAP_VAR_DIR=str(var))
    wait_until(lambda: set(IngestUpload.objects.values_list("status", flat=True)) <= {"done", "failed"},
               "the worker ingested both uploads", worker)

    good_status = client.get(accepted.json()["url"]).json()
    assert good_status["status"] == "done" and good_status["report"]["rows"] == 50
    bad_status = client.get(rejected_later.json()["url"]).json()
    assert bad_status["status"] == "failed" and bad_status["error"].startswith("bad.csv:4: "), bad_status
    # Nothing of the bad file half-written: exactly the good file's rows exist.
    assert sorted(Prediction.objects.values_list("example__example_id", flat=True)) == sorted(
        f"g{i}" for i in range(50))
    # The ingest ran in the worker, not here.
    runs = StageRun.objects.filter(stage="ingest")
    assert sorted(run.status for run in runs) == ["failed", "succeeded"]
    assert all(run.pid != os.getpid() for run in runs)
    assert not stored.exists()


BURST = 12  # annotations made in Label Studio before any worker runs


@pytest.mark.labelstudio
def test_a_burst_of_label_studio_deliveries_is_read_back_in_one_export_and_mirrors_every_annotation(
    broker, workers, labelstudio, labelstudio_users, live_server
):
    from annotation.models import LabelStudioAnnotation, LabelStudioTask
    from annotation.services.labelstudio.push import push_labelstudio
    from tests.factories import make_work_set
    from tests.integration.conftest_labelstudio import settle
    from tests.integration.test_labelstudio import human_labels, make_taxonomy, taxonomy_result

    make_taxonomy("errors-burst")
    _, predictions = make_work_set("ws-burst", BURST)
    # Label Studio delivers to this process's live server, whose view queues on Redis like a web process.
    report = push_labelstudio(work_set="ws-burst", taxonomy="errors-burst", webhook_url=live_server.url)
    project_id = report.labelstudio_project_id
    task_of = dict(LabelStudioTask.objects.values_list("prediction_id", "labelstudio_id"))
    alice_id, alice = labelstudio_users["alice"]
    paths = ("Accuracy / Mistranslation", "Accuracy / Omission", "Fluency / Grammar")
    made = [alice.annotations.create(id=task_of[p.pk], result=taxonomy_result(paths[i % 3]))
            for i, p in enumerate(predictions)]

    # Every delivery was answered at once; their ids wait for one read-back of the project.
    settle(lambda: pending_ids(project_id)[0] == {a.id for a in made})
    assert pending_ids(project_id)[0] == {a.id for a in made}
    (message,) = queued()
    assert message["decoded_body"][1] == {"project_id": project_id}
    assert not LabelStudioAnnotation.objects.exists()  # nothing applied by the web side

    worker = workers("burst", LABEL_STUDIO_URL=labelstudio.url, LABEL_STUDIO_API_KEY=labelstudio.api_key,
                     LABEL_STUDIO_WEBHOOK_SECRET=labelstudio.webhook_secret)
    wait_until(lambda: not queued() and "succeeded" in worker.log.read_text(), "the worker read the burst back",
               worker)
    log = worker.log.read_text()
    # One task, one Label Studio export for all the deliveries.
    assert log.count("handle_labelstudio_webhook_task") and log.count("succeeded") == 1
    assert "'reads': 1" in log
    assert pending_ids(project_id) == (set(), set())

    version = "errors-burst@1"
    expected = {(p.pk, alice_id, version, paths[i % 3], "", "", f"ls:{a.id}")
                for i, (p, a) in enumerate(zip(predictions, made, strict=True))}
    assert human_labels() == expected  # each annotation once, nothing dropped or doubled
    assert sorted(LabelStudioAnnotation.objects.values_list("labelstudio_id", flat=True)) == sorted(
        a.id for a in made)
