"""Benchmark: ingest throughput (rows/s) and peak memory for generated ErrorMap CSVs of growing size.

Each run ingests into a fresh SQLite database in a child process, timed end to end, with the
child's peak resident memory from wait4(). Figures go to stdout and to docs/benchmarks.md.

    .venv/bin/python bench/ingest_bench.py [--rows 1000000] [--repeats 3]
    .venv/bin/python bench/ingest_bench.py --floor [--rows 200000] [--repeats 3]

With --floor it measures ingest against the floor of its own schema instead: the same rows, already
parsed into tuples, written with plain executemany (datasets, models, examples, then predictions)
into a fresh database of the same schema and indexes, in one transaction; runs alternate and the
ratio of the medians is printed.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import write_section

MODELS = 10


def generate_csv(path: Path, rows: int) -> None:
    """rows / 10 examples x 10 models, realistic short texts, about 1 in 3 failing."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["example_id", "model", "input_text", "output_text", "score", "correct_answer", "dataset"])
        for i in range(rows):
            example, model = divmod(i, MODELS)
            writer.writerow([
                f"ex{example}", f"model-{model}", f"Question {example}: what is {example} + {model}?",
                f"The answer is {example + model + (i % 3 == 0)}.", 0.0 if i % 3 == 0 else 1.0,
                f"{example + model}", f"bench-{example % 4}",
            ])


def ingest_once(csv_path: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MiB) of one ingest into a fresh database."""
    with tempfile.TemporaryDirectory() as var:
        env = {**os.environ, "ERRORMAP_VAR_DIR": var, "DATABASE_URL": f"sqlite:///{var}/bench.sqlite3"}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "manage.py", "ingest_results", str(csv_path)], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        if status != 0:
            raise SystemExit(f"ingest failed with status {status}")
        return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def floor_child(csv_path: Path) -> None:
    """In a child process with the bench's database: parse the CSV into tuples (not timed), then time
    plain executemany writes of them into the schema; prints the seconds."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")
    django.setup()
    from django.db import connection, transaction

    with csv_path.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        rows = [(d, e, m, q, o, float(s), r) for e, m, q, o, s, r, d in reader]
    datasets = sorted({row[0] for row in rows})
    models = sorted({row[2] for row in rows})
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany("INSERT INTO annotation_dataset (name, metric_name, source, created_at) "
                           "VALUES (%s, 'score', '', CURRENT_TIMESTAMP)", [(d,) for d in datasets])
        cursor.executemany("INSERT INTO annotation_evaluatedmodel (name) VALUES (%s)", [(m,) for m in models])
        cursor.execute("SELECT name, id FROM annotation_dataset")
        dataset_ids = dict(cursor.fetchall())
        cursor.execute("SELECT name, id FROM annotation_evaluatedmodel")
        model_ids = dict(cursor.fetchall())
        examples = {(dataset_ids[d], e): (q, r) for d, e, _, q, _, _, r in rows}
        cursor.executemany("INSERT INTO annotation_example (dataset_id, example_id, input_text, reference) "
                           "VALUES (%s, %s, %s, %s)", [(*key, *value) for key, value in examples.items()])
        cursor.execute("SELECT dataset_id, example_id, id FROM annotation_example")
        example_ids = {(d, e): pk for d, e, pk in cursor.fetchall()}
        cursor.executemany(
            "INSERT INTO annotation_prediction (example_id, model_id, output_text, score, is_failure, content_key, "
            "updated_at) VALUES (%s, %s, %s, %s, %s, '', CURRENT_TIMESTAMP)",
            [(example_ids[(dataset_ids[d], e)], model_ids[m], o, s, s < 0.5) for d, e, m, _, o, s, _ in rows],
        )
    print(time.perf_counter() - start)


def floor_once(csv_path: Path) -> float:
    """Seconds of the executemany floor (writes only) into a fresh database."""
    with tempfile.TemporaryDirectory() as var:
        env = {**os.environ, "ERRORMAP_VAR_DIR": var, "DATABASE_URL": f"sqlite:///{var}/bench.sqlite3"}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        done = subprocess.run([sys.executable, __file__, "--floor-child", str(csv_path)], cwd=ROOT, env=env,
                              check=True, capture_output=True, text=True)
        return float(done.stdout.strip().splitlines()[-1])


def floor_comparison(rows: int, repeats: int) -> None:
    """Ingest against the executemany floor of the same rows, alternated; medians and their ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"results-{rows}.csv"
        generate_csv(path, rows)
        ours, floor = [], []
        for _ in range(repeats):
            ours.append(ingest_once(path)[0])
            floor.append(floor_once(path))
    ours_s, floor_s = statistics.median(ours), statistics.median(floor)
    line = f"| {rows:,} | {ours_s:.1f} | {floor_s:.1f} | {ours_s / floor_s:.2f} |"
    print("| rows | ingest_results s (end to end) | executemany floor s (writes only) | ratio |", flush=True)
    print(line, flush=True)
    body = "\n".join([
        "`ingest_results` of a generated CSV (end to end in a child process: start-up, parsing, checks,",
        "writes, failure rule) against the floor of its own schema: the same rows, parsed beforehand,",
        "written with plain `executemany` (datasets, models, examples, predictions) into a fresh",
        f"database with the same tables and indexes, one transaction; alternated, median of {repeats}.",
        "Target: within 1.5x. The machine was shared with other work while this ran (2 cores).",
        "",
        "| rows | ingest_results s (end to end) | executemany floor s (writes only) | ratio |",
        "|---:|---:|---:|---:|",
        line,
        "",
        "The ingest side includes what the floor leaves out: process start-up, parsing and checking the",
        "CSV, hashing each row's content key, reading back existing rows for the upsert, the failure rule.",
        "",
        f"Reproduce: `.venv/bin/python bench/ingest_bench.py --floor --rows {rows} --repeats {repeats}`",
    ])
    write_section("ingest_floor", "Ingest against the floor of its schema", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--floor", action="store_true", help="compare with the executemany floor instead")
    parser.add_argument("--floor-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        floor_child(args.floor_child)
        return
    if args.floor:
        floor_comparison(args.rows, args.repeats)
        return
    # Twice the headline size too: memory must have levelled off, not merely grown slowly.
    sizes = sorted({args.rows // 4, args.rows // 2, args.rows, args.rows * 2})
    lines = [
        "| rows | median s | median rows/s | best rows/s | median CPU s | peak RSS MiB (median) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            path = Path(tmp) / f"results-{rows}.csv"
            generate_csv(path, rows)
            runs = [ingest_once(path) for _ in range(args.repeats)]
            seconds = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            rss = statistics.median(r[2] for r in runs)
            best = min(r[0] for r in runs)
            line = f"| {rows:,} | {seconds:.1f} | {rows / seconds:,.0f} | {rows / best:,.0f} | {cpu:.1f} | {rss:.0f} |"
            print(line, flush=True)
            lines.append(line)
            path.unlink()
    bundled = statistics.median(ingest_once(ROOT / "data")[0] for _ in range(args.repeats))
    print(f"bundled data (data/, 3,226 predictions from 6 files): {bundled:.1f} s", flush=True)
    body = "\n".join([
        "All bundled real data (`manage.py ingest_results data/`: WMT23 MQM + BIG-Bench-Mistake, 6 files,",
        f"3,226 predictions) into a fresh database: **{bundled:.1f} s** (median of {args.repeats}, process start included).",
        "",
        "Ingest of a generated ErrorMap CSV (rows/10 examples x 10 models, 4 datasets) into a fresh SQLite",
        f"database, end to end in a child process (start-up, parsing, writes, failure rule); median of {args.repeats} runs.",
        "Peak RSS levelling off while the file grows is the streaming check: what grows is SQLite's page",
        "cache (64 MiB, full after about 500,000 rows), beside a fixed part (Django, Arrow's libraries and",
        "thread pools, one 1 MiB block of rows). Target: >= 50,000 rows/s.",
        "This VM's speed drifts (the same ingest varies by up to 1.7x between back-to-back runs), so the",
        "best run and the CPU time are shown beside the median.",
        "",
        "Where the time goes (cProfile, 1,000,000 rows): about half is SQLite inserting rows and index",
        "entries; hashing the content keys, the column checks and the batch bookkeeping are most of the rest.",
        "CSV is parsed by Arrow in C++ threads, a block at a time, and checked column-wise; failure flags are",
        "written with the rows from each batch's mean and corrected afterwards only where the dataset's",
        "mean disagrees, so they are not rewritten for every failing row.",
        "",
        *lines,
        "",
        f"Reproduce: `.venv/bin/python bench/ingest_bench.py --rows {args.rows} --repeats {args.repeats}`",
    ])
    write_section("ingest", "Ingestion throughput and memory", body)


if __name__ == "__main__":
    main()
