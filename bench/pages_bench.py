"""Benchmark: the web UI's `/judge/` page and dashboard `/` at about 1,000,000 labels and 1,000,000 predictions.

Not a test (nothing asserts a time). Writes its figures into the `pages` section of docs/benchmarks.md.
    .venv/bin/python bench/pages_bench.py [--labels 1000000] [--predictions 1000000] [--repeats 5] [--db PATH]
With a PostgreSQL `--database-url` it times every page that reads labels and `signatures` there (beside the same on
the SQLite file `--compare-sqlite PATH`) and writes the PostgreSQL part of docs/benchmarks.md instead.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.agreement_page_bench import logged_in_client, plain_scan, scan_ratio, setup_django, time_page
from bench.databases import add_database_url_argument, analyze_postgres, is_postgres, sqlite_url
from bench.report import code_version, machine_load, publish

HUMANS = 3  # human annotators on every labelled item
N_TOP, N_SUB = 5, 4  # a two-level tree: 5 top categories of 4 leaves each (20 leaves)
GOLD_SHARE = 0.1  # items with an adjudicated gold label
HUMAN_AGREES = 0.7  # chance a person (or the judge) picks the item's true category
CHUNK = 50_000


def _chunks(rows, size: int = CHUNK):
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def build(n_labels: int, n_predictions: int, *, n_models: int = 10, n_datasets: int = 4, seed: int = 0) -> None:
    """Predictions (half failures), and on failures 3 human labels, one judge label (with a confidence) and
    gold on a tenth of them: about n_labels label rows in all."""
    from annotation.models import Annotator, Dataset, EvaluatedModel, Example, Label, Prediction
    from taxonomy.services.versions import CategorySpec, create_version

    rng = np.random.default_rng(seed)
    paths = [f"top {t} / leaf {t}.{s}" for t in range(N_TOP) for s in range(N_SUB)]
    version = create_version(taxonomy_name="pages", categories=[CategorySpec(p) for p in paths])
    leaf_ids = np.array([version.categories.get(path=p).pk for p in paths], dtype=np.int64)
    datasets = [Dataset.objects.create(name=f"pages-data-{d}") for d in range(n_datasets)]
    models = [EvaluatedModel.objects.create(name=f"pages-model-{m}") for m in range(n_models)]
    n_examples = -(-n_predictions // n_models)
    for batch in _chunks(Example(dataset=datasets[e % n_datasets], example_id=str(e), input_text="")
                         for e in range(n_examples)):
        Example.objects.bulk_create(batch, batch_size=5000)
    examples = dict(Example.objects.filter(dataset__in=datasets).values_list("example_id", "pk"))
    n_items = round(n_labels / (HUMANS + 1 + GOLD_SHARE))
    failing = np.zeros(n_predictions, dtype=bool)
    failing[rng.choice(n_predictions, size=max(n_items, n_predictions // 2), replace=False)] = True
    for batch in _chunks(Prediction(example_id=examples[str(i // n_models)], model=models[i % n_models],
                                    output_text="", score=0.0, is_failure=bool(failing[i]), content_key=str(i))
                         for i in range(n_predictions)):
        Prediction.objects.bulk_create(batch, batch_size=5000)
    failures = np.array(sorted(Prediction.objects.filter(model__in=models, is_failure=True)
                               .values_list("pk", flat=True)), dtype=np.int64)
    items = rng.choice(failures, size=n_items, replace=False)
    truth = rng.integers(0, len(leaf_ids), n_items)

    def chosen() -> np.ndarray:
        return np.where(rng.random(n_items) < HUMAN_AGREES, truth, rng.integers(0, len(leaf_ids), n_items))

    humans = [Annotator.objects.create(name=f"person-{h}") for h in range(HUMANS)]
    judge = Annotator.objects.create(name="judge:bench", kind=Annotator.Kind.JUDGE)
    adjudicator = Annotator.objects.create(name="adjudicator", kind=Annotator.Kind.ADJUDICATOR)
    gold = rng.random(n_items) < GOLD_SHARE
    confidence = np.round(rng.random(n_items), 3)
    columns = [(human, "human", chosen(), np.ones(n_items, dtype=bool), None) for human in humans]
    columns += [(judge, "judge", chosen(), np.ones(n_items, dtype=bool), confidence),
                (adjudicator, "gold", truth, gold, None)]
    for annotator, source, picks, present, conf in columns:
        rows = (Label(prediction_id=int(items[i]), taxonomy_version=version, category_id=int(leaf_ids[picks[i]]),
                      source=source, annotator=annotator,
                      confidence=None if conf is None else float(conf[i]))
                for i in np.flatnonzero(present).tolist())
        for batch in _chunks(rows):
            Label.objects.bulk_create(batch, batch_size=5000)


def time_get(client, path: str, repeats: int, *, fresh: bool) -> tuple[list[float], int]:
    """Seconds per GET (Django's cache cleared before each when `fresh`), and the queries of the last one."""
    runs, queries = time_page(client, path, repeats, fresh=fresh)
    return [run.seconds for run in runs], queries


# Each page beside one plain scan of the label rows it reads (the target: at most 3x that scan).
SCANNED = (("/judge/", "/judge/?taxonomy=pages@1", ("judge", "human", "gold")),
           ("/agreement/", "/agreement/?taxonomy=pages@1", ("human", "gold")))


def scan_ratios(client, repeats: int) -> list[tuple[str, tuple[str, ...], int, list[float], list[float], str]]:
    """Per page of SCANNED: (page, sources, rows scanned, cold page seconds, scan seconds, page / scan)."""
    rows = []
    for name, path, sources in SCANNED:
        n_rows, page, scanned, ratio = scan_ratio(client, path, plain_scan("pages@1", sources), repeats)
        rows.append((name, sources, n_rows, page, scanned, ratio.summary(target=3)))
        print(f"{name} cold / plain scan of its {n_rows:,} label rows: {ratio.summary(target=3)}", flush=True)
    return rows


def judge_page_matches_command(client) -> bool:
    """The judge page's audit equals `judge_audit --json` on the same labels."""
    from django.core.management import call_command
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    try:
        shown = client.get("/judge/?taxonomy=pages@1").context["audit"]
    finally:
        teardown_test_environment()
    out = io.StringIO()
    call_command("judge_audit", "--json", "--taxonomy", "pages@1", stdout=out)
    command = json.loads(out.getvalue())
    # The page holds a frozen JudgeAuditReport; its dict through JSON, as the command prints it.
    return json.loads(json.dumps(shown.to_dict()))["judges"] == command["judges"]


PAGES = (("/judge/", "/judge/?taxonomy=pages@1"), ("/ (dashboard)", "/"))
# Every page that reads the labels (and the dashboard).
ALL_PAGES = (*PAGES, ("/agreement/", "/agreement/?taxonomy=pages@1"),
             ("/signatures/", "/signatures/?taxonomy=pages@1"), ("/atlas/", "/atlas/?taxonomy=pages@1"))
# The SQLite section: every page, the signatures and atlas over the people's labels as well (3x the judge's rows).
SQLITE_PAGES = (*ALL_PAGES, ("/signatures/ (human)", "/signatures/?taxonomy=pages@1&source=human"),
                ("/atlas/ (human)", "/atlas/?taxonomy=pages@1&source=human"))
COMMANDS = (("signatures --json", ["signatures", "--taxonomy", "pages@1", "--json"]),
            ("signatures --correct-with gold --json",
             ["signatures", "--taxonomy", "pages@1", "--correct-with", "gold", "--json"]))


def measure_pages(client, pages, repeats: int) -> list[tuple[str, list[float], int, list[float], int]]:
    """(page, cold seconds, cold queries, warm seconds, warm queries) of each page, after one untimed GET."""
    rows = []
    for name, path in pages:
        time_get(client, path, 1, fresh=True)  # imports, the database's page cache
        cold, cold_queries = time_get(client, path, repeats, fresh=True)
        warm, warm_queries = time_get(client, path, repeats, fresh=False)
        rows.append((name, cold, cold_queries, warm, warm_queries))
        print(f"{name}: cold {statistics.median(cold):.2f} s ({_runs(cold)}; {cold_queries} queries); "
              f"warm {statistics.median(warm):.3f} s ({_runs(warm)}; {warm_queries} queries)", flush=True)
    return rows


def time_command(args: list[str], repeats: int) -> tuple[list[float], str]:
    """Seconds per in-process `manage.py ARGS` (Django's cache cleared before each), and its last output."""
    from django.core.cache import cache
    from django.core.management import call_command

    times, output = [], ""
    for _ in range(repeats):
        cache.clear()
        out = io.StringIO()
        start = time.perf_counter()
        call_command(*args, stdout=out)
        times.append(time.perf_counter() - start)
        output = out.getvalue()
    return times, output


def measure_everything(client, repeats: int) -> dict:
    """Every page of ALL_PAGES and every command of COMMANDS on the database Django points at, with the
    machine load before each, and a digest of each command's output (equal digests: equal figures)."""
    from django.db import connection

    pages = []
    for page in ALL_PAGES:
        load = machine_load()
        pages.append([*measure_pages(client, [page], repeats)[0], load])
    commands = []
    for name, args in COMMANDS:
        load = machine_load()
        times, output = time_command(args, repeats)
        print(f"{name}: {statistics.median(times):.2f} s ({_runs(times)})", flush=True)
        commands.append([name, times, hashlib.sha256(output.encode()).hexdigest(), load])
    return {"vendor": connection.vendor, "pages": pages, "commands": commands,
            "judge_page_equals_command": judge_page_matches_command(client)}


def postgres_comparison(client, args, n_labels: int, n_predictions: int) -> None:
    """Every page and command on this PostgreSQL database and on the SQLite file --compare-sqlite (the same
    build), one after the other; medians and PostgreSQL / SQLite ratios, into the PostgreSQL part of the docs."""
    results = {}
    if args.compare_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "sqlite.json"
            subprocess.run([sys.executable, __file__, "--db", str(args.compare_sqlite), "--repeats", str(args.repeats),
                            "--labels", str(args.labels), "--predictions", str(args.predictions),
                            "--json-out", str(out)], check=True, env={**os.environ, "BENCH_DATABASE_URL": ""})
            results["SQLite"] = json.loads(out.read_text())
    results["PostgreSQL"] = measure_everything(client, args.repeats)
    pg, lite = results["PostgreSQL"], results.get("SQLite")
    lines = [
        f"`GET` (Django test Client, logged in, Django's local-memory cache) on PostgreSQL holding {n_labels:,} label",
        f"rows and {n_predictions:,} predictions, built by this benchmark's `build` (the data of the SQLite",
        "section above). *Cold*: Django's cache cleared before each request; *warm*: nothing changed since the",
        f"last request. Median of {args.repeats} requests after an untimed first one; `signatures` runs in process",
        "with the cache cleared before each run. The SQLite figures are the same benchmark on a SQLite file of the",
        "same build, run just before in the same session. Machine load (`uptime`, 1/5/15 min) before each row.",
        f"Code at commit {code_version()}.",
        "",
        ("| page or command | PostgreSQL cold, median s (runs) | queries | PostgreSQL warm, median s (runs) "
         "| SQLite cold / warm, median s | ratio cold / warm | load (PostgreSQL; SQLite) |"),
        "|---|---|---:|---|---|---|---|",
    ]
    for i, (name, cold, cold_queries, warm, _, load) in enumerate(pg["pages"]):
        other = lite["pages"][i] if lite else None
        theirs = (f"{statistics.median(other[1]):.2f} / {statistics.median(other[3]):.3f}" if other else "-")
        ratio = (f"{statistics.median(cold) / statistics.median(other[1]):.2f} / "
                 f"{statistics.median(warm) / statistics.median(other[3]):.2f}" if other else "-")
        lines.append(f"| `{name}` | {statistics.median(cold):.2f} ({_runs(cold)}) | {cold_queries} "
                     f"| {statistics.median(warm):.3f} ({_runs(warm)}) | {theirs} | {ratio} "
                     f"| {load}{'; ' + other[5] if other else ''} |")
    for i, (name, times, digest, load) in enumerate(pg["commands"]):
        other = lite["commands"][i] if lite else None
        theirs = f"{statistics.median(other[1]):.2f}" if other else "-"
        ratio = f"{statistics.median(times) / statistics.median(other[1]):.2f}" if other else "-"
        lines.append(f"| `{name}` | {statistics.median(times):.2f} ({_runs(times)}) | | | {theirs} | {ratio} "
                     f"| {load}{'; ' + other[3] if other else ''} |")
    lines.append("")
    same_audit = "yes" if pg["judge_page_equals_command"] else "NO"
    lines.append(f"Judge page's audit equals `judge_audit --json` on PostgreSQL: {same_audit}.")
    if lite:
        same = all(a[2] == b[2] for a, b in zip(pg["commands"], lite["commands"], strict=True))
        lines.append(f"`signatures` prints the same JSON, byte for byte, on both databases: {'yes' if same else 'NO'}.")
    lines += [
        "",
        NOTES_POSTGRES,
        "",
        (f"Reproduce: `scripts/services start`, then `.venv/bin/python bench/pages_bench.py --labels {args.labels} "
         f"--predictions {args.predictions} --repeats {args.repeats} "
         "--database-url postgres://postgres@127.0.0.1:PORT/pages1m --compare-sqlite PATH` (each database is built "
         "once and kept)"),
    ]
    body = "\n".join(lines)
    publish("postgres-pages", f"Pages and `signatures` at {args.labels:,} labels", body,
            write=not args.no_write, parent="postgres")


NOTES_POSTGRES = """What differs between the two databases: PostgreSQL hands label and prediction rows to Python through
the cursor, one tuple per row, while SQLite answers the one-statement packed read (each row's ids packed into
one integer, the rows parsed by numpy in C) that the pages use there; that is most of the gap in the cold
pages. Signatures and the atlas read labels alone and map them through one ordered pass over the predictions
on both. The rest of a cold page is Python and numpy, the same on both. A warm page is a cache read behind the
change markers, which on PostgreSQL count the newest entries of the change log down its index (1-2 ms; the
exact `COUNT(*)` of each table they replaced cost 0.14-0.2 s per table at this size)."""


def _runs(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--labels", type=int, default=1_000_000, help="about this many label rows")
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--db", type=Path, help="SQLite file to reuse (built here when missing)")
    add_database_url_argument(parser)
    parser.add_argument("--build-only", action="store_true", help="build the database and stop")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    parser.add_argument("--compare-sqlite", type=Path, metavar="PATH",
                        help="with a PostgreSQL --database-url: the same measurements on this SQLite file "
                             "(built when missing)")
    parser.add_argument("--json-out", type=Path, help=argparse.SUPPRESS)  # the SQLite side of --compare-sqlite
    args = parser.parse_args()

    db = args.database_url or sqlite_url(args.db or Path(tempfile.mkdtemp(prefix="pages-bench-")) / "db.sqlite3")
    setup_django(db)
    from annotation.models import Label, Prediction
    from taxonomy.models import TaxonomyVersion

    if not TaxonomyVersion.objects.filter(taxonomy__name="pages").exists():
        start = time.perf_counter()
        build(args.labels, args.predictions)
        analyze_postgres()
        print(f"built {db} in {time.perf_counter() - start:.0f} s", flush=True)
    n_labels, n_predictions = Label.objects.count(), Prediction.objects.count()
    print(f"{n_labels:,} labels, {n_predictions:,} predictions", flush=True)
    if args.build_only:
        return
    client = logged_in_client()
    if is_postgres(args.database_url):
        postgres_comparison(client, args, n_labels, n_predictions)
        return
    if args.json_out:
        args.json_out.write_text(json.dumps(measure_everything(client, args.repeats)))
        return
    load_before = machine_load()
    rows = measure_pages(client, SQLITE_PAGES, args.repeats)
    ratios = scan_ratios(client, args.repeats)
    same = judge_page_matches_command(client)
    load_after = machine_load()
    print(f"judge page audit == judge_audit --json: {same}", flush=True)

    lines = [
        f"`GET` (Django test Client, logged in) on SQLite holding {n_labels:,} label rows and {n_predictions:,}",
        f"predictions (half failures; on labelled failures {HUMANS} people, one judge with a confidence, gold on",
        f"{GOLD_SHARE:.0%}; 20 leaf categories under 5 top ones). *Cold*: Django's cache cleared before each",
        ("request; *warm*: nothing changed since the last request. Median of "
         f"{args.repeats} requests after a first one (2 cores; load average {load_before} before,"),
        f"{load_after} after). Targets: warm < 1 s, cold < 2 s,",
        "`/` < 0.3 s.",
        "",
        "| page | cold, median s (runs) | queries | warm, median s (runs) | queries |",
        "|---|---|---:|---|---:|",
    ]
    for name, cold, cold_queries, warm, warm_queries in rows:
        lines.append(f"| `{name}` | {statistics.median(cold):.2f} ({_runs(cold)}) | {cold_queries} "
                     f"| {statistics.median(warm):.3f} ({_runs(warm)}) | {warm_queries} |")
    lines += [
        "",
        "Each page cold beside one plain scan of the label rows it reads (`SELECT prediction_id, annotator_id,",
        "category_id` of the version's rows of those sources, `fetchall`, nothing else), alternated; the ratio",
        "is the median of the per-pair ratios (target: at most 3):",
        "",
        "| page | sources scanned | rows | page cold, median s | scan, median s | page / scan |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, sources, n_rows, page, scanned, summary in ratios:
        lines.append(f"| `{name}` | {', '.join(sources)} | {n_rows:,} | {statistics.median(page):.2f} "
                     f"| {statistics.median(scanned):.2f} | {summary} |")
    lines += [
        "",
        f"Judge page's audit equals `judge_audit --json`: {'yes' if same else 'NO'}.",
        "",
        NOTES,
        "",
        (f"Reproduce: `.venv/bin/python bench/pages_bench.py --labels {args.labels} --predictions {args.predictions} "
         f"--repeats {args.repeats}` (add `--db PATH` to keep and reuse the database)"),
    ]
    body = "\n".join(lines)
    publish("pages", f"Pages at {args.labels:,} labels", body, write=not args.no_write)


NOTES = """This run: medians of 3 cold and 3 warm requests after a first one, with nothing else measured beside it (load
in the header); the page / scan ratios come from alternated pairs. The session's before and after figures below
are from alternated runs of the earlier and the new code on the same database.

Warm: every page is a cache read behind the change markers (annotation/changes.py: the label and prediction
tables' change log, counted over a window of its newest entries).

Cold, what each page does now:
- `/judge/` reads each label source in one statement straight into numpy (on SQLite each row's ids packed into
  one integer and the rows parsed by numpy, confidences as exact scaled integers; the cursor elsewhere), builds
  each label row into one table (the judge-and-human table is joined from the two sources' own tables, which
  the audit reuses) and compares with gold without a Python object per gold item (which had set off a full
  garbage collection). The agreement statistics run on one BLAS thread with the bootstrap and per-annotator
  figures computed from pattern counts. Report and audit JSON are byte-identical to the earlier code's on
  this database. Alternated with main before the change (5bcb441) at load ~3: cold 3.69-3.91 -> 1.89-1.96 s,
  page / scan 4.26-4.81 -> 2.18-2.29. cProfile of a cold request after (1.35 s): label reads 0.39 s (0.35 s of
  it SQLite), agreement statistics 0.37 s (bootstrap resampling 0.16 s), tables 0.10 s, audit 0.19 s,
  template 0.12 s.
- `/signatures/` and `/atlas/` read the labels alone (the per-source array read the judge page shares) and
  take each label's model, dataset and failure flag from one pass over the failing predictions in id order
  (on SQLite each row packed into one integer, the rows parsed by numpy), instead of joining every label to
  its prediction in label order, at random (the 731,706 human labels joined took 18-22 s at load ~10). They
  count on packed integer keys with hash tables instead of grouping a frame by several columns, adding the
  same weights in the same order, so every figure is identical: the `signatures` command (text, JSON,
  `--correct-with gold`, `--compare`), corrected signatures, atlas JSON and the pages' HTML were compared
  before and after on this database and on the MQM demo with failure flags flipped. Alternated with main
  before the change (5bb6400, the same database without the new index), cold medians of 3 at load ~3:
  `/signatures/` 2.79 -> 1.40 s, `/atlas/` 1.43 -> 0.68 s, `/signatures/ (human)` 3.26 -> 0.80 s,
  `/atlas/ (human)` 3.81 -> 0.65 s. cProfile of a cold `/signatures/ (human)` at load ~5: the label read
  0.69 s, the prediction pass 0.42 s, the two weighted counts 1.15 s of 2.6 s.
- `/` cold counts predictions and failures per dataset from an index on (example, failure flag), example by
  example, without reading the prediction rows (that query 1.02 -> 0.40 s at load ~9), and labels per source
  from the source index; both are cached behind the change markers, so they are paid once after a write.
  Alternated as above: 0.53 -> 0.29 s at load ~3. What remains is those two passes over about a million
  index entries each (0.57 s and 0.28 s of a 0.89 s cold request under cProfile at load ~7)."""

if __name__ == "__main__":
    main()
