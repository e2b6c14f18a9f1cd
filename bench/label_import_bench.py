"""Benchmark: import_labels against ingest of the same number of rows (rows/s, CPU, peak memory).

A generated ErrorMap results file is ingested once into a template SQLite database; each timed
import_labels then runs in a child process on a fresh copy of it. The alternative is ingest_results
of a results CSV with as many rows as the label file, into a fresh database, in a child process too.
Runs alternate (ours, ingest, ours, ...) and medians are reported. Figures go to stdout and to
docs/benchmarks.md.

    .venv/bin/python bench/label_import_bench.py [--rows 750000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.ingest_bench import generate_csv
from bench.report import machine_load, write_section
from bench.timing import Run, alternated, median, run_child

MODELS = 10  # as in generate_csv: example = i // 10, model = i % 10, dataset bench-{example % 4}
ANNOTATORS = 3
CATEGORIES = [f"{top} / {leaf}" for top in ("Accuracy", "Fluency", "Reasoning", "Format")
              for leaf in ("Omission", "Addition", "Wrong step", "Misread", "Other")]


def generate_labels(path: Path, rows: int) -> int:
    """`rows` label rows: three annotators per prediction, one category each (the predictions come
    from generate_csv(rows // 3)); returns the number of predictions they need."""
    predictions = rows // ANNOTATORS
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "example_id", "model", "annotator", "category", "confidence", "note"])
        for annotator in range(ANNOTATORS):  # rater by rater, as the MQM file is ordered
            for i in range(predictions):
                example, model = divmod(i, MODELS)
                writer.writerow([
                    f"bench-{example % 4}", f"ex{example}", f"model-{model}", f"rater-{annotator}",
                    CATEGORIES[(i * 7 + annotator * (i % 3)) % len(CATEGORIES)], "0.8", "",
                ])
    return predictions


def environment(var: Path) -> dict:
    return {**os.environ, "ERRORMAP_VAR_DIR": str(var), "DATABASE_URL": f"sqlite:///{var}/bench.sqlite3"}


def import_once(template: Path, labels: Path, loads: list[str]) -> Run:
    with tempfile.TemporaryDirectory() as var:
        shutil.copy(template, Path(var) / "bench.sqlite3")
        loads.append(machine_load().split(",")[0])  # the 1-minute load as this import starts
        return run_child(["manage.py", "import_labels", str(labels), "--taxonomy", "bench"], env=environment(Path(var)))


def ingest_once(results: Path) -> Run:
    with tempfile.TemporaryDirectory() as var:
        env = environment(Path(var))
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        return run_child(["manage.py", "ingest_results", str(results)], env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=750_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # A quarter of the size too: peak memory must not grow with the file.
    sizes = sorted({args.rows // 4, args.rows})
    lines = [
        ("| label rows | import_labels s | rows/s | CPU s | rows/s of CPU | peak RSS MiB | ingest of as many rows s "
         "| ingest RSS MiB | ratio | load at each import (1 min) |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for rows in sizes:
            labels, predictions_csv, same_rows_csv = (tmp_path / name for name in ("labels.csv", "p.csv", "same.csv"))
            predictions = generate_labels(labels, rows)
            generate_csv(predictions_csv, predictions)
            generate_csv(same_rows_csv, rows)
            template_var = tmp_path / "template"
            template_var.mkdir(exist_ok=True)
            env = environment(template_var)
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
            subprocess.run([sys.executable, "manage.py", "ingest_results", str(predictions_csv)], cwd=ROOT, env=env,
                           check=True, stdout=subprocess.DEVNULL)
            loads: list[str] = []
            runs = alternated({"ours": partial(import_once, template_var / "bench.sqlite3", labels, loads),
                               "ingest": partial(ingest_once, same_rows_csv)}, args.repeats)
            ours, theirs = runs["ours"], runs["ingest"]
            for run, load in zip(ours, loads):
                print(f"{rows:,} label rows: {run.seconds:.1f} s ({rows / run.seconds:,.0f} rows/s), "
                      f"CPU {run.cpu:.1f} s ({rows / run.cpu:,.0f} rows/s), peak {run.rss_mib:.0f} MiB, load {load}",
                      flush=True)
            seconds, alternative, cpu = median(ours), median(theirs), median(ours, "cpu")
            line = (f"| {rows:,} | {seconds:.1f} | {rows / seconds:,.0f} | {cpu:.1f} | {rows / cpu:,.0f} | "
                    f"{median(ours, 'rss_mib'):.0f} | {alternative:.1f} | {median(theirs, 'rss_mib'):.0f} | "
                    f"{seconds / alternative:.2f} | {', '.join(loads)} |")
            print(line, flush=True)
            lines.append(line)
            shutil.rmtree(template_var)
    write_report(lines, args.rows, args.repeats)


NOTES = """\
How: a CSV is read by Arrow a block at a time and checked column-wise (names, categories and sources
once per distinct value), with the row reader taking over from the first block the column checks
cannot vouch for, so errors still name FILE:LINE; rows are staged in a temporary table, matched to
predictions with one join, repeated categories in a set are folded, and the sets are written
set-wise in SQL (`replace_label_table`: one DELETE, UPDATE and INSERT ... SELECT each; gold goes
through adjudication as a decision). The label table keeps three indexes of ten (the unique key,
(version, source), source): no query used the other seven. Before this, 750k labels took 153 s and
1.37 GiB, then (streamed, per-set Python writes, ten indexes) ~2.9k rows/s wall, ~23k rows/s of CPU.
Since the last figures the staged rows go in as multi-row INSERTs (`insert_rows`, ~140 rows a
statement) and the collector is paused while they are read (about 5 % of the CPU at 187,500 rows).

Why wall is far below the CPU rate here: the machine's two cores were shared with 5-10 runnable
processes, and the import waits for a core, not for the disk or a lock. While it ran, `vmstat` showed
the cores 95-100 % busy with no I/O wait (wa 0) and 9-11 runnable; `/usr/bin/time -v` of a 750,000-row
import counted 189 voluntary context switches (waits) against 3,250 involuntary ones (preemptions);
`strace` of a 187,500-row import found 7 fsync/fdatasync calls in all (WAL with synchronous=NORMAL
syncs at the checkpoint only); and every statement's wall time was its CPU time stretched by the same
factor (about 7 at load 9), where a lock wait or I/O would stretch one of them. So on a quiet machine
the wall rate is about the CPU rate (end to end, start-up included), and at load L on 2 cores it is
about that times 2/L. Tried and left out: SQLite's temporary tables spill to a file (160 MB written
for 187,500 rows), but holding them in memory (`temp_store=MEMORY`, or a 64 MiB temp cache) saved only
0.27 s of system CPU there and made peak memory grow with the file (+40 to +58 MiB).

Where the CPU goes now (750,000 rows, in-process, 8.5 s CPU: 88k rows/s; statement times from a
wrapper on the cursor): inserting the label rows 1.95 s, matching staged rows to predictions 1.08 s,
the set-ordered copy with ids 1.05 s, staging the checked rows 0.89 s, folding repeats 0.38 s, the
order index 0.34 s, the delete pass 0.27 s, drops and counts about 0.6 s; reading and checking the CSV
with Arrow and building the rows about 1.9 s. Process start-up (Django, Arrow) is about 1 s of CPU.

Peak memory: Arrow's libraries and block reader add a fixed ~60 MiB over the streamed-Python
version (172 MiB). Between the small and the large file it grows by about 60 MiB, which is within what
SQLite's page cache may hold (64 MiB for the database; the staging tables spill to a temporary file);
it levels off: one import of 1,500,000 rows the same way with this code (`manage.py import_labels`
under `/usr/bin/time`, load 7.5) peaked at 286 MiB and used 18.4 s of CPU (81k rows/s; 4.1 s of it
system time, mostly the staging tables' page writes and reads), 56.4 s wall."""


def write_report(lines: list[str], rows: int, repeats: int) -> None:
    body = "\n".join([
        "`import_labels` of a generated long label table (3 annotators per prediction, one of 20",
        "two-level categories each, rater by rater as the MQM file is ordered) into a SQLite database",
        "holding the predictions, against `ingest_results` of a results CSV with as many rows into a",
        f"fresh database; each in a child process (start-up included), alternated, median of {repeats}.",
        "Target: >= 50,000 label rows/s, peak memory independent of the file's size.",
        "The machine was shared with other work while this ran (2 cores; the 1-minute load as each import",
        "started is in the last column): wall times stretch with the load, CPU seconds much less.",
        "",
        *lines,
        "",
        NOTES,
        "",
        f"Reproduce: `.venv/bin/python bench/label_import_bench.py --rows {rows} --repeats {repeats}`",
    ])
    write_section("label_import", "Label import throughput and memory", body)


if __name__ == "__main__":
    main()
