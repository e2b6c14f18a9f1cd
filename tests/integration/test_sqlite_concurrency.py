"""SQLite waits, never crashes: writers in separate processes queue for the one write lock.

Before every transaction took the write lock when it began (`transaction_mode: IMMEDIATE`), a
transaction that read and then wrote while another process committed failed at once with `database
is locked` (SQLite cannot wait to upgrade a stale read snapshot): two concurrent `ingest_results`
crashed one of them, and a sync during a burst of webhook writes crashed the sync.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from annotation.models import Dataset, Example, Prediction, StageRun
from bench.ingest_bench import generate_csv
from tests.integration.test_kill_resume import (  # one migrated template, one child-process runner
    ROOT,
    WAIT,
    command_env,
    migrated_template,  # noqa: F401  (fixture)
    query,
    var_dir,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.slow


def run_together(commands: list[list[str]], env: dict[str, str], logs: Path) -> list[tuple[int, str]]:
    """Start every `manage.py` command at once; (exit status, output) of each."""
    procs = []
    for i, args in enumerate(commands):
        log = logs / f"child-{i}.log"
        with log.open("wb") as out:
            procs.append((subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                                           stdout=out, stderr=subprocess.STDOUT), log))
    results = []
    for proc, log in procs:
        try:
            status = proc.wait(timeout=WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        results.append((status, log.read_text()))
    return results


def test_two_concurrent_ingests_both_finish_with_every_row(var_dir, tmp_path):  # noqa: F811
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    generate_csv(first, 20_000)
    generate_csv(second, 20_000)
    second.write_text(second.read_text().replace("bench-", "other-"))  # other datasets, same shape
    env = command_env(var_dir)

    results = run_together([["ingest_results", str(first)], ["ingest_results", str(second)]], env, tmp_path)

    for status, output in results:
        assert status == 0, output
        assert "Traceback" not in output and "locked" not in output
    db = var_dir / "errormap.sqlite3"
    per_dataset = dict(query(
        db, f"SELECT d.name, COUNT(*) FROM {Prediction._meta.db_table} p "
            f"JOIN {Example._meta.db_table} e ON e.id = p.example_id "
            f"JOIN {Dataset._meta.db_table} d ON d.id = e.dataset_id GROUP BY d.name"
    ))
    assert per_dataset == {f"{prefix}-{i}": 5_000 for prefix in ("bench", "other") for i in range(4)}
    assert sorted(status for status, *_ in query(db, f"SELECT status FROM {StageRun._meta.db_table}")) == [
        "succeeded", "succeeded"]


# A sync's shape: read what is there, then write in the same transaction, many times; beside it a
# burst of short writes (webhook deliveries), from another process.
READ_THEN_WRITE = """
from django.db import transaction
from annotation.models import StageRun
for i in range({n}):
    with transaction.atomic():
        seen = StageRun.objects.filter(stage="{stage}").count()
        StageRun.objects.create(stage="{stage}", config={{"seen": seen, "i": i}})
print("done", StageRun.objects.filter(stage="{stage}").count())
"""


def test_a_read_then_write_transaction_waits_during_a_burst_of_writes(var_dir, tmp_path):  # noqa: F811
    env = command_env(var_dir)
    n = 300
    commands = [["shell", "-c", READ_THEN_WRITE.format(n=n, stage=stage)] for stage in ("sync", "webhook")]

    results = run_together(commands, env, tmp_path)

    for status, output in results:
        assert status == 0, output
        assert output.strip().endswith(f"done {n}"), output
    db = var_dir / "errormap.sqlite3"
    for stage in ("sync", "webhook"):
        seen = [row[0] for row in query(
            db, f"SELECT json_extract(config, '$.seen') FROM {StageRun._meta.db_table} WHERE stage = ? ORDER BY id",
            stage)]
        # Each transaction saw exactly the rows its own process had committed before it: serialised.
        assert seen == list(range(n))
