"""Webhook deliveries under load: gunicorn + Celery + PostgreSQL + a real Label Studio.

An open-loop generator on loopback posts ANNOTATION_UPDATED deliveries at RATE per second for SECONDS
(latency counted from each delivery's scheduled time, so a slow server cannot hide its queue) while the
annotations change in Label Studio; then it waits for the workers to drain the queue, runs a final sync
and compares the label table with Label Studio's own export: nothing lost, nothing duplicated.

    scripts/services start; set -a; . var/services/env; set +a
    .venv/bin/python bench/webhook_load.py [--rate 200] [--seconds 60] [--tasks 100] [--write-docs]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH_DB = "errormap_bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_database(url: str) -> str:
    """A new empty database beside the one in `url`; its URL."""
    import psycopg

    parts = urlparse(url)
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        con.execute(f"CREATE DATABASE {BENCH_DB}")
    return parts._replace(path=f"/{BENCH_DB}").geturl()


def start_labelstudio(work: Path) -> dict[str, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LABEL_STUDIO_") and k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(LABEL_STUDIO_DATA_DIR=str(work / "ls" / "data"), LABEL_STUDIO_ENV_FILE=str(work / "ls.env"),
               LABEL_STUDIO_PORT=str(port))
    subprocess.run([str(ROOT / "scripts" / "labelstudio"), "start"], env=env, check=True, cwd=ROOT)
    values = dict(line.split("=", 1) for line in (work / "ls.env").read_text().splitlines() if "=" in line)
    values["_stop_env"] = json.dumps(env)
    return values


def stop_labelstudio(values: dict[str, str]) -> None:
    subprocess.run([str(ROOT / "scripts" / "labelstudio"), "stop"], env=json.loads(values["_stop_env"]),
                   cwd=ROOT, check=False)


def wait_until_ready(web_port: int, web_workers: int, celery_app) -> None:
    """Every gunicorn worker has loaded the app (it answers), and a Celery worker answers a ping."""
    deadline = time.monotonic() + 600
    answered = 0
    while answered < 4 * web_workers:  # enough requests that each worker has booted and served one
        try:
            con = http.client.HTTPConnection("127.0.0.1", web_port, timeout=30)
            con.request("GET", "/accounts/login/")
            answered += con.getresponse().status == 200
            con.close()
        except OSError:
            time.sleep(0.2)
        if time.monotonic() > deadline:
            sys.exit("gunicorn did not answer")
    while not celery_app.control.ping(timeout=1.0):
        if time.monotonic() > deadline:
            sys.exit("no Celery worker answered")


def post_loop(url: str, secret: str, bodies: list[bytes], rate: float, seconds: float,
              latencies: list[float], statuses: dict[int, int], threads: int) -> None:
    """Open loop: delivery i is due at start + i / rate; a bounded pool of threads sends them."""
    parts = urlparse(url)
    due: queue.Queue = queue.Queue()
    total = int(rate * seconds)
    lock = threading.Lock()

    def sender() -> None:
        while True:
            item = due.get()
            if item is None:
                return
            scheduled, body = item
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                con = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                con.request("POST", parts.path, body=body, headers={
                    "Content-Type": "application/json", "X-Errormap-Webhook-Secret": secret})
                status = con.getresponse().status
                con.close()
            except OSError:
                status = 0
            elapsed = time.perf_counter() - scheduled
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1

    pool = [threading.Thread(target=sender, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    start = time.perf_counter() + 0.5
    for i in range(total):
        due.put((start + i / rate, bodies[i % len(bodies)]))
    for _ in pool:
        due.put(None)
    for thread in pool:
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tasks", type=int, default=100, help="tasks, each with one annotation")
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--task-workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=64, help="sender threads (bounds open requests)")
    parser.add_argument("--write-docs", action="store_true", help="put the figures in docs/benchmarks.md")
    args = parser.parse_args()
    base_db, broker = os.environ.get("DATABASE_URL", ""), os.environ.get("CELERY_BROKER_URL", "")
    if not base_db.startswith("postgres") or not broker:
        sys.exit("needs PostgreSQL and Redis: scripts/services start; set -a; . var/services/env; set +a")

    work = Path(tempfile.mkdtemp(prefix="webhook-load-"))
    ls = start_labelstudio(work)
    procs: list[subprocess.Popen] = []
    try:
        db_url = fresh_database(base_db)
        web_port = free_port()
        queue_name = f"bench-{os.getpid()}"
        env = {**os.environ, "DATABASE_URL": db_url, "CELERY_BROKER_URL": broker, "ERRORMAP_TASK_QUEUE": queue_name,
               "ERRORMAP_VAR_DIR": str(work / "var"), "LABEL_STUDIO_URL": ls["LABEL_STUDIO_URL"],
               "LABEL_STUDIO_API_KEY": ls["LABEL_STUDIO_API_KEY"],
               "LABEL_STUDIO_WEBHOOK_SECRET": ls["LABEL_STUDIO_WEBHOOK_SECRET"],
               "ERRORMAP_PUBLIC_URL": f"http://127.0.0.1:{web_port}", "ALLOWED_HOSTS": "127.0.0.1,localhost",
               "DEBUG": "false"}
        os.environ.update(env)
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")
        django.setup()
        from django.core.management import call_command
        from label_studio_sdk import LabelStudio

        from annotation.models import Label
        from annotation.services.labelstudio.push import push_labelstudio
        from annotation.services.labelstudio.sync import sync_labelstudio
        from server.celery import app as celery_app
        from tests.integration.test_labelstudio import make_taxonomy, make_work_set, taxonomy_result

        call_command("migrate", "-v0")
        make_taxonomy("load")
        make_work_set("load", args.tasks)
        report = push_labelstudio(work_set="load", taxonomy="load")
        client = LabelStudio(base_url=ls["LABEL_STUDIO_URL"], api_key=ls["LABEL_STUDIO_API_KEY"])
        tasks = list(client.tasks.list(project=report.labelstudio_project_id, page_size=1000))
        paths = ["Accuracy / Mistranslation", "Accuracy / Omission", "Fluency / Grammar"]
        annotations = [client.annotations.create(id=t.id, result=taxonomy_result(random.choice(paths)))
                       for t in tasks]
        bodies = [json.dumps({"action": "ANNOTATION_UPDATED", "project": {"id": report.labelstudio_project_id},
                              "annotation": {"id": a.id, "task": a.task}}).encode() for a in annotations]

        procs.append(subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "server.wsgi:application", "--bind", f"127.0.0.1:{web_port}",
             "--workers", str(args.web_workers), "--timeout", "120"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "server", "worker", "-c", str(args.task_workers),
             "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_until_ready(web_port, args.web_workers, celery_app)

        # Annotators keep changing their annotations while the deliveries arrive.
        stop = threading.Event()

        def annotate() -> None:
            while not stop.is_set():
                a = random.choice(annotations)
                client.annotations.update(id=a.id, result=taxonomy_result(random.choice(paths)))
                stop.wait(0.5)

        editor = threading.Thread(target=annotate, daemon=True)
        editor.start()
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        started = time.perf_counter()
        post_loop(f"http://127.0.0.1:{web_port}/api/labelstudio/webhook/", ls["LABEL_STUDIO_WEBHOOK_SECRET"],
                  bodies, args.rate, args.seconds, latencies, statuses, args.threads)
        sent_for = time.perf_counter() - started
        stop.set()
        editor.join()
        redis = celery_app.connection_for_write().default_channel.client
        drain_start = time.perf_counter()
        while redis.llen(queue_name):
            time.sleep(0.5)
        time.sleep(5)  # the last deliveries taken from the queue finish
        drained_after = time.perf_counter() - drain_start
        sync = sync_labelstudio(work_set="load")

        exported = {}
        for task in client.tasks.list(project=report.labelstudio_project_id, fields="all", page_size=1000):
            for a in task.annotations or []:
                a = a if isinstance(a, dict) else a.model_dump()
                if not a.get("was_cancelled"):
                    exported[f"ls:{a['id']}"] = {" / ".join(p) for r in a["result"] if r["type"] == "taxonomy"
                                                 for p in r["value"]["taxonomy"]}
        ours: dict[str, list[str]] = {}
        for external_id, path in Label.objects.filter(source="human").values_list("external_id", "category__path"):
            ours.setdefault(external_id, []).append(path)
        lost = sum(1 for key, cats in exported.items() if set(ours.get(key, [])) != cats)
        duplicated = sum(len(v) - len(set(v)) for v in ours.values()) + len(set(ours) - set(exported))
        ms = sorted(x * 1000 for x in latencies)
        figures = {
            "deliveries": len(ms), "rate_target": args.rate, "rate_sent": round(len(ms) / sent_for, 1),
            "statuses": statuses, "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 1), "max_ms": round(ms[-1], 1),
            "queue_drained_after_s": round(drained_after, 1), "annotations": len(exported),
            "final_sync_changed": sync.annotations_changed, "lost": lost, "duplicated": duplicated,
        }
        print(json.dumps(figures, indent=1))
        if args.write_docs:
            write_docs(figures, args)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
        stop_labelstudio(ls)
        shutil.rmtree(work, ignore_errors=True)


def write_docs(figures: dict, args: argparse.Namespace) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    head = "## Webhook deliveries under load"
    text = text.split(head)[0].rstrip() + "\n\n" if head in text else text.rstrip() + "\n\n"
    f = figures
    text += f"""{head}

`bench/webhook_load.py --rate {args.rate:g} --seconds {args.seconds:g} --tasks {args.tasks}` (gunicorn
{args.web_workers} workers, Celery {args.task_workers} processes, PostgreSQL 15 and Redis from
`scripts/services`, a real Label Studio 1.23.2; an open-loop generator on loopback, latency counted
from each delivery's scheduled time; an annotator edits an annotation every 0.5 s meanwhile). One run
on a shared 2-core machine (other jobs running), so the figures are loose upper bounds.

| deliveries | sent/s | answers | p50 | p99 | max | queue drained after | annotations | lost | duplicated |
|---|---|---|---|---|---|---|---|---|---|
| {f['deliveries']} | {f['rate_sent']} | {', '.join(f'{k}: {v}' for k, v in sorted(f['statuses'].items()))} | {f['p50_ms']} ms | {f['p99_ms']} ms | {f['max_ms']} ms | {f['queue_drained_after_s']} s | {f['annotations']} | {f['lost']} | {f['duplicated']} |

The view only checks the secret and queues the delivery's ids, so its latency does not depend on
Label Studio; each queued delivery is one batched read from Label Studio on a worker. After the queue
drained, the final sync changed {f['final_sync_changed']} annotations, and the label table matched
Label Studio's export: "lost" counts exported annotations whose categories differ here, "duplicated"
repeated or extra label rows.
"""
    doc.write_text(text)


if __name__ == "__main__":
    main()
