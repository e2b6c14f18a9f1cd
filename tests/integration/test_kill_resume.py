"""Real crashes: `analyze` and `ingest_results` run as `manage.py` processes, are SIGKILLed mid-run,
then run again: nothing may be lost or duplicated, and nothing already committed is asked for again
("Nothing lost" in DESIGN.md).

Each test works on its own SQLite file (copied from one migrated template) that the commands reach
through ERRORMAP_VAR_DIR and DATABASE_URL; the test reads it with the stdlib `sqlite3` module. The
judge is the real `openai` client in the child talking to FakeOpenAIServer in this process.
"""
from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from annotation.models import (
    Analysis,
    Dataset,
    EvaluatedModel,
    Example,
    Label,
    Prediction,
    ResponseCache,
    StageRun,
    WorkSetFailure,
)
from bench.ingest_bench import generate_csv
from tests.fake_openai_server import FakeOpenAIServer, Reply, valid_analysis

ROOT = Path(__file__).resolve().parents[2]
WAIT = 120.0  # seconds: generous ceilings for polls, never asserted as timings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals and a pty"),
]


# --- a database of our own and commands in child processes ----------------------------------------


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory) -> Path:
    """A migrated SQLite file, made once per module (migrating is the slowest step)."""
    var = tmp_path_factory.mktemp("template")
    manage(["migrate", "-v0"], env=command_env(var))
    db = var / "errormap.sqlite3"
    assert db.is_file() and not Path(f"{db}-wal").exists()  # the last connection checkpointed the WAL
    return db


@pytest.fixture
def var_dir(tmp_path, migrated_template) -> Path:
    var = tmp_path / "var"
    var.mkdir()
    shutil.copyfile(migrated_template, var / "errormap.sqlite3")
    return var


def command_env(var: Path, **extra: str) -> dict[str, str]:
    """The environment of a `manage.py` child: this database, no judge settings from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ERRORMAP_", "DATABASE_URL"))}
    env.update(ERRORMAP_VAR_DIR=str(var), DATABASE_URL=f"sqlite:///{var / 'errormap.sqlite3'}", **extra)
    return env


def manage(args: list[str], *, env: dict[str, str]) -> str:
    """Run one command to completion; its stdout (a failure shows both streams)."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=WAIT, check=False,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def start(args: list[str], *, env: dict[str, str], log: Path, stderr=None) -> subprocess.Popen:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT if stderr is None else stderr,
        )


def sigkill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=WAIT) == -signal.SIGKILL


def reap(proc: subprocess.Popen) -> None:
    """Make sure a child this test started is gone (a failed assertion must not leave it running)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT)


def wait_until(condition, what: str, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the command ended (exit {proc.returncode}) before {what}:\n{log.read_text() if log else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def query(db: Path, sql: str, *params) -> list[tuple]:
    """Read the database as another process would: only committed rows are visible."""
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def count(db: Path, model) -> int:
    return query(db, f"SELECT COUNT(*) FROM {model._meta.db_table}")[0][0]


def stage_runs(db: Path, stage: str) -> list[tuple[str, str | None, dict]]:
    """(status, finished_at, counts) of each run of `stage`, oldest first."""
    rows = query(db, f"SELECT status, finished_at, counts FROM {StageRun._meta.db_table} WHERE stage = ? ORDER BY id",
                 stage)
    return [(status, finished, json.loads(counts)) for status, finished, counts in rows]


def write_lock_held(db: Path) -> bool:
    """True when another connection has an open write transaction (SQLite allows one writer)."""
    con = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            return True
        raise
    else:
        con.execute("ROLLBACK")
        return False
    finally:
        con.close()


# --- analyze, killed mid-run ----------------------------------------------------------------------

N_ITEMS = 400  # failing predictions, each its own content (so its own analysis)
CONCURRENCY = 4  # requests the judge keeps in flight
# The server answers this many requests, then holds the rest until the kill: with analyze's batches
# of 64 (4 x concurrency, at least 64) that is two committed batches and 22 answers of the third.
OPEN_FOR = 150
MARK = re.compile(r"\[fail-(\d{4})\]")


def write_arithmetic_results(path: Path, n: int) -> None:
    """n examples; model-a fails each (its output carries a [fail-NNNN] mark), model-b gets it right."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["example_id", "model", "input_text", "output_text", "score", "correct_answer", "dataset"])
        for i in range(n):
            question, reference = f"What is {i} + 3 * 4?", str(i + 12)
            wrong = f"{i} + 3 = {i + 3}, times 4 is {4 * (i + 3)}. The answer is {4 * (i + 3)}. [fail-{i:04d}]"
            right = f"3 * 4 = 12, then {i} + 12 = {i + 12}. The answer is {i + 12}."
            writer.writerow([f"q{i:04d}", "model-a", question, wrong, 0, reference, "arith"])
            writer.writerow([f"q{i:04d}", "model-b", question, right, 1, reference, "arith"])


class HeldAfter:
    """Responder: answers the first `n` requests (after a small delay), holds later ones until released."""

    def __init__(self, n: int, delay: float) -> None:
        self.n, self.delay = n, delay
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._seen = 0

    def __call__(self, body: dict) -> Reply:
        with self._lock:
            self._seen += 1
            held = self._seen > self.n
        if held:
            self.released.wait(timeout=WAIT)
        return Reply(content=valid_analysis(), delay=self.delay)


def marks(bodies: list[dict]) -> list[str]:
    """The item each request asked about (from the [fail-NNNN] mark in its user message)."""
    found = []
    for body in bodies:
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        (mark,) = set(MARK.findall(user))
        found.append(mark)
    return found


def committed_marks(db: Path) -> set[str]:
    """Items whose analysis is committed."""
    rows = query(
        db,
        f"SELECT p.output_text FROM {Prediction._meta.db_table} p "
        f"WHERE p.is_failure AND p.content_key IN (SELECT content_key FROM {Analysis._meta.db_table})",
    )
    return {MARK.search(text).group(1) for (text,) in rows}


def test_analyze_killed_mid_run_resumes_without_losing_duplicating_or_re_asking(var_dir, tmp_path):
    db = var_dir / "errormap.sqlite3"
    results = tmp_path / "results.csv"
    write_arithmetic_results(results, N_ITEMS)
    env = command_env(var_dir)
    manage(["ingest_results", str(results)], env=env)
    manage(["sample_failures", "--ratio", "1", "--name", "everything"], env=env)
    assert count(db, WorkSetFailure) == N_ITEMS

    responder = HeldAfter(OPEN_FOR, delay=0.01)
    with FakeOpenAIServer(responder=responder) as server:
        judge_env = command_env(
            var_dir, OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="test-key",
            ERRORMAP_JUDGE_CONCURRENCY=str(CONCURRENCY), ERRORMAP_JUDGE_TIMEOUT="60",
        )
        args = ["analyze", "--work-set", "everything", "--judge", "openai", "--model", "fake-judge"]
        log = tmp_path / "analyze-killed.log"
        proc = start(args, env=judge_env, log=log)
        try:
            # Every slot busy on a held request: the child can send nothing more, and whatever it
            # committed before these requests went out is all it will ever commit.
            wait_until(lambda: server.count == OPEN_FOR + CONCURRENCY, "the judge's slots filled up", proc, log)
            sigkill(proc)
        finally:
            reap(proc)
            responder.released.set()  # the held handlers answer a closed socket and end

        asked_before_kill = server.count
        done_at_kill = committed_marks(db)
        cached_at_kill = count(db, ResponseCache)
        analyses_at_kill = count(db, Analysis)
        # Killed mid-run: some analyses committed, not all; every committed one has its cached answer.
        assert 0 < len(done_at_kill) < N_ITEMS
        assert analyses_at_kill == len(done_at_kill)
        assert len(done_at_kill) <= cached_at_kill <= OPEN_FOR
        ((status, finished_at, progress),) = stage_runs(db, "analyze")
        # Nothing can write after SIGKILL: the row says running, with the progress it had committed.
        assert (status, finished_at) == ("running", None)
        assert progress["analysed"] == len(done_at_kill) and progress["to_do"] == N_ITEMS

        out = manage(args, env=judge_env)
        assert f"{N_ITEMS} failures, {N_ITEMS} unique, {len(done_at_kill)} already analysed" in out
        before_kill = marks(server.requests[:asked_before_kill])
        after_kill = marks(server.requests[asked_before_kill:])

        # A third run finds everything done and asks nothing.
        again = manage(args, env=judge_env)
        assert f"{N_ITEMS} unique, {N_ITEMS} already analysed" in again and "0 analysed, 0 failed" in again
        assert server.count == asked_before_kill + len(after_kill)

    # The resumed run asked once for each item without a committed analysis or a cached answer,
    # and never about an item whose analysis was committed before the kill.
    assert not set(after_kill) & done_at_kill
    assert len(set(before_kill)) == len(before_kill) and len(set(after_kill)) == len(after_kill)
    assert len(after_kill) == N_ITEMS - cached_at_kill <= N_ITEMS - len(done_at_kill)
    # Asked twice: only what the killed run had in its open batch (answers come back to the cache
    # batch by batch), i.e. every request before the kill whose answer was not yet cached.
    assert len(set(before_kill) & set(after_kill)) == asked_before_kill - cached_at_kill

    # Every failure of the work set has exactly one analysis, and it is ok; nothing is duplicated.
    per_failure = query(
        db,
        f"SELECT wf.prediction_id, COUNT(a.id), SUM(a.status = 'ok') FROM {WorkSetFailure._meta.db_table} wf "
        f"JOIN {Prediction._meta.db_table} p ON p.id = wf.prediction_id "
        f"LEFT JOIN {Analysis._meta.db_table} a ON a.content_key = p.content_key "
        f"AND a.backend = 'openai' AND a.model_name = 'fake-judge' GROUP BY wf.prediction_id",
    )
    assert len(per_failure) == N_ITEMS
    assert {(n, ok) for _, n, ok in per_failure} == {(1, 1)}
    assert count(db, Analysis) == N_ITEMS == count(db, ResponseCache)
    assert count(db, Label) == 0  # analyze writes analyses only; judge labels come from prelabel

    killed, resumed, idle = stage_runs(db, "analyze")
    assert (killed[0], resumed[0], idle[0]) == ("running", "succeeded", "succeeded")
    assert resumed[1] is not None
    counts = resumed[2]
    assert counts["already_done"] == len(done_at_kill)
    assert counts["analysed"] == N_ITEMS - len(done_at_kill) and counts["failed"] == 0
    assert counts["cache_hits"] == cached_at_kill - len(done_at_kill)
    assert counts["requests"] == len(after_kill)
    assert (idle[2]["already_done"], idle[2]["to_do"]) == (N_ITEMS, 0)


# --- ingest, killed mid-file ----------------------------------------------------------------------

N_ROWS = 300_000  # bench.ingest_bench.generate_csv: 30,000 examples x 10 models, 1 row in 3 failing
PROGRESS = re.compile(rb"(\d+)rows \[")


def follow_progress(fd: int, proc: subprocess.Popen, at_least: int, log: Path) -> int:
    """Read the child's progress bar (stderr on a pty) until it reports `at_least` rows written."""
    seen, tail = 0, b""
    deadline = time.monotonic() + WAIT
    while seen < at_least:
        if proc.poll() is not None:
            pytest.fail(f"ingest ended (exit {proc.returncode}) before it could be killed:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail("gave up waiting for ingest's progress bar")
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            tail = (tail + os.read(fd, 4096))[-4096:]
            seen = max([seen, *(int(n) for n in PROGRESS.findall(tail))])
    return seen


def test_ingest_killed_mid_file_leaves_nothing_then_reingests_exactly(var_dir, tmp_path):
    db = var_dir / "errormap.sqlite3"
    results = tmp_path / "results.csv"
    generate_csv(results, N_ROWS)
    env = command_env(var_dir)
    log = tmp_path / "ingest-killed.log"

    # stderr on a terminal, so the child shows the progress bar a user sees: rows written so far.
    bar, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    try:
        try:
            proc = start(["ingest_results", str(results)], env=env, log=log, stderr=terminal)
        finally:
            os.close(terminal)  # the child holds its own copy
        try:
            written = follow_progress(bar, proc, N_ROWS // 10, log)
            # Freeze the child, then check it is inside the file's transaction: rows written, none
            # committed (a reader sees nothing) and the write lock still held. Only then kill it.
            os.kill(proc.pid, signal.SIGSTOP)
            _, status = os.waitpid(proc.pid, os.WUNTRACED)
            assert os.WIFSTOPPED(status), f"ingest ended before it could be stopped:\n{log.read_text()}"
            assert 0 < written < N_ROWS
            assert count(db, Prediction) == 0
            assert write_lock_held(db), "ingest is not inside its file transaction"
            sigkill(proc)
        finally:
            reap(proc)
    finally:
        os.close(bar)

    # The file was one transaction: nothing from it survived, not even its dataset or model names.
    for model in (Prediction, Example, Dataset, EvaluatedModel):
        assert count(db, model) == 0, model.__name__
    assert [run[0] for run in stage_runs(db, "ingest")] == ["running"]

    out = manage(["ingest_results", str(results)], env=env)
    assert f"{N_ROWS} rows, {N_ROWS} new, 0 updated, 0 unchanged" in out
    assert count(db, Prediction) == N_ROWS
    assert query(db, f"SELECT COUNT(*) FROM (SELECT DISTINCT example_id, model_id FROM {Prediction._meta.db_table})") \
        == [(N_ROWS,)]
    assert (count(db, Example), count(db, EvaluatedModel), count(db, Dataset)) == (N_ROWS // 10, 10, 4)
    # Score 0 on every third row, 1 elsewhere: mean 2/3, threshold 0.7 x 2/3, so the zeros fail.
    failing = query(db, f"SELECT COUNT(*) FROM {Prediction._meta.db_table} WHERE is_failure")
    assert failing == [(N_ROWS // 3,)]

    out = manage(["ingest_results", str(results)], env=env)
    assert f"{N_ROWS} rows, 0 new, 0 updated, {N_ROWS} unchanged" in out
    assert count(db, Prediction) == N_ROWS
    assert [run[0] for run in stage_runs(db, "ingest")] == ["running", "succeeded", "succeeded"]
