"""Every stage run leaves a StageRun row; long loops show a progress bar with rate and ETA."""
from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.utils import timezone
from tqdm import tqdm

from annotation.models import StageRun

T = TypeVar("T")


@contextmanager
def stage_run(stage: str, config: dict[str, Any]) -> Iterator[StageRun]:
    """Record a run of `stage`; on an exception the row says failed with the error, then re-raises."""
    run = StageRun.objects.create(stage=stage, config=config)
    try:
        yield run
    except BaseException as exc:
        run.status = StageRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"[:10_000]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at", "counts"])
        raise
    run.status = StageRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at", "counts"])


def progress(items: Iterable[T] | None, *, total: int | None = None, desc: str, unit: str = "it") -> tqdm:
    """A progress bar on stderr (rate and ETA); silent when stderr is not a terminal unless forced."""
    return tqdm(
        items,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
        disable=None,  # None = only on a TTY, so logs and CI stay clean
    )
