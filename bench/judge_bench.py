"""Benchmark: stage-1 judging through the OpenAI backend against a local server that answers at once.

Not a test. Measures, end to end through `analyze_failures` (the real `openai` client, SQLite writes
of analyses and cache rows, batches committed as the command does):
- judged failures per second at concurrency 32 (target >= 100/s);
- the judge's overhead: the same run against a bare AsyncOpenAI loop sending the very same request
  bodies to the same server at the same concurrency (alternated pairs, the order switching each pair;
  the median of the per-pair ratios with a bootstrap interval; target <= 1.1);
- cache hits per second: a resumed run whose answers are all in ResponseCache (target >= 2,000/s);
and, for reference, the offline judge on the BIG-Bench-Mistake failures. Writes the `judge` section
of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import publish
from bench.timing import paired_ratio


def setup_django() -> None:
    work = Path(tempfile.mkdtemp(prefix="judge-bench-"))
    os.environ["DATABASE_URL"] = f"sqlite:///{work / 'db.sqlite3'}"
    os.environ["ERRORMAP_VAR_DIR"] = str(work)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def start_server() -> tuple[subprocess.Popen, str]:
    """The fake chat-completions server in its own process, as a real endpoint would be."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai_server"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    base_url = proc.stdout.readline().strip()
    if not base_url.startswith("http"):
        proc.kill()
        raise RuntimeError("the fake server did not start")
    return proc, base_url


def captured_bodies(analyze_failures, backend_for) -> list[dict]:
    """The request bodies our judge sends for the failures (captured once from an in-process server)."""
    from tests.fake_openai_server import FakeOpenAIServer, answer_every_stage

    with FakeOpenAIServer(responder=answer_every_stage) as server:
        with backend_for(server.base_url) as judge:
            analyze_failures(backend=judge, k_correct=1)
        return list(server.requests)


def bare_loop(base_url: str, bodies: list[dict], concurrency: int, *, via: str = "create") -> float:
    """Seconds for a plain AsyncOpenAI loop to send `bodies` at `concurrency` and read each answer's content:
    through `chat.completions.create` (`via="create"`), or on the transport path our judge takes
    (`via="post"`: the client's generic `post` of the body, the bytes `create` sends, and the decoded
    JSON's message content, no answer model)."""
    import httpx2
    from openai import AsyncOpenAI

    async def run() -> None:
        client = AsyncOpenAI(base_url=base_url, api_key="x", timeout=30, max_retries=0)
        semaphore = asyncio.Semaphore(concurrency)

        async def one(body: dict) -> str:
            async with semaphore:
                if via == "create":
                    response = await client.chat.completions.create(**body)
                    return response.choices[0].message.content
                raw = await client.post("/chat/completions", body=body, cast_to=httpx2.Response,
                                        options={"security": {"bearer_auth": True}})
                return json.loads(raw.content)["choices"][0]["message"]["content"]

        answers = await asyncio.gather(*(one(b) for b in bodies))
        assert all(answers)
        await client.close()

    start = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--failures", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=9,
                        help="alternated rounds of runs (ours, bare create loop, bare post loop)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    setup_django()
    from annotation.core.openai_judge import OpenAIJudge
    from annotation.models import Analysis, ResponseCache
    from annotation.services.ingest import ingest_results
    from annotation.services.judging import DatabaseStore, analyze_failures
    from tests.factories import make_failures

    make_failures(args.failures, dataset="bench", model="m-bad", correct_model="m-good")

    def backend_for(url: str) -> OpenAIJudge:
        return OpenAIJudge(model="bench-judge", base_url=url, api_key="x", store=DatabaseStore(),
                           concurrency=args.concurrency, timeout=30, max_retries=3)

    bodies = captured_bodies(analyze_failures, backend_for)
    assert len(bodies) == args.failures, len(bodies)
    proc, base_url = start_server()

    def backend() -> OpenAIJudge:
        return backend_for(base_url)

    fresh, cached, fresh_runs, cached_runs, bare_runs, post_runs = [], [], [], [], [], []
    fresh_cpu, bare_cpu = [], []  # this process's CPU seconds: steadier than wall time on a shared machine
    calling_cpu = []  # CPU seconds of the calling thread alone (reads, prompts, keys, writes)

    def ours() -> None:
        Analysis.objects.all().delete()
        ResponseCache.objects.all().delete()
        cpu, thread_cpu = time.process_time(), time.thread_time()
        start = time.perf_counter()
        with backend() as judge:
            report = analyze_failures(backend=judge, k_correct=1)
        elapsed = time.perf_counter() - start
        calling_cpu.append(time.thread_time() - thread_cpu)
        assert report.analysed == args.failures and report.usage["requests"] == args.failures, report
        fresh.append(args.failures / elapsed)
        fresh_runs.append(elapsed)
        fresh_cpu.append(time.process_time() - cpu)

    def bare() -> None:
        cpu = time.process_time()
        bare_runs.append(bare_loop(base_url, bodies, args.concurrency))
        bare_cpu.append(time.process_time() - cpu)

    def bare_post() -> None:
        post_runs.append(bare_loop(base_url, bodies, args.concurrency, via="post"))

    try:
        for pair in range(args.pairs):
            # The order turns each round, so no side always runs first (on a warmer server).
            sides = (bare, ours, bare_post)
            for side in sides[pair % 3:] + sides[:pair % 3]:
                side()
            # Resumed run: analyses lost, answers cached -> every failure is a cache hit, no request.
            Analysis.objects.all().delete()
            start = time.perf_counter()
            with backend() as judge:
                report = analyze_failures(backend=judge, k_correct=1)
            elapsed = time.perf_counter() - start
            assert report.usage["requests"] == 0 and report.usage["cache_hits"] == args.failures, report
            cached.append(args.failures / elapsed)
            cached_runs.append(elapsed)
            print(f"pair {pair + 1}: fresh {fresh[-1]:.0f}/s ({fresh_runs[-1]:.2f} s; bare loop {bare_runs[-1]:.2f} s, "
                  f"ratio {fresh_runs[-1] / bare_runs[-1]:.2f}; bare post loop {post_runs[-1]:.2f} s, ratio "
                  f"{fresh_runs[-1] / post_runs[-1]:.2f}), cache {cached[-1]:.0f}/s, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    # Offline judge on the real BBM failures, for reference.
    from annotation.models import Dataset

    Dataset.objects.filter(name="bench").delete()
    ingest_results(paths=[ROOT / "data" / "big-bench-mistake"])
    offline = []
    for _ in range(3):
        Analysis.objects.filter(backend="offline").delete()
        start = time.perf_counter()
        report = analyze_failures(judge="offline", work_set=None)
        offline.append(report.analysed / (time.perf_counter() - start))
    n_offline = report.analysed
    print(f"offline {statistics.median(offline):.0f}/s on {n_offline} failures", flush=True)

    load_after = os.getloadavg()[0]
    med_fresh, med_cached = statistics.median(fresh), statistics.median(cached)
    ours_s, bare_s = statistics.median(fresh_runs), statistics.median(bare_runs)
    wall = paired_ratio(fresh_runs, bare_runs)
    lean = paired_ratio(fresh_runs, post_runs)
    cpu = paired_ratio(fresh_cpu, bare_cpu)
    body = "\n".join([
        f"`analyze_failures` end to end (the real `openai` client, AsyncOpenAI at concurrency {args.concurrency},",
        "requests to a local chat-completions server in its own process that answers at once, SQLite writes of",
        f"analyses and ResponseCache rows in committed batches) on {args.failures:,} unique failures, each prompt",
        f"with its reference and one correct output of another model. {args.pairs} pairs of runs.",
        "",
        "| measure | runs (per s) | median per s | target | met |",
        "|---|---|---:|---:|---|",
        (f"| judged failures per second, fresh (one request each) | {', '.join(f'{x:.0f}' for x in fresh)} | "
         f"{med_fresh:.0f} | 100 | {'yes' if med_fresh >= 100 else 'no'} |"),
        "",
        (f"Overhead against the floor: the same {args.failures:,} request bodies (captured from our judge) "
         "sent by a bare"),
        f"AsyncOpenAI loop (`chat.completions.create`, semaphore of {args.concurrency}, nothing stored) to the same",
        "server, in rounds with our runs (the order turning each round). The ratio is the median of the per-round",
        "ratios, with a bootstrap 95 % interval of that median. Our judge sends through the client's generic",
        "`post` (the bytes `create` sends: a test compares them) and reads the four fields it needs from the",
        "decoded JSON, skipping `create`'s per-request walk of its parameter types and its answer model; so a",
        "second bare loop on that very transport path (`post`, `json.loads`, nothing stored) is shown too: it",
        "is the floor of our path, and ours against it is the platform's own cost (database, prompts, keys,",
        "validation):",
        "",
        "| | runs (s) | median (s) |",
        "|---|---|---:|",
        f"| ours: `analyze_failures`, fresh | {', '.join(f'{x:.2f}' for x in fresh_runs)} | {ours_s:.2f} |",
        (f"| bare AsyncOpenAI loop (`create`), same bodies | {', '.join(f'{x:.2f}' for x in bare_runs)} | "
         f"{bare_s:.2f} |"),
        (f"| bare AsyncOpenAI loop (`post`, our transport path), same bodies | "
         f"{', '.join(f'{x:.2f}' for x in post_runs)} | {statistics.median(post_runs):.2f} |"),
        (f"| ratio ours / bare `create` loop (per round) | {', '.join(f'{x:.2f}' for x in wall.ratios)} | "
         f"{wall.summary(1.1)} |"),
        (f"| ratio ours / bare `post` loop (per round) | {', '.join(f'{x:.2f}' for x in lean.ratios)} | "
         f"{lean.median:.2f} ({lean.low:.2f}-{lean.high:.2f}) |"),
        (f"| CPU seconds of this process, ours / bare `create` loop | "
         f"{', '.join(f'{o:.2f}/{b:.2f}' for o, b in zip(fresh_cpu, bare_cpu))}"
         f" | {cpu.median:.2f} ({cpu.low:.2f}-{cpu.high:.2f}) |"),
        (f"| of which the calling thread (CPU s: database reads and writes, prompts, keys) | "
         f"{', '.join(f'{x:.2f}' for x in calling_cpu)} | {statistics.median(calling_cpu):.2f} |"),
        "",
        "| measure | runs (per s) | median per s | target | met |",
        "|---|---|---:|---:|---|",
        (f"| cache hits per second (resumed run, zero requests) | {', '.join(f'{x:.0f}' for x in cached)} | "
         f"{med_cached:.0f} | 2,000 | {'yes' if med_cached >= 2000 else 'no'} |"),
        (f"| offline judge, BIG-Bench-Mistake failures ({n_offline:,}) | {', '.join(f'{x:.0f}' for x in offline)} | "
         f"{statistics.median(offline):.0f} | - | - |"),
        "",
        "The fresh figure is bounded by this 2-core machine running client, server and SQLite at once; a",
        "real judge's latency, not the platform, sets the rate in practice (raise `ERRORMAP_JUDGE_CONCURRENCY`).",
        (f"Load average of the machine (1 min) at the start and the end of this run: {load_before:.1f} and "
         f"{load_after:.1f} on 2 cores (other work was running): wall times swing between pairs, so the"),
        "ratio is a median of alternated pairs, and CPU seconds are shown beside it.",
        "",
        "Where the time goes (py-spy over both threads, cProfile on a CPU clock for the calling thread). The",
        "client process is CPU-bound on one core (the server takes the other), and both our threads share one",
        "interpreter lock, so every CPU second of ours adds to the wall time almost one for one. In the bare",
        "`create` loop, `create`'s walk of its parameter types (`async_maybe_transform`) took 16-20 % of the",
        "event loop's samples and building the answer model (`construct`) 6-7 %: our judge no longer does",
        "either. What it adds to the `post` floor: the calling thread reads each batch's texts, renders the",
        "prompts, hashes the cache keys (the fixed parts encoded once per backend) and writes the analyses and",
        "ResponseCache rows as plain tuples in one bulk INSERT each",
        (f"({1000 * statistics.median(calling_cpu) / args.failures:.2f} ms of CPU per failure), while the next batch "
         "is already being"),
        "asked; the event loop adds each answer's schema validation (~2 % of its samples) and the total",
        "deadline. The socket writes take a larger share of the loop's samples in ours than in the bare loops:",
        "a write releases the interpreter lock and waits to take it back from the calling thread.",
        "",
        (f"Reproduce: `.venv/bin/python bench/judge_bench.py --failures {args.failures} "
         f"--concurrency {args.concurrency} --pairs {args.pairs}`"),
    ])
    publish("judge", "Judge (stage-1 analysis)", body, write=not args.no_write)


if __name__ == "__main__":
    main()
