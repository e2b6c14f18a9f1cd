"""Webhook deliveries under load: gunicorn + Celery + PostgreSQL + a real Label Studio.

An open-loop generator (asyncio + httpx, in its own process) on loopback posts ANNOTATION_UPDATED
deliveries at RATE per second for SECONDS (latency counted from each delivery's scheduled time, so a
slow server cannot hide its queue; how late each send started says whether the generator kept up)
while the annotations change in Label Studio; then it waits for the workers to drain the queue, runs a
final sync and compares the label table with Label Studio's own export: nothing lost, nothing
duplicated. Where the time goes: the view's own time (gunicorn's access log), the enqueue alone, the
read-back tasks (the worker's log), and the CPU seconds of each part (/proc).

    scripts/services start; set -a; . var/services/env; set +a
    .venv/bin/python bench/webhook_load.py [--rate 200] [--seconds 60] [--tasks 100] [--write-docs]
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
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


def send_open_loop(url: str, secret: str, bodies: list[bytes], rate: float, seconds: float, connections: int,
                   start_wall: float, part: int, parts: int) -> list[tuple[float, float, float, int]]:
    """Open loop, in a process of its own: of the deliveries due at start + i / rate, this process
    sends those with i % parts == part, each at its time whatever came before (at most `connections`
    open; one waiting for a slot waits on the clock). Requests are written by hand on asyncio streams
    (one small POST, `Connection: close` as gunicorn's sync workers answer) because a general client
    spent more CPU per request than the machine could spare at this rate.
    -> per delivery (lag of its start behind its schedule, latency from its schedule, answered at
    (seconds after start), HTTP status or 0 when it failed)."""
    return asyncio.run(_open_loop(url, secret, bodies, rate, seconds, connections, start_wall, part, parts))


async def _open_loop(url: str, secret: str, bodies: list[bytes], rate: float, seconds: float, connections: int,
                     start_wall: float, part: int, parts: int) -> list[tuple[float, float, float, int]]:
    target = urlparse(url)
    requests = [(f"POST {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\nContent-Type: application/json\r\n"
                 f"X-Errormap-Webhook-Secret: {secret}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                 ).encode() + body for body in bodies]
    loop = asyncio.get_running_loop()
    start = loop.time() + (start_wall - time.time())
    slots = asyncio.Semaphore(connections)
    results: list[tuple[float, float, float, int]] = []

    async def deliver(i: int) -> None:
        scheduled = start + i / rate
        lag = loop.time() - scheduled
        async with slots:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(target.hostname, target.port), 30)
                writer.write(requests[i % len(requests)])
                status = int((await asyncio.wait_for(reader.readline(), 30)).split()[1])
                await asyncio.wait_for(reader.read(), 30)  # the rest, until the server closes
                writer.close()
            except (OSError, TimeoutError, ValueError, IndexError):
                status = 0
        answered = loop.time()
        results.append((lag, answered - scheduled, answered - start, status))

    running: set[asyncio.Task] = set()
    for i in range(part, int(rate * seconds), parts):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(deliver(i))
        running.add(task)
        task.add_done_callback(running.discard)
    while running:
        await asyncio.gather(*list(running))
    return results


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds of a process and its descendants (from /proc: the live ones' own, and
    through their cutime/cstime those that ended and were waited for)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(f) for f in fields[11:15]) / tick
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0.0) for pid in tree)


def postmaster_pid() -> int:
    """PostgreSQL's server process when it is scripts/services' (0 when not found)."""
    pid_file = ROOT / "var" / "services" / "postgres" / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else 0


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tasks", type=int, default=100, help="tasks, each with one annotation")
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--task-workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=64, help="open requests per generator process, at most")
    parser.add_argument("--generators", type=int, default=2, help="generator processes")
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

        access_log, worker_log = work / "access.log", work / "worker.log"
        procs.append(subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "server.wsgi:application", "--bind", f"127.0.0.1:{web_port}",
             "--workers", str(args.web_workers), "--timeout", "120", "--access-logfile", str(access_log),
             "--access-logformat", "%(U)s %(s)s %(L)s"],  # path, status, the request's time in seconds
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "server", "worker", "-c", str(args.task_workers),
             "--without-gossip", "--without-mingle", "--loglevel", "INFO", "--logfile", str(worker_log)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_until_ready(web_port, args.web_workers, celery_app)
        enqueue_ms = time_enqueue()

        # Annotators keep changing their annotations while the deliveries arrive.
        stop = threading.Event()

        def annotate() -> None:
            while not stop.is_set():
                a = random.choice(annotations)
                client.annotations.update(id=a.id, result=taxonomy_result(random.choice(paths)))
                stop.wait(0.5)

        editor = threading.Thread(target=annotate, daemon=True)
        editor.start()
        parts = {"web (gunicorn)": procs[0].pid, "workers (Celery)": procs[1].pid,
                 "Label Studio": int((work / "ls" / "labelstudio.pid").read_text()),
                 "PostgreSQL": postmaster_pid()}
        cpu_before = {name: cpu_seconds(pid) for name, pid in parts.items() if pid}
        load_before = load_average()
        started = time.perf_counter()
        start_wall = time.time() + 5.0  # the generator processes are up by then
        with ProcessPoolExecutor(max_workers=args.generators, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(send_open_loop, f"http://127.0.0.1:{web_port}/api/labelstudio/webhook/",
                                   ls["LABEL_STUDIO_WEBHOOK_SECRET"], bodies, args.rate, args.seconds,
                                   args.connections, start_wall, part, args.generators)
                       for part in range(args.generators)]
            generator_pids = list(pool._processes)
            generator_cpu = 0.0
            while not all(f.done() for f in futures):
                generator_cpu = sum(cpu_seconds(pid) for pid in generator_pids)  # the last reading before they end
                time.sleep(0.5)
            sent = [row for f in futures for row in f.result()]
        sent_for = time.perf_counter() - started
        cpu = {name: round(cpu_seconds(pid) - cpu_before[name], 1) for name, pid in parts.items() if pid}
        cpu["generator"] = round(generator_cpu, 1)
        load_after = load_average()
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
        view_ms = [float(t) * 1000 for line in access_log.read_text().splitlines()
                   if line.startswith("/api/labelstudio/webhook/") for t in line.split()[2:3]]
        # Each read-back task: its time and how many Label Studio exports it made (rounds of reading).
        read_tasks = [(float(t), int(n)) for t, n in re.findall(
            r"handle_labelstudio_webhook_task\[[^]]+\] succeeded in ([0-9.]+)s: \{'reads': (\d+)",
            worker_log.read_text())]
        reads = sum(n for _, n in read_tasks)
        lags = [row[0] * 1000 for row in sent]
        ms = [row[1] * 1000 for row in sent]
        statuses: dict[int, int] = {}
        for row in sent:
            statuses[row[3]] = statuses.get(row[3], 0) + 1
        figures = {
            "deliveries": len(ms), "rate_target": args.rate,
            # sent: over the schedule stretched by the last send's lag; answered: until the last answer
            "rate_sent": round(len(ms) / ((len(ms) - 1) / args.rate + max(0.0, max(r[0] for r in sent))), 1),
            "rate_answered": round(len(ms) / max(r[2] for r in sent), 1),
            "send_lag_p50_ms": round(statistics.median(lags), 1), "send_lag_p99_ms": round(quantile(lags, 0.99), 1),
            "statuses": statuses, "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(quantile(ms, 0.99), 1), "max_ms": round(max(ms), 1),
            "view_p50_ms": round(statistics.median(view_ms), 1), "view_p99_ms": round(quantile(view_ms, 0.99), 1),
            "enqueue_ms": enqueue_ms, "read_backs": reads, "read_tasks": len(read_tasks),
            "read_back_mean_s": round(sum(t for t, _ in read_tasks) / reads, 2) if reads else None,
            "cpu_seconds": cpu, "web_cpu_ms_per_delivery": round(cpu["web (gunicorn)"] * 1000 / len(ms), 2),
            "web_cores": round(cpu["web (gunicorn)"] / max(r[2] for r in sent), 2),
            "load_before": load_before, "load_after": load_after,
            "generator_for_s": round(sent_for, 1),
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


def time_enqueue(n: int = 300) -> dict[str, float]:
    """The view's enqueue alone (ids to Redis, a task when none waits), on a project of no one: ms."""
    from annotation.services.labelstudio.sync import WebhookDelivery
    from annotation.tasks import queue_webhook_delivery

    took = []
    for i in range(n):
        began = time.perf_counter()
        queue_webhook_delivery(WebhookDelivery(action="ANNOTATION_UPDATED", project_id=987654321,
                                               annotation_ids=(i,), task_ids=(i,)))
        took.append((time.perf_counter() - began) * 1000)
    return {"p50": round(statistics.median(took), 2), "p99": round(quantile(took, 0.99), 2)}


def write_docs(figures: dict, args: argparse.Namespace) -> None:
    from bench.report import write_section

    f = figures
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(f["statuses"].items()))
    needed = round(f["rate_target"] * f["web_cpu_ms_per_delivery"] / 1000, 2)
    if f["rate_answered"] >= 0.95 * f["rate_target"]:
        verdict = f"**{f['rate_target']:g}/s was sustained** (answered {f['rate_answered']}/s)."
    else:
        verdict = (
            f"**{f['rate_target']:g}/s was not sustained: {f['rate_answered']}/s were answered.** The generator kept "
            f"its schedule (sent {f['rate_sent']}/s), so the backlog built in the web tier, and what saturated "
            f"it is CPU: at {f['web_cpu_ms_per_delivery']} ms per delivery, {f['rate_target']:g}/s needs {needed} of "
            f"a core for gunicorn alone, and it got {f['web_cores']} while other work held the machine's two "
            f"cores (the load average above). The latency is that backlog: each delivery waited behind the "
            f"ones before it.")
    row = (f"| {f['deliveries']} | {f['rate_sent']} | {f['rate_answered']} | {answers} | {f['p50_ms']} ms | "
           f"{f['p99_ms']} ms | {f['max_ms']} ms | {f['send_lag_p50_ms']} / {f['send_lag_p99_ms']} ms |")
    cpu = ", ".join(f"{name} {seconds} s" for name, seconds in f["cpu_seconds"].items())
    body = f"""`bench/webhook_load.py --rate {args.rate:g} --seconds {args.seconds:g} --tasks {args.tasks} --write-docs`
(after `scripts/services start; set -a; . var/services/env; set +a`): gunicorn {args.web_workers} sync
workers, Celery {args.task_workers} processes, PostgreSQL and Redis from `scripts/services`, a real
Label Studio 1.23.2. The generator runs on loopback, open loop (delivery i is due at start + i/rate;
latency is counted from that time, so a backlog shows), in {args.generators} processes of asyncio
streams with at most {args.connections} requests open each. An annotator edits an annotation every
0.5 s meanwhile. One run on the shared 2-core machine: load average {f['load_before']} before the
deliveries, {f['load_after']} after them (1, 5, 15 min).

| deliveries | sent/s (target {f['rate_target']:g}) | answered/s | answers | p50 | p99 | max | send lag p50 / p99 |
|---|---|---|---|---|---|---|---|
{row}

Where the time went:
- **The view** (gunicorn's own request time, from its access log): p50 {f['view_p50_ms']} ms, p99
  {f['view_p99_ms']} ms. It checks the secret, parses the ids, adds them to the project's pending set in
  Redis and queues a read-back only when no read-back holds the project. The enqueue alone: p50
  {f['enqueue_ms']['p50']} ms, p99 {f['enqueue_ms']['p99']} ms.
- **The workers** read back {f['read_backs']} times in {f['read_tasks']} tasks for the {f['deliveries']} deliveries
  (one Label Studio export of every task named since the previous read, one reader per project at a
  time; {f['read_back_mean_s']} s per read on average). The queue drained {f['queue_drained_after_s']} s after
  the last delivery.
- **CPU seconds during the deliveries:** {cpu}. The web tier spent {f['web_cpu_ms_per_delivery']} ms of CPU per
  delivery and got {f['web_cores']} of a core on average while answering. Send lag is how late the
  generator started each request against its schedule.

{verdict}

After the queue drained, the final sync changed {f['final_sync_changed']} annotations, and the label table
matched Label Studio's export of {f['annotations']} annotations: lost {f['lost']} (exported annotations whose
categories differ here), duplicated {f['duplicated']} (repeated or extra label rows).
"""
    write_section("webhook-load", "Webhook deliveries under load", body)


if __name__ == "__main__":
    main()
