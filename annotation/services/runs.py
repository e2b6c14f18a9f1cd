"""Every stage run leaves a StageRun row; long loops show a progress bar with rate and ETA and keep
the run's heartbeat, so a killed run is told apart from a running one."""
from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, TypeVar

from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from annotation.models import StageRun

T = TypeVar("T")
HEARTBEAT_SECONDS = 30.0  # how often a long stage stamps its run (from its progress loop)
# A run on another host whose heartbeat is older than this is taken for dead (its process cannot
# be asked); generous, since a stage between progress steps (one long query) does not beat.
STALE_AFTER = timedelta(minutes=30)
INTERRUPTED = "interrupted"
_current_run: ContextVar[StageRun | None] = ContextVar("errormap_current_run", default=None)
_last_beat: ContextVar[float] = ContextVar("errormap_last_beat", default=0.0)


@contextmanager
def stage_run(stage: str, config: dict[str, Any]) -> Iterator[StageRun]:
    """Record a run of `stage`; on an exception the row says failed with the error, then re-raises.

    The row is written outside any transaction of the stage (a durable block refuses to nest in a
    caller's transaction), so a stage's rolled-back work never takes its FAILED row with it.
    """
    with transaction.atomic(durable=True):
        run = StageRun.objects.create(stage=stage, config=config, pid=os.getpid(),
                                      host=socket.gethostname(), heartbeat_at=timezone.now())
    token = _current_run.set(run)
    try:
        yield run
    except BaseException as exc:
        run.status = StageRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"[:10_000]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at", "counts"])
        raise
    finally:
        _current_run.reset(token)
    run.status = StageRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at", "counts"])


def heartbeat(*, force: bool = False) -> None:
    """Stamp the current stage run as alive (at most every HEARTBEAT_SECONDS unless forced)."""
    run = _current_run.get()
    now = time.monotonic()
    if run is None or (not force and now - _last_beat.get() < HEARTBEAT_SECONDS):
        return
    _last_beat.set(now)
    StageRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())


def run_state(run: StageRun, *, host: str | None = None) -> str:
    """The run's status, or 'interrupted' for a 'running' row whose process is gone.

    On this host the process is asked directly (signal 0); elsewhere a heartbeat older than
    STALE_AFTER counts as gone. Rows from before pids were recorded stay as they say.
    """
    if run.status != StageRun.Status.RUNNING or run.pid is None:
        return run.status
    if run.host == (host or socket.gethostname()):
        return run.status if _process_alive(run.pid) else INTERRUPTED
    beat = run.heartbeat_at or run.started_at
    return INTERRUPTED if beat is not None and timezone.now() - beat > STALE_AFTER else run.status


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class _Progress(tqdm):  # type: ignore[misc]  # tqdm ships no type information (stub gap)
    """tqdm that keeps the current stage run's heartbeat while items flow."""

    def __iter__(self) -> Iterator[Any]:
        for item in super().__iter__():
            heartbeat()
            yield item

    def update(self, n: float | None = 1) -> bool | None:
        heartbeat()
        shown: bool | None = super().update(n)
        return shown


def progress(items: Iterable[T] | None, *, total: int | None = None, desc: str, unit: str = "it") -> tqdm:
    """A progress bar on stderr (rate and ETA); silent when stderr is not a terminal unless forced."""
    return _Progress(
        items,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
        disable=None,  # None = only on a TTY, so logs and CI stay clean
    )
