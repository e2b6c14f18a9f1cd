"""Benchmark: the web UI's agreement page on about 1,000,000 label rows in SQLite, beside `agreement --json`.

Not a test (nothing asserts a time). Writes its figures into the `agreement-page` section of docs/benchmarks.md.
    .venv/bin/python bench/agreement_page_bench.py [--labels 1000000] [--repeats 5] [--db PATH]
With a PostgreSQL `--database-url` it times the page there (beside the same on the SQLite file `--compare-sqlite
PATH`) and writes the PostgreSQL part of docs/benchmarks.md instead.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from annotation.core.agreement import RatingTable
from bench.databases import add_database_url_argument, analyze_postgres, is_postgres, sqlite_url
from bench.report import code_version, machine_load, publish
from bench.synthetic import synthetic_table
from bench.timing import PairedRatio, Run, alternated, paired_ratio, run_in_process

PER_ITEM = 3  # annotators labelling each item
N_CATEGORIES = 20
SET_SHARE = 0.2  # synthetic_table(sets=True) gives a fifth of the ratings a second category
# (taxonomy name, description, category sets?, annotators in the pool)
KINDS = (
    ("single", "single category per rating, 3 annotators on every item", False, 3),
    ("sets", "category sets (MASI), 3 annotators on every item", True, 3),
    ("crowd", "category sets (MASI), 3 of 30 annotators on each item", True, 30),
)


def crowd_table(n_items: int, n_annotators: int, *, sets: bool, seed: int = 0) -> RatingTable:
    """synthetic_table's ratings, each item's PER_ITEM ratings given by annotators drawn from a pool."""
    base = synthetic_table(n_items, PER_ITEM, N_CATEGORIES, sets=sets, seed=seed)
    if n_annotators == PER_ITEM:
        return base
    who = np.argsort(np.random.default_rng(seed + 1).random((n_items, n_annotators)), axis=1)[:, :PER_ITEM]
    cells = []
    for row, chosen in zip(base.cells, who.tolist()):
        full: list[frozenset[str] | None] = [None] * n_annotators
        for cell, annotator in zip(row, chosen):
            full[annotator] = cell
        cells.append(full)
    return RatingTable(base.items, [f"annotator {j}" for j in range(n_annotators)], cells)


def setup_django(db: Path | str) -> None:
    """Point Django at this SQLite file or database URL (created and migrated when new) before models are imported."""
    from bench.databases import setup_django as setup_database
    from bench.databases import sqlite_url

    setup_database(db if isinstance(db, str) else sqlite_url(db))


def load_labels(table: RatingTable, *, n_models: int = 1, n_datasets: int = 1, taxonomy: str = "bench") -> int:
    """Write the table as human Label rows (one per category in a cell); item i is example i // n_models
    of dataset (i // n_models) % n_datasets answered by model i % n_models. Returns the rows written."""
    from annotation.models import Annotator, Dataset, EvaluatedModel, Example, Label, Prediction
    from taxonomy.services.versions import CategorySpec, create_version

    paths = sorted({c for row in table.cells for cell in row if cell for c in cell})
    version = create_version(taxonomy_name=taxonomy, categories=[CategorySpec(p) for p in paths])
    categories = {c.path: c.pk for c in version.categories.all()}
    datasets = [Dataset.objects.create(name=f"{taxonomy}-data-{d}") for d in range(n_datasets)]
    models = [EvaluatedModel.objects.create(name=f"{taxonomy}-model-{m}") for m in range(n_models)]
    n_examples = math.ceil(len(table.items) / n_models)
    Example.objects.bulk_create([Example(dataset=datasets[e % n_datasets], example_id=str(e), input_text="")
                                 for e in range(n_examples)], batch_size=5000)
    examples = dict(Example.objects.filter(dataset__in=datasets).values_list("example_id", "pk"))
    Prediction.objects.bulk_create([
        Prediction(example_id=examples[str(i // n_models)], model=models[i % n_models], output_text="", score=0,
                   is_failure=True, content_key=str(i))
        for i in range(len(table.items))], batch_size=5000)
    by_key = dict(Prediction.objects.filter(model__in=models).values_list("content_key", "pk"))
    predictions = [by_key[str(i)] for i in range(len(table.items))]
    annotators = [Annotator.objects.get_or_create(name=a)[0] for a in table.annotators]
    labels = (Label(prediction_id=predictions[i], taxonomy_version=version, category_id=categories[c],
                    source="human", annotator=annotators[j])
              for i, row in enumerate(table.cells) for j, cell in enumerate(row) if cell for c in sorted(cell))
    n = 0
    batch: list[Label] = []
    for label in labels:
        batch.append(label)
        if len(batch) == 20_000:
            n += len(Label.objects.bulk_create(batch, batch_size=5000))
            batch = []
    n += len(Label.objects.bulk_create(batch, batch_size=5000))
    return n


def items_for(n_labels: int, *, sets: bool) -> int:
    """Items that give about n_labels rows at PER_ITEM ratings each (sets: a fifth carry two)."""
    return round(n_labels / (PER_ITEM * ((1 + SET_SHARE) if sets else 1)))


def logged_in_client():
    """A Django test Client logged in as a throw-away user."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(username="bench")
    client = Client()
    client.force_login(user)
    return client


def check_page(client, path: str) -> None:
    """GET the page; it must answer 200 without an error box."""
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    assert b'id="error"' not in response.content, response.content[:2000]


def time_page(client, path: str, repeats: int, *, fresh: bool) -> tuple[list[Run], int]:
    """Each GET of the page timed (wall and CPU seconds), and the queries of the last one; `fresh` clears
    Django's cache first, so nothing computed is reused. The one page timer of the page benchmarks."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    runs, queries = [], 0
    for _ in range(repeats):
        with CaptureQueriesContext(connection) as captured:
            runs.append(run_in_process(lambda: check_page(client, path), before=cache.clear if fresh else None))
        queries = len(captured)
    return runs, queries


def plain_scan(taxonomy: str, sources: tuple[str, ...]):
    """One plain scan of a version's label rows of these sources: their (item, annotator, category) ids
    fetched through the cursor and dropped, the floor any page reading those rows stands on."""
    from django.db import connection

    from annotation.models import Label
    from taxonomy.services.versions import resolve_version

    version = resolve_version(taxonomy)
    table = connection.ops.quote_name(Label._meta.db_table)
    marks = ", ".join(["%s"] * len(sources))

    def scan() -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT prediction_id, annotator_id, category_id FROM {table} "
                           f"WHERE taxonomy_version_id = %s AND source IN ({marks})", [version.pk, *sources])
            return len(cursor.fetchall())
    return scan


def scan_ratio(client, path: str, scan, repeats: int) -> tuple[int, list[float], list[float], PairedRatio]:
    """A cold GET of the page and a plain scan of its label rows, alternated `repeats` times: (rows scanned,
    page seconds, scan seconds, page / scan over the pairs)."""
    from django.core.cache import cache

    n_rows = scan()  # the database's page cache warmed, as the page's untimed first GET does
    check_page(client, path)
    runs = alternated({"page": lambda: run_in_process(lambda: check_page(client, path), before=cache.clear),
                       "scan": lambda: run_in_process(scan)}, repeats)
    page, scanned = [r.seconds for r in runs["page"]], [r.seconds for r in runs["scan"]]
    return n_rows, page, scanned, paired_ratio(page, scanned)


def time_command(args: list[str], repeats: int) -> tuple[list[float], dict]:
    """Seconds per `manage.py agreement --json` (in-process, cache cleared), and its report."""
    from django.core.cache import cache
    from django.core.management import call_command

    times, report = [], {}
    for _ in range(repeats):
        cache.clear()
        out = io.StringIO()
        start = time.perf_counter()
        call_command("agreement", "--json", *args, stdout=out)
        times.append(time.perf_counter() - start)
        report = json.loads(out.getvalue())
    return times, report


def page_numbers(client, path: str) -> dict:
    """The page's context numbers (the same the template shows), for the equality check."""
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()  # records the contexts templates were rendered with
    try:
        context = client.get(path).context
    finally:
        teardown_test_environment()
    # The report is a frozen AgreementReport; its dict through JSON, as the command prints it.
    report = json.loads(json.dumps(context["report"].to_dict()))
    return {s["name"]: s["value"] for s in context["stats"]} | {"per_category": report["per_category"],
                                                                "per_annotator": report["per_annotator"]}


def _runs(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def measure_kinds(client, kinds, repeats: int) -> list[list]:
    """Per kind of data: label, label rows, items, computed / computed CPU / cached / one-model page seconds,
    command seconds, page numbers == command JSON, a digest of the command's JSON, machine load before."""
    from annotation.models import Label
    from annotation.pages import PAGE_REPS

    rows = []
    for name, label, _, _ in kinds:
        load = machine_load()
        taxonomy = f"{name}@1"
        n_rows = Label.objects.filter(taxonomy_version__taxonomy__name=name).count()
        path = f"/agreement/?taxonomy={taxonomy}"
        first = time_page(client, path, 1, fresh=True)[0][0].seconds  # imports, the database's page cache
        computed = time_page(client, path, repeats, fresh=True)[0]
        fresh, fresh_cpu = [r.seconds for r in computed], [r.cpu for r in computed]
        warm = [r.seconds for r in time_page(client, path, repeats, fresh=False)[0]]
        filtered = [r.seconds for r in time_page(client, path + f"&model={name}-model-0", repeats, fresh=True)[0]]
        _, page, scanned, ratio = scan_ratio(client, path, plain_scan(taxonomy, ("human", "gold")), repeats)
        command, report = time_command(["--taxonomy", taxonomy, "--reps", str(PAGE_REPS)], repeats)
        shown = page_numbers(client, path)
        same = (shown["Krippendorff's alpha"] == report["krippendorff_alpha"]
                and shown["Fleiss' kappa"] == report["fleiss_kappa"]
                and shown["per_category"] == report["per_category"]
                and shown["per_annotator"] == report["per_annotator"])
        digest = hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest()
        rows.append([label, n_rows, report["n_items"], fresh, fresh_cpu, warm, filtered, command, same, digest, load,
                     [page, scanned, ratio.summary(target=3)]])
        print(f"{label} ({n_rows:,} rows): first {first:.2f} s; computed {statistics.median(fresh):.2f} s "
              f"({_runs(fresh)}; CPU {statistics.median(fresh_cpu):.2f}); cached {statistics.median(warm):.3f} s "
              f"({_runs(warm)}); one model {statistics.median(filtered):.2f} s; command "
              f"{statistics.median(command):.2f} s ({_runs(command)}); page numbers == command JSON: {same}; "
              f"computed page / plain scan of its label rows: {ratio.summary(target=3)}", flush=True)
    return rows


def postgres_comparison(client, args, kinds) -> None:
    """The agreement page on this PostgreSQL database and on the SQLite file --compare-sqlite (the same build),
    one after the other; medians and PostgreSQL / SQLite ratios, into the PostgreSQL part of the docs."""
    lite = None
    if args.compare_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "sqlite.json"
            subprocess.run([sys.executable, __file__, "--db", str(args.compare_sqlite), "--repeats", str(args.repeats),
                            "--labels", str(args.labels), "--models", str(args.models), "--datasets",
                            str(args.datasets), "--kinds", *[k[0] for k in kinds], "--json-out", str(out)],
                           check=True, env={**os.environ, "BENCH_DATABASE_URL": ""})
            lite = json.loads(out.read_text())
    pg = measure_kinds(client, kinds, args.repeats)
    med = statistics.median
    lines = [
        "`GET /agreement/` (Django test Client, logged in, Django's local-memory cache) on PostgreSQL holding about",
        f"{args.labels:,} human label rows per kind of data, built by this benchmark (the data of the SQLite section",
        "above); the SQLite figures are the same benchmark on a SQLite file of the same build, run just before in the",
        f"same session. Median of {args.repeats} requests after an untimed first one. *Computed*: Django's cache",
        "cleared before each request; *cached* (warm): nothing changed since the last request. Target: warm < 2 s.",
        f"Code at commit {code_version()}. Machine load (`uptime`, 1/5/15 min) before each row.",
        "",
        ("| data | label rows | PostgreSQL computed, median s (runs) | PostgreSQL cached, median s (runs) "
         "| PostgreSQL one model | PostgreSQL command | SQLite computed / cached / one model / command "
         "| ratio computed / cached | same JSON on both | load (PostgreSQL; SQLite) |"),
        "|---|---:|---|---|---:|---:|---|---|---|---|",
    ]
    for i, (label, n_rows, _, fresh, _, warm, filtered, command, same, digest, load, _) in enumerate(pg):
        other = lite[i] if lite else None
        theirs = (f"{med(other[3]):.2f} / {med(other[5]):.3f} / {med(other[6]):.2f} / {med(other[7]):.2f}"
                  if other else "-")
        ratio = f"{med(fresh) / med(other[3]):.2f} / {med(warm) / med(other[5]):.2f}" if other else "-"
        equal = ("yes" if other and other[9] == digest else "NO") if other else "-"
        lines.append(f"| {label} | {n_rows:,} | {med(fresh):.2f} ({_runs(fresh)}) | {med(warm):.3f} ({_runs(warm)}) "
                     f"| {med(filtered):.2f} | {med(command):.2f} | {theirs} | {ratio} | {equal} "
                     f"| {load}{'; ' + other[10] if other else ''} |")
        if not same:
            lines.append(f"| (the page's numbers differ from `agreement --json` on PostgreSQL for {label}) |")
    lines += [
        "",
        NOTES_POSTGRES,
        "",
        (f"Reproduce: `scripts/services start`, then `.venv/bin/python bench/agreement_page_bench.py --labels "
         f"{args.labels} --models {args.models} --datasets {args.datasets} --repeats {args.repeats} --kinds "
         f"{' '.join(k[0] for k in kinds)} --database-url postgres://postgres@127.0.0.1:PORT/agreement1m "
         "--compare-sqlite PATH` (each database is built once and kept)"),
    ]
    body = "\n".join(lines)
    publish("postgres-agreement-page", f"Agreement page at {args.labels:,} labels", body,
            write=not args.no_write, parent="postgres")


NOTES_POSTGRES = """What a request costs on PostgreSQL (the query log of one request at this size): a cached one is the
change markers (annotation/changes.py; the exact `COUNT(*)` of the label table is a parallel index-only scan
on PostgreSQL, about 0.14-0.2 s here, where SQLite counts from its smallest index in about 20 ms), the small
tables (categories, annotators, datasets, models) and rendering; a computed one adds one read of the human
rows as arrays (about 1-1.5 s) and the statistics in numpy, the same work as on SQLite. No query had a worse
plan on PostgreSQL than on SQLite."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--labels", type=int, default=1_000_000, help="about this many label rows per data kind")
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--datasets", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--db", type=Path, help="SQLite file to reuse (built here when missing)")
    add_database_url_argument(parser)
    parser.add_argument("--kinds", nargs="+", choices=[k[0] for k in KINDS], default=[k[0] for k in KINDS],
                        help="kinds of data to build and time (default: all)")
    parser.add_argument("--compare-sqlite", type=Path, metavar="PATH",
                        help="with a PostgreSQL --database-url: the same measurements on this SQLite file "
                             "(built when missing)")
    parser.add_argument("--json-out", type=Path, help=argparse.SUPPRESS)  # the SQLite side of --compare-sqlite
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    parser.add_argument("--build-only", action="store_true", help="build the database and stop")
    args = parser.parse_args()

    db = args.database_url or sqlite_url(
        args.db or Path(tempfile.mkdtemp(prefix="agreement-page-bench-")) / "db.sqlite3")
    setup_django(db)
    from annotation.pages import PAGE_REPS
    from taxonomy.models import TaxonomyVersion

    kinds = [kind for kind in KINDS if kind[0] in args.kinds]
    for name, label, sets, pool in kinds:
        if not TaxonomyVersion.objects.filter(taxonomy__name=name).exists():
            start = time.perf_counter()
            table = crowd_table(items_for(args.labels, sets=sets), pool, sets=sets)
            n = load_labels(table, n_models=args.models, n_datasets=args.datasets, taxonomy=name)
            analyze_postgres()
            print(f"loaded {label}: {n:,} label rows, {len(table.items):,} items in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)

    if args.build_only:
        return
    client = logged_in_client()
    if is_postgres(args.database_url):
        postgres_comparison(client, args, kinds)
        return
    rows = measure_kinds(client, kinds, args.repeats)
    if args.json_out:
        args.json_out.write_text(json.dumps(rows))
        return

    lines = [
        f"`GET /agreement/` (Django test Client, logged in) on SQLite holding about {args.labels:,} human label",
        f"rows per kind of data ({PER_ITEM} annotators per item, {N_CATEGORIES} categories in a two-level tree, items",
        (f"spread over {args.models} models and {args.datasets} datasets), beside "
         f"`manage.py agreement --json --reps {PAGE_REPS}`"),
        f"(the page's resamples) on the same rows. Median of {args.repeats} requests after a first one.",
        "*Computed*: Django's cache cleared before each request, so the labels are read and every statistic",
        "computed; *cached*: the report reused under the label fingerprint. Target: under 5 s.",
        "",
        ("| data | label rows | items | page computed, median s (runs) | computed, median CPU s "
         "| page cached, median s | page, one model, median s | command, median s | page = command JSON "
         "| load before (1, 5, 15 min) |"),
        "|---|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for label, n_rows, n_items, fresh, fresh_cpu, warm, filtered, command, same, _, load, _ in rows:
        lines.append(f"| {label} | {n_rows:,} | {n_items:,} | {statistics.median(fresh):.2f} ({_runs(fresh)}) "
                     f"| {statistics.median(fresh_cpu):.2f} "
                     f"| {statistics.median(warm):.3f} | {statistics.median(filtered):.2f} "
                     f"| {statistics.median(command):.2f} | {'yes' if same else 'NO'} | {load} |")
    lines += [
        "",
        "Each computed page beside one plain scan of the label rows it reads (`SELECT prediction_id, annotator_id,",
        "category_id` of the version's human and gold rows, `fetchall`, nothing else), alternated; the ratio is",
        "the median of the per-pair ratios (the issue's target: at most 3):",
        "",
        "| data | page computed, median s (runs) | scan, median s (runs) | page / scan |",
        "|---|---|---|---|",
    ]
    for label, *_, (page, scanned, summary) in rows:
        lines.append(f"| {label} | {statistics.median(page):.2f} ({_runs(page)}) "
                     f"| {statistics.median(scanned):.2f} ({_runs(scanned)}) | {summary} |")
    lines += [
        "",
        NOTES,
        "",
        (f"Reproduce: `.venv/bin/python bench/agreement_page_bench.py --labels {args.labels} --models {args.models} "
         f"--datasets {args.datasets} --repeats {args.repeats}` (add `--db PATH` to keep and reuse the database)"),
    ]
    body = "\n".join(lines)
    publish("agreement-page", f"Agreement page at {args.labels:,} labels", body, write=not args.no_write)


NOTES = """Before (main at 5bb6400, the same database, alternated with the code of that day in two runs at load
5-7): page / scan 2.44-2.54 (single), 4.66-4.85 (sets) and 7.69-8.46 (30 annotators). cProfile of a computed
request then: with sets, the statistics 1.87 s of CPU (the bootstrap 1.24 s: pattern counting 0.70 s and the
resample products, on OpenBLAS threads that spun) and the label read 1.35 s; with 30 annotators, the
statistics 3.83 s (alpha without each annotator as 30 separate pattern passes, and the pairwise kappas,
1.76 s). Now: the statistics run on one BLAS thread (the same bits); the bootstrap counts resampled patterns
from running totals of the drawn items (the same draws); alpha without each annotator numbers every full and
reduced item pattern once and moves counts per annotator; the pairwise kappas come from one sort of the
items' rating pairs; each source's label rows are read in one statement into numpy. Unit tests hold each
against the straightforward computation, and the `agreement --json` output is byte-identical to the earlier
code's on all three kinds and on MQM. What is left is mostly the label read (the scan's own floor) and the
bootstrap's random draws, which fewer resamples would cut only by changing the intervals.

A cached request reads the label change marker (annotation/changes.py) and the category, annotator, dataset
and model names."""


if __name__ == "__main__":
    main()
